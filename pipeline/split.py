"""Stage split: a speaker-independent manifest assigning actors (never clips) to splits and folds.

    python -m pipeline.split [--store features/mfcc.h5] [--out features/split.csv]

Each split and each cross-validation fold holds as many male (odd id) as female (even id) actors.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import PARAMS_FILE, SplitConfig, load
from pipeline.errors import InputError, run_cli
from pipeline.manifest import COLUMNS, MANIFEST, SPLITS, validate
from pipeline.outputs import atomic_path
from pipeline.ravdess import gender
from pipeline.store import STORE, FeatureStore


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


def build_manifest(clips: pd.DataFrame, config: SplitConfig) -> pd.DataFrame:
    """One row per original clip, sorted by path."""
    originals = clips[clips["variant"] == 0].sort_values("path")
    actors = assign_actors(sorted(originals["actor"].unique().tolist()), config)
    manifest = originals[["path", "actor", "emotion"]].merge(actors, on="actor", how="left")
    manifest["gender"] = manifest["actor"].map(gender)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=STORE)
    parser.add_argument("--out", type=Path, default=MANIFEST)
    args = parser.parse_args()
    config = load(SplitConfig, "split")
    with FeatureStore(args.store) as store:
        manifest = build_manifest(store.clips, config)
    validate(manifest, manifest["emotion"], args.out)
    with atomic_path(args.out) as tmp:
        manifest[COLUMNS].to_csv(tmp, index=False)
    counts = manifest.drop_duplicates("actor").groupby("split")["actor"].apply(sorted).to_dict()
    print(" | ".join(f"{s}: actors {counts.get(s, [])}" for s in SPLITS))


if __name__ == "__main__":
    run_cli(main)
