"""RAVDESS naming: clip metadata parsed from file names, and the class schemes the model can predict."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError

CORPUS = "ravdess"  # its name in a store that also holds other corpora (their manifests may not take it)
DATA = Path("data/ravdess")  # dvc.yaml's fetch output: where fetch writes and extract reads by default
AUDIO_SUFFIXES = (".wav", ".flac")
N_ACTORS = 24
CLIPS_PER_ACTOR = 60  # speech: 8 emotions x statements x repetitions, neutral without strong intensity
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")  # code - 1
EMOJI = {
    "neutral": "😐", "calm": "😌", "happy": "😊", "sad": "😢",
    "angry": "😠", "fearful": "😨", "disgust": "🤢", "surprised": "😲",
}
# Class schemes (CONTRACT.md): class index -> name, and RAVDESS emotion code -> class index.
SCHEMES: dict[str, tuple[str, ...]] = {
    "ravdess8": EMOTIONS,
    "frontend6": ("happy", "sad", "angry", "neutral", "fearful", "surprised"),
}
_MERGED = {"calm": "neutral", "disgust": "angry"}  # frontend6 folds these into its own classes

_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


@dataclass(frozen=True)
class ClipInfo:
    """The seven fields of a RAVDESS file name, e.g. 03-01-06-01-02-01-12."""

    path: str  # relative to the data root, e.g. Actor_12/03-01-06-01-02-01-12.wav
    modality: int
    channel: int
    emotion: int  # 1-8
    intensity: int  # 1 normal, 2 strong
    statement: int
    repetition: int
    actor: int  # 1-24, odd male, even female

    @property
    def gender(self) -> str:
        return gender(self.actor)


def gender(actor: int) -> str:
    return "male" if actor % 2 else "female"


def parse_name(path: str | Path, root: str | Path | None = None) -> ClipInfo:
    """Parse a RAVDESS speech file name; InputError naming the file if it is not one."""
    path = Path(path)
    rel = path.relative_to(root).as_posix() if root is not None else path.as_posix()
    match = _NAME.match(path.stem)
    if match is None or path.suffix.lower() not in AUDIO_SUFFIXES:
        raise InputError(path, "not a RAVDESS file name (expected MM-VC-EE-II-SS-RR-AA.wav or .flac)")
    modality, channel, emotion, intensity, statement, repetition, actor = map(int, match.groups())
    checks = [
        (channel == 1, f"vocal channel {channel:02d} is not speech (01)"),
        (1 <= emotion <= 8, f"unknown emotion code {emotion:02d} (expected 01-08)"),
        (intensity in (1, 2), f"unknown intensity code {intensity:02d}"),
        (statement in (1, 2), f"unknown statement code {statement:02d}"),
        (repetition in (1, 2), f"unknown repetition code {repetition:02d}"),
        (1 <= actor <= N_ACTORS, f"unknown actor {actor:02d} (expected 01-24)"),
    ]
    for ok, reason in checks:
        if not ok:
            raise InputError(path, reason)
    return ClipInfo(rel, modality, channel, emotion, intensity, statement, repetition, actor)


def find_clips(root: str | Path) -> list[Path]:
    """Every audio file under root, sorted so that every later step sees one fixed order."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "data folder not found")
    # os.walk follows symlinked folders (a corpus assembled from links), which Path.rglob does not;
    # each real folder is visited once, so a link loop cannot recurse forever.
    files, seen = [], set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        found = (Path(folder) / name for name in names if Path(name).suffix.lower() in AUDIO_SUFFIXES)
        files.extend(p for p in found if p.is_file())
    files.sort()
    if not files:
        raise InputError(root, "no .wav or .flac files in the data folder")
    return files


def class_names(scheme: str) -> tuple[str, ...]:
    if scheme not in SCHEMES:
        raise InputError(None, f"unknown class scheme {scheme!r} (expected one of {sorted(SCHEMES)})")
    return SCHEMES[scheme]


def class_index(emotion: int, scheme: str) -> int:
    """Class index of a RAVDESS emotion code (1-8) under the scheme."""
    name = EMOTIONS[emotion - 1]
    return class_names(scheme).index(_MERGED.get(name, name) if scheme == "frontend6" else name)
