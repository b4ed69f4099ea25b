"""The training loop: fit the stateful LSTM on the training actors and keep the last epoch
(train.validation: train, where the validation actors train too) or the checkpoint that scores best on
the validation actors (balanced accuracy), with early stopping (select).

With train.ensemble = n > 1, n members are trained with seeds seed, seed+1, ... (side by side, one
process per core) and merged into one LSTM that averages their logits (pipeline.model.ensemble_of).
"""
from __future__ import annotations

import copy
import functools
import math
import sys
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline import metrics
from pipeline.audio import frames_after
from pipeline.config import PARAMS_FILE, TrainConfig
from pipeline.dataset import SplitData, length_batches, pad, random_crop
from pipeline.errors import InputError
from pipeline.features import N_MELS, dct_matrix
from pipeline.inference import decide, replay
from pipeline.model import EmotionLSTM, ensemble_of
from pipeline.workers import pool as worker_pool


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
    val: dict[str, float]  # the exported model's validation figures

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
        raise InputError(PARAMS_FILE, "train.device is cuda, but no CUDA device is available (use auto)")
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)


@functools.cache
def bfloat16_runs(device_type: str) -> bool:
    """Whether the LSTM runs under bfloat16 autocast on this device. On the CPU, oneDNN's bfloat16
    LSTM needs AVX-512: a CPU with AVX2 alone refuses it ('could not create a primitive descriptor')."""
    if device_type != "cpu":
        return True
    try:
        with torch.random.fork_rng(devices=[]), torch.autocast("cpu", torch.bfloat16):
            torch.nn.LSTM(1, 1)(torch.zeros(1, 1, 1))
    except RuntimeError:
        return False
    return True


@functools.cache
def say_float32_fallback() -> None:
    """Once per process, and only where a model trains (a cv run whose folds are all cached is silent)."""
    print("train: this CPU cannot run the LSTM in bfloat16 (oneDNN needs AVX-512): training in float32", file=sys.stderr)


