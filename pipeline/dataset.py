"""Sequences from the feature store, grouped by the split manifest, batched by similar length."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn.utils.rnn import pad_sequence

from pipeline.errors import InputError
from pipeline.manifest import FOLDLESS, MANIFEST, SPLITS, cv_folds, read_manifest, validate
from pipeline.ravdess import class_index
from pipeline.store import STORE, FeatureStore


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """--store and --split, shared by every stage that trains or scores from the cached features."""
    parser.add_argument("--store", type=Path, default=STORE, help="feature store (%(default)s)")
    parser.add_argument("--split", type=Path, default=MANIFEST, help="split manifest (%(default)s)")


@dataclass
class SplitData:
    """One split's sequences (float32 (n_frames, 13) tensors), class labels and store metadata."""

    sequences: list[torch.Tensor]
    labels: torch.Tensor
    clips: pd.DataFrame  # the store's metadata rows, in sequence order

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def lengths(self) -> torch.Tensor:
        return torch.tensor([len(s) for s in self.sequences])

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle all frames as one array. Sent to a worker process as they are, each of the
        thousands of tensors would travel as its own file descriptor (torch's multiprocessing
        pickler): three ensemble members' copies ran out of descriptors (Errno 24) and hung the pool."""
        frames = torch.cat(self.sequences).numpy() if self.sequences else np.zeros((0, 0), np.float32)
        return _unpickle_split, (frames, [len(s) for s in self.sequences], self.labels.numpy(), self.clips)


def _unpickle_split(frames: np.ndarray, lengths: list[int], labels: np.ndarray, clips: pd.DataFrame) -> SplitData:
    return SplitData(list(torch.from_numpy(frames).split(lengths)), torch.from_numpy(labels), clips)


def actor_splits(manifest: pd.DataFrame, fold: int | None = None) -> dict[int | str, str]:
    """actor -> split: the manifest's own, or for cross-validation fold k: test = fold k,
    val = the next fold, train = the rest; other corpora's speakers (FOLDLESS) keep their own."""
    actors = manifest.drop_duplicates("actor").set_index("actor")
    if fold is None:
        return actors["split"].to_dict()
    folded = cv_folds(manifest)
    if fold not in folded:
        raise InputError(None, f"fold {fold} not in the manifest's folds {folded}")
    val_fold = folded[(folded.index(fold) + 1) % len(folded)]
    return {
        a: actors.at[a, "split"] if f == FOLDLESS else "test" if f == fold else "val" if f == val_fold else "train"
        for a, f in actors["fold"].items()
    }


def load_splits(
    store_path: str | Path,
    manifest_path: str | Path,
    scheme: str,
    train_variants: bool,
    fold: int | None = None,
    train_on_val: bool = False,
) -> dict[str, SplitData]:
    """Read the store once and group its sequences by split. Augmented variants (variant > 0)
    enter only the training split, and only when train_variants is set. A clip's split is its
    manifest row's (matched by path, which a variant shares with its original). With train_on_val
    (train.validation: train) the val actors' clips and variants are training clips too, and 'val'
    keeps their originals, for in-sample figures."""
    manifest = read_manifest(manifest_path)
    with FeatureStore(store_path) as store:
        clips = store.clips
        emotions = manifest["path"].map(clips[clips["variant"] == 0].set_index("path")["emotion"])
        if emotions.isna().any():
            missing = manifest["path"][emotions.isna()].iloc[0]
            raise InputError(manifest_path, f"clip {missing} is not in the store {store_path} (rerun split)")
        validate(manifest, emotions, manifest_path)
        split_of = actor_splits(manifest, fold)
        clip_split = clips["path"].map(dict(zip(manifest["path"], manifest["actor"].map(split_of))))
        if clip_split.isna().any():
            missing = clips["path"][clip_split.isna()].iloc[0]
            raise InputError(manifest_path, f"clip {missing} of the store {store_path} is not in the manifest (rerun split)")
        trained = clip_split.isin(["train", "val"] if train_on_val else ["train"])
        keep = clips["variant"].eq(0) | (trained & train_variants)
        rows = np.flatnonzero(keep.to_numpy())
        sequences = dict(zip(rows, store.sequences(rows)))
    result = {}
    for split in SPLITS:
        member = trained if split == "train" else clip_split.eq(split) & clips["variant"].eq(0)
        idx = rows[member.to_numpy()[rows]].tolist()
        labels = [class_index(int(e), scheme) for e in clips["emotion"].iloc[idx]]
        result[split] = SplitData(
            [torch.from_numpy(sequences[i]) for i in idx],
            torch.tensor(labels, dtype=torch.long),
            clips.iloc[idx].reset_index(drop=True),
        )
    return result


def length_batches(lengths: torch.Tensor, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of similar length (little padded work), in random order, different every epoch:
    sort by length with random tie-breaking jitter, cut into batches, shuffle the batches."""
    jitter = rng.uniform(0, 0.1 * float(lengths.float().mean()), len(lengths))
    order = np.argsort(lengths.numpy() + jitter, kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def random_crop(sequence: torch.Tensor, frames: int, rng: np.random.Generator) -> torch.Tensor:
    """A random window of `frames` consecutive frames (the whole sequence when it is not longer).
    Features are per frame, so this equals the features of the audio cut at the window's frames, as
    long as the cut keeps the clip's peak (the backend normalises each recording by its peak)."""
    if len(sequence) <= frames:
        return sequence
    start = int(rng.integers(0, len(sequence) - frames + 1))
    return sequence[start : start + frames]


def pad(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (batch, max_len, 13) and the true lengths."""
    return pad_sequence(sequences, batch_first=True), torch.tensor([len(s) for s in sequences])
