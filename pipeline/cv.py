"""Stage cv: speaker-independent cross-validation over the manifest's actor folds.

    python -m pipeline.cv [--store ...] [--split ...] [--metrics-dir metrics] [--folds 0 1 ...]

Folds run in parallel processes (cv.workers); each trains exactly as the train stage would.

Fold k is tested on its own actors, selects its checkpoint on fold k+1 (with train.rotate_val,
ensemble member j on fold k+1+j), and trains on the rest,
with the train stage's fit() and the evaluate stage's scoring, from the cached features.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import metrics
from pipeline.dataset import add_input_arguments
from pipeline.errors import run_cli
from pipeline.evaluate import predictions_table, score
from pipeline.inference import replay
from pipeline.outputs import write_json, write_text
from pipeline.params import integer, load_params, section
from pipeline.ravdess import class_names
from pipeline.split import read_manifest
from pipeline.train import TrainConfig, fit, member_splits

FIGURES = ("balanced_accuracy", "accuracy", "macro_f1")


def run_fold(store: Path, split: Path, scheme: str, config: TrainConfig, fold: int) -> tuple[dict[str, Any], pd.DataFrame]:
    names = class_names(scheme)
    data = member_splits(store, split, scheme, config, fold)
    started = time.perf_counter()
    result = fit(data, len(names), config, desc=f"fold {fold}")
    test = data[0]["test"]
    frame_probs = replay(result.model, test.sequences)
    scored = score(frame_probs, test.labels.numpy(), names)
    seconds = time.perf_counter() - started
    scored |= {
        "fold": fold,
        "test_actors": sorted(int(a) for a in test.clips["actor"].unique()),
        "best_epoch": result.best_epoch,
    }
    print(
        f"cv: fold {fold} actors {scored['test_actors']}: balanced accuracy {scored['balanced_accuracy']:.3f} "
        f"(mean rule {scored['mean_prob']['balanced_accuracy']:.3f}), best epoch {result.best_epoch}, "
        f"{seconds:.0f} s",
        file=sys.stderr,
    )
    table = predictions_table(test.clips, test.labels.numpy(), frame_probs, names).assign(fold=fold)
    return scored, table


def aggregate(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over folds of each figure, for both decision rules; confusion matrices summed."""

    def stats(values: list[float]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "std": float(np.std(values))}

    result: dict[str, Any] = {f: stats([r[f] for r in folds]) for f in FIGURES}
    result["mean_prob"] = {f: stats([r["mean_prob"][f] for r in folds]) for f in FIGURES}
    result["confusion"] = np.sum([r["confusion"] for r in folds], axis=0).tolist()
    result["folds"] = [
        {k: r[k] for k in ("fold", "test_actors", "best_epoch", *FIGURES)}
        | {"mean_prob": {f: r["mean_prob"][f] for f in FIGURES}}
        for r in folds
    ]
    return result


def main() -> None:
    params = load_params()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_arguments(parser)
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics"))
    parser.add_argument("--folds", type=int, nargs="*", help="only these folds (default: all)")
    args = parser.parse_args()
    scheme = section(params, "data").get("classes", "ravdess8")
    config = TrainConfig.from_params(section(params, "train"))
    folds = args.folds or sorted(read_manifest(args.split)["fold"].unique().tolist())

    workers = integer(section(params, "cv").get("workers", 1), "cv.workers")
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
