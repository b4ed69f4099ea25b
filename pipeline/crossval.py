"""Speaker-independent cross-validation: one fold trained as the train stage trains and scored as
the evaluate stage scores, and the figures aggregated over folds.

Fold k is tested on its own actors, selects its checkpoint on fold k+1, and trains on the rest,
from the cached features. A finished fold's result can be kept and reused under cache_keys' key.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline import workers
from pipeline.config import TrainConfig
from pipeline.dataset import load_splits
from pipeline.inference import replay
from pipeline.outputs import atomic_path
from pipeline.ravdess import class_names
from pipeline.scoring import predictions_table, score
from pipeline.training import fit, resolve_device

FIGURES = ("balanced_accuracy", "accuracy", "macro_f1")
PACKAGE = Path(__file__).resolve().parent  # the code a fold runs: all of it, simpler than its imports and safe

FoldTask = tuple[Path, Path, str, TrainConfig, int]  # run_fold's arguments: store, split, scheme, config, fold
FoldResult = tuple[dict[str, Any], pd.DataFrame]  # its figures and its per-clip predictions


def run_folds(tasks: list[FoldTask], processes: int) -> Iterator[tuple[int, FoldResult]]:
    """(fold, result) of each task as soon as it is done, in any order: a caller keeps each one at once."""
    if processes > 1 and len(tasks) > 1:  # folds are independent; one process each, torch on one thread in each
        with workers.pool(min(processes, len(tasks))) as pool:
            yield from pool.imap_unordered(numbered_fold, tasks)
    else:
        yield from map(numbered_fold, tasks)


def numbered_fold(task: FoldTask) -> tuple[int, FoldResult]:
    """run_fold with its fold number: imap_unordered's results arrive in any order."""
    return task[-1], run_fold(*task)


def cache_keys(store: Path, split: Path, scheme: str, config: TrainConfig, folds: list[int]) -> dict[int, str]:
    """Per fold, a hash of everything its result depends on: the train config, the class scheme, the
    fold, the store's and the manifest's bytes, the pipeline's code, the libraries and the device."""
    shared = {
        "config": dataclasses.asdict(config),
        "scheme": scheme,
        "store": file_md5(store),
        "split": file_md5(split),
        "code": {path.name: file_md5(path) for path in sorted(PACKAGE.glob("*.py"))},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__, "pandas": pd.__version__},
        "device": resolve_device(config.device).type,
    }
    return {
        fold: hashlib.sha256(json.dumps({**shared, "fold": fold}, sort_keys=True).encode()).hexdigest()
        for fold in folds
    }


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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


def run_fold(store: Path, split: Path, scheme: str, config: TrainConfig, fold: int) -> FoldResult:
    """One fold's figures (both decision rules) and its per-clip predictions."""
    names = class_names(scheme)
    data = load_splits(store, split, scheme, config.augment_variants, fold)
    started = time.perf_counter()
    result = fit(data, len(names), config, desc=f"fold {fold}")
    test = data["test"]
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
