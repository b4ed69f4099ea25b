"""Running a model the way the backend does: frame by frame with the returned hidden state.

``backend_replay`` is the backend's literal batch-of-one loop. ``replay`` gives the same per-frame
probabilities for many clips at once: the LSTM is causal, so a right-padded batch run in one call
yields each clip's frame-t output from its frames 0..t alone, its state frozen past its last frame.
"""
from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import numpy as np
import torch

from pipeline.errors import InputError
from pipeline.model import EmotionLSTM

RULES = ("last", "mean")


@torch.no_grad()
def backend_replay(model: EmotionLSTM, mfcc: np.ndarray | torch.Tensor) -> np.ndarray:
    """(n_frames, classes) softmax after each frame, exactly the backend's loop."""
    model.eval()
    input_tensor = torch.as_tensor(mfcc, dtype=torch.float32).unsqueeze(0)
    hidden = None
    probabilities = []
    for i in range(input_tensor.shape[1]):
        frame = input_tensor[:, i : i + 1, :]
        output, hidden = model(frame, hidden)
        probabilities.append(torch.softmax(output, dim=1)[0])
    return torch.stack(probabilities).numpy()


@torch.no_grad()
def replay(model: EmotionLSTM, sequences: Sequence[torch.Tensor], batch_size: int = 64) -> list[np.ndarray]:
    """Per-frame probabilities of every sequence, batched by length (the fast path of evaluate)."""
    model.eval()
    device = next(model.parameters()).device
    lengths = np.array([len(s) for s in sequences])
    order = np.argsort(lengths, kind="stable")
    result: list[np.ndarray] = [np.empty(0)] * len(sequences)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        x = torch.nn.utils.rnn.pad_sequence([sequences[i] for i in idx], batch_first=True).to(device)
        probs = torch.softmax(model.frame_logits(x)[0], dim=-1).cpu().numpy()
        for row, i in enumerate(idx):
            result[i] = probs[row, : lengths[i]]
    return result


def check_finite(frame_probs: Sequence[np.ndarray], model_path: str | PathLike[str], clip: str = "") -> list[np.ndarray]:
    """frame_probs, or one line naming the model (and the clip, when given) when any is NaN or Inf: no
    class can be chosen from such an output, and every figure computed from it would look valid and
    mean nothing."""
    if not all(np.isfinite(p).all() for p in frame_probs):
        where = f" for {clip}" if clip else ""
        raise InputError(model_path, f"the model's output{where} is not finite (NaN or Inf): its weights are not usable")
    return list(frame_probs)


def decide(frame_probs: np.ndarray, rule: str = "last") -> np.ndarray:
    """The backend's decision: the last frame's probabilities (its default) or the mean over frames."""
    if rule == "last":
        return frame_probs[-1]
    if rule == "mean":
        return frame_probs.mean(axis=0)
    raise ValueError(f"unknown decision rule {rule!r} (expected one of {RULES})")
