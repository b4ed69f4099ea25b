"""The PNG figures the stages commit beside their metrics: readable offline, unlike DVC's vega plots."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

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
