"""Stage cv: speaker-independent cross-validation over the manifest's actor folds (pipeline.crossval).

    python -m pipeline.cv [--store ...] [--split ...] [--data data/ravdess] [--metrics-dir metrics]
                          [--folds 0 1 ...] [--no-cache]

Folds run in parallel processes (cv.workers); each trains exactly as the train stage would, and its
test actors' clips are also scored under every recording condition of evaluate.conditions. Each
finished fold is kept in .cache/cv/ at once, so that a run interrupted after an hour's folds loses
only the unfinished ones: the next run of the same config, data and code reuses them. The conditions'
features are kept in .cache/suite/, so that a run with another train config does no audio work.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pandas as pd

from pipeline import metrics
from pipeline.config import CvConfig, DataConfig, EvaluateConfig, TrainConfig, load
from pipeline.crossval import (
    FOLD_CACHE,
    SUITE_CACHE,
    FoldResult,
    aggregate,
    cache_keys,
    load_fold,
    run_folds,
    save_fold,
    suite_inputs,
)
from pipeline.dataset import add_input_arguments
from pipeline.errors import run_cli
from pipeline.manifest import cv_folds, read_manifest
from pipeline.outputs import atomic_paths, check_writable, write_json, write_text
from pipeline.plots import robustness_png
from pipeline.ravdess import DATA, class_names
from pipeline.robustness import check_names, suite_file, write_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_arguments(parser)
    parser.add_argument("--data", type=Path, default=DATA, help="the corpus's audio, for the conditions (%(default)s)")
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics"))
    parser.add_argument("--folds", type=int, nargs="*", help="only these folds (default: all)")
    parser.add_argument(
        "--no-cache", action="store_true", help=f"neither reuse nor keep finished folds ({FOLD_CACHE}, {SUITE_CACHE})"
    )
    args = parser.parse_args()
    outputs = [args.metrics_dir / name for name in ("cv.json", "cv_predictions.csv", "cv_robustness.png")]
    check_writable(*outputs)
    scheme = load(DataConfig, "data").classes
    config = load(TrainConfig, "train")
    workers = load(CvConfig, "cv").workers
    conditions = load(EvaluateConfig, "evaluate").conditions
    check_names(conditions)
    manifest = read_manifest(args.split)
    folds = args.folds or cv_folds(manifest)

    with ExitStack() as stack:
        suite_folder = Path(stack.enter_context(tempfile.TemporaryDirectory())) if args.no_cache else SUITE_CACHE
        suite_args = {k: (*suite_inputs(manifest, args.data, k), conditions) for k in folds}
        suites = {k: suite_file(suite_folder, *a) for k, a in suite_args.items()} if conditions else {}
        keys = {} if args.no_cache else cache_keys(args.store, args.split, scheme, config, folds, suites)
        outcomes: dict[int, FoldResult] = {}
        for fold, key in keys.items():
            if (cached := load_fold(FOLD_CACHE / f"{key}.pkl")) is not None:
                outcomes[fold] = cached
                print(f"cv: fold {fold} reused from cache", file=sys.stderr)
        todo = [int(k) for k in folds if k not in outcomes]
        for k in todo:
            started = time.perf_counter()
            if k in suites and write_suite(suites[k], *suite_args[k], workers=os.cpu_count() or 1):
                seconds = time.perf_counter() - started
                print(f"cv: fold {k}'s {len(suite_args[k][1])} clips under {len(conditions)} conditions: {seconds:.0f} s", file=sys.stderr)
        tasks = [(args.store, args.split, scheme, config, k, suites.get(k)) for k in todo]
        for fold, outcome in run_folds(tasks, workers):
            outcomes[fold] = outcome
            if keys:
                save_fold(FOLD_CACHE / f"{keys[fold]}.pkl", outcome)
    results, tables = zip(*(outcomes[k] for k in folds))  # fold order, whatever order they finished in
    summary = aggregate(list(results))
    summary["classes"] = scheme
    ba = summary["balanced_accuracy"]
    with atomic_paths(*outputs) as (summary_tmp, predictions_tmp, plot_tmp):
        write_json(summary_tmp, metrics.rounded(summary))
        write_text(predictions_tmp, pd.concat(tables).to_csv(index=False))
        # Without conditions (evaluate.conditions: []) the figure holds the clean bar alone.
        scored = summary.get("conditions", {"clean": {"last": ba["mean"], "last_std": ba["std"]}})
        means = {n: c["last"] for n, c in scored.items()}
        spread = {n: c["last_std"] for n, c in scored.items()}
        title = f"cross-validated over {len(folds)} folds' test actors, under recording conditions (mean, std)"
        robustness_png(plot_tmp, means, 1 / len(class_names(scheme)), title, spread)
    print(f"cv: balanced accuracy {ba['mean']:.3f} +/- {ba['std']:.3f} over {len(folds)} folds", file=sys.stderr)
    if "robustness" in summary:
        r = summary["robustness"]
        print(f"cv: under {len(conditions) - 1} conditions: mean {r['conditions_mean']:.3f}, worst {r['worst']:.3f}", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
