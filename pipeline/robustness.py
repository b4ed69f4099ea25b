"""The model under recording conditions: each clip's audio through every condition of the suite
(pipeline.conditions), then the backend's own features and frame-by-frame replay, scored per condition.

What users send differs from RAVDESS's studio: this says how much of the clean figure survives a
laptop or phone microphone, a phone line, a lossy app, noise and rooms.
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import conditions
from pipeline.audio import load_audio
from pipeline.config import PARAMS_FILE
from pipeline.errors import InputError
from pipeline.features import usable_mfcc
from pipeline.inference import replay
from pipeline.model import EmotionLSTM
from pipeline.scoring import score

BABBLE_CLIPS = 12  # other speakers' clips in each speaker's babble pool (the first, in path order)

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
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                per_clip = pool.map(_clip_features, range(len(paths)), chunksize=4)
        else:
            per_clip = [_clip_features(i) for i in range(len(paths))]
    finally:
        _JOB.clear()
    return {name: [clip[k] for clip in per_clip] for k, name in enumerate(names)}


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
