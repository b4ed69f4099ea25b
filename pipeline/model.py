"""The stateful LSTM the backend runs one frame at a time, and the safe way to load it.

The backend feeds raw MFCCs (c0 near -1131 on quiet frames), so the training actors' feature
statistics live inside the model as buffers and every caller gets normalisation for free.
"""
from __future__ import annotations

import pickle
import re
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import InputError

Hidden = tuple[torch.Tensor, torch.Tensor]


class EmotionLSTM(nn.Module):
    """``forward(x, hidden) -> (logits, hidden)``: x (batch, seq_len, 13), logits for the last step."""

    def __init__(
        self,
        input_size: int = 13,
        hidden_size: int = 128,
        num_layers: int = 2,
        num_classes: int = 8,
        dropout: float = 0.3,
    ) -> None:
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

    def forward(self, x: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        logits, hidden = self.frame_logits(x, hidden)
        return logits[:, -1], hidden


# Everything a pickled EmotionLSTM refers to, for torch.load(..., weights_only=True).
SAFE_GLOBALS = [EmotionLSTM, nn.LSTM, nn.Linear, nn.Dropout, set]


def load_model(path: str | PathLike[str], map_location: str | torch.device = "cpu") -> EmotionLSTM:
    """Load a full saved model without trusting arbitrary pickles: only SAFE_GLOBALS may be built.

    Raises InputError (the file and a one-line reason) for a missing or unreadable file, a pickle
    that needs anything outside SAFE_GLOBALS, and a pickle of anything but an EmotionLSTM.
    """
    if not Path(path).is_file():
        raise InputError(path, "model file not found")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            model = torch.load(path, map_location=map_location)
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
    return model.eval()
