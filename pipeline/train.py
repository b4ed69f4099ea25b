"""Stage train: fit the stateful LSTM (pipeline.training) and export it in the backend's format.

    python -m pipeline.train [--store features/mfcc.h5] [--split features/split.csv] [--models models]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
import torch

from pipeline import metrics
from pipeline.config import DataConfig, TrainConfig, load
from pipeline.dataset import add_input_arguments, load_splits
from pipeline.errors import run_cli
from pipeline.labels import LABELS_FILE, labels_document
from pipeline.outputs import atomic_paths, check_writable, write_json, write_text
from pipeline.ravdess import class_names
from pipeline.training import FitResult, fit

MODEL_FILES = ("model.pth", "model_weights.pth", LABELS_FILE)


def write_model_files(result: FitResult, scheme: str, paths: list[Path]) -> None:
    """The backend's files, MODEL_FILES' content (full pickled model, state_dict, the class list
    beside them), written to `paths` (temporaries, in MODEL_FILES' order)."""
    model, weights, labels = paths
    # Saved through a file object: given a path, torch names the archive's records after the
    # (random) temporary file name, and equal weights would no longer give equal bytes.
    for path, obj in ((model, result.model), (weights, result.model.state_dict())):
        with path.open("wb") as f:
            torch.save(obj, f)
    write_json(labels, labels_document(scheme))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_arguments(parser)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/train.json"))
    parser.add_argument("--log", type=Path, default=Path("metrics/train_log.csv"))
    args = parser.parse_args()
    model_files = [args.models / name for name in MODEL_FILES]
    check_writable(*model_files, args.log, args.metrics)
    scheme = load(DataConfig, "data").classes
    config = load(TrainConfig, "train")

    data = load_splits(args.store, args.split, scheme, config.augment_variants, train_on_val=config.trains_on_val)
    result = fit(data, len(class_names(scheme)), config, workers=os.cpu_count() or 1)

    # One set: killed before the renames, the last run's model, log and metrics stay together.
    with atomic_paths(*model_files, args.log, args.metrics) as temporaries:
        write_model_files(result, scheme, temporaries[:3])
        write_text(temporaries[3], pd.DataFrame(result.history).to_csv(index=False, float_format="%.6g"))
        write_json(
            temporaries[4],
            metrics.rounded(
                {
                    "best_epoch": result.best_epoch,
                    "epochs_run": result.epochs_run,
                    "train_clips": len(data["train"]),
                    "val_clips": len(data["val"]),
                    "validation": config.validation,  # train: the val figures are in-sample
                    "stored_weights": sum(p.numel() for p in result.model.parameters()),
                    "val": result.val,
                }
            ),
        )
    print(
        f"train: kept epoch {result.best_epoch}/{result.epochs_run}, val balanced accuracy "
        f"{result.val['balanced_accuracy']:.3f}{' (in-sample)' if config.trains_on_val else ''}, "
        f"{result.seconds_per_epoch:.1f} s/epoch -> {args.models}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_cli(main)
