"""Stage evaluate: replay the test actors' clips frame by frame, as the backend does; write metrics and plots.

    python -m pipeline.evaluate [--model models/model.pth] [--store ...] [--split ...] [--data data/ravdess]
                                [--metrics-dir metrics]

The same clips also go through every recording condition of evaluate.conditions (pipeline.conditions:
microphones, phone lines, codecs, noise, rooms, cuts), from their audio: metrics/robustness.json.
Each corpus of data.eval_corpora is scored as `--corpus` scores it: metrics/corpora.json, by corpus
name ({} without any).

    python -m pipeline.evaluate --corpus MANIFEST.csv --out FILE.json [--model models/model.pth]

Instead of the stage: the model on the clips of any corpus a manifest describes (pipeline.corpus_eval),
decoded from their audio; no params.yaml, store or split is read.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline import metrics
from pipeline.audio import HOP_LENGTH, SAMPLE_RATE
from pipeline.config import DataConfig, EvaluateConfig, load
from pipeline.corpora import read_corpora
from pipeline.corpus import read_corpus
from pipeline.corpus_eval import evaluate_corpus
from pipeline.dataset import add_input_arguments, load_splits
from pipeline.errors import InputError, run_cli
from pipeline.inference import check_finite, replay
from pipeline.labels import model_classes
from pipeline.model import load_model
from pipeline.outputs import check_writable, write_json, write_text
from pipeline.plots import confusion_png, robustness_png
from pipeline.ravdess import DATA, class_names
from pipeline.robustness import check_names, condition_scores, degraded_features
from pipeline.scoring import early_curve, predictions_table, replay_check, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/model.pth"))
    add_input_arguments(parser)
    parser.add_argument("--data", type=Path, default=DATA, help="the corpus's audio, for the conditions (%(default)s)")
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics"))
    parser.add_argument("--corpus", type=Path, help="instead of the stage: score the clips this corpus manifest lists")
    parser.add_argument("--out", type=Path, help="with --corpus: the JSON report to write")
    args = parser.parse_args()
    if args.corpus is not None or args.out is not None:
        evaluate_manifest(parser, args)
        return
    config = load(EvaluateConfig, "evaluate")
    check_names(config.conditions)
    data = load(DataConfig, "data")
    scheme = data.classes
    names = class_names(scheme)
    corpora = read_corpora(data.eval_corpora, data.emotion_map)  # every manifest checked before the minutes of work

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
    frame_probs = check_finite(replay(model, test.sequences), args.model)
    check = replay_check(model, test, frame_probs, config.backend_check_clips, config.seed)
    result = score(frame_probs, labels, names)
    early = early_curve(frame_probs, labels, config.early_seconds)
    longest = max(len(p) for p in frame_probs) * HOP_LENGTH / SAMPLE_RATE
    curve = early_curve(frame_probs, labels, np.arange(0.25, longest + 0.25, 0.25).round(2).tolist())
    features = degraded_features(
        [args.data / p for p in test.clips["path"]], list(test.clips["path"]), list(test.clips["actor"]),
        config.conditions, workers=os.cpu_count() or 1,
    )
    robustness = condition_scores(model, features, labels, names)
    cross_corpus = {name: evaluate_corpus(model, args.model, scheme, corpus) for name, corpus in corpora.items()}

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
    write_json(out / "robustness.json", metrics.rounded(robustness))
    title = f"test actors {result['test_actors']} under recording conditions"
    robustness_png(out / "robustness.png", {n: s["last"] for n, s in robustness.items()}, 1 / len(names), title)
    write_json(out / "corpora.json", metrics.rounded(cross_corpus))
    print(
        f"evaluate: {len(test)} clips, accuracy {result['accuracy']:.3f}, balanced accuracy "
        f"{result['balanced_accuracy']:.3f} (mean rule {result['mean_prob']['balanced_accuracy']:.3f}); "
        f"backend replay diff {check['max_abs_diff']:.1e}; {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    for name, scored in cross_corpus.items():
        print(f"evaluate: {name}: {scored['clips']} clips, balanced accuracy {scored['balanced_accuracy']:.3f}", file=sys.stderr)


STAGE_ONLY = ("store", "split", "data", "metrics_dir")  # the stage's inputs and outputs, not --corpus's


def evaluate_manifest(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--corpus: the report of corpus_eval.evaluate_corpus in --out. Refuses the stage's own options
    rather than ignore them: their defaults cannot tell, so the command line is parsed once more
    without them."""
    if args.corpus is None:
        raise InputError(None, "--out is only for --corpus MANIFEST.csv (the stage writes into --metrics-dir)")
    if args.out is None:
        raise InputError(None, "--corpus needs --out FILE.json")
    parser.set_defaults(**dict.fromkeys(STAGE_ONLY))
    given = vars(parser.parse_args())
    conflicts = ["--" + name.replace("_", "-") for name in STAGE_ONLY if given[name] is not None]
    if conflicts:
        raise InputError(None, f"{', '.join(conflicts)}: options of the stage, not of --corpus")
    check_writable(args.out)
    corpus = read_corpus(args.corpus)
    torch.set_num_threads(1)  # as the stage: one-frame LSTM steps are latency-bound
    started = time.perf_counter()
    model = load_model(args.model)
    result = evaluate_corpus(model, args.model, model_classes(args.model, model.head.out_features).scheme, corpus)
    write_json(args.out, metrics.rounded(result))
    print(
        f"evaluate: {result['clips']} clips of {args.corpus}, classes {', '.join(result['classes'])}: balanced "
        f"accuracy {result['balanced_accuracy']:.3f} (mean rule {result['mean_prob']['balanced_accuracy']:.3f}); "
        f"{time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_cli(main)
