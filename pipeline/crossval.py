"""Speaker-independent cross-validation: one fold trained as the train stage trains and scored as
the evaluate stage scores, and the figures aggregated over folds.

Fold k is tested on its own actors, selects its checkpoint on fold k+1, and trains on the rest,
from the cached features.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import TrainConfig
from pipeline.dataset import load_splits
from pipeline.inference import replay
from pipeline.ravdess import class_names
from pipeline.scoring import predictions_table, score
from pipeline.training import fit

FIGURES = ("balanced_accuracy", "accuracy", "macro_f1")


def run_fold(store: Path, split: Path, scheme: str, config: TrainConfig, fold: int) -> tuple[dict[str, Any], pd.DataFrame]:
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
