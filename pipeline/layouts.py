"""Manifests of public emotional-speech corpora from their file names: EmoDB, CREMA-D, TESS, SAVEE
and RAVDESS, each labelled only by how it names its files, so no download's folder structure matters."""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.corpus import Row
from pipeline.errors import InputError
from pipeline.ravdess import EMOTIONS, find_clips, parse_name


@dataclass(frozen=True)
class Label:
    """What one file name says."""

    label: str  # the corpus's own emotion code, e.g. EmoDB's "L"
    emotion: str | None  # its class name; None where none fits (EmoDB's boredom): the file is dropped
    speaker: str
    gender: str = ""


@dataclass(frozen=True)
class NameLayout:
    """A corpus whose file stems match `pattern`, with named groups speaker and label."""

    name: str
    pattern: str
    example: str
    emotions: Mapping[str, str | None]
    genders: Mapping[str, str] = field(default_factory=dict)  # speaker -> gender, where the corpus says
    ignore_case: bool = False  # labels then compare in lower case, speakers in upper case
    # The speaker may be the folder instead (SAVEE's own download: AudioData/DC/a01.wav): the pattern is
    # then matched against FOLDER_STEM too.
    speaker_folders: bool = False

    def __call__(self, path: Path) -> Label:
        flags = re.IGNORECASE if self.ignore_case else 0
        found = re.fullmatch(self.pattern, path.stem, flags)
        if found is None and self.speaker_folders:
            found = re.fullmatch(self.pattern, f"{path.parent.name}_{path.stem}", flags)
        if found is None:
            raise InputError(path, f"not named as {self.name} names its files (e.g. {self.example})")
        speaker, label = found["speaker"], found["label"]
        if self.ignore_case:
            speaker, label = speaker.upper(), label.lower()
        if label not in self.emotions:
            expected = ", ".join(self.emotions)
            raise InputError(path, f"unknown {self.name} emotion code {label!r} (expected one of {expected})")
        return Label(label, self.emotions[label], speaker, self.genders.get(speaker, ""))


def ravdess(path: Path) -> Label:
    info = parse_name(path)
    return Label(f"{info.emotion:02d}", EMOTIONS[info.emotion - 1], f"{info.actor:02d}", info.gender)


EMODB = NameLayout(
    "EmoDB",
    r"(?P<speaker>\d\d)[a-z]\d\d(?P<label>[A-Z])[a-z]",  # speaker, text, emotion letter (index 5), version
    "03a01Wa.wav",
    # Wut, Freude, Trauer, Angst, Ekel, neutral; Langeweile (boredom) has no class
    {"W": "angry", "F": "happy", "T": "sad", "A": "fearful", "E": "disgust", "N": "neutral", "L": None},
    # the corpus's documentation: 5 male and 5 female actors
    {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
     "12": "male", "13": "female", "14": "female", "15": "male", "16": "female"},
)
CREMA_D = NameLayout(  # the speakers' genders are in its VideoDemographics.csv, not in the names
    "CREMA-D",
    r"(?P<speaker>\d{4})_[A-Z]{3}_(?P<label>[A-Z]{3})_[A-Z]{2}",  # speaker, sentence, emotion, level
    "1001_DFA_ANG_XX.wav",
    {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"},
)
TESS = NameLayout(  # its downloads spell some labels capitalised (OAF_bite_Fear.wav)
    "TESS",
    r"(?P<speaker>OAF|YAF)_[a-z]+_(?P<label>[a-z]+)",  # speaker, word, emotion
    "OAF_back_angry.wav",
    {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy", "neutral": "neutral",
     "ps": "surprised", "sad": "sad"},
    {"OAF": "female", "YAF": "female"},
    ignore_case=True,
)
SAVEE = NameLayout(
    "SAVEE",
    r"(?P<speaker>DC|JE|JK|KL)_(?P<label>[a-z]{1,2})\d\d",  # speaker, emotion, sentence
    "DC_a01.wav or DC/a01.wav",
    {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprised"},
    {"DC": "male", "JE": "male", "JK": "male", "KL": "male"},
    speaker_folders=True,  # its AudioData.zip files each speaker's clips as DC/a01.wav
)
LAYOUTS: dict[str, Callable[[Path], Label]] = {
    "emodb": EMODB, "cremad": CREMA_D, "tess": TESS, "savee": SAVEE, "ravdess": ravdess,
}


@dataclass
class Scan:
    """A folder read by a layout: the manifest's rows, the files skipped (their errors) and the files
    dropped because their label has no class (counted by label)."""

    rows: list[Row]
    skipped: list[InputError]
    dropped: Counter[str]


def manifest_path(path: str | Path, manifest: str | Path) -> str:
    """path as a manifest's row names it: relative to the manifest's folder, with forward slashes."""
    return Path(os.path.relpath(Path(path).absolute(), Path(manifest).absolute().parent)).as_posix()


def scan(
    layout: str, folder: str | Path, manifest: str | Path, skip_unknown: bool = False, placed_at: str | Path | None = None
) -> Scan:
    """Every .wav/.flac file under folder as a row whose path is relative to the manifest's folder.
    A file the layout cannot parse is an InputError naming it, or with skip_unknown, skipped.
    placed_at: where the folder will be when the manifest is read, if not where it is now (fetch_corpus
    scans the corpus in its staging folder, before moving it into place)."""
    parse = LAYOUTS[layout]
    folder = Path(folder)
    where = folder if placed_at is None else Path(placed_at)
    rows, skipped, dropped = [], [], Counter[str]()
    for path in find_clips(folder):
        try:
            label = parse(path)
        except InputError as err:
            if not skip_unknown:
                raise InputError(err.path, f"{err.reason}; --skip-unknown skips such files") from None
            skipped.append(err)
            continue
        if label.emotion is None:
            dropped[label.label] += 1
            continue
        rows.append(Row(manifest_path(where / path.relative_to(folder), manifest), label.emotion, label.speaker, label.gender))
    if not rows:
        raise InputError(folder, f"no usable row: no file names a class in the {layout} layout")
    return Scan(sorted(rows), skipped, dropped)
