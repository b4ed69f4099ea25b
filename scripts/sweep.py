"""Cross-validate several train configs at once (a process per (config, fold)), to compare levers.

    python scripts/sweep.py EXPERIMENTS.yaml [--out results.jsonl] [--workers 8] [--folds 0 1 ...]

EXPERIMENTS.yaml maps a name to overrides of params.yaml's `train:` section. Each result line has
the name, the overrides, per-fold and mean/std figures (pipeline.cv.aggregate) and each fold's seconds.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from pipeline.config import DataConfig, TrainConfig, load, load_params, parse
from pipeline.crossval import aggregate, run_fold
from pipeline.manifest import MANIFEST, read_manifest
from pipeline.store import STORE


def _task(args: tuple[str, dict[str, Any], int, str]) -> tuple[str, dict[str, Any], float]:
    name, overrides, fold, scheme = args
    torch.set_num_threads(1)
    config = parse(TrainConfig, {**load_params()["train"], **overrides}, "train")
    started = time.perf_counter()
    scored, _ = run_fold(STORE, MANIFEST, scheme, config, fold, None)  # without the conditions: clean figures only
    return name, scored, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", type=Path)
    parser.add_argument("--out", type=Path, default=Path("sweep.jsonl"))
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--folds", type=int, nargs="*")
    args = parser.parse_args()
    experiments: dict[str, dict[str, Any]] = yaml.safe_load(args.experiments.read_text())
    scheme = load(DataConfig, "data").classes
    folds = args.folds or sorted(read_manifest(MANIFEST)["fold"].unique().tolist())
    tasks = [(name, overrides or {}, fold, scheme) for name, overrides in experiments.items() for fold in folds]
    by_name: dict[str, list[tuple[dict[str, Any], float]]] = {name: [] for name in experiments}
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for name, scored, seconds in pool.imap_unordered(_task, tasks):
            by_name[name].append((scored, seconds))
            if len(by_name[name]) == len(folds):
                runs = sorted(by_name[name], key=lambda r: r[0]["fold"])
                summary = aggregate([r[0] for r in runs])
                summary.pop("confusion")
                line = {"name": name, "overrides": experiments[name], "fold_seconds": [round(r[1]) for r in runs]}
                with args.out.open("a") as f:
                    f.write(json.dumps(line | summary) + "\n")
                ba = summary["balanced_accuracy"]
                print(f"{name:24s} bacc {ba['mean']:.3f} +/- {ba['std']:.3f}  mean-rule "
                      f"{summary['mean_prob']['balanced_accuracy']['mean']:.3f}", flush=True)


if __name__ == "__main__":
    main()
