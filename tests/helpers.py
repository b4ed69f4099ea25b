"""What the tests share: synthetic RAVDESS-named corpora, unusable audio files, project folders with
their own params.yaml, and running stages as DVC does (a subprocess) with one-line-error checks."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
import yaml

from pipeline.config import ExtractConfig, SplitConfig, TrainConfig, parse

if TYPE_CHECKING:
    import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SR = 16000
TIMEOUT = 240  # seconds per subprocess: a hang fails its test instead of the whole run
SPLIT = {"val_actors": 2, "test_actors": 2, "folds": 4, "corpus_val_fraction": 0.2}  # the 8-actor synthetic corpus: 4 / 2 / 2 actors
TINY = {
    "hidden_size": 12, "num_layers": 1, "dropout": 0.1, "epochs": 3, "batch_size": 16, "patience": 10, "validation": "select",
    "device": "cpu",  # the deterministic baseline, also where a GPU is present
}
RAVDESS8 = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
FRONTEND6 = ["happy", "sad", "angry", "neutral", "fearful", "surprised"]


# ---- synthetic audio --------------------------------------------------------------------------------


def clip_name(emotion: int, intensity: int, statement: int, repetition: int, actor: int) -> str:
    return f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}"


def synth_clip(emotion: int, actor: int, take: int, seconds: float = 0.6, sr: int = SR) -> np.ndarray:
    """A voiced-ish tone whose pitch and loudness contour encode the emotion, with silence around it."""
    rng = np.random.default_rng([emotion, actor, take])
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120.0 * (1.0 + 0.12 * emotion) * (1.0 + 0.03 * (actor % 3))
    tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in (1, 2, 3))
    envelope = np.sin(np.pi * t / seconds) ** (1 + emotion % 3)
    audio = 0.3 * tone * envelope + 0.002 * rng.standard_normal(t.size)
    pad = np.zeros(int(0.1 * sr))
    return np.concatenate([pad, audio, pad]).astype(np.float32)


def make_corpus(
    root: Path,
    actors: range | list[int] = range(1, 9),
    emotions: range | list[int] = range(1, 9),
    takes: int = 2,
    sr: int = SR,
    fmt: str = "wav",
    seconds: float = 0.6,
) -> list[Path]:
    """Write Actor_XX/<ravdess name>.<fmt> files; `takes` (statement, repetition) pairs per emotion."""
    paths = []
    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for emotion in emotions:
            for take in range(takes):
                statement, repetition = take // 2 + 1, take % 2 + 1
                audio = synth_clip(emotion, actor, take, seconds, SR)
                if sr != SR:
                    import librosa

                    audio = librosa.resample(audio, orig_sr=SR, target_sr=sr)
                path = folder / f"{clip_name(emotion, 1, statement, repetition, actor)}.{fmt}"
                sf.write(path, audio, sr, subtype="PCM_16")
                paths.append(path)
    return paths


def make_manifest_corpus(
    folder: Path, name: str, speakers: dict[str, str], emotions: list[str] = RAVDESS8, takes: int = 1, seconds: float = 0.3
) -> Path:
    """Another corpus as a user would bring it: FOLDER/NAME/SPEAKER/EMOTION_TAKE.wav (synth_clip's tones,
    speakers numbered from 30 so that they differ from the RAVDESS-named corpus's) and its manifest
    FOLDER/NAME.csv; speakers maps each speaker to its gender (male, female or empty)."""
    from pipeline.corpus import Row, write_manifest

    rows = []
    for number, (speaker, gender) in enumerate(speakers.items(), 30):
        for emotion in emotions:
            for take in range(takes):
                rel = f"{name}/{speaker}/{emotion}_{take}.wav"
                write_wav(folder / rel, synth_clip(RAVDESS8.index(emotion) + 1, number, take, seconds))
                rows.append(Row(rel, emotion, speaker, gender))
    manifest = folder / f"{name}.csv"
    write_manifest(manifest, rows)
    return manifest


# ---- unusable audio files: each writer takes the path to write and returns it ----------------------


def write_wav(path: Path, audio: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sr, subtype=subtype)
    return path


def good_audio() -> np.ndarray:
    return synth_clip(4, 3, 0, seconds=0.5)


def truncated_header(path: Path) -> Path:
    path.write_bytes(write_wav(path, good_audio()).read_bytes()[:30])  # cut inside the fmt chunk
    return path


def header_only(path: Path) -> Path:
    path.write_bytes(write_wav(path, good_audio()).read_bytes()[:44])  # a whole header, not one sample
    return path


def not_audio(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is a text file with an audio name\n" * 30)
    return path


def non_finite(value: float) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        audio = good_audio()
        audio[2000:2010] = value
        return write_wav(path, audio, subtype="FLOAT")

    return write


def t30(response: np.ndarray) -> float:
    """RT60 of an impulse response from the Schroeder curve's -5..-35 dB slope."""
    energy = np.cumsum(response[::-1].astype(np.float64) ** 2)[::-1]
    curve = 10 * np.log10(energy / energy[0])
    start, end = np.argmax(curve <= -5), np.argmax(curve <= -35)
    return 2 * (end - start) / SR


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- project folders and stage runs -------------------------------------------------------------------


AUGMENT_OFF: dict[str, list[float]] = {  # every cached variant kind of extract.augment, none drawn
    "noise_snr_db": [], "time_stretch": [], "pitch_shift": [], "colored_noise_snr_db": [], "babble_snr_db": [], "clipping_db": [],
    "room_rt60": [], "phone_bits": [], "speed": [], "opus_kbps": [],
}


def project_folder(folder: Path, **edits: dict[str, Any]) -> Path:
    """A project folder holding the repo's params.yaml, augmentation off, some keys replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["extract"]["augment"].update(AUGMENT_OFF)  # they cost time
    for section, values in edits.items():
        for key, value in values.items():  # a nested mapping (extract.augment) is merged, not replaced
            known = params[section].get(key)
            params[section][key] = {**known, **value} if isinstance(known, dict) and isinstance(value, dict) else value
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder


def serial_config(**augment: Any) -> ExtractConfig:
    """The repo's extract params on one worker (no fork inside pytest), augmentation off unless given."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())["extract"]
    params["augment"] = {**params["augment"], **AUGMENT_OFF, **augment}
    return parse(ExtractConfig, {**params, "workers": 1}, "extract")


def train_config(**overrides: Any) -> TrainConfig:
    """The repo's train params with TINY's small model, one member unless the overrides say otherwise,
    checked as the stage checks them."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())["train"]
    return parse(TrainConfig, {**params, **TINY, "ensemble": 1, **overrides}, "train")


def cli_env(pythonpath: bool = True) -> dict[str, str]:
    """This checkout's package (or only what is installed), and one BLAS/OpenMP thread: the stages'
    tiny LSTM steps crawl when 2 threads fight for 2 busy cores."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = str(REPO)
    return env


def run_stage(cwd: Path, module: str, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline.<module> ARGS` in cwd (a project folder with its own params.yaml)."""
    return subprocess.run(
        [sys.executable, "-m", f"pipeline.{module}", *map(str, args)],
        cwd=cwd, env=env or cli_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )


def run_stages(jobs: dict[str, tuple[Path, str, list[str | Path]]]) -> dict[str, subprocess.CompletedProcess[str]]:
    """Several stage runs at once (each spends seconds importing torch and librosa)."""
    with ThreadPoolExecutor(max(2, len(jobs))) as pool:
        futures = {name: pool.submit(run_stage, cwd, module, *args) for name, (cwd, module, args) in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit code 2 and stderr exactly one `error:` line (no traceback, warning or progress bar) with every needle."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def assert_no_files(folder: Path) -> None:
    """Nothing written: no output and no temporary file."""
    assert not folder.exists() or not any(folder.rglob("*")), sorted(folder.rglob("*"))


# ---- stores written directly ---------------------------------------------------------------------------


def variant_store(folder: Path) -> tuple[Path, Path, pd.DataFrame]:
    """A store written directly: 8 actors x 8 emotions, each clip with one augmented variant
    (variant 1), random raw-scale MFCCs; and its 4/2/2 manifest (4 folds). Seconds faster than the
    `project` fixture's extract, for tests that only need a valid store."""
    import pandas as pd  # here: spawned pool workers import this module and should start quickly

    from pipeline.manifest import COLUMNS
    from pipeline.split import build_manifest
    from pipeline.store import Clip, write_store

    rng = np.random.default_rng(0)
    clips = []
    for actor in range(1, 9):
        for emotion in range(1, 9):
            path = f"Actor_{actor:02d}/03-01-{emotion:02d}-01-01-01-{actor:02d}.wav"
            meta = {"path": path, "actor": actor, "emotion": emotion, "intensity": 1, "statement": 1, "repetition": 1}
            for variant, name in ((0, ""), (1, "noise_20db")):
                mfcc = (rng.standard_normal((int(rng.integers(3, 9)), 13)) * 50 - 500).astype(np.float32)
                clips.append(Clip({**meta, "variant": variant, "augment": name}, mfcc))
    store = folder / "mfcc.h5"
    write_store(store, clips, {"sample_rate": 16000, "frame_length": 400, "hop_length": 160, "n_mfcc": 13})
    table = pd.DataFrame([{**c.meta, "n_frames": len(c.mfcc)} for c in clips])
    manifest = build_manifest(table, parse(SplitConfig, {"seed": 0, **SPLIT}, "split"))
    manifest[COLUMNS].to_csv(folder / "split.csv", index=False)
    return store, folder / "split.csv", manifest


# ---- processes ---------------------------------------------------------------------------------------


def session_processes(sid: int) -> list[int]:
    """Live (non-zombie) processes of session sid, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, pgrp, session, ...
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.append(int(stat.parent.name))
    return found
