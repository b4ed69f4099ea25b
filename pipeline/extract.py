"""Stage extract: every RAVDESS clip, and every clip of data.train_corpora -> backend-identical MFCC
sequence, cached in features/mfcc.h5.

    python -m pipeline.extract [--data DIR] [--out features/mfcc.h5] [--report features/extract_report.json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline import augment
from pipeline.audio import FRAME_LENGTH, HOP_LENGTH, SAMPLE_RATE, load_audio
from pipeline.config import DataConfig, ExtractConfig, load
from pipeline.corpora import clip_meta, ravdess_speaker, read_corpora
from pipeline.corpus import Corpus
from pipeline.errors import InputError, check_interrupt, run_cli
from pipeline.features import N_FFT, N_MELS, N_MFCC, TOP_DB, constants, usable_mfcc
from pipeline.outputs import atomic_path, check_writable, write_json
from pipeline.ravdess import DATA, find_clips, parse_name
from pipeline.store import STORE, Clip, write_store
from pipeline.workers import pool as worker_pool

# a clip's audio, store metadata, variants, seed, and the speaker's clips its babble is made of
Task = tuple[Path, dict[str, Any], list[augment.Variant], int, list[Path]]
BABBLE_TALKERS = 5  # voices in a babble variant's crowd
Blame = Callable[[str], InputError]  # a reason -> the error naming where the clip came from


def clip_features(
    path: Path, meta: dict[str, Any], variants: list[augment.Variant], seed: int, talkers: list[Path]
) -> list[Clip]:
    """The original clip and its variants, or InputError if the clip is unusable. Variants are seeded
    by the clip's store path."""
    audio = load_audio(path)
    voices = [talker_audio(talker) for talker in talkers]  # none unless a babble variant needs them
    clips = [Clip({**meta, "variant": 0, "augment": ""}, usable_mfcc(audio, path))]
    for variant in variants:
        varied = augment.apply(audio, variant, seed, meta["path"], voices)
        varied = usable_mfcc(varied, f"{path} (variant {variant.name})")
        clips.append(Clip({**meta, "variant": variant.index, "augment": variant.name}, varied))
    return clips


def talker_audio(path: Path) -> np.ndarray:
    """A babble voice's audio; its failure names that clip, not the one being augmented."""
    try:
        return load_audio(path)
    except InputError as err:
        raise InputError(path, f"unusable as babble: {err.reason}") from None


def babble_talkers(sources: list[tuple[Path, dict[str, Any], Blame]], seed: int) -> list[list[Path]]:
    """For each clip, BABBLE_TALKERS other clips of its speaker (itself for a speaker of one clip), drawn by
    (seed, clip path): the voices of its babble variants, which no other speaker's voice enters
    (pipeline.augment)."""
    speakers = [meta.get("speaker") or meta["actor"] for _, meta, _ in sources]
    by_speaker: dict[Any, list[int]] = {}
    for i, speaker in enumerate(speakers):
        by_speaker.setdefault(speaker, []).append(i)
    talkers = []
    for i, (_, meta, _) in enumerate(sources):
        others = [j for j in by_speaker[speakers[i]] if j != i] or [i]  # alone: itself
        rng = np.random.default_rng([seed, zlib.crc32(meta["path"].encode())])
        chosen = sorted(rng.choice(len(others), size=min(BABBLE_TALKERS, len(others)), replace=False))
        talkers.append([sources[others[k]][0] for k in chosen])
    return talkers


def _work(task: Task) -> list[Clip] | str:
    """One clip's sequences, or the reason it is unusable: returned, not raised, so that the pool goes on
    and on_error decides in the parent."""
    try:
        return clip_features(*task)
    except InputError as err:
        return err.reason


def ravdess_clips(data_root: Path, on_error: str, skipped: list[dict[str, str]]) -> list[tuple[Path, dict[str, Any], Blame]]:
    """RAVDESS's clips under data_root: audio, store metadata, blame. A file name that is not RAVDESS's is
    an error, or with on_error=skip, listed in `skipped`."""
    found = []
    for path in find_clips(data_root):
        try:
            info = parse_name(path, data_root)
        except InputError as err:
            if on_error == "error":
                raise
            skipped.append({"path": path.relative_to(data_root).as_posix(), "reason": err.reason})
            continue
        meta = {k: v for k, v in asdict(info).items() if k not in ("modality", "channel")}
        found.append((path, meta, lambda reason, path=path: InputError(path, reason)))
    return found


def corpus_clips(name: str, corpus: Corpus) -> list[tuple[Path, dict[str, Any], Blame]]:
    """A training corpus's clips: their errors name the manifest's row (Corpus.row_error)."""
    return [
        (corpus.audio_path(row), clip_meta(name, row), lambda reason, n=n, row=row: corpus.row_error(n, row.path, reason))
        for n, row in enumerate(corpus.rows, 1)
    ]


