"""Stage cv: speaker-independent cross-validation over the manifest's actor folds (pipeline.crossval).

    python -m pipeline.cv [--store ...] [--split ...] [--metrics-dir metrics] [--folds 0 1 ...]

Folds run in parallel processes (cv.workers); each trains exactly as the train stage would.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
from pathlib import Path

import pandas as pd

from pipeline import metrics
from pipeline.config import CvConfig, DataConfig, TrainConfig, load
from pipeline.crossval import aggregate, run_fold
from pipeline.dataset import add_input_arguments
from pipeline.errors import run_cli
from pipeline.manifest import read_manifest
from pipeline.outputs import write_json, write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_arguments(parser)
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics"))
    parser.add_argument("--folds", type=int, nargs="*", help="only these folds (default: all)")
    args = parser.parse_args()
    scheme = load(DataConfig, "data").classes
    config = load(TrainConfig, "train")
    workers = load(CvConfig, "cv").workers
    folds = args.folds or sorted(read_manifest(args.split)["fold"].unique().tolist())

    tasks = [(args.store, args.split, scheme, config, int(k)) for k in folds]
    if workers > 1:  # folds are independent; one process each, torch on one thread in each
        with multiprocessing.get_context("spawn").Pool(min(workers, len(tasks))) as pool:
            outcomes = pool.starmap(run_fold, tasks)
    else:
        outcomes = [run_fold(*task) for task in tasks]
    results, tables = zip(*outcomes)
    summary = aggregate(list(results))
    summary["classes"] = scheme
    write_json(args.metrics_dir / "cv.json", metrics.rounded(summary))
    write_text(args.metrics_dir / "cv_predictions.csv", pd.concat(tables).to_csv(index=False))
    ba = summary["balanced_accuracy"]
    print(f"cv: balanced accuracy {ba['mean']:.3f} +/- {ba['std']:.3f} over {len(folds)} folds", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