def effective_precision(config: TrainConfig) -> str:
    """train.precision, except bfloat16 where this device cannot run it: float32 there (the run
    still completes; results differ from another machine's anyway, README)."""
    bfloat16 = config.precision == "bfloat16" and bfloat16_runs(resolve_device(config.device).type)
    return "bfloat16" if bfloat16 else "float32"


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Inverse class frequency, mean 1: neutral has half the clips of every other emotion."""
    counts = torch.bincount(labels, minlength=n_classes).float().clamp_min(1)
    return counts.sum() / (n_classes * counts)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def channel_offsets(n: int, scale_db: float) -> torch.Tensor:
    """n random microphone/EQ responses as MFCC offsets, (n, 13), drawn from torch's seeded generator.

    A linear channel multiplies the spectrum, so it adds its response in dB to every frame's log-mel
    energies, and the DCT of that curve to every frame's MFCCs: a channel is one offset per clip.
    Each curve is a tilt of up to +-scale_db across the bands, three bumps or dips of up to
    +-scale_db/2 with random centre and width, and, each half the time, a roll-off above a random
    band and one below a random low band (band-limited microphones and lines). Not the evaluation
    suite's filters (pipeline.conditions).
    """
    bands = torch.linspace(0, 1, N_MELS, dtype=torch.float64)
    u = torch.rand(n, 14, dtype=torch.float64)
    curve = scale_db * (2 * u[:, :1] - 1) * (bands - 0.5)
    for j in range(3):
        gain, centre, width = scale_db * (u[:, 1 + 3 * j] - 0.5), u[:, 2 + 3 * j], 0.02 + 0.13 * u[:, 3 + 3 * j]
        curve += gain[:, None] * torch.exp(-0.5 * ((bands - centre[:, None]) / width[:, None]) ** 2)
    cutoff, rolloff = 0.5 + 0.5 * u[:, 10], (u[:, 11] > 0.5) * 4 * scale_db
    curve -= rolloff[:, None] * (bands - cutoff[:, None]).clamp_min(0) / 0.5
    low_cut, low_rolloff = 0.02 + 0.15 * u[:, 12], (u[:, 13] > 0.5) * 4 * scale_db
    curve -= low_rolloff[:, None] * (low_cut[:, None] - bands).clamp_min(0) / 0.1
    return (curve @ torch.from_numpy(dct_matrix())).float()


def predictions(model: EmotionLSTM, data: SplitData) -> tuple[np.ndarray, float]:
    """Last-frame-rule predictions and mean cross-entropy of the last step, for a whole split."""
    probs = np.stack([decide(p, "last") for p in replay(model, data.sequences)])
    loss = float(F.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-12)), data.labels))
    return probs.argmax(axis=1), loss


def validation(model: EmotionLSTM, data: SplitData, n_classes: int) -> dict[str, float]:
    """What checkpoints are selected on and reported with: loss, accuracy, balanced accuracy, macro F1."""
    predicted, loss = predictions(model, data)
    return {"loss": loss} | metrics.summary(data.labels.numpy(), predicted, n_classes)


def fit(
    data: dict[str, SplitData], n_classes: int, config: TrainConfig, desc: str = "train", workers: int = 1
) -> FitResult:
    """Train on data['train'], select on data['val']; deterministic for a given config on the CPU.

    config.ensemble members, with seeds seed, seed+1, ..., train in up to `workers` processes (the
    result does not depend on how many) and are merged into one model (pipeline.model.ensemble_of).
    """
    n = config.ensemble
    tasks = [
        (data, n_classes, replace(config, seed=config.seed + k), desc if n == 1 else f"{desc} member {k + 1}/{n}", k)
        for k in range(n)
    ]
    if workers > 1 and n > 1:
        with worker_pool(min(workers, n)) as pool:
            members = list(pool.map(fit_member, *zip(*tasks)))
    else:
        members = [fit_member(*task) for task in tasks]
    model = ensemble_of([m.model for m in members])
    return FitResult(model, members, validation(model, data["val"], n_classes))


def fit_member(data: dict[str, SplitData], n_classes: int, config: TrainConfig, desc: str, line: int = 0) -> Member:
    """One model: the training loop; with train.validation select, early stopping on validation balanced
    accuracy. Progress: a bar on terminal line `line` (members side by side each keep their own), or one
    line per epoch in a log."""
    # A fixed thread count keeps CPU results identical from run to run on one machine (another CPU
    # may round differently: README); on 2 busy cores one thread per training is also faster.
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = resolve_device(config.device)
    precision = effective_precision(config)  # its probe draws nothing from the seeded generator
    if precision != config.precision:
        say_float32_fallback()
    bfloat16 = precision == "bfloat16"
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

    crop_frames = frames_after(config.crop_seconds)
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, {})
    started = time.perf_counter()
    bar = tqdm(range(1, config.epochs + 1), desc=desc, unit="epoch", file=sys.stderr, position=line, disable=None)
    for epoch in bar:
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        loss_sum, train_pred, train_true = 0.0, [], []
        for idx in length_batches(train.lengths, config.batch_size, rng):
            sequences = [train.sequences[i] for i in idx]
            if config.crop_seconds > 0:
                sequences = [random_crop(seq, crop_frames, rng) for seq in sequences]
            x, lengths = pad(sequences)
            if config.channel_augment_db > 0:
                x = x + channel_offsets(len(idx), config.channel_augment_db)[:, None, :]
            x, lengths, y = x.to(device), lengths.to(device), train.labels[idx].to(device)
            with torch.autocast(device.type, torch.bfloat16, enabled=bfloat16):
                logits = model.frame_logits(x)[0].float()
            last = logits[torch.arange(len(idx), device=device), lengths - 1]
            loss = F.cross_entropy(last, y, weight=weight)
            if config.frame_loss_weight > 0:
                valid = torch.arange(logits.shape[1], device=device)[None, :] < lengths[:, None]
                frame_loss = F.cross_entropy(logits[valid], y.repeat_interleave(lengths), weight=weight)
                loss = loss + config.frame_loss_weight * frame_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(idx)
            train_pred.append(last.argmax(1).cpu().numpy())
            train_true.append(y.cpu().numpy())

        tr = metrics.summary(np.concatenate(train_true), np.concatenate(train_pred), n_classes)
        va = validation(model, val, n_classes)
        row = {"epoch": epoch, "lr": lr, "train_loss": loss_sum / len(train), "val_loss": va.pop("loss")}
        row |= {f"train_{k}": v for k, v in tr.items()} | {f"val_{k}": v for k, v in va.items()}
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_bacc=f"{va['balanced_accuracy']:.3f}")
        if bar.disable:  # a log, not a terminal
            print(
                f"{desc}: epoch {epoch}/{config.epochs}, loss {row['train_loss']:.3f}, "
                f"val balanced accuracy {va['balanced_accuracy']:.3f}, {time.perf_counter() - started:.0f} s",
                file=sys.stderr, flush=True,
            )
        if config.trains_on_val:  # nothing held out to select with
            continue
        if va["balanced_accuracy"] > best[0]:
            best = (va["balanced_accuracy"], epoch, copy.deepcopy(model.state_dict()))
        elif epoch - best[1] >= config.patience:
            bar.total = epoch  # stopped early: the bar ends full at the epochs run, not at 40 % of a plan
            bar.set_postfix_str(f"stopped early, best epoch {best[1]}")
            break
    bar.close()
    kept = len(history)
    if not config.trains_on_val:
        model.load_state_dict(best[2])
        kept = best[1]
    return Member(model.cpu().eval(), history, kept, time.perf_counter() - started)
