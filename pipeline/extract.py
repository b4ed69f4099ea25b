"""Stage extract: every RAVDESS clip -> backend-identical MFCC sequence, cached in features/mfcc.h5.

    python -m pipeline.extract [--data DIR] [--out features/mfcc.h5] [--report features/extract_report.json]
"""
from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline import augment
from pipeline.audio import FRAME_LENGTH, HOP_LENGTH, SAMPLE_RATE, load_audio
from pipeline.config import ExtractConfig, load
from pipeline.errors import InputError, run_cli
from pipeline.features import N_FFT, N_MELS, N_MFCC, TOP_DB, _constants, usable_mfcc
from pipeline.outputs import atomic_path, check_writable, write_json
from pipeline.ravdess import DATA, ClipInfo, find_clips, parse_name
from pipeline.store import STORE, Clip, write_store


def clip_features(path: Path, info: ClipInfo, variants: list[augment.Variant], seed: int) -> list[Clip]:
    """The original clip and its variants, or InputError if the clip is unusable."""
    audio = load_audio(path)
    meta = {k: v for k, v in asdict(info).items() if k not in ("modality", "channel")}
    clips = [Clip({**meta, "variant": 0, "augment": ""}, usable_mfcc(audio, path))]
    for variant in variants:
        varied = usable_mfcc(augment.apply(audio, variant, seed, info.path), f"{path} (variant {variant.name})")
        clips.append(Clip({**meta, "variant": variant.index, "augment": variant.name}, varied))
    return clips


def _work(task: tuple[Path, ClipInfo, list[augment.Variant], int]) -> list[Clip] | str:
    """One clip's sequences, or the reason it is unusable: returned, not raised, so that the pool goes on
    and on_error decides in the parent."""
    try:
        return clip_features(*task)
    except InputError as err:
        return err.reason


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent, which terminates them: one message, no tracebacks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
        "augment": repr(asdict(config.augment)),
    }


def extract(data_root: Path, out: Path, report: Path, config: ExtractConfig) -> dict[str, Any]:
    """Run the stage; returns the report. Nothing is written unless every step succeeds."""
    on_error = config.on_error
    variants = augment.variants(config.augment)
    seed = config.augment.seed
    workers = config.workers or os.cpu_count() or 1

    skipped: list[dict[str, str]] = []
    tasks = []
    for path in find_clips(data_root):
        try:
            tasks.append((path, parse_name(path, data_root), variants, seed))
        except InputError as err:
            if on_error == "error":
                raise
            skipped.append({"path": path.relative_to(data_root).as_posix(), "reason": err.reason})

    _constants()  # build the filterbank once, before the workers fork
    clips: list[Clip] = []
    start = time.perf_counter()
    with ExitStack() as stack:
        if workers > 1 and len(tasks) > 1:
            # The first clip runs here, before the fork: librosa's lazy imports and cached-JIT loads
            # (~1 s) are then paid once, not once per worker.
            first = _work(tasks[0])
            pool = stack.enter_context(multiprocessing.get_context("fork").Pool(workers, _ignore_sigint))
            # imap keeps task order: the store is deterministic whatever the number of workers.
            results = itertools.chain([first], pool.imap(_work, tasks[1:], chunksize=4))
        else:
            results = map(_work, tasks)  # one worker: no fork at all
        progress = tqdm(zip(tasks, results), total=len(tasks), desc="extract", unit="clip", disable=None)
        for done, (task, result) in enumerate(progress, start=1):
            if progress.disable and done % max(1, len(tasks) // 10) == 0:  # a log, not a terminal: no bar
                print(f"extract: {done}/{len(tasks)} clips, {time.perf_counter() - start:.0f} s", flush=True)
            if isinstance(result, str):
                if on_error == "error":
                    raise InputError(task[0], result)
                skipped.append({"path": task[1].path, "reason": result})
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
    extract(args.data, args.out, args.report, load(ExtractConfig, "extract"))


if __name__ == "__main__":
    run_cli(main)
