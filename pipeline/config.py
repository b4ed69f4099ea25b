"""params.yaml as typed, frozen configs, one per stage section, checked once at the top of a stage.

params.yaml is the single source of every value: the classes below have no defaults, a key that is
missing or unknown is an error, and every error is one line naming the key and where its value came
from (params.yaml, or the overrides a script passes as `source`).
`dvc exp run -S train.lr=1e-05` writes numbers that YAML 1.1 reads back as strings: they still parse.
"""
from __future__ import annotations

import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline.errors import InputError
from pipeline.ravdess import CORPUS, EMOTIONS, SCHEMES

PARAMS_FILE = Path("params.yaml")
# Other corpora's manifests: dvc.yaml lists each folder as a dependency of the stage that reads it,
# apart so that a corpus scored only does not rerun extract.
TRAIN_CORPORA, EVAL_CORPORA = "corpora/train", "corpora/eval"

Check = tuple[Callable[[Any], bool], str]  # a test of the parsed value and what it allows
T = TypeVar("T")


def rule(test: Callable[[Any], bool], allowed: str) -> Any:
    """A field whose value must pass `test` (written so that NaN fails it); `allowed` says what passes."""
    return field(metadata={"check": (test, allowed)})


def one_of(*choices: str) -> Any:
    return rule(lambda v: v in choices, f"one of {list(choices)}")


def each(test: Callable[[float], bool], allowed: str) -> Any:
    """A list field whose every element must pass `test`."""
    return rule(lambda vs: all(test(v) for v in vs), f"a list of numbers {allowed}")


def at_least(n: int) -> Any:
    return rule(lambda v: v >= n, f">= {n}")


def finite_at_least_0() -> Any:
    return rule(lambda v: 0 <= v < math.inf, ">= 0 and finite")


def even_positive() -> Any:
    return rule(lambda v: v > 0 and v % 2 == 0, "even and positive")


def corpus_name(manifest: str | Path) -> str:
    """corpora/train/emodb.csv -> emodb: the name that namespaces a corpus's clips and speakers."""
    return Path(manifest).stem


def manifests(folder: str) -> Any:
    """A list of corpus manifests `FOLDER/NAME.csv`, NAMEs distinct and not ravdess (a NAME namespaces
    its corpus's clips and speakers). dvc.yaml lists the folder as a dependency of the stage that reads
    it: a manifest elsewhere would change without DVC seeing it."""
    pattern = re.compile(rf"{folder}/(?!{CORPUS}\.csv$)[A-Za-z0-9_-]+\.csv")

    def test(paths: tuple[str, ...]) -> bool:
        return all(pattern.fullmatch(p) for p in paths) and len({corpus_name(p) for p in paths}) == len(paths)

    return rule(test, f"a list of {folder}/NAME.csv with distinct NAMEs (letters, digits, _ or -; not {CORPUS})")


@dataclass(frozen=True)
class DataConfig:
    classes: str = one_of(*SCHEMES)
    train_corpora: tuple[str, ...] = manifests(TRAIN_CORPORA)  # trained on beside RAVDESS (pipeline.corpora)
    eval_corpora: tuple[str, ...] = manifests(EVAL_CORPORA)  # scored only, each on its own: metrics/corpora.json
    # Their manifests' emotion labels, mapped to a class name or dropped (null) before checking (pipeline.corpus)
    emotion_map: dict[str, str | None] = rule(
        lambda m: all(v is None or v in EMOTIONS for v in m.values()), f"a mapping of labels to one of {list(EMOTIONS)} or null"
    )

    def __post_init__(self) -> None:
        """A rule across fields: ValueError, which parse reports with the values' source."""
        both = sorted({corpus_name(p) for p in self.train_corpora} & {corpus_name(p) for p in self.eval_corpora})
        if both:
            raise ValueError(f"corpus {both[0]} is in data.train_corpora and data.eval_corpora (scored on its own training speakers?)")


@dataclass(frozen=True)
class FetchConfig:
    source: str = rule(lambda v: bool(v.strip()), "'official', a URL, a folder or a .zip")


@dataclass(frozen=True)
class AugmentConfig:
    """Cached variants of every clip (pipeline.augment); training reads its actors' only."""

    seed: int = at_least(0)
    noise_snr_db: tuple[float, ...] = each(math.isfinite, "(dB), finite")
    time_stretch: tuple[float, ...] = each(lambda v: 0 < v < math.inf, "> 0 and finite")
    pitch_shift: tuple[float, ...] = each(math.isfinite, "(semitones), finite")
    colored_noise_snr_db: tuple[float, ...] = each(math.isfinite, "(dB), finite")
    babble_snr_db: tuple[float, ...] = each(math.isfinite, "(dB), finite")
    clipping_db: tuple[float, ...] = each(lambda v: 0 < v < math.inf, "(dB of overdrive), > 0 and finite")
    room_rt60: tuple[float, ...] = each(lambda v: 0.2 <= v <= 1.5, "(s), 0.2-1.5")
    phone_bits: tuple[float, ...] = each(lambda v: 4 <= v <= 16 and v == int(v), "a whole number of bits, 4-16")
    speed: tuple[float, ...] = each(lambda v: 0.5 <= v <= 2 and v != 1, "(playback rate), 0.5-2 and not 1")
    opus_kbps: tuple[float, ...] = each(lambda v: 6 <= v <= 128, "(kbit/s), 6-128")


