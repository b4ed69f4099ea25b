"""Scoring replayed clips: both decision rules, per-class figures, the early-decision curve, and
the check that the batched replay equals the backend's batch-of-one loop."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipeline import metrics
from pipeline.audio import frames_after
from pipeline.dataset import SplitData
from pipeline.errors import InputError
from pipeline.inference import RULES, backend_replay, decide
from pipeline.model import EmotionLSTM

# Max |probability difference| allowed between the batched replay (oneDNN's fused LSTM) and the backend's
# loop (EmotionLSTM.step, ATen's lstm_cell): float32 rounding drifts over a clip's ~400 frames, up to
# 7.5e-6 and 9.2e-6 on two exported models' test clips; a replay that breaks the state or the
# normalisation differs by 1e-2 or more.
REPLAY_TOLERANCE = 1e-4


def score(frame_probs: Sequence[np.ndarray], labels: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Both decision rules: last frame at the top level (the backend's default), mean under mean_prob."""
    n = len(names)
    decided = {rule: np.stack([decide(p, rule) for p in frame_probs]).argmax(1) for rule in RULES}
    result: dict[str, Any] = metrics.summary(labels, decided["last"], n)
    result["mean_prob"] = metrics.summary(labels, decided["mean"], n)
    result["per_class"] = metrics.per_class(labels, decided["last"], names)
    result["confusion"] = metrics.confusion(labels, decided["last"], n).tolist()
    return result


def early_curve(frame_probs: Sequence[np.ndarray], labels: np.ndarray, seconds: Sequence[float]) -> list[dict[str, float]]:
    """Last-frame-rule accuracy when the backend answers after `seconds` of audio (or at the clip's end)."""
    rows = []
    for s in seconds:
        k = frames_after(s)
        pred = np.array([p[min(k, len(p)) - 1].argmax() for p in frame_probs])
        rows.append({"seconds": float(s), **metrics.summary(labels, pred, frame_probs[0].shape[1])})
    return rows


def replay_check(model: EmotionLSTM, data: SplitData, batched: Sequence[np.ndarray], n: int, seed: int) -> dict[str, Any]:
    """Run the backend's literal batch-of-one loop on a sample of clips and compare with the batched replay."""
    rng = np.random.default_rng(seed)
    sample = sorted(rng.choice(len(data), size=min(n, len(data)), replace=False).tolist())
    diff = max(float(np.abs(backend_replay(model, data.sequences[i]) - batched[i]).max()) for i in sample)
    if diff > REPLAY_TOLERANCE:
        raise InputError(None, f"batched replay differs from the backend loop by {diff:.2e} (> {REPLAY_TOLERANCE})")
    return {"clips": len(sample), "max_abs_diff": diff}


def predictions_table(clips: pd.DataFrame, labels: np.ndarray, frame_probs: Sequence[np.ndarray], names: Sequence[str]) -> pd.DataFrame:
    """One row per clip: actual and predicted class names (DVC's confusion template reads this)."""
    predicted = [names[int(decide(p, "last").argmax())] for p in frame_probs]
    return pd.DataFrame({"path": clips["path"], "actual": [names[i] for i in labels], "predicted": predicted})
