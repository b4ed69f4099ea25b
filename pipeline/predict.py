"""The backend's answer for audio files: MFCCs per frame, the model stepped one frame at a time.

    python -m pipeline.predict FILE [FILE ...] [--model models/model.pth] [--rule last|mean]

Prints one JSON line per file: {"class": int, "confidence": [...], "label": str, "file": str}, where
"file" is the path as given on the command line. An unusable file gets one line on stderr naming it
and the reason; the other files are still answered; exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from pipeline.audio import load_audio
from pipeline.errors import InputError, run_cli
from pipeline.features import usable_mfcc
from pipeline.inference import RULES, backend_replay, check_finite, decide
from pipeline.labels import model_classes
from pipeline.model import EmotionLSTM, load_model


def predict_file(model: EmotionLSTM, model_path: Path, path: str, names: list[str], rule: str) -> dict[str, Any]:
    """The backend's response for one file, or InputError if the file is unusable or the model's
    output is not finite (NaN is not JSON, and no class can be chosen from it)."""
    mfcc = usable_mfcc(load_audio(path), path)
    probabilities = decide(check_finite([backend_replay(model, mfcc)], model_path, path)[0], rule)
    best = int(probabilities.argmax())
    return {"class": best, "confidence": [float(p) for p in probabilities], "label": names[best], "file": path}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")  # str, not Path: answers name each file exactly as given
    parser.add_argument("--model", type=Path, default=Path("models/model.pth"))
    parser.add_argument("--rule", choices=RULES, default="last", help="last frame (the backend's default) or mean")
    args = parser.parse_args()
    if not args.model.is_file():
        raise InputError(args.model, "model file not found (run `dvc repro train`)")
    torch.set_num_threads(1)  # one-frame LSTM steps are latency-bound; extra threads only add overhead
    model = load_model(args.model)
    names = list(model_classes(args.model, model.head.out_features).names)
    failed = False
    for path in args.files:
        try:
            print(json.dumps(predict_file(model, args.model, path, names, args.rule), allow_nan=False), flush=True)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            failed = True
    return 2 if failed else 0


if __name__ == "__main__":
    run_cli(main)
