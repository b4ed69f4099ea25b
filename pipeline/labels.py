"""models/labels.json, the class list beside an exported model: written by the train stage, read by
predict (the names the frontend shows) and by corpus evaluation (the scheme to score against)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.ravdess import EMOJI, SCHEMES, class_names

LABELS_FILE = "labels.json"
SCHEME_OF_SIZE = {len(names): scheme for scheme, names in SCHEMES.items()}  # 8 ravdess8, 6 frontend6


@dataclass(frozen=True)
class ModelClasses:
    scheme: str
    names: tuple[str, ...]  # by output index


def labels_document(scheme: str) -> dict[str, Any]:
    """What the frontend shows for each class index."""
    return {
        "scheme": scheme,
        "classes": [{"index": i, "name": n, "emoji": EMOJI[n]} for i, n in enumerate(class_names(scheme))],
    }


def model_classes(model_path: str | Path, n_classes: int) -> ModelClasses:
    """The classes a model with `n_classes` outputs answers with: those labels.json beside it names,
    else the only scheme with as many classes (a model copied without its labels.json still works)."""
    labels = Path(model_path).with_name(LABELS_FILE)
    if not labels.exists():
        if n_classes not in SCHEME_OF_SIZE:
            reason = f"predicts {n_classes} classes, no scheme has as many, and no {LABELS_FILE} is beside it"
            raise InputError(model_path, reason)
        scheme = SCHEME_OF_SIZE[n_classes]
        return ModelClasses(scheme, class_names(scheme))
    try:
        document = json.loads(labels.read_text(encoding="utf-8"))
        names = tuple(str(c["name"]) for c in document["classes"])
        scheme = document.get("scheme") or SCHEME_OF_SIZE.get(len(names))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(labels, f"cannot read the class list ({type(err).__name__})") from None
    if len(names) != n_classes:
        raise InputError(labels, f"lists {len(names)} classes, the model predicts {n_classes}")
    if scheme not in SCHEMES or SCHEMES[scheme] != names:
        raise InputError(labels, f"its classes {', '.join(names)} are not a known class scheme ({sorted(SCHEMES)})")
    return ModelClasses(scheme, names)
