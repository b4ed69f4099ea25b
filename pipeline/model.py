"""The stateful LSTM the backend runs one frame at a time, and the safe way to load it.

The backend feeds raw MFCCs (c0 near -1131 on quiet frames), so the training actors' feature
statistics live inside the model as buffers and every caller gets normalisation for free.
"""
from __future__ import annotations

import pickle
import re
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import InputError
from pipeline.features import N_MFCC

Hidden = tuple[torch.Tensor, torch.Tensor]


class EmotionLSTM(nn.Module):
    """``forward(x, hidden) -> (logits, hidden)``: x (batch, seq_len, 13), logits for the last step."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(input_size))
        self.register_buffer("feature_std", torch.ones(input_size))
        self.lstm = nn.LSTM(
            input_size, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_classes)

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp_min(1e-6))

    def frame_logits(self, x: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """Logits at every step, (batch, seq_len, classes). Causal: step t sees frames 0..t only,
        so right padding never changes a sequence's own steps."""
        out, hidden = self.lstm((x - self.feature_mean) / self.feature_std, hidden)
        return self.head(self.dropout(out)), hidden

    def resized(self, hidden_size: int) -> EmotionLSTM:
        """A fresh model like this one but of another width (what ensemble_of merges into)."""
        return EmotionLSTM(
            self.lstm.input_size, hidden_size, self.lstm.num_layers, self.head.out_features, self.dropout.p
        )

    def forward(self, x: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        if x.shape[1] == 1 and not self.training:  # the backend's call: one frame at a time
            return self.step(x, hidden)
        logits, hidden = self.frame_logits(x, hidden)
        return logits[:, -1], hidden

    def step(self, x: torch.Tensor, hidden: Hidden | None) -> tuple[torch.Tensor, Hidden]:
        """forward for a single frame x (batch, 1, features): each layer's equations through
        torch.lstm_cell, without nn.LSTM's module and oneDNN call overhead, which cost the backend
        ~2.5x more per frame. Equal to frame_logits to float rounding, not bit for bit: ATen's cell and
        oneDNN's fused LSTM round differently (tests/test_model.py: 1e-6 on short inputs; real clips'
        probabilities up to 7.5e-6, README)."""
        z = ((x - self.feature_mean) / self.feature_std)[:, 0]
        if hidden is None:
            zeros = z.new_zeros(self.lstm.num_layers, z.shape[0], self.lstm.hidden_size)
            hidden = (zeros, zeros)
        h0, c0 = hidden
        weights = self.lstm._flat_weights  # [w_ih, w_hh, b_ih, b_hh] per layer; all_weights rebuilds lists per call
        hs, cs = [], []
        for layer in range(self.lstm.num_layers):
            h, c = torch.lstm_cell(z, (h0[layer], c0[layer]), *weights[4 * layer : 4 * layer + 4])
            hs.append(h)
            cs.append(c)
            z = h
        return self.head(z), (torch.stack(hs), torch.stack(cs))


def ensemble_of(members: Sequence[EmotionLSTM]) -> EmotionLSTM:
    """One EmotionLSTM whose logits are the mean of the members' logits, frame by frame.

    The members run side by side inside a single nn.LSTM of hidden size sum(member sizes): every
    gate's weights are block-diagonal, so member k's units only ever see the input and member k's
    own units. The backend gets a plain model with the usual (h, c) state, at the cost of one LSTM
    of the summed width. Members must share input size, depth, classes and input statistics (they
    are trained on the same actors).
    """
    first = members[0]
    size, layers = first.lstm.hidden_size, first.lstm.num_layers
    for m in members[1:]:
        same = (m.lstm.input_size, m.lstm.hidden_size, m.lstm.num_layers, m.head.out_features) == (
            first.lstm.input_size, size, layers, first.head.out_features
        )
        same_input = torch.equal(m.feature_mean, first.feature_mean) and torch.equal(m.feature_std, first.feature_std)
        if not (same and same_input):
            raise ValueError("ensemble members must have the same input size, width, depth, classes and statistics")
    n = len(members)
    merged = first.resized(n * size)
    merged.set_normalisation(first.feature_mean, first.feature_std)
    with torch.no_grad():
        for name, target in merged.lstm.named_parameters():
            target.zero_()
            shared_input = name == "weight_ih_l0"  # layer 0 reads the frame, not member units
            for k, member in enumerate(members):
                source = getattr(member.lstm, name)
                for gate in range(4):  # PyTorch stacks the i, f, g, o gates along dim 0
                    rows = slice(gate * n * size + k * size, gate * n * size + (k + 1) * size)
                    block = source[gate * size : (gate + 1) * size]
                    if block.dim() == 1 or shared_input:
                        target[rows] = block
                    else:
                        target[rows, k * size : (k + 1) * size] = block
        merged.head.weight.copy_(torch.cat([m.head.weight for m in members], dim=1) / n)
        merged.head.bias.copy_(torch.stack([m.head.bias for m in members]).mean(0))
    # What gets exported: the backend's loop runs without torch.no_grad(), so parameters that
    # required gradients would grow an autograd graph frame after frame (CONTRACT.md).
    return merged.requires_grad_(False).eval()


# Everything a pickled EmotionLSTM refers to, for torch.load(..., weights_only=True).
SAFE_GLOBALS = [EmotionLSTM, nn.LSTM, nn.Linear, nn.Dropout, set]


def load_model(path: str | PathLike[str], map_location: str | torch.device = "cpu") -> EmotionLSTM:
    """Load a full saved model without trusting arbitrary pickles: only SAFE_GLOBALS may be built.

    Raises InputError (the file and a one-line reason) for a missing or unreadable file, a pickle
    that needs anything outside SAFE_GLOBALS, a pickle of anything but an EmotionLSTM, and an
    EmotionLSTM that does not read the pipeline's N_MFCC features per frame.
    """
    if not Path(path).is_file():
        raise InputError(path, "model file not found")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            # Explicit: torch.load's default yields to TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (plain pickle,
            # arbitrary code); an explicit weights_only=True does not.
            model = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message spans many lines; the name of the refused global is the useful part
        # ("Unsupported global: GLOBAL x.Y ...", "Trying to load unsupported GLOBAL posix.system ...").
        refused = re.search(r"GLOBAL ([\w.]+)", str(err))
        if refused:
            reason = f"refused: not a model saved by this package (it needs {refused.group(1)})"
            raise InputError(path, reason) from None
        found = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\s*\n|$)", str(err))
        detail = found.group(1) if found else str(err).strip().split("\n")[0]
        raise InputError(path, f"cannot load the model (not a file torch.save wrote: {detail})") from None
    except Exception as err:  # torch.load raises RuntimeError, EOFError, zipfile errors, ... on bad files
        detail = type(err).__name__ + (f": {str(err).strip().splitlines()[0]}" if str(err).strip() else "")
        raise InputError(path, f"cannot load the model ({detail})") from None
    if not isinstance(model, EmotionLSTM):
        raise InputError(path, f"expected an EmotionLSTM, got {type(model).__name__}")
    if model.lstm.input_size != N_MFCC:  # it would fail on the first frame, with a torch traceback
        raise InputError(path, f"the model reads {model.lstm.input_size} features per frame, not the {N_MFCC} MFCCs")
    return model.requires_grad_(False).eval()  # also for files exported before parameters were frozen
