"""Benchmark: the fast MFCC path against the per-frame librosa oracle on the same decoded clips.

    python scripts/bench.py [--data DIR] [--clips N] [--repeat R] [--extract] [--model PATH ...]
                            [--epoch-train KEY=VALUE[,KEY=VALUE] ...] [--sequences N]

Both run single-threaded in one process on identical audio, so the ratio measures the algorithm,
not the core count. --extract also times the whole extract stage as a subprocess. --model times
the backend's frame-by-frame loop as the plan writes it (no torch.no_grad(), one thread) on saved
models and, in the same process, on a bare nn.LSTM(13, 128, 2): the ratio is the per-frame budget's
yardstick (at most 0.5 x), steadier than microseconds on a shared machine.
--epoch-train times one training epoch of one member (params.yaml's train config and train.threads) on
the store's training sequences (all, or the first N), for each setting of train keys in turn
(crop_seconds=1.5, batch_size=64; `-` for params.yaml as it is), alternated over the repeats: the
ratio to the first setting is what a setting costs per epoch. An epoch includes its validation pass, a
fixed cost: with fewer sequences than the train stage's, the ratio moves towards 1.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from threadpoolctl import threadpool_limits

from pipeline.audio import load_audio
from pipeline.config import DataConfig, TrainConfig, load_params, parse
from pipeline.dataset import SplitData, load_splits
from pipeline.errors import InputError, run_cli
from pipeline.features import backend_mfcc, reference_mfcc
from pipeline.manifest import MANIFEST
from pipeline.model import load_model
from pipeline.ravdess import DATA, class_names, find_clips
from pipeline.store import STORE
from pipeline.training import fit_member


def pick_clips(data_root: Path, n: int) -> list[Path]:
    """n files spread evenly over the sorted corpus, so actors and emotions are all sampled."""
    files = find_clips(data_root)
    indices = np.unique(np.linspace(0, len(files) - 1, min(n, len(files))).round().astype(int))
    return [files[i] for i in indices]


def time_mfcc(audios: list[np.ndarray], repeat: int) -> dict[str, float]:
    """Frames, µs/frame of both paths, their ratio and the worst |difference| on these clips."""
    with threadpool_limits(limits=1):
        reference_mfcc(audios[0][:4000])  # warm-up: librosa's lazy imports and numba compilation
        fast = [backend_mfcc(a) for a in audios]
        best = np.inf
        for _ in range(repeat):
            start = time.perf_counter()
            for audio in audios:
                backend_mfcc(audio)
            best = min(best, time.perf_counter() - start)
        start = time.perf_counter()
        oracle = [reference_mfcc(a) for a in audios]
        oracle_s = time.perf_counter() - start
    for f, o in zip(fast, oracle):
        if f.shape != o.shape:
            raise AssertionError(f"fast path kept {len(f)} frames, the oracle {len(o)}")
    frames = sum(len(f) for f in fast)
    if frames == 0:
        raise InputError(None, "every frame of the chosen clips is silent: nothing to time")
    worst = max(float(np.max(np.abs(f - o), initial=0.0)) for f, o in zip(fast, oracle))
    return {
        "frames": frames,
        "fast_us": best / frames * 1e6,
        "oracle_us": oracle_s / frames * 1e6,
        "ratio": oracle_s / best,
        "worst_diff": worst,
    }


def plan_loop(model: torch.nn.Module, mfcc: np.ndarray) -> None:
    """The backend's loop as the plan writes it: one frame at a time, the state passed back, a
    softmax per frame, and no torch.no_grad()."""
    input_tensor = torch.tensor(mfcc, dtype=torch.float32).unsqueeze(0)
    hidden = None
    for i in range(input_tensor.shape[1]):
        output, hidden = model(input_tensor[:, i : i + 1, :], hidden)
        torch.softmax(output.reshape(1, -1), dim=1)


def time_model(model: torch.nn.Module, mfccs: list[np.ndarray], repeat: int) -> float:
    """µs per frame of plan_loop over these clips, best of `repeat`, one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plan_loop(model, mfccs[0][:10])  # warm-up
        best = np.inf
        for _ in range(repeat):
            start = time.perf_counter()
            for mfcc in mfccs:
                plan_loop(model, mfcc)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return best / sum(len(m) for m in mfccs) * 1e6


