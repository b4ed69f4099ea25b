"""The exported model on any corpus a manifest describes (CONTRACT.md, `evaluate --corpus`): each clip
decoded and featurised as the backend does, replayed frame by frame, scored over the corpus's classes.

Another corpus rarely has all of the model's classes (EmoDB has no calm and no surprised). Its
figures are taken over the classes it has: a prediction of any other class is simply wrong, except
that calm counts as neutral where the corpus has no calm: a corpus without calm files its calm,
unaroused speech under neutral.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import metrics
from pipeline.audio import load_audio
from pipeline.corpus import Corpus, class_of
from pipeline.errors import InputError
from pipeline.features import usable_mfcc
from pipeline.inference import RULES, check_finite, decide, replay
from pipeline.model import EmotionLSTM
from pipeline.ravdess import SCHEMES


def clip_features(corpus: Corpus) -> list[np.ndarray]:
    """Each row's audio through the backend's decoding and MFCCs; an unusable clip is one InputError
    naming the manifest's row, with load_audio's or usable_mfcc's reason."""
    features = []
    for number, row in enumerate(corpus.rows, 1):
        path = corpus.audio_path(row)
        try:
            features.append(usable_mfcc(load_audio(path), path))
        except InputError as err:
            raise corpus.row_error(number, row.path, err.reason) from None
    return features


def score_corpus(frame_probs: Sequence[np.ndarray], labels: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Both decision rules over the classes present in `labels` (model class indices), as
    scoring.score's figures: identical to them where every class is present.

    The classes are renumbered: the corpus's own first (in the model's order), then the model's
    other classes, predictions of which are wrong by definition; calm is dropped there and its
    predictions read as neutral where the corpus has no calm."""
    present = sorted(set(labels.tolist()))
    calm_as_neutral = "calm" in names and names.index("calm") not in present
    fold = {names.index("calm"): names.index("neutral")} if calm_as_neutral else {}
    columns = present + [c for c in range(len(names)) if c not in present and c not in fold]
    position = {c: i for i, c in enumerate(columns)}
    y = np.array([position[c] for c in labels])
    decided = {
        rule: np.array([position[fold.get(c, c)] for c in (int(decide(p, rule).argmax()) for p in frame_probs)])
        for rule in RULES
    }
    k = len(present)
    with warnings.catch_warnings():  # a prediction of a class the corpus lacks: wrong, as it should be
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        result: dict[str, Any] = metrics.summary(y, decided["last"], k)
        result["mean_prob"] = metrics.summary(y, decided["mean"], k)
    classes = [names[c] for c in present]
    result["per_class"] = metrics.per_class(y, decided["last"], classes)
    result["confusion"] = {
        "actual": classes,
        "predicted": [names[c] for c in columns],
        "counts": metrics.confusion(y, decided["last"], len(columns))[:k].tolist(),
    }
    result["classes"] = classes
    result["calm_counts_as_neutral"] = calm_as_neutral
    return result


def evaluate_corpus(model: EmotionLSTM, model_path: Path, scheme: str, corpus: Corpus) -> dict[str, Any]:
    """The report of `evaluate --corpus`: score_corpus's figures, the clip and speaker counts, the scheme."""
    labels = np.array([class_of(row.emotion, scheme) for row in corpus.rows])
    frame_probs = check_finite(replay(model, [torch.from_numpy(f) for f in clip_features(corpus)]), model_path)
    result = score_corpus(frame_probs, labels, SCHEMES[scheme])
    return result | {"clips": len(corpus.rows), "speakers": len({r.speaker for r in corpus.rows}), "scheme": scheme}
