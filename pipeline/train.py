"""Stage train: fit the stateful LSTM on the training actors, keep the best checkpoint by
validation balanced accuracy, export it in the backend's format.

With train.ema_decay > 0 the checkpoints are an exponential moving average of the weights
(updated after every step), the averaging form of checkpoint averaging: validation scores, early
stopping and the export all use the averaged weights.

With train.ensemble = n > 1, n members are trained with seeds seed, seed+1, ... (side by side, one
process per core) and exported as one LSTM that averages their logits (pipeline.model.ensemble_of).
With train.rotate_val, member k selects its checkpoint on the k-th fold after the usual validation
fold and trains on the others (the usual validation actors included): members differ by their
speakers, not only by their seeds.

    python -m pipeline.train [--store features/mfcc.h5] [--split features/split.csv] [--models models]
"""
from __future__ import annotations

import argparse
import copy
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline import metrics
from pipeline.dataset import SplitData, add_input_arguments, length_batches, load_splits, pad
from pipeline.errors import InputError, run_cli
from pipeline.inference import decide, replay
from pipeline.model import EmotionLSTM, ensemble_of
from pipeline.outputs import atomic_path, write_json, write_text
from pipeline.params import integer, load_params, number, section
from pipeline.ravdess import EMOJI, class_names

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine", "none")
# Allowed ranges: values outside them would crash mid-run or train silently wrong. Each test is
# written so that NaN fails it too (a NaN learning rate trains to garbage without an error).
RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "seed": (lambda v: v >= 0, ">= 0"),
    "hidden_size": (lambda v: v >= 1, ">= 1"),
    "num_layers": (lambda v: v >= 1, ">= 1"),
    "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "epochs": (lambda v: v >= 1, ">= 1"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "lr": (lambda v: 0 < v < math.inf, "> 0 and finite"),
    "weight_decay": (lambda v: 0 <= v < math.inf, ">= 0 and finite"),
    "warmup_epochs": (lambda v: v >= 0, ">= 0"),
    "grad_clip": (lambda v: 0 <= v < math.inf, ">= 0 and finite (0 = off)"),
    "patience": (lambda v: v >= 1, ">= 1"),
    "frame_loss_weight": (lambda v: 0 <= v < math.inf, ">= 0 and finite"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "feature_noise": (lambda v: 0 <= v < math.inf, ">= 0 and finite"),
    "frame_dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "threads": (lambda v: v >= 1, ">= 1"),
    "ema_decay": (lambda v: 0 <= v < 1, "in [0, 1) (0 = off)"),
    "ensemble": (lambda v: v >= 1, ">= 1"),
}


