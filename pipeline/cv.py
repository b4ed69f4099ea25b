"""Stage cv: speaker-independent cross-validation over the manifest's actor folds (pipeline.crossval).

    python -m pipeline.cv [--store ...] [--split ...] [--metrics-dir metrics] [--folds 0 1 ...] [--no-cache]

Folds run in parallel processes (cv.workers); each trains exactly as the train stage would. Each
finished fold is kept in .cache/cv/ at once, so that a run interrupted after an hour's folds loses
only the unfinished ones: the next run of the same config, data and code reuses them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from pipeline import metrics
from pipeline.config import CvConfig, DataConfig, TrainConfig, load
from pipeline.crossval import (
    FoldResult,
    aggregate,
    cache_keys,
    load_fold,
    run_folds,
    save_fold,
)
from pipeline.dataset import add_input_arguments
from pipeline.errors import run_cli
from pipeline.manifest import read_manifest
from pipeline.outputs import atomic_paths, check_writable, write_json, write_text

CACHE = Path(".cache/cv")  # ignored by git and DVC; one <key>.pkl per finished fold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_arguments(parser)
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics"))
    parser.add_argument("--folds", type=int, nargs="*", help="only these folds (default: all)")
    parser.add_argument("--no-cache", action="store_true", help=f"neither reuse nor keep finished folds ({CACHE})")
    args = parser.parse_args()
    outputs = [args.metrics_dir / "cv.json", args.metrics_dir / "cv_predictions.csv"]
    check_writable(*outputs)
    scheme = load(DataConfig, "data").classes
    config = load(TrainConfig, "train")
    workers = load(CvConfig, "cv").workers
    folds = args.folds or sorted(read_manifest(args.split)["fold"].unique().tolist())

    keys = {} if args.no_cache else cache_keys(args.store, args.split, scheme, config, folds)
    outcomes: dict[int, FoldResult] = {}
    for fold, key in keys.items():
        if (cached := load_fold(CACHE / f"{key}.pkl")) is not None:
            outcomes[fold] = cached
            print(f"cv: fold {fold} reused from cache", file=sys.stderr)
    tasks = [(args.store, args.split, scheme, config, int(k)) for k in folds if k not in outcomes]
    for fold, outcome in run_folds(tasks, workers):
        outcomes[fold] = outcome
        if keys:
            save_fold(CACHE / f"{keys[fold]}.pkl", outcome)
    results, tables = zip(*(outcomes[k] for k in folds))  # fold order, whatever order they finished in
    summary = aggregate(list(results))
    summary["classes"] = scheme
    with atomic_paths(*outputs) as (summary_tmp, predictions_tmp):
        write_json(summary_tmp, metrics.rounded(summary))
        write_text(predictions_tmp, pd.concat(tables).to_csv(index=False))
    ba = summary["balanced_accuracy"]
    print(f"cv: balanced accuracy {ba['mean']:.3f} +/- {ba['std']:.3f} over {len(folds)} folds", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
