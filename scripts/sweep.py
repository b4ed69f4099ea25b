"""Cross-validate several train configs at once, with replicates, to compare levers: a process per
(config, replicate, fold), as many at once as --workers (on a GPU machine, many).

    python scripts/sweep.py EXPERIMENTS.yaml [--out sweep.jsonl] [--workers 8] [--folds 0 1 ...]
                            [--replicates 1] [--no-conditions]

EXPERIMENTS.yaml maps a name to overrides of params.yaml's `train:` section. Replicate r trains with
train.seed + 1000 r (an ensemble's members take seed, seed + 1, ...). Each fold's test actors are
also scored under evaluate.conditions, from the degraded features the cv stage keeps in
.cache/suite/ (computed here if missing). One result line per (name, replicate): the name, the
replicate, the overrides, pipeline.crossval.aggregate's figures and each fold's seconds. Compare two
experiments paired by replicate and fold: python scripts/compare.py --a sweep.jsonl#A --b sweep.jsonl#B
"""
from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import yaml

from pipeline.config import (
    DataConfig,
    EvaluateConfig,
    TrainConfig,
    load,
    load_params,
    parse,
)
from pipeline.crossval import SUITE_CACHE, aggregate, run_fold, suite_inputs
from pipeline.errors import run_cli
from pipeline.manifest import MANIFEST, cv_folds, read_manifest
from pipeline.ravdess import DATA
from pipeline.robustness import check_names, suite_file, write_suite
from pipeline.store import STORE
from pipeline.workers import pool as worker_pool

Task = tuple[str, TrainConfig, int, int, str, Path | None]  # name, config, replicate, fold, scheme, suite


def _task(task: Task) -> tuple[str, int, dict[str, Any], float]:
    name, config, replicate, fold, scheme, suite = task
    torch.set_num_threads(1)
    config = replace(config, seed=config.seed + 1000 * replicate)
    started = time.perf_counter()
    scored, _ = run_fold(STORE, MANIFEST, scheme, config, fold, suite)
    return name, replicate, scored, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", type=Path)
    parser.add_argument("--out", type=Path, default=Path("sweep.jsonl"))
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--folds", type=int, nargs="*")
    parser.add_argument("--replicates", type=int, default=1, help="runs per (config, fold), seeds 1000 apart")
    parser.add_argument("--no-conditions", action="store_true", help="clean figures only (no audio work)")
    args = parser.parse_args()
    experiments: dict[str, dict[str, Any]] = yaml.safe_load(args.experiments.read_text())
    train = load_params()["train"]
    configs = {  # checked here, so that a bad override is one line before any work, not from a worker later
        name: parse(TrainConfig, {**train, **(overrides or {})}, "train", f"{args.experiments} ({name})")
        for name, overrides in experiments.items()
    }
    scheme = load(DataConfig, "data").classes
    manifest = read_manifest(MANIFEST)
    folds = args.folds or cv_folds(manifest)
    suites: dict[int, Path] = {}
    if not args.no_conditions:
        conditions = load(EvaluateConfig, "evaluate").conditions
        check_names(conditions)
        for fold in folds:
            inputs = suite_inputs(manifest, DATA, fold)
            suites[fold] = suite_file(SUITE_CACHE, *inputs, conditions)
            write_suite(suites[fold], *inputs, conditions, workers=os.cpu_count() or 1)
    tasks: list[Task] = [
        (name, config, r, fold, scheme, suites.get(fold))
        for name, config in configs.items() for r in range(args.replicates) for fold in folds
    ]
    done: dict[tuple[str, int], list[tuple[dict[str, Any], float]]] = {}
    with worker_pool(args.workers) as pool:  # a worker that dies ends the sweep with one line, not a hang
        for future in as_completed([pool.submit(_task, task) for task in tasks]):
            name, replicate, scored, seconds = future.result()
            runs = done.setdefault((name, replicate), [])
            runs.append((scored, seconds))
            if len(runs) == len(folds):
                runs.sort(key=lambda r: r[0]["fold"])
                summary = aggregate([r[0] for r in runs])
                summary.pop("confusion")
                line = {"name": name, "replicate": replicate, "overrides": experiments[name], "fold_seconds": [round(r[1]) for r in runs]}
                with args.out.open("a") as f:
                    f.write(json.dumps(line | summary) + "\n")
                ba = summary["balanced_accuracy"]
                suite = f"  conditions mean {summary['robustness']['conditions_mean']:.3f}" if "robustness" in summary else ""
                print(f"{name:24s} r{replicate} bacc {ba['mean']:.3f} +/- {ba['std']:.3f}  mean-rule "
                      f"{summary['mean_prob']['balanced_accuracy']['mean']:.3f}{suite}", flush=True)


if __name__ == "__main__":
    run_cli(main)
