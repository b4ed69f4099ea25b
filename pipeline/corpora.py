"""The corpora params name beside RAVDESS (data.train_corpora, data.eval_corpora): every manifest read
and checked before any clip is decoded, and a training corpus's clips and speakers namespaced by the
corpus's name, so that they share the feature store and the split manifest with RAVDESS's without
colliding."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.config import corpus_name
from pipeline.corpus import Corpus, Row, read_corpus
from pipeline.ravdess import CORPUS, EMOTIONS, gender


def read_corpora(manifests: Sequence[str | Path], emotion_map: Mapping[str, str | None]) -> dict[str, Corpus]:
    """name -> corpus, in params order, each manifest checked by corpus.read_corpus, its labels mapped by
    emotion_map (data.emotion_map)."""
    return {corpus_name(m): read_corpus(m, emotion_map) for m in manifests}


def clip_meta(name: str, row: Row) -> dict[str, Any]:
    """A manifest row as the store's metadata: path and speaker namespaced (name:...), the emotion as its
    RAVDESS code; the fields only RAVDESS's names carry (actor, intensity, statement, repetition) are 0."""
    return {
        "path": f"{name}:{row.path}", "actor": 0, "emotion": EMOTIONS.index(row.emotion) + 1,
        "intensity": 0, "statement": 0, "repetition": 0,
        "corpus": name, "speaker": f"{name}:{row.speaker}", "gender": row.gender,
    }


def ravdess_speaker(meta: dict[str, Any]) -> dict[str, Any]:
    """The corpus columns of a RAVDESS clip, for a store that also holds other corpora."""
    actor = int(meta["actor"])
    return {"corpus": CORPUS, "speaker": f"{CORPUS}:{actor:02d}", "gender": gender(actor)}
