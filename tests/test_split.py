"""The split stage: `python -m pipeline.split` turns a feature store into a speaker-independent manifest."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config import SplitConfig, parse
from pipeline.errors import InputError
from pipeline.manifest import validate
from pipeline.split import assign_actors, build_manifest
from pipeline.store import Clip, FeatureStore, write_store
from tests.helpers import REPO, assert_one_line_error, clip_name, run_stage, sha256
from tests.helpers import project_folder as project

SMALL = {"seed": 0, "val_actors": 2, "test_actors": 2, "folds": 4, "corpus_val_fraction": 0.2}


def fake_store(path: Path, actors: list[int], variants: int = 1) -> Path:
    """A store with metadata only: every actor x 8 emotions x 2 takes, one MFCC frame each."""
    clips = []
    for actor in actors:
        for emotion in range(1, 9):
            for take in (1, 2):
                meta = {"actor": actor, "emotion": emotion, "intensity": 1, "statement": 1, "repetition": take,
                        "path": f"Actor_{actor:02d}/{clip_name(emotion, 1, 1, take, actor)}.wav"}
                for variant in range(variants):
                    augment = f"noise={variant}" if variant else ""
                    clips.append(Clip({**meta, "variant": variant, "augment": augment}, np.zeros((1, 13))))
    write_store(path, clips, {"n_mfcc": 13})
    return path


def run_split(cwd: Path, store: Path, out: str = "split.csv") -> Any:
    return run_stage(cwd, "split", "--store", store, "--out", out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    """Every CLI run of this file, launched together: name -> (project folder, process)."""
    base = tmp_path_factory.mktemp("split")
    eight = fake_store(base / "eight.h5", list(range(1, 9)), variants=2)
    jobs = {
        "a": (project(base / "a", split=SMALL), eight),
        "b": (project(base / "b", split=SMALL), eight),
        "seed1": (project(base / "seed1", split={**SMALL, "seed": 1}), eight),
        "defaults": (project(base / "defaults"), fake_store(base / "all.h5", list(range(1, 25)))),
        "uneven": (project(base / "uneven", split=SMALL), fake_store(base / "uneven.h5", list(range(1, 8)))),
        "missing": (project(base / "missing", split=SMALL), base / "nothing.h5"),
    }
    for name, edit in BAD_PARAMS.items():
        jobs[name] = (project(base / name, split={**SMALL, **edit}), eight)
    with ThreadPoolExecutor(4) as pool:
        futures = {name: pool.submit(run_split, cwd, store) for name, (cwd, store) in jobs.items()}
        return {name: (jobs[name][0], future.result()) for name, future in futures.items()}


def manifest_of(run: tuple[Path, Any]) -> pd.DataFrame:
    cwd, proc = run
    assert proc.returncode == 0, proc.stderr
    return pd.read_csv(cwd / "split.csv")


def actor_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per actor; fails unless each actor has a single gender, split and fold."""
    per_actor = manifest.groupby("actor")[["gender", "split", "fold"]].nunique()
    assert (per_actor == 1).all().all(), per_actor
    return manifest.drop_duplicates("actor").set_index("actor")[["gender", "split", "fold"]]


def test_eight_actor_manifest(runs: dict[str, tuple[Path, Any]]) -> None:
    manifest = manifest_of(runs["a"])
    assert list(manifest.columns) == ["path", "actor", "gender", "split", "fold"]
    # one row per original clip (the store also holds a variant of each), sorted, unique
    expected = sorted(f"Actor_{a:02d}/{clip_name(e, 1, 1, t, a)}.wav" for a in range(1, 9)
                      for e in range(1, 9) for t in (1, 2))
    assert manifest["path"].tolist() == expected
    assert (manifest["actor"] == manifest["path"].str[6:8].astype(int)).all()
    actors = actor_table(manifest)
    assert sorted(actors.index) == list(range(1, 9))
    assert (actors["gender"] == ["male" if a % 2 else "female" for a in actors.index]).all()
    counts = actors.groupby(["split", "gender"]).size().unstack()
    per_gender = {"test": 1, "train": 2, "val": 1}
    assert counts.to_dict() == {"female": per_gender, "male": per_gender}
    folds = actors.groupby(["fold", "gender"]).size().unstack()
    assert folds.to_dict() == {"female": {k: 1 for k in range(4)}, "male": {k: 1 for k in range(4)}}


def test_manifest_is_deterministic_and_follows_the_seed(runs: dict[str, tuple[Path, Any]]) -> None:
    a, b, seed1 = (manifest_of(runs[name]) for name in ("a", "b", "seed1"))
    assert sha256(runs["a"][0] / "split.csv") == sha256(runs["b"][0] / "split.csv")
    assert not a.equals(seed1)
    assert a["path"].tolist() == seed1["path"].tolist()  # the same clips, other actors per split