def time_extract(data_root: Path) -> float:
    """Wall seconds of `python -m pipeline.extract` on data_root, writing into a scratch folder."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pipeline.extract", "--data", str(data_root),
               "--out", f"{tmp}/mfcc.h5", "--report", f"{tmp}/report.json"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        return time.perf_counter() - start


def train_setting(text: str) -> dict[str, Any]:
    """'crop_seconds=1.5,batch_size=64' as train overrides ('-': none); values read as YAML."""
    if text == "-":
        return {}
    pairs = [item.partition("=") for item in text.split(",")]
    if any(not key or not sep for key, sep, _ in pairs):
        raise InputError(None, f"--epoch-train: {text!r} is not KEY=VALUE[,KEY=VALUE] or -")
    return {key: yaml.safe_load(value) for key, _, value in pairs}


def time_epochs(store: Path, split: Path, settings: list[str], sequences: int | None, repeat: int) -> list[float]:
    """Seconds of one epoch of one member per setting, best of `repeat`, settings alternated so that
    a load change on a shared machine touches them alike."""
    params = load_params()
    scheme = parse(DataConfig, params["data"], "data").classes
    configs = [
        parse(TrainConfig, {**params["train"], **train_setting(s), "epochs": 1}, "train", f"--epoch-train {s}")
        for s in settings
    ]
    data = load_splits(store, split, scheme, configs[0].augment_variants)
    train = data["train"]
    if sequences:
        data["train"] = SplitData(train.sequences[:sequences], train.labels[:sequences], train.clips.iloc[:sequences])
    n_classes = len(class_names(scheme))
    best = [np.inf] * len(configs)
    for _ in range(repeat):
        for i, config in enumerate(configs):
            best[i] = min(best[i], fit_member(data, n_classes, config, "bench").seconds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="corpus folder (%(default)s, filled by fetch)")
    parser.add_argument("--clips", type=int, default=12, help="clips spread over the corpus")
    parser.add_argument("--repeat", type=int, default=5, help="fast path: best of this many passes")
    parser.add_argument("--extract", action="store_true", help="also time the whole extract stage")
    parser.add_argument("--model", type=Path, nargs="+", default=[], help="also time the backend's loop on these models")
    parser.add_argument("--epoch-train", nargs="+", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="only time a training epoch under each of these train settings (- = params.yaml's)")
    parser.add_argument("--sequences", type=int, help="--epoch-train: the first N training sequences (default: all)")
    parser.add_argument("--store", type=Path, default=STORE, help="--epoch-train: %(default)s")
    parser.add_argument("--split", type=Path, default=MANIFEST, help="--epoch-train: %(default)s")
    args = parser.parse_args()
    if args.clips < 1 or args.repeat < 1 or (args.sequences is not None and args.sequences < 1):
        parser.error("--clips, --repeat and --sequences must be at least 1")
    if args.epoch_train:
        seconds = time_epochs(args.store, args.split, args.epoch_train, args.sequences, args.repeat)
        count = "all" if args.sequences is None else f"the first {args.sequences}"
        print(f"epoch       one member, {count} training sequences of {args.store}, train.threads of params.yaml, best of {args.repeat}")
        for setting, s in zip(args.epoch_train, seconds):
            print(f"train {setting} {s:7.2f} s/epoch  {s / seconds[0]:5.2f} x the first")
        return
    data_root = args.data

    paths = pick_clips(data_root, args.clips)
    audios = [load_audio(p) for p in paths]
    r = time_mfcc(audios, args.repeat)
    print(f"data        {data_root} ({len(paths)} clips, {r['frames']} frames, 1 thread)")
    print(f"oracle      {r['oracle_us']:9.1f} µs/frame  (reference_mfcc, once)")
    print(f"fast        {r['fast_us']:9.2f} µs/frame  (backend_mfcc, best of {args.repeat})")
    print(f"ratio       {r['ratio']:9.1f} x")
    print(f"worst diff  {r['worst_diff']:9.2e}")
    if args.extract:
        print(f"extract     {time_extract(data_root):9.1f} s wall (whole stage, {data_root})")
    if not args.model:
        return
    mfccs = [backend_mfcc(a) for a in audios]
    torch.manual_seed(0)
    bare = time_model(torch.nn.LSTM(13, 128, 2, batch_first=True), mfccs, args.repeat)  # the yardstick
    print(f"bare lstm   {bare:9.1f} µs/frame  (nn.LSTM(13, 128, 2), the plan's loop, best of {args.repeat})")
    for path in args.model:
        model = load_model(path)
        size = f"{model.lstm.num_layers} x {model.lstm.hidden_size} units, {sum(p.numel() for p in model.parameters())} parameters"
        cost = time_model(model, mfccs, args.repeat)
        print(f"model       {cost:9.1f} µs/frame  {cost / bare:5.2f} x bare  ({path}: {size}, best of {args.repeat})")


if __name__ == "__main__":
    run_cli(main)
