"""Distillation's teacher: a non-causal model of the whole clip whose soft per-clip probabilities
train the causal student's per-frame outputs (pipeline.training, train.distill).

The student must decide from the frames seen so far; the teacher sees every frame of the clip at
once, through dilated convolutions over time and mean and max pooling over the clip. It is trained
per fit on the same training actors (and their cached variants), selected on the same validation
actors (pipeline.training.fit_teacher), and never exported: the backend gets the student alone.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.dataset import SplitData, pad

KERNEL = 5
DILATIONS = (1, 2, 4)  # receptive field 57 frames (0.57 s) before the pooling over the whole clip


class ClipTeacher(nn.Module):
    """``forward(x, lengths) -> logits``: x (batch, max_len, 13) right-padded raw MFCCs, one row of
    logits per clip. Padding never changes a clip's logits: padded steps are zeroed after every layer."""

    def __init__(self, input_size: int, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(input_size))
        self.register_buffer("feature_std", torch.ones(input_size))
        sizes = [input_size] + [channels] * len(DILATIONS)
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, KERNEL, padding=d * (KERNEL // 2), dilation=d) for a, b, d in zip(sizes, sizes[1:], DILATIONS)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * channels, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None])[:, None, :]
        h = ((x - self.feature_mean) / self.feature_std).transpose(1, 2) * valid
        for conv in self.convs:
            h = F.relu(conv(h)) * valid
        mean = h.sum(2) / lengths[:, None]
        peak = h.masked_fill(~valid, -math.inf).amax(2)
        return self.head(self.dropout(torch.cat([mean, peak], dim=1)))


@torch.no_grad()
def clip_logits(teacher: ClipTeacher, data: SplitData, batch_size: int = 64) -> torch.Tensor:
    """(clips, classes) logits of every whole sequence of a split, in its order."""
    teacher.eval()
    order = np.argsort(data.lengths.numpy(), kind="stable")
    out = torch.empty(len(data), teacher.head.out_features)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        x, lengths = pad([data.sequences[i] for i in idx])
        out[idx] = teacher(x, lengths)
    return out


def soft_targets(teacher: ClipTeacher, data: SplitData, temperature: float) -> torch.Tensor:
    """The teacher's per-clip probabilities at `temperature` (>1 spreads them over the near classes)."""
    return torch.softmax(clip_logits(teacher, data) / temperature, dim=1)
