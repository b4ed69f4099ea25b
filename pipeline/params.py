"""params.yaml, read defensively: `dvc exp run -S train.lr=1e-05` writes numbers YAML 1.1 reads as strings."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import InputError

PARAMS_FILE = Path("params.yaml")


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
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


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    value = params.get(name)
    if not isinstance(value, dict):
        raise InputError(PARAMS_FILE, f"missing section '{name}'")
    return value


def number(value: Any, name: str) -> float:
    """A float from a number or a numeric string ('1e-05')."""
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise InputError(PARAMS_FILE, f"{name} must be a number, got {value!r}") from None


def integer(value: Any, name: str) -> int:
    result = number(value, name)
    if not math.isfinite(result) or result != int(result):
        raise InputError(PARAMS_FILE, f"{name} must be a whole number, got {value!r}")
    return int(result)


def numbers(value: Any, name: str) -> list[float]:
    """A list of floats; a single number or an empty value also accepted."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        value = [value]
    return [number(v, f"{name}[{i}]") for i, v in enumerate(value)]
