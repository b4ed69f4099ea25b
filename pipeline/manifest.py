"""The split manifest (features/split.csv): its format, and the checks every reader applies.

Its `actor` column holds the unit the split assigns: a RAVDESS actor's number, or, for a clip of one of
data.train_corpora, its namespaced speaker (`corpus:speaker`). Those speakers have no fold (FOLDLESS):
they keep their split, train or val, in every cross-validation fold, whose folds are RAVDESS's actors'.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.errors import InputError
from pipeline.tables import read_csv

SPLITS = ("train", "val", "test")
COLUMNS = ["path", "actor", "gender", "split", "fold"]
MANIFEST = Path("features/split.csv")  # dvc.yaml's split output: where every stage's --split defaults
FOLDLESS = -1  # the fold of other corpora's speakers: in no fold's test or validation actors


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


def cv_folds(manifest: pd.DataFrame) -> list[int]:
    """The cross-validation folds: RAVDESS's actors', never FOLDLESS."""
    return sorted(int(f) for f in manifest["fold"].unique() if f != FOLDLESS)


def read_manifest(path: str | Path) -> pd.DataFrame:
    """The manifest; where other corpora's speakers make its actor column text, RAVDESS's actors read
    back as the numbers they are in a RAVDESS-only manifest."""
    manifest = read_csv(path, "split manifest not found (run the split stage)")
    if manifest.get("actor") is not None and manifest["actor"].dtype == object:
        manifest["actor"] = [int(a) if str(a).isdigit() else a for a in manifest["actor"]]
    return manifest
