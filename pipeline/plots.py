"""The PNG figures the stages commit beside their metrics: readable offline, unlike DVC's vega plots."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.outputs import atomic_path


def _pyplot():  # type: ignore[no-untyped-def]
    """matplotlib without a display, imported only by the stages that draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:  # type: ignore[no-untyped-def]
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})  # no version string: reruns are identical
    _pyplot().close(fig)


def confusion_png(path: Path, confusion: np.ndarray, names: Sequence[str], title: str) -> None:
    """Counts, actual classes down the rows, predicted across."""
    fig, ax = _pyplot().subplots(figsize=(6.4, 5.6), dpi=100)
    ax.imshow(confusion, cmap="Blues")
    for (i, j), v in np.ndenumerate(confusion):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > confusion.max() / 2 else "black")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="actual", title=title)
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    _save(fig, path)


def robustness_png(
    path: Path, scores: Mapping[str, float], chance: float, title: str, spread: Mapping[str, float] | None = None
) -> None:
    """One bar per condition (last-frame rule), clean first, chance marked: what survives where.
    spread: a standard deviation per condition (over folds), drawn as error bars."""
    plt = _pyplot()
    names = list(scores)
    fig, ax = plt.subplots(figsize=(9.6, 4.8), dpi=100)
    ax.bar(
        names, [scores[n] for n in names], yerr=[spread[n] for n in names] if spread else None, capsize=2,
        color=["tab:green" if n == "clean" else "tab:blue" for n in names],
    )
    ax.axhline(chance, color="grey", linestyle="--", label=f"chance {chance:.3f}")
    ax.set(ylabel="balanced accuracy (last-frame rule)", ylim=(0, 1), title=title)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.legend()
    _save(fig, path)


def training_png(path: Path, log: pd.DataFrame) -> None:
    """train_log.csv's curves, one axis per quantity (loss, balanced accuracy, learning rate), one
    colour per ensemble member, training solid and validation dashed; each member's best epoch marked."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14.4, 4.2), dpi=100)
    for k, (member, rows) in enumerate(log.groupby("member")):
        colour = f"C{k}"
        for ax, quantity in zip(axes[:2], ("loss", "balanced_accuracy")):
            ax.plot(rows["epoch"], rows[f"train_{quantity}"], color=colour, label=f"member {member} train")
            ax.plot(rows["epoch"], rows[f"val_{quantity}"], color=colour, linestyle="--", label=f"member {member} validation")
        best = rows.loc[rows["val_balanced_accuracy"].idxmax()]
        axes[1].plot(best["epoch"], best["val_balanced_accuracy"], "o", color=colour)
        axes[2].plot(rows["epoch"], rows["lr"], color=colour, label=f"member {member}")
    axes[0].set(xlabel="epoch", ylabel="class-weighted cross-entropy", title="loss (train: last frame + per-frame terms; validation: last frame)")
    axes[1].set(xlabel="epoch", ylabel="balanced accuracy (last frame)", title="balanced accuracy (o: kept epoch)")
    axes[2].set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    for ax in axes:
        ax.legend(fontsize="small")
    _save(fig, path)


def early_decision_png(path: Path, curve: pd.DataFrame, title: str) -> None:
    """early_decision.csv: how right the backend's answer is after each amount of audio."""
    fig, ax = _pyplot().subplots(figsize=(7.2, 4.2), dpi=100)
    ax.plot(curve["seconds"], curve["balanced_accuracy"], marker=".", label="balanced accuracy")
    ax.plot(curve["seconds"], curve["accuracy"], marker=".", label="accuracy")
    ax.set(xlabel="seconds of audio heard (the answer at the last frame so far)", ylabel="test actors", ylim=(0, 1), title=title)
    ax.legend()
    _save(fig, path)
