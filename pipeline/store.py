"""The HDF5 feature store (CONTRACT.md): ragged MFCC sequences plus per-clip metadata.

Layout: /mfcc float32 (total_frames, 13); /offsets int64 (n_clips + 1), clip i is
mfcc[offsets[i]:offsets[i + 1]]; /clips/<field> one entry per clip; root attributes record the
feature contract and the library versions that computed it. A store that also holds other corpora
(data.train_corpora) has /clips/corpus, /clips/speaker and /clips/gender too; RAVDESS's alone has not,
so that its bytes stay what they were before other corpora existed.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.outputs import atomic_path

STORE = Path("features/mfcc.h5")  # dvc.yaml's extract output: where every stage's --store defaults

INT_FIELDS = ("actor", "emotion", "intensity", "statement", "repetition", "variant")
STR_FIELDS = ("path", "augment")
CORPUS_FIELDS = ("corpus", "speaker", "gender")  # strings, present for every clip or for none


@dataclass
class Clip:
    """One sequence to store: the clip's metadata and its (n_frames, 13) MFCCs."""

    meta: dict[str, Any]  # path, actor, emotion, intensity, statement, repetition, variant, augment[, CORPUS_FIELDS]
    mfcc: np.ndarray


def write_store(path: str | Path, clips: Sequence[Clip], attrs: dict[str, Any]) -> None:
    """Write all clips atomically. Same clips and attrs give the same bytes (no timestamps). CORPUS_FIELDS
    are written when the clips carry them."""
    offsets = np.zeros(len(clips) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(c.mfcc) for c in clips])
    n_mfcc = int(attrs["n_mfcc"])
    mfcc = np.concatenate([c.mfcc for c in clips]) if clips else np.zeros((0, n_mfcc), np.float32)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            for key, value in attrs.items():
                f.attrs[key] = value
            f.create_dataset("mfcc", data=mfcc.astype(np.float32), track_times=False)
            f.create_dataset("offsets", data=offsets, track_times=False)
            group = f.create_group("clips", track_order=True)
            for field in INT_FIELDS:
                data = np.array([c.meta[field] for c in clips], dtype=np.int64)
                group.create_dataset(field, data=data, track_times=False)
            corpus_fields = CORPUS_FIELDS if clips and CORPUS_FIELDS[0] in clips[0].meta else ()
            for field in STR_FIELDS + corpus_fields:
                data = np.array([c.meta[field] for c in clips], dtype=h5py.string_dtype())
                group.create_dataset(field, data=data, track_times=False)


class FeatureStore:
    """Read access: metadata as a DataFrame (with CORPUS_FIELDS' columns where the store has them), any
    clip's sequence in O(1) without loading the rest."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise InputError(self.path, "feature store not found (run the extract stage)") from None
        except OSError as err:
            raise InputError(self.path, f"not a readable HDF5 feature store ({err})") from None
        try:
            self.offsets: np.ndarray = self._file["offsets"][:]
            clips = self._file["clips"]
            table = {field: clips[field][:] for field in INT_FIELDS}
            for field in STR_FIELDS + tuple(f for f in CORPUS_FIELDS if f in clips):
                table[field] = clips[field].asstr()[:]
            n_frames = self._file["mfcc"].shape[0]
        except KeyError as err:
            self._file.close()
            raise InputError(self.path, f"missing dataset {err} (not written by the extract stage)") from None
        lengths = {len(column) for column in table.values()}
        if lengths != {len(self.offsets) - 1} or self.offsets[-1:].tolist() != [n_frames]:
            self._file.close()
            raise InputError(self.path, "/offsets, /clips and /mfcc disagree in length (a damaged store)")
        self.clips = pd.DataFrame(table)
        self.clips["n_frames"] = np.diff(self.offsets)
        self.attrs: dict[str, Any] = dict(self._file.attrs)

    def __len__(self) -> int:
        return len(self.clips)

    def sequence(self, i: int) -> np.ndarray:
        """Clip i's (n_frames, 13) float32 MFCCs: one contiguous read."""
        if not 0 <= i < len(self):
            raise IndexError(f"clip {i} is out of range for {len(self)} clips")
        return self._file["mfcc"][self.offsets[i] : self.offsets[i + 1]]

    def sequences(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Many clips with one read of the whole matrix: training touches most of the store anyway."""
        mfcc = self._file["mfcc"][:]
        return [mfcc[self.offsets[i] : self.offsets[i + 1]] for i in indices]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