@dataclass(frozen=True)
class ExtractConfig:
    workers: int = at_least(0)
    on_error: str = one_of("error", "skip")
    augment: AugmentConfig


@dataclass(frozen=True)
class SplitConfig:
    seed: int = at_least(0)
    val_actors: int = even_positive()
    test_actors: int = even_positive()
    folds: int = rule(lambda v: v >= 3, ">= 3 (cv tests on one fold, selects on the next, trains on the rest)")
    corpus_val_fraction: float = rule(lambda v: 0 <= v < 1, "in [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = at_least(0)
    device: str = one_of("auto", "cpu", "cuda")
    threads: int = at_least(1)
    hidden_size: int = at_least(1)
    num_layers: int = at_least(1)
    dropout: float = rule(lambda v: 0 <= v < 1, "in [0, 1)")
    epochs: int = at_least(1)
    batch_size: int = at_least(1)
    lr: float = rule(lambda v: 0 < v < math.inf, "> 0 and finite")
    weight_decay: float = finite_at_least_0()
    optimizer: str = one_of("adam", "adamw")
    schedule: str = one_of("cosine", "none")
    warmup_epochs: int = at_least(0)
    grad_clip: float = rule(lambda v: 0 <= v < math.inf, ">= 0 and finite (0 = off)")
    patience: int = at_least(1)
    validation: str = one_of("select", "train")
    frame_loss_weight: float = finite_at_least_0()
    class_weighting: bool
    augment_variants: bool
    ensemble: int = at_least(1)
    channel_augment_db: float = finite_at_least_0()
    crop_seconds: float = finite_at_least_0()
    precision: str = one_of("float32", "bfloat16")

    @property
    def trains_on_val(self) -> bool:
        """train.validation: train: the val actors' clips train too, so no checkpoint is chosen on them."""
        return self.validation == "train"


@dataclass(frozen=True)
class CvConfig:
    workers: int = at_least(1)


@dataclass(frozen=True)
class EvaluateConfig:
    early_seconds: tuple[float, ...] = each(lambda v: 0 < v < math.inf, "> 0 and finite (seconds)")
    backend_check_clips: int = at_least(1)
    seed: int = at_least(0)
    # names from pipeline.conditions, checked by pipeline.robustness (which every stage need not import)
    conditions: tuple[str, ...] = rule(lambda vs: len(set(vs)) == len(vs), "a list of distinct condition names")


def _scalar(kind: Any, raw: Any, key: str, source: str | Path) -> Any:
    """raw as bool, int, float or str; numbers may arrive as strings ('1e-05')."""
    if kind is bool:
        if not isinstance(raw, bool):
            raise InputError(source, f"{key} must be true or false, got {raw!r}")
        return raw
    if kind is str:
        if not isinstance(raw, str):
            raise InputError(source, f"{key} must be a string, got {raw!r}")
        return raw
    try:
        if isinstance(raw, bool):
            raise ValueError
        number = float(raw)
    except (TypeError, ValueError):
        raise InputError(source, f"{key} must be a number, got {raw!r}") from None
    if kind is int:
        if not math.isfinite(number) or number != int(number):
            raise InputError(source, f"{key} must be a whole number, got {raw!r}")
        return int(number)
    return number


def parse(cls: type[T], raw: Any, name: str, source: str | Path = PARAMS_FILE) -> T:
    """The section `name` of params.yaml as a `cls`: every key present, known, typed and in range.
    `source` is what an error names: where the values came from (a script's overrides, say)."""
    if not isinstance(raw, dict):
        raise InputError(source, f"{name} must be a mapping of parameters, got {raw!r}")
    known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise InputError(source, f"unknown parameter {name}.{unknown[0]} (known: {', '.join(known)})")
    missing = [k for k in known if k not in raw]
    if missing:
        raise InputError(source, f"missing parameter {name}.{missing[0]}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        key, kind, value = f"{name}.{f.name}", hints[f.name], raw[f.name]
        if is_dataclass(kind):
            values[f.name] = parse(kind, value, key, source)
            continue
        if typing.get_origin(kind) is tuple:  # a list; one item or nothing also reads as one
            items = [] if value is None else value if isinstance(value, list) else [value]
            item = typing.get_args(kind)[0]
            value = tuple(_scalar(item, v, f"{key}[{i}]", source) for i, v in enumerate(items))
        elif typing.get_origin(kind) is dict:  # names to names or null; nothing reads as empty
            value = {} if value is None else value
            if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str | None) for k, v in value.items()):
                raise InputError(source, f"{key} must be a mapping of names to a name or null, got {raw[f.name]!r}")
        else:
            value = _scalar(kind, value, key, source)
        check: Check | None = f.metadata.get("check")
        if check is not None and not check[0](value):
            raise InputError(source, f"{key} must be {check[1]}, got {raw[f.name]!r}")
        values[f.name] = value
    try:
        return cls(**values)
    except ValueError as err:  # a rule across fields (__post_init__)
        raise InputError(source, str(err)) from None


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """The whole file as YAML, before any section is checked."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "params file not found (run from the project root)") from None
    except yaml.YAMLError as err:
        raise InputError(path, f"invalid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(params, dict):
        raise InputError(path, "expected a mapping of stages to parameters")
    return params


def load(cls: type[T], name: str, path: str | Path = PARAMS_FILE) -> T:
    """One checked section of params.yaml: what a stage calls first."""
    params = load_params(path)
    if name not in params:
        raise InputError(path, f"missing section '{name}'")
    return parse(cls, params[name], name, path)
