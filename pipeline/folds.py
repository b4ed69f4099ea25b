"""Which RAVDESS actor goes to which split and cross-validation fold: the split stage writes it into the
manifest, and extract needs it too, to keep every babble crowd within one fold (pipeline.extract)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import PARAMS_FILE, SplitConfig
from pipeline.errors import InputError


def assign_actors(actors: list[int], config: SplitConfig) -> pd.DataFrame:
    """actor -> split and fold, deterministic from split.seed; test and val take the first folds."""
    n_val, n_test, n_folds = config.val_actors, config.test_actors, config.folds
    rng = np.random.default_rng(config.seed)
    males = list(rng.permutation(sorted(a for a in actors if a % 2)))
    females = list(rng.permutation(sorted(a for a in actors if a % 2 == 0)))
    n_train = len(actors) - n_val - n_test
    if len(males) != len(females):
        raise InputError(None, f"split needs as many male as female actors, got {len(males)} and {len(females)}")
    if n_train <= 0 or n_train % 2:
        reason = f"split.val_actors and split.test_actors leave {n_train} of {len(actors)} actors for train"
        raise InputError(PARAMS_FILE, f"{reason}: it must be even and positive")
    if len(males) % n_folds:
        raise InputError(PARAMS_FILE, f"split.folds={n_folds} does not divide {len(males)} male actors evenly")
    per_fold = len(males) // n_folds
    # Interleave so that any prefix of `order` holds as many males as females.
    order = [a for pair in zip(males, females) for a in pair]
    fold_of = {a: i // 2 // per_fold for i, a in enumerate(order)}
    split_of = {a: "test" if i < n_test else "val" if i < n_test + n_val else "train" for i, a in enumerate(order)}
    return pd.DataFrame(
        {"actor": order, "split": [split_of[a] for a in order], "fold": [fold_of[a] for a in order]}
    )


def actor_folds(actors: list[int], config: SplitConfig) -> dict[int, int]:
    """actor -> cross-validation fold, or {} where split's params cannot split these actors (the split
    stage then names the reason; a small corpus of a few actors in tests)."""
    try:
        table = assign_actors(sorted(set(actors)), config)
    except InputError:
        return {}
    return {int(a): int(f) for a, f in zip(table["actor"], table["fold"])}
