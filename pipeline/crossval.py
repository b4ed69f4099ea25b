"""Speaker-independent cross-validation: one fold trained as the train stage trains and scored as
the evaluate stage scores, and the figures aggregated over folds.

Fold k is tested on its own actors, selects its checkpoint on fold k+1, and trains on the rest,
from the cached features; its test clips are also scored under the recording conditions of a suite
file (pipeline.robustness.write_suite). A finished fold's result can be kept and reused under
cache_keys' key.
"""
from __future__ import annotations

import dataclasses
import pickle
import platform
import sys
import time
from collections.abc import Iterator
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline import workers
from pipeline.config import TrainConfig
from pipeline.dataset import load_splits
from pipeline.hashing import data_key, file_md5
from pipeline.inference import replay
from pipeline.outputs import atomic_path
from pipeline.ravdess import class_names
from pipeline.robustness import condition_scores, load_suite
from pipeline.scoring import predictions_table, score
from pipeline.training import effective_precision, fit, resolve_device

FIGURES = ("balanced_accuracy", "accuracy", "macro_f1")
FOLD_CACHE = Path(".cache/cv")  # ignored by git and DVC; one <key>.pkl per finished fold
SUITE_CACHE = Path(".cache/suite")  # one <key>.npz of degraded features per fold's test clips
PACKAGE = Path(__file__).resolve().parent  # the code a fold runs: all of it, simpler than its imports and safe

FoldTask = tuple[Path, Path, str, TrainConfig, int, Path | None]  # run_fold's: store, split, scheme, config, fold, suite
FoldResult = tuple[dict[str, Any], pd.DataFrame]  # its figures and its per-clip predictions


def suite_inputs(manifest: pd.DataFrame, data: Path, fold: int) -> tuple[list[Path], list[str], list[int]]:
    """Fold k's test clips as robustness.suite_file and write_suite take them: audio paths, keys (paths
    under the data root) and speakers, in path order (fold 0's are the evaluate stage's)."""
    clips = manifest[manifest["fold"] == fold].sort_values("path")
    return [data / p for p in clips["path"]], clips["path"].tolist(), clips["actor"].tolist()


def run_folds(tasks: list[FoldTask], processes: int) -> Iterator[tuple[int, FoldResult]]:
    """(fold, result) of each task as soon as it is done, in any order: a caller keeps each one at once."""
    if processes > 1 and len(tasks) > 1:  # folds are independent; one process each, torch on one thread in each
        with workers.pool(min(processes, len(tasks))) as pool:
            for done in as_completed([pool.submit(numbered_fold, task) for task in tasks]):
                yield done.result()
    else:
        yield from map(numbered_fold, tasks)


def numbered_fold(task: FoldTask) -> tuple[int, FoldResult]:
    """run_fold with its fold number: the pool's results arrive in any order."""
    return task[4], run_fold(*task)


def cache_keys(
    store: Path, split: Path, scheme: str, config: TrainConfig, folds: list[int], suites: dict[int, Path] | None = None
) -> dict[int, str]:
    """Per fold, a hash of everything its result depends on: the train config, the class scheme, the
    fold, the store's and the manifest's bytes, the pipeline's code, the libraries, the device, and
    the fold's suite file (named by its own content key), if any."""
    shared = {
        "config": dataclasses.asdict(config),
        "scheme": scheme,
        "store": file_md5(store),
        "split": file_md5(split),
        "code": {path.name: file_md5(path) for path in sorted(PACKAGE.glob("*.py"))},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__, "pandas": pd.__version__},
        "device": resolve_device(config.device).type,
        "precision": effective_precision(config),  # bfloat16 falls back to float32 on a CPU without AVX-512
    }
    suites = suites or {}
    return {fold: data_key({**shared, "fold": fold, "suite": suites[fold].stem if fold in suites else None}) for fold in folds}


def load_fold(path: Path) -> FoldResult | None:
    """A cached fold's result, or None where there is none. The cache is the stage's own output (a
    pickle, trusted as models/model.pth is); one that cannot be read is recomputed."""
    try:
        with path.open("rb") as f:
            return pickle.load(f)
    except (FileNotFoundError, EOFError, pickle.UnpicklingError):
        return None


def save_fold(path: Path, result: FoldResult) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        pickle.dump(result, f)


def run_fold(store: Path, split: Path, scheme: str, config: TrainConfig, fold: int, suite: Path | None) -> FoldResult:
    """One fold's figures (both decision rules; per condition where a suite is given) and its per-clip
    predictions."""
    names = class_names(scheme)
    data = load_splits(store, split, scheme, config.augment_variants, fold, config.trains_on_val)
    started = time.perf_counter()
    result = fit(data, len(names), config, desc=f"fold {fold}")
    test = data["test"]
    frame_probs = replay(result.model, test.sequences)
    scored = score(frame_probs, test.labels.numpy(), names)
    if suite is not None:
        features = load_suite(suite, test.clips["path"].tolist())
        scored["conditions"] = condition_scores(result.model, features, test.labels.numpy(), names)
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
    """Mean and std over folds of each figure, for both decision rules, and of each condition's
    balanced accuracy where the folds were scored under conditions; confusion matrices summed."""

    def stats(values: list[float]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "std": float(np.std(values))}

    result: dict[str, Any] = {f: stats([r[f] for r in folds]) for f in FIGURES}
    result["mean_prob"] = {f: stats([r["mean_prob"][f] for r in folds]) for f in FIGURES}
    result["confusion"] = np.sum([r["confusion"] for r in folds], axis=0).tolist()
    result["folds"] = [
        {k: r[k] for k in ("fold", "test_actors", "best_epoch", *FIGURES)}
        | {"mean_prob": {f: r["mean_prob"][f] for f in FIGURES}}
        | ({"conditions": {n: c["last"] for n, c in r["conditions"].items()}} if "conditions" in r else {})
        for r in folds
    ]
    if all("conditions" in r for r in folds):
        per_rule = {
            n: {rule: [r["conditions"][n][rule] for r in folds] for rule in ("last", "mean")} for n in folds[0]["conditions"]
        }
        result["conditions"] = {
            n: {"last": float(np.mean(v["last"])), "last_std": float(np.std(v["last"])), "mean": float(np.mean(v["mean"]))}
            for n, v in per_rule.items()
        }
        result["robustness"] = suite_summary({n: c["last"] for n, c in result["conditions"].items()})
    return result


def suite_summary(scores: dict[str, float]) -> dict[str, float]:
    """The suite in three figures: the mean and the worst balanced accuracy over the conditions other
    than clean, and how many of them come within 0.05 of clean (the robustness target: all)."""
    others = [v for n, v in scores.items() if n != "clean"]
    if not others:
        return {}
    summary = {"conditions_mean": float(np.mean(others)), "worst": float(np.min(others))}
    if "clean" in scores:
        summary["within_0_05_of_clean"] = sum(v >= scores["clean"] - 0.05 for v in others)
    return summary