@dataclass(frozen=True)
class TrainConfig:
    """params.yaml `train:`, type-checked: `-S train.lr=1e-05` arrives as a string."""

    seed: int = 0
    device: str = "auto"
    threads: int = 1
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.3
    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup_epochs: int = 1
    grad_clip: float = 1.0
    patience: int = 10
    frame_loss_weight: float = 0.0
    class_weighting: bool = True
    label_smoothing: float = 0.0
    augment_variants: bool = False
    feature_noise: float = 0.0
    frame_dropout: float = 0.0
    ema_decay: float = 0.0
    ensemble: int = 1
    rotate_val: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainConfig:
        unknown = set(params) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError("params.yaml", f"unknown train parameters {sorted(unknown)}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in params:
                continue
            raw, name = params[f.name], f"train.{f.name}"
            if f.type == "int":
                values[f.name] = integer(raw, name)
            elif f.type == "float":
                values[f.name] = number(raw, name)
            elif f.type == "bool":
                if not isinstance(raw, bool):
                    raise InputError("params.yaml", f"{name} must be true or false, got {raw!r}")
                values[f.name] = raw
            else:
                values[f.name] = str(raw)
        config = cls(**values)
        for name, value, allowed in (
            ("optimizer", config.optimizer, OPTIMIZERS),
            ("schedule", config.schedule, SCHEDULES),
            ("device", config.device, ("auto", "cpu", "cuda")),
        ):
            if value not in allowed:
                raise InputError("params.yaml", f"train.{name} must be one of {allowed}, got {value!r}")
        for name, (ok, allowed) in RANGES.items():
            if not ok(getattr(config, name)):
                raise InputError("params.yaml", f"train.{name} must be {allowed}, got {params[name]!r}")
        return config


@dataclass
class Member:
    """One trained model: its best checkpoint (on the CPU, in eval mode) and its training log."""

    model: EmotionLSTM
    history: list[dict[str, float]]  # one row per epoch
    best_epoch: int
    seconds: float


@dataclass
class FitResult:
    model: EmotionLSTM  # the members merged into one (one member: a copy of it), on the CPU, in eval mode
    members: list[Member]
    val: dict[str, float]  # the exported model's validation figures (rotated: the members' own, averaged)

    @property
    def history(self) -> list[dict[str, float]]:
        """Every member's epochs, each row with its member number (1, 2, ...)."""
        return [{"member": k + 1} | row for k, m in enumerate(self.members) for row in m.history]

    @property
    def best_epoch(self) -> list[int]:
        return [m.best_epoch for m in self.members]

    @property
    def epochs_run(self) -> list[int]:
        return [len(m.history) for m in self.members]

    @property
    def seconds_per_epoch(self) -> float:
        return sum(m.seconds for m in self.members) / sum(self.epochs_run)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("params.yaml", "train.device is cuda, but no CUDA device is available (use auto)")
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Inverse class frequency, mean 1: neutral has half the clips of every other emotion."""
    counts = torch.bincount(labels, minlength=n_classes).float().clamp_min(1)
    return counts.sum() / (n_classes * counts)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def drop_frames(sequence: torch.Tensor, rate: float) -> torch.Tensor:
    """Drop each frame with probability `rate`, keeping at least the last one: an emptied sequence
    would have length 0, and its "last step" would index a padded position."""
    keep = torch.rand(len(sequence)) >= rate
    keep[-1] |= ~keep.any()
    return sequence[keep]


def predictions(model: EmotionLSTM, data: SplitData) -> tuple[np.ndarray, float]:
    """Last-frame-rule predictions and mean cross-entropy of the last step, for a whole split."""
    probs = np.stack([decide(p, "last") for p in replay(model, data.sequences)])
    loss = float(F.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-12)), data.labels))
    return probs.argmax(axis=1), loss


def validation(model: EmotionLSTM, data: SplitData, n_classes: int) -> dict[str, float]:
    """What checkpoints are selected on and reported with: loss, accuracy, balanced accuracy, macro F1."""
    predicted, loss = predictions(model, data)
    return {"loss": loss} | metrics.summary(data.labels.numpy(), predicted, n_classes)


def member_splits(
    store: Path, manifest: Path, scheme: str, config: TrainConfig, fold: int | None = None
) -> list[dict[str, SplitData]]:
    """Each ensemble member's splits: the same for all, or with config.rotate_val member k
    validating k folds further on (pipeline.dataset.actor_splits). The test split is the same."""
    shifts = range(config.ensemble) if config.rotate_val else [0]
    loaded = [load_splits(store, manifest, scheme, config.augment_variants, fold, val_shift=k) for k in shifts]
    return loaded if config.rotate_val else loaded * config.ensemble


def fit(
    data: dict[str, SplitData] | Sequence[dict[str, SplitData]],
    n_classes: int,
    config: TrainConfig,
    desc: str = "train",
    workers: int = 1,
) -> FitResult:
    """Train on data['train'], select on data['val']; deterministic for a given config on the CPU.

    config.ensemble members, with seeds seed, seed+1, ..., train in up to `workers` processes (the
    result does not depend on how many) and are merged into one model (pipeline.model.ensemble_of).
    `data` is every member's splits, or a list of each member's own (member_splits).
    """
    n = config.ensemble
    per_member = [data] * n if isinstance(data, dict) else list(data)
    if len(per_member) != n:
        raise ValueError(f"{len(per_member)} members' splits for an ensemble of {n}")
    tasks = [
        (d, n_classes, replace(config, seed=config.seed + k), desc if n == 1 else f"{desc} member {k + 1}/{n}")
        for k, d in enumerate(per_member)
    ]
    if workers > 1 and n > 1:
        with multiprocessing.get_context("spawn").Pool(min(workers, n)) as pool:
            members = pool.starmap(fit_member, tasks)
    else:
        members = [fit_member(*task) for task in tasks]
    model = ensemble_of([m.model for m in members])
    if all(d["val"] is per_member[0]["val"] for d in per_member):
        val = validation(model, per_member[0]["val"], n_classes)
    else:  # each member trained on the others' val actors: only its own figures are unseen data
        kept = [m.history[m.best_epoch - 1] for m in members]
        val = {k[4:]: float(np.mean([row[k] for row in kept])) for k in kept[0] if k.startswith("val_")}
    return FitResult(model, members, val)


def fit_member(data: dict[str, SplitData], n_classes: int, config: TrainConfig, desc: str) -> Member:
    """One model: the training loop, early stopping on validation balanced accuracy."""
    # A fixed thread count keeps CPU results identical from run to run on one machine (another CPU
    # may round differently: README); on 2 busy cores one thread per training is also faster.
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = resolve_device(config.device)
    train, val = data["train"], data["val"]
    if len(train) == 0 or len(val) == 0:
        raise InputError(None, "the training and validation splits must both hold clips")

    model = EmotionLSTM(train.sequences[0].shape[1], config.hidden_size, config.num_layers, n_classes, config.dropout)
    frames = torch.cat(train.sequences).double()
    model.set_normalisation(frames.mean(0).float(), frames.std(0).float())
    model.to(device)
    weight = class_weights(train.labels, n_classes).to(device) if config.class_weighting else None
    opt_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_class(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total, warmup = config.epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup) if config.schedule == "cosine" else 1.0
    )

    # With ema_decay > 0 the average is what gets validated and kept while `model` itself keeps
    # training. Averaging draws nothing random, so ema_decay 0 trains exactly as without it.
    averaged = None
    scored = model
    if config.ema_decay > 0:
        ema = torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema_decay)
        averaged = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema)
        scored = averaged.module
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, {})
    started = time.perf_counter()
    bar = tqdm(range(1, config.epochs + 1), desc=desc, unit="epoch", file=sys.stderr)
    for epoch in bar:
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        loss_sum, train_pred, train_true = 0.0, [], []
        for idx in length_batches(train.lengths, config.batch_size, rng):
            sequences = [train.sequences[i] for i in idx]
            if config.frame_dropout > 0:
                sequences = [drop_frames(s, config.frame_dropout) for s in sequences]
            x, lengths = pad(sequences)
            x, lengths, y = x.to(device), lengths.to(device), train.labels[idx].to(device)
            if config.feature_noise > 0:
                x = x + config.feature_noise * model.feature_std * torch.randn_like(x)
            logits = model.frame_logits(x)[0]
            last = logits[torch.arange(len(idx), device=device), lengths - 1]
            loss = F.cross_entropy(last, y, weight=weight, label_smoothing=config.label_smoothing)
            if config.frame_loss_weight > 0:
                valid = torch.arange(logits.shape[1], device=device)[None, :] < lengths[:, None]
                frame_loss = F.cross_entropy(
                    logits[valid], y.repeat_interleave(lengths), weight=weight, label_smoothing=config.label_smoothing
                )
                loss = loss + config.frame_loss_weight * frame_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
            if averaged is not None:
                averaged.update_parameters(model)
            loss_sum += loss.item() * len(idx)
            train_pred.append(last.argmax(1).cpu().numpy())
            train_true.append(y.cpu().numpy())

        tr = metrics.summary(np.concatenate(train_true), np.concatenate(train_pred), n_classes)
        va = validation(scored, val, n_classes)
        row = {"epoch": epoch, "lr": lr, "train_loss": loss_sum / len(train), "val_loss": va.pop("loss")}
        row |= {f"train_{k}": v for k, v in tr.items()} | {f"val_{k}": v for k, v in va.items()}
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_bacc=f"{va['balanced_accuracy']:.3f}")
        if va["balanced_accuracy"] > best[0]:
            best = (va["balanced_accuracy"], epoch, copy.deepcopy(scored.state_dict()))
        elif epoch - best[1] >= config.patience:
            break
    bar.close()
    model.load_state_dict(best[2])
    return Member(model.cpu().eval(), history, best[1], time.perf_counter() - started)


def labels_document(scheme: str) -> dict[str, Any]:
    """models/labels.json: what the frontend shows for each class index."""
    return {
        "scheme": scheme,
        "classes": [{"index": i, "name": n, "emoji": EMOJI[n]} for i, n in enumerate(class_names(scheme))],
    }


def export(result: FitResult, scheme: str, models_dir: Path) -> None:
    """The backend's files: full pickled model, state_dict, and the class list beside them."""
    # Saved through a file object: given a path, torch names the archive's records after the
    # (random) temporary file name, and equal weights would no longer give equal bytes.
    for name, obj in (("model.pth", result.model), ("model_weights.pth", result.model.state_dict())):
        with atomic_path(models_dir / name) as tmp, tmp.open("wb") as f:
            torch.save(obj, f)
    write_json(models_dir / "labels.json", labels_document(scheme))


def main() -> None:
    params = load_params()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_arguments(parser)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/train.json"))
    parser.add_argument("--log", type=Path, default=Path("metrics/train_log.csv"))
    args = parser.parse_args()

    config = TrainConfig.from_params(section(params, "train"))
    scheme = section(params, "data").get("classes", "ravdess8")
    n_classes = len(class_names(scheme))
    data = member_splits(args.store, args.split, scheme, config)
    result = fit(data, n_classes, config, workers=os.cpu_count() or 1)

    export(result, scheme, args.models)
    write_text(args.log, pd.DataFrame(result.history).to_csv(index=False, float_format="%.6g"))
    write_json(
        args.metrics,
        metrics.rounded(
            {
                "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run,
                "train_clips": len(data[0]["train"]),
                "val_clips": len(data[0]["val"]),
                "parameters": sum(p.numel() for p in result.model.parameters()),
                "val": result.val,
            }
        ),
    )
    print(
        f"train: best epoch {result.best_epoch}/{result.epochs_run}, val balanced accuracy "
        f"{result.val['balanced_accuracy']:.3f}, {result.seconds_per_epoch:.1f} s/epoch -> {args.models}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_cli(main)