def test_default_params_on_24_actors(runs: dict[str, tuple[Path, Any]]) -> None:
    """CONTRACT.md: 16 / 4 / 4 actors, half of each gender; 6 folds of 2 male + 2 female actors."""
    actors = actor_table(manifest_of(runs["defaults"]))
    counts = actors.groupby(["split", "gender"]).size().unstack()
    per_gender = {"test": 2, "train": 8, "val": 2}
    assert counts.to_dict() == {"female": per_gender, "male": per_gender}
    folds = actors.groupby(["fold", "gender"]).size().unstack()
    assert sorted(folds.index) == list(range(6))
    assert (folds == 2).all().all(), folds


BAD_PARAMS: dict[str, dict[str, Any]] = {
    "odd_val": {"val_actors": 3},
    "zero_test": {"test_actors": 0},
    "no_train": {"val_actors": 4, "test_actors": 4},
    "three_folds": {"folds": 3},
    "one_fold": {"folds": 1},
    "two_folds": {"folds": 2},
    "text_folds": {"folds": "many"},
    "half_seed": {"seed": 0.5},
}
BAD_NEEDLES = {
    "odd_val": "split.val_actors", "zero_test": "split.test_actors", "no_train": "0 of 8 actors for train",
    "three_folds": "split.folds", "one_fold": "split.folds", "two_folds": "split.folds",
    "text_folds": "split.folds",
    "half_seed": "split.seed",
}


@pytest.mark.parametrize("name", BAD_PARAMS)
def test_invalid_params_give_one_line(name: str, runs: dict[str, tuple[Path, Any]]) -> None:
    cwd, proc = runs[name]
    assert_one_line_error(proc, "params.yaml", BAD_NEEDLES[name])
    assert not (cwd / "split.csv").exists() and list(cwd.iterdir()) == [cwd / "params.yaml"]


def test_uneven_genders_and_missing_store(runs: dict[str, tuple[Path, Any]]) -> None:
    assert_one_line_error(runs["uneven"][1], "as many male as female", "4 and 3")
    assert_one_line_error(runs["missing"][1], "nothing.h5", "not found")
    for name in ("uneven", "missing"):
        assert not (runs[name][0] / "split.csv").exists()


def test_assign_actors_defaults_match_the_contract() -> None:
    """With the repo's split params: 4 val, 4 test, 6 folds."""
    repo = yaml.safe_load((REPO / "params.yaml").read_text())["split"]
    table = assign_actors(list(range(1, 25)), parse(SplitConfig, repo, "split"))
    assert table["split"].value_counts().to_dict() == {"train": 16, "val": 4, "test": 4}
    assert table.groupby("fold").size().tolist() == [4] * 6


@pytest.fixture()
def manifest(tmp_path: Path) -> pd.DataFrame:
    with FeatureStore(fake_store(tmp_path / "s.h5", list(range(1, 9)))) as store:
        return build_manifest(store.clips, parse(SplitConfig, SMALL, "split"))


def test_validate_accepts_a_built_manifest(manifest: pd.DataFrame) -> None:
    validate(manifest, manifest["emotion"], "split.csv")


def test_validate_refuses_a_speaker_in_two_splits(manifest: pd.DataFrame) -> None:
    leaked = manifest.copy()
    actor = leaked.loc[leaked["split"] == "train", "actor"].iloc[0]
    leaked.loc[leaked.index[leaked["actor"] == actor][:3], "split"] = "test"
    with pytest.raises(InputError, match=rf"^features/split.csv: actors \[{actor}\] sit in more than one split"):
        validate(leaked, leaked["emotion"], "features/split.csv")


def test_validate_refuses_a_split_without_a_class(manifest: pd.DataFrame) -> None:
    emotions = manifest["emotion"].copy()
    emotions[(manifest["split"] == "val") & (emotions == 3)] = 4  # val keeps no clip of emotion 3
    with pytest.raises(InputError, match=r"^features/split.csv: split 'val' lacks emotion codes \[3\]"):
        validate(manifest, emotions, "features/split.csv")
    without = manifest[~((manifest["split"] == "test") & (manifest["emotion"] == 8))]
    with pytest.raises(InputError, match=r"split 'test' lacks emotion codes \[8\]"):
        validate(without, without["emotion"], "features/split.csv")


def test_validate_refuses_missing_columns_and_unknown_splits(manifest: pd.DataFrame) -> None:
    with pytest.raises(InputError, match=r"split.csv: missing columns \['fold'\]"):
        validate(manifest.drop(columns="fold"), manifest["emotion"], "split.csv")
    renamed = manifest.replace({"split": {"val": "dev"}})
    with pytest.raises(InputError, match=r"split.csv: unknown split names \['dev'\]"):
        validate(renamed, renamed["emotion"], "split.csv")