def store_attrs(config: ExtractConfig) -> dict[str, Any]:
    """Root attributes: the feature contract and the versions of everything that shaped the numbers."""
    import librosa
    import scipy
    import soundfile
    import soxr

    return {
        "sample_rate": SAMPLE_RATE,
        "frame_length": FRAME_LENGTH,
        "hop_length": HOP_LENGTH,
        "n_mfcc": N_MFCC,
        "n_fft": N_FFT,
        "n_mels": N_MELS,
        "top_db": TOP_DB,
        "features": "pipeline.features.backend_mfcc (== reference_mfcc, per-frame librosa.feature.mfcc)",
        "librosa_version": librosa.__version__,
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "soxr_version": soxr.__version__,
        "libsndfile_version": soundfile.__libsndfile_version__,
        # the variants drawn and their seed, not the config: a kind left empty (an option kept off) leaves
        # the store's bytes, and so every stage after it, as they were
        "augment": json.dumps({"seed": config.augment.seed, "variants": [v.name for v in augment.variants(config.augment)]}),
    }


def extract(
    data_root: Path, out: Path, report: Path, config: ExtractConfig, corpora: dict[str, Corpus] | None = None
) -> dict[str, Any]:
    """Run the stage on RAVDESS and the training corpora (name -> corpus); returns the report. Nothing is
    written unless every step succeeds."""
    on_error = config.on_error
    variants = augment.variants(config.augment)
    seed = config.augment.seed
    workers = config.workers or os.cpu_count() or 1

    skipped: list[dict[str, str]] = []
    sources = ravdess_clips(data_root, on_error, skipped)
    if corpora:  # the corpus columns, for RAVDESS's clips too; RAVDESS alone keeps its store as it was
        sources = [(path, meta | ravdess_speaker(meta), blame) for path, meta, blame in sources]
        sources += [clip for name, corpus in corpora.items() for clip in corpus_clips(name, corpus)]
    babble = any(v.kind == "babble" for v in variants)
    talkers = babble_talkers(sources, seed) if babble else [[] for _ in sources]
    tasks: list[Task] = [(path, meta, variants, seed, voices) for (path, meta, _), voices in zip(sources, talkers)]

    constants()  # build the filterbank once, before the workers fork
    clips: list[Clip] = []
    start = time.perf_counter()
    with ExitStack() as stack:
        if workers > 1 and len(tasks) > 1:
            # The first clip runs here, before the fork: librosa's lazy imports and cached-JIT loads
            # (~1 s) are then paid once, not once per worker.
            first = _work(tasks[0])
            pool = stack.enter_context(worker_pool(workers, "fork"))
            # map keeps task order: the store is deterministic whatever the number of workers.
            results = itertools.chain([first], pool.map(_work, tasks[1:], chunksize=4))
        else:
            results = map(_work, tasks)  # one worker: no fork at all
        progress = tqdm(zip(sources, results), total=len(tasks), desc="extract", unit="clip", disable=None)
        for done, ((_, meta, blame), result) in enumerate(progress, start=1):
            check_interrupt()
            if progress.disable and done % max(1, len(tasks) // 10) == 0:  # a log, not a terminal: no bar
                print(f"extract: {done}/{len(tasks)} clips, {time.perf_counter() - start:.0f} s", flush=True)
            if isinstance(result, str):
                if on_error == "error":
                    raise blame(result)
                skipped.append({"path": meta["path"], "reason": result})
            else:
                clips.extend(result)
    if not clips:
        raise InputError(data_root, "no usable clips")
    elapsed = time.perf_counter() - start

    originals = [c for c in clips if c.meta["variant"] == 0]
    summary = {
        "clips": len(originals),
        "sequences": len(clips),
        "variants": [v.name for v in variants],
        "frames": int(sum(len(c.mfcc) for c in clips)),
        "skipped": sorted(skipped, key=lambda s: s["path"]),
    }
    if corpora:
        summary["corpora"] = {name: sum(c.meta.get("corpus") == name for c in originals) for name in corpora}
    with atomic_path(report) as report_tmp:  # the report appears only if the store was written
        write_json(report_tmp, summary)
        write_store(out, clips, store_attrs(config))
    print(
        f"extract: {len(originals)} clips, {len(clips)} sequences, {summary['frames']} frames "
        f"in {elapsed:.1f} s with {workers} workers; {len(skipped)} skipped -> {out}",
        file=sys.stderr,
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=STORE)
    parser.add_argument("--report", type=Path, default=Path("features/extract_report.json"))
    args = parser.parse_args()
    check_writable(args.out, args.report)
    config = load(ExtractConfig, "extract")
    data = load(DataConfig, "data")
    corpora = read_corpora(data.train_corpora, data.emotion_map)  # every manifest checked before any decoding
    extract(args.data, args.out, args.report, config, corpora)


if __name__ == "__main__":
    run_cli(main)
