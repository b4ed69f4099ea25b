"""params.yaml's schema (pipeline.config): every section typed, every key required and known, every
range checked, every error one line naming params.yaml and the key."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import (
    CvConfig,
    DataConfig,
    EvaluateConfig,
    ExtractConfig,
    FetchConfig,
    SplitConfig,
    TrainConfig,
    load,
    parse,
)
from pipeline.errors import InputError
from tests.helpers import REPO, assert_one_line_error, project_folder, run_stage

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
SECTIONS = {
    "data": DataConfig, "fetch": FetchConfig, "extract": ExtractConfig, "split": SplitConfig,
    "train": TrainConfig, "cv": CvConfig, "evaluate": EvaluateConfig,
}


def refused(cls: type, raw: Any, name: str) -> str:
    with pytest.raises(InputError) as caught:
        parse(cls, raw, name)
    message = str(caught.value)
    assert message.startswith("params.yaml: ") and "\n" not in message, message
    return message


def test_the_repo_params_are_exactly_the_schema() -> None:
    assert set(PARAMS) == set(SECTIONS)
    for name, cls in SECTIONS.items():
        config = load(cls, name, REPO / "params.yaml")
        assert {f.name for f in fields(config)} == set(PARAMS[name]), name


def test_values_read_as_written() -> None:
    config = parse(TrainConfig, PARAMS["train"], "train")
    for key, value in PARAMS["train"].items():
        assert getattr(config, key) == value, key
    extract = parse(ExtractConfig, PARAMS["extract"], "extract")
    assert extract.augment.pitch_shift == tuple(PARAMS["extract"]["augment"]["pitch_shift"])
    assert parse(EvaluateConfig, PARAMS["evaluate"], "evaluate").early_seconds == tuple(PARAMS["evaluate"]["early_seconds"])


def test_the_strings_dvc_writes_still_parse() -> None:
    # `dvc exp run -S train.lr=1e-05` writes `lr: 1e-05`, which YAML 1.1 reads as a string.
    written = yaml.safe_load("lr: 1e-05\nhidden_size: '16'\nbatch_size: 8.0\n")
    assert written["lr"] == "1e-05"
    c = parse(TrainConfig, {**PARAMS["train"], **written}, "train")
    assert c.lr == 1e-5 and type(c.lr) is float
    assert (c.hidden_size, c.batch_size) == (16, 8) and type(c.hidden_size) is type(c.batch_size) is int
    augment = {**PARAMS["extract"]["augment"], "noise_snr_db": "20", "pitch_shift": None}
    extract = parse(ExtractConfig, {**PARAMS["extract"], "augment": augment}, "extract")
    assert extract.augment.noise_snr_db == (20.0,) and extract.augment.pitch_shift == ()


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_unknown_and_missing_keys_are_refused_in_every_section(name: str) -> None:
    cls = SECTIONS[name]
    message = refused(cls, {**PARAMS[name], "on_eror": "skip"}, name)
    assert f"unknown parameter {name}.on_eror" in message
    first = next(iter(PARAMS[name]))
    message = refused(cls, {k: v for k, v in PARAMS[name].items() if k != first}, name)
    assert f"missing parameter {name}.{first}" in message
    assert f"{name} must be a mapping" in refused(cls, [1, 2], name)


BAD = [
    ("data", "classes", "foo"), ("fetch", "source", " "), ("fetch", "source", 3),
    ("extract", "workers", -1), ("extract", "on_error", "ignore"), ("extract", "augment", "none"),
    ("split", "seed", -1), ("split", "val_actors", 3), ("split", "test_actors", 0), ("split", "folds", 2),
    ("cv", "workers", 0), ("cv", "workers", 1.5),
    ("evaluate", "backend_check_clips", -1), ("evaluate", "seed", -1), ("evaluate", "early_seconds", [-1]),
    ("evaluate", "early_seconds", ["soon"]),
    ("train", "lr", "fast"), ("train", "lr", 0), ("train", "lr", "nan"), ("train", "hidden_size", 1.5),
    ("train", "hidden_size", "0"), ("train", "num_layers", 0), ("train", "epochs", 0), ("train", "epochs", True),
    ("train", "batch_size", -4), ("train", "patience", 0), ("train", "warmup_epochs", -1), ("train", "dropout", 1.0),
    ("train", "frame_loss_weight", "inf"), ("train", "seed", -1), ("train", "grad_clip", None),
    ("train", "augment_variants", "yes"), ("train", "class_weighting", 1), ("train", "optimizer", "sgd"),
    ("train", "schedule", "step"), ("train", "device", "tpu"), ("train", "ensemble", 0), ("train", "threads", 0),
    ("train", "precision", "float16"),
]


@pytest.mark.parametrize("section, key, value", BAD, ids=[f"{s}.{k}={v!r}" for s, k, v in BAD])
def test_bad_values_are_one_line_naming_the_key(section: str, key: str, value: Any) -> None:
    message = refused(SECTIONS[section], {**PARAMS[section], key: value}, section)
    assert f"{section}.{key}" in message, message


@pytest.mark.parametrize("key, value", [
    ("seed", -1), ("time_stretch", [0]), ("noise_snr_db", ["inf"]), ("sigma", 1),
    ("room_rt60", [3.0]), ("room_rt60", ["nan"]), ("phone_bits", [8.5]), ("phone_bits", [2]), ("phone_bits", ["inf"]),
    ("phone_bits", ["nan"]), ("speed", [1]), ("speed", [3]), ("speed", ["nan"]), ("opus_kbps", [4]), ("opus_kbps", ["inf"]),
])
def test_nested_sections_name_the_full_key(key: str, value: Any) -> None:
    raw = {**PARAMS["extract"], "augment": {**PARAMS["extract"]["augment"], key: value}}
    assert f"extract.augment.{key}" in refused(ExtractConfig, raw, "extract")


def test_an_error_names_the_source_the_values_came_from(tmp_path: Path) -> None:
    """Values from elsewhere (a script's overrides, another params file) are blamed on it, nested keys too."""
    with pytest.raises(InputError, match=r"^--epoch-train lr=0: train\.lr must be > 0"):
        parse(TrainConfig, {**PARAMS["train"], "lr": 0}, "train", "--epoch-train lr=0")
    nested = {**PARAMS["extract"], "augment": {**PARAMS["extract"]["augment"], "speed": ["x"]}}
    with pytest.raises(InputError, match=r"^sweep\.yaml: extract\.augment\.speed\[0\] must be a number"):
        parse(ExtractConfig, nested, "extract", "sweep.yaml")
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**PARAMS, "train": {**PARAMS["train"], "epochs": 0}}))
    with pytest.raises(InputError, match=rf"^{other}: train\.epochs must be >= 1"):
        load(TrainConfig, "train", other)
    other.write_text(yaml.safe_dump({"data": PARAMS["data"]}))
    with pytest.raises(InputError, match=rf"^{other}: missing section 'train'"):
        load(TrainConfig, "train", other)


@pytest.mark.parametrize("stage, section, edit", [
    ("extract", "extract", {"on_eror": "skip"}),
    ("split", "split", {"folds": "six"}),
    ("evaluate", "evaluate", {"backend_check_clips": -1}),
    ("train", "data", {"classes": "foo"}),
])
def test_stages_check_their_params_before_any_work(tmp_path: Path, stage: str, section: str, edit: dict[str, Any]) -> None:
    """Every stage refuses bad params in one line, before reading its inputs (which do not exist here)."""
    cwd = project_folder(tmp_path, **{section: edit})
    key = f"{section}.{next(iter(edit))}"
    assert_one_line_error(run_stage(cwd, stage), "params.yaml", key)
    assert sorted(p.name for p in cwd.iterdir()) == ["params.yaml"]
