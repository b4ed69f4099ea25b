"""Stage split: a speaker-independent manifest assigning actors (never clips) to splits and folds.

    python -m pipeline.split [--store features/mfcc.h5] [--out features/split.csv]

Each split and each cross-validation fold holds as many male (odd id) as female (even id) actors.
The speakers of other corpora in the store (data.train_corpora) go to train or val, per corpus,
split.corpus_val_fraction of them to val, gender-balanced where their gender is known; they have no
fold (manifest.FOLDLESS), so cross-validation stays over RAVDESS's actors.
"""
from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import PARAMS_FILE, SplitConfig, load
from pipeline.errors import InputError, run_cli
from pipeline.manifest import COLUMNS, FOLDLESS, MANIFEST, SPLITS, validate
from pipeline.outputs import atomic_path
from pipeline.ravdess import CORPUS, gender
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


def assign_speakers(corpus: str, genders: dict[str, str], config: SplitConfig) -> dict[str, str]:
    """One other corpus's speaker -> train or val: corpus_val_fraction x speakers (rounded half up, at
    most all but one) to val, drawn from male and female speakers in turn while both last, then from
    the rest; deterministic from split.seed and the corpus's name (not its place in params)."""
    rng = np.random.default_rng([config.seed, zlib.crc32(corpus.encode())])
    by_gender = {g: list(rng.permutation(sorted(s for s in genders if genders[s] == g))) for g in ("male", "female")}
    pairs = [s for pair in zip(by_gender["male"], by_gender["female"]) for s in pair]
    rest = list(rng.permutation(sorted(set(genders) - set(pairs))))
    n_val = min(int(config.corpus_val_fraction * len(genders) + 0.5), len(genders) - 1)
    return {s: "val" if i < n_val else "train" for i, s in enumerate(pairs + rest)}


def build_manifest(clips: pd.DataFrame, config: SplitConfig) -> pd.DataFrame:
    """One row per original clip, sorted by path: RAVDESS's, then each other corpus's."""
    originals = clips[clips["variant"] == 0].sort_values("path")
    others = originals[originals["corpus"] != CORPUS] if "corpus" in originals else originals.iloc[:0]
    ravdess = originals.drop(others.index)
    actors = assign_actors(sorted(ravdess["actor"].unique().tolist()), config)
    manifest = ravdess[["path", "actor", "emotion"]].merge(actors, on="actor", how="left")
    manifest["gender"] = manifest["actor"].map(gender)
    if others.empty:
        return manifest
    parts = [manifest]
    for corpus, rows in others.groupby("corpus", sort=True):
        split_of = assign_speakers(str(corpus), dict(zip(rows["speaker"], rows["gender"])), config)
        parts.append(
            pd.DataFrame({
                "path": rows["path"], "actor": rows["speaker"], "emotion": rows["emotion"], "gender": rows["gender"],
                "split": rows["speaker"].map(split_of), "fold": FOLDLESS,
            })
        )
    return pd.concat(parts, ignore_index=True)


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
    ravdess = manifest[manifest["fold"] != FOLDLESS]
    counts = ravdess.drop_duplicates("actor").groupby("split")["actor"].apply(sorted).to_dict()
    others = manifest[manifest["fold"] == FOLDLESS].drop_duplicates("actor")["split"].value_counts().to_dict()
    summary = f" | other corpora: {others.get('train', 0)} train, {others.get('val', 0)} val speakers" if others else ""
    print(" | ".join(f"{s}: actors {counts.get(s, [])}" for s in SPLITS) + summary)


if __name__ == "__main__":
    run_cli(main)
