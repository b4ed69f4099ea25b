"""Stage evaluate: replay the test actors' clips frame by frame, as the backend does; write metrics and plots.

    python -m pipeline.evaluate [--model models/model.pth] [--store ...] [--split ...] [--metrics-dir metrics]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline import metrics
from pipeline.audio import FRAME_LENGTH, HOP_LENGTH, SAMPLE_RATE
from pipeline.dataset import SplitData, add_input_arguments, load_splits
from pipeline.errors import InputError, run_cli
from pipeline.inference import RULES, backend_replay, decide, replay
from pipeline.model import EmotionLSTM, load_model
from pipeline.outputs import atomic_path, write_json, write_text
from pipeline.params import integer, load_params, numbers, section
from pipeline.ravdess import class_names

REPLAY_TOLERANCE = 1e-5  # max |probability difference| allowed between batched and backend replay


def frames_after(seconds: float) -> int:
    """Frames the backend has seen once `seconds` of audio have arrived (at least one)."""
    return max(1, 1 + int((seconds * SAMPLE_RATE - FRAME_LENGTH) // HOP_LENGTH))


def score(frame_probs: Sequence[np.ndarray], labels: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Both decision rules: last frame at the top level (the backend's default), mean under mean_prob."""
    n = len(names)
    decided = {rule: np.stack([decide(p, rule) for p in frame_probs]).argmax(1) for rule in RULES}
    result: dict[str, Any] = metrics.summary(labels, decided["last"], n)
    result["mean_prob"] = metrics.summary(labels, decided["mean"], n)
    result["per_class"] = metrics.per_class(labels, decided["last"], names)
    result["confusion"] = metrics.confusion(labels, decided["last"], n).tolist()
    return result


def early_curve(frame_probs: Sequence[np.ndarray], labels: np.ndarray, seconds: Sequence[float]) -> list[dict[str, float]]:
    """Last-frame-rule accuracy when the backend answers after `seconds` of audio (or at the clip's end)."""
    rows = []
    for s in seconds:
        k = frames_after(s)
        pred = np.array([p[min(k, len(p)) - 1].argmax() for p in frame_probs])
        rows.append({"seconds": float(s), **metrics.summary(labels, pred, frame_probs[0].shape[1])})
    return rows


def replay_check(model: EmotionLSTM, data: SplitData, batched: Sequence[np.ndarray], n: int, seed: int) -> dict[str, Any]:
    """Run the backend's literal batch-of-one loop on a sample of clips and compare with the batched replay."""
    rng = np.random.default_rng(seed)
    sample = sorted(rng.choice(len(data), size=min(n, len(data)), replace=False).tolist())
    diff = max(float(np.abs(backend_replay(model, data.sequences[i]) - batched[i]).max()) for i in sample)
    if diff > REPLAY_TOLERANCE:
        raise InputError(None, f"batched replay differs from the backend loop by {diff:.2e} (> {REPLAY_TOLERANCE})")
    return {"clips": len(sample), "max_abs_diff": diff}


def confusion_png(path: Path, confusion: np.ndarray, names: Sequence[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    ax.imshow(confusion, cmap="Blues")
    for (i, j), v in np.ndenumerate(confusion):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > confusion.max() / 2 else "black")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="actual", title=title)
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def predictions_table(clips: pd.DataFrame, labels: np.ndarray, frame_probs: Sequence[np.ndarray], names: Sequence[str]) -> pd.DataFrame:
    """One row per clip: actual and predicted class names (DVC's confusion template reads this)."""
    predicted = [names[int(decide(p, "last").argmax())] for p in frame_probs]
    return pd.DataFrame({"path": clips["path"], "actual": [names[i] for i in labels], "predicted": predicted})


def main() -> None:
    params = load_params()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/model.pth"))
    add_input_arguments(parser)
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics"))
    args = parser.parse_args()
    config = section(params, "evaluate")
    scheme = section(params, "data").get("classes", "ravdess8")
    names = class_names(scheme)

    torch.set_num_threads(1)  # one-frame LSTM steps are latency-bound; extra threads only add overhead
    started = time.perf_counter()
    model = load_model(args.model)
    if model.head.out_features != len(names):
        # Scoring 6-class probabilities against 8 class names would run and report nonsense.
        raise InputError(
            args.model, f"predicts {model.head.out_features} classes, data.classes={scheme} has {len(names)}"
        )
    test = load_splits(args.store, args.split, scheme, train_variants=False)["test"]
    labels = test.labels.numpy()
    frame_probs = replay(model, test.sequences)
    check = replay_check(model, test, frame_probs, integer(config.get("backend_check_clips", 8), "evaluate.backend_check_clips"), integer(config.get("seed", 0), "evaluate.seed"))
    result = score(frame_probs, labels, names)
    seconds = numbers(config.get("early_seconds", [0.5, 1, 2]), "evaluate.early_seconds")
    early = early_curve(frame_probs, labels, seconds)
    longest = max(len(p) for p in frame_probs) * HOP_LENGTH / SAMPLE_RATE
    curve = early_curve(frame_probs, labels, np.arange(0.25, longest + 0.25, 0.25).round(2).tolist())

    out = args.metrics_dir
    confusion = np.array(result.pop("confusion"))
    result |= {
        "clips": len(test),
        "test_actors": sorted(int(a) for a in test.clips["actor"].unique()),
        "early_decision": {f"{r['seconds']:g}s": r["accuracy"] for r in early} | {"end": result["accuracy"]},
        "replay_check": check,
        "classes": scheme,
    }
    write_json(out / "eval.json", metrics.rounded(result))
    write_text(out / "eval_predictions.csv", predictions_table(test.clips, labels, frame_probs, names).to_csv(index=False))
    write_text(out / "early_decision.csv", pd.DataFrame(curve).to_csv(index=False, float_format="%.6g"))
    confusion_png(out / "confusion.png", confusion, names, f"test actors {result['test_actors']}, last-frame rule")
    print(
        f"evaluate: {len(test)} clips, accuracy {result['accuracy']:.3f}, balanced accuracy "
        f"{result['balanced_accuracy']:.3f} (mean rule {result['mean_prob']['balanced_accuracy']:.3f}); "
        f"backend replay diff {check['max_abs_diff']:.1e}; {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_cli(main)
