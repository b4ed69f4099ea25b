"""Stage split: a speaker-independent manifest assigning actors (never clips) to splits and folds.

    python -m pipeline.split [--store features/mfcc.h5] [--out features/split.csv]

Each split and each cross-validation fold holds as many male (odd id) as female (even id) actors.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import InputError, run_cli
from pipeline.outputs import atomic_path
from pipeline.params import integer, load_params, section
from pipeline.ravdess import gender
from pipeline.store import STORE, FeatureStore

SPLITS = ("train", "val", "test")
COLUMNS = ["path", "actor", "gender", "split", "fold"]
MANIFEST = Path("features/split.csv")  # dvc.yaml's split output: where every stage's --split defaults


def assign_actors(actors: list[int], params: dict[str, Any]) -> pd.DataFrame:
    """actor -> split and fold, deterministic from split.seed; test and val take the first folds."""
    n_val = integer(params.get("val_actors", 4), "split.val_actors")
    n_test = integer(params.get("test_actors", 4), "split.test_actors")
    n_folds = integer(params.get("folds", 6), "split.folds")
    rng = np.random.default_rng(integer(params.get("seed", 0), "split.seed"))
    males = list(rng.permutation(sorted(a for a in actors if a % 2)))
    females = list(rng.permutation(sorted(a for a in actors if a % 2 == 0)))
    n_train = len(actors) - n_val - n_test
    if len(males) != len(females):
        raise InputError(None, f"split needs as many male as female actors, got {len(males)} and {len(females)}")
    for name, count in (("split.val_actors", n_val), ("split.test_actors", n_test)):
        if count <= 0 or count % 2:
            raise InputError("params.yaml", f"{name} is {count}: it must be even and positive")
    if n_train <= 0 or n_train % 2:
        reason = f"split.val_actors and split.test_actors leave {n_train} of {len(actors)} actors for train"
        raise InputError("params.yaml", f"{reason}: it must be even and positive")
    if n_folds < 3:  # cross-validation tests on one fold, selects on the next, trains on the rest
        raise InputError("params.yaml", f"split.folds={n_folds}: cross-validation needs at least 3 folds")
    if len(males) % n_folds:
        raise InputError("params.yaml", f"split.folds={n_folds} does not divide {len(males)} male actors evenly")
    per_fold = len(males) // n_folds
    # Interleave so that any prefix of `order` holds as many males as females.
    order = [a for pair in zip(males, females) for a in pair]
    fold_of = {a: i // 2 // per_fold for i, a in enumerate(order)}
    split_of = {a: "test" if i < n_test else "val" if i < n_test + n_val else "train" for i, a in enumerate(order)}
    return pd.DataFrame(
        {"actor": order, "split": [split_of[a] for a in order], "fold": [fold_of[a] for a in order]}
    )


def validate(manifest: pd.DataFrame, emotions: pd.Series, source: str | Path) -> None:
    """Refuse a manifest that leaks a speaker across splits or leaves a split without a class."""
    missing = set(COLUMNS) - set(manifest.columns)
    if missing:
        raise InputError(source, f"missing columns {sorted(missing)}")
    per_actor = manifest.groupby("actor")["split"].nunique()
    leaked = per_actor[per_actor > 1].index.tolist()
    if leaked:
        raise InputError(source, f"actors {leaked} sit in more than one split")
    unknown = set(manifest["split"]) - set(SPLITS)
    if unknown:
        raise InputError(source, f"unknown split names {sorted(unknown)}")
    all_classes = set(emotions)
    for split in SPLITS:
        present = set(emotions[manifest["split"].to_numpy() == split])
        if present != all_classes:
            raise InputError(source, f"split '{split}' lacks emotion codes {sorted(all_classes - present)}")


def read_manifest(path: str | Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(path, "split manifest not found (run the split stage)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(path, f"not a readable CSV ({str(err).splitlines()[0]})") from None


def build_manifest(clips: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """One row per original clip, sorted by path."""
    originals = clips[clips["variant"] == 0].sort_values("path")
    actors = assign_actors(sorted(originals["actor"].unique().tolist()), params)
    manifest = originals[["path", "actor", "emotion"]].merge(actors, on="actor", how="left")
    manifest["gender"] = manifest["actor"].map(gender)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=STORE)
    parser.add_argument("--out", type=Path, default=MANIFEST)
    args = parser.parse_args()
    with FeatureStore(args.store) as store:
        manifest = build_manifest(store.clips, section(load_params(), "split"))
    validate(manifest, manifest["emotion"], args.out)
    with atomic_path(args.out) as tmp:
        manifest[COLUMNS].to_csv(tmp, index=False)
    counts = manifest.drop_duplicates("actor").groupby("split")["actor"].apply(sorted).to_dict()
    print(" | ".join(f"{s}: actors {counts.get(s, [])}" for s in SPLITS))


if __name__ == "__main__":
    run_cli(main)
