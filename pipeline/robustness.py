"""The model under recording conditions: each clip's audio through every condition of the suite
(pipeline.conditions), then the backend's own features and frame-by-frame replay, scored per condition.

What users send differs from RAVDESS's studio: this says how much of the clean figure survives a
laptop or phone microphone, a phone line, a lossy app, noise and rooms.
"""
from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import conditions
from pipeline.audio import load_audio
from pipeline.config import PARAMS_FILE
from pipeline.errors import InputError
from pipeline.features import usable_mfcc
from pipeline.hashing import data_key, file_md5
from pipeline.inference import replay
from pipeline.model import EmotionLSTM
from pipeline.outputs import atomic_path
from pipeline.scoring import score
from pipeline.workers import pool as worker_pool

BABBLE_CLIPS = 12  # other speakers' clips in each speaker's babble pool (the first, in path order)
# What the degraded features depend on besides the clips and the names: this code and these libraries.
SUITE_CODE = ("audio.py", "conditions.py", "features.py", "mixing.py", "robustness.py")
SUITE_LIBRARIES = ("numpy", "scipy", "librosa", "soundfile", "soxr", "pedalboard", "pyroomacoustics", "colorednoise")

_JOB: dict[str, Any] = {}  # what forked workers read: clips' audio and each speaker's babble


def _clip_features(i: int) -> list[np.ndarray]:
    """Clip i's backend MFCCs under every condition of the job."""
    audio, key, babble = _JOB["audio"][i], _JOB["keys"][i], _JOB["babble"][_JOB["speakers"][i]]
    return [
        usable_mfcc(conditions.apply(name, audio, key, babble), f"{key} ({name})") for name in _JOB["names"]
    ]


def check_names(names: Sequence[str]) -> None:
    """evaluate.conditions must name conditions of the suite: one line naming params.yaml otherwise."""
    unknown = [n for n in names if n not in conditions.CONDITIONS]
    if unknown:
        known = ", ".join(conditions.CONDITIONS)
        raise InputError(PARAMS_FILE, f"evaluate.conditions: unknown condition {unknown[0]!r} (known: {known})")


def degraded_features(
    paths: Sequence[Path], keys: Sequence[str], speakers: Sequence[int], names: Sequence[str], workers: int
) -> dict[str, list[np.ndarray]]:
    """condition -> every clip's (n_frames, 13) backend MFCCs under it, in clip order.

    Babble for a clip is made of other speakers' clips from the same set (never the clip's own
    speaker); keys (paths relative to the data root) seed every random draw, so reruns are identical.
    """
    audio = [load_audio(p) for p in paths]
    babble: dict[int, conditions.BabbleSource | None] = {}
    for speaker in sorted(set(speakers)):
        others = [a for a, s in zip(audio, speakers) if s != speaker][:BABBLE_CLIPS]
        babble[speaker] = conditions.BabbleSource(others) if others and "babble_10" in names else None
    _JOB.update(audio=audio, keys=list(keys), speakers=list(speakers), names=list(names), babble=babble)
    try:
        if workers > 1 and len(paths) > 1:
            _clip_features(0)  # librosa's lazy imports and numba loads once, before the fork
            with worker_pool(workers, "fork") as pool:
                per_clip = list(pool.map(_clip_features, range(len(paths)), chunksize=4))
        else:
            per_clip = [_clip_features(i) for i in range(len(paths))]
    finally:
        _JOB.clear()
    return {name: [clip[k] for clip in per_clip] for k, name in enumerate(names)}


def suite_key(paths: Sequence[Path], keys: Sequence[str], speakers: Sequence[int], names: Sequence[str]) -> str:
    """A hash of everything degraded_features' result depends on: the clips' bytes, keys and speakers
    (babble pools), the condition names, the code that degrades and extracts, and its libraries."""
    package = Path(__file__).resolve().parent
    return data_key({
        "clips": [[k, file_md5(p), int(s)] for p, k, s in zip(paths, keys, speakers)],
        "names": list(names),
        "code": {name: file_md5(package / name) for name in SUITE_CODE},
        "versions": {"python": platform.python_version()} | {lib: metadata.version(lib) for lib in SUITE_LIBRARIES},
    })


def suite_file(folder: Path, paths: Sequence[Path], keys: Sequence[str], speakers: Sequence[int], names: Sequence[str]) -> Path:
    """Where write_suite keeps these clips' degraded features: folder/<suite_key>.npz."""
    return folder / f"{suite_key(paths, keys, speakers, names)}.npz"


def write_suite(
    path: Path, paths: Sequence[Path], keys: Sequence[str], speakers: Sequence[int], names: Sequence[str], workers: int
) -> bool:
    """degraded_features saved to path (suite_file's), unless it is there already: cross-validation
    reruns (another train config, the same clips) then skip the audio work. Whether it did the work."""
    if path.is_file():
        return False
    features = degraded_features(paths, keys, speakers, names, workers)
    arrays = {"keys": np.array(keys, dtype=str), "names": np.array(names, dtype=str)}
    for name, sequences in features.items():
        arrays[f"{name}.frames"] = np.concatenate(sequences)
        arrays[f"{name}.lengths"] = np.array([len(s) for s in sequences])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez(f, **arrays)
    return True


def load_suite(path: Path, keys: Sequence[str]) -> dict[str, list[np.ndarray]]:
    """write_suite's features, reordered to follow keys (every key must be in the file)."""
    with np.load(path) as saved:
        order = {k: i for i, k in enumerate(saved["keys"].tolist())}
        rows = [order[k] for k in keys]
        suite = {}
        for name in saved["names"].tolist():
            sequences = np.split(saved[f"{name}.frames"], np.cumsum(saved[f"{name}.lengths"])[:-1])
            suite[name] = [sequences[i] for i in rows]
    return suite


def condition_scores(
    model: EmotionLSTM, features: dict[str, list[np.ndarray]], labels: np.ndarray, names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """condition -> balanced accuracy of the last-frame rule (the backend's default) and the mean rule,
    scored as the clean clips are (pipeline.scoring.score)."""
    import torch

    scores = {}
    for name, sequences in features.items():
        scored = score(replay(model, [torch.from_numpy(s) for s in sequences]), labels, names)
        scores[name] = {"last": scored["balanced_accuracy"], "mean": scored["mean_prob"]["balanced_accuracy"]}
    return scores
