"""Stage card: models/MODEL_CARD.md, what a backend team needs to know about the exported model,
written from the pipeline's own metrics so that it never disagrees with them.

    python -m pipeline.card [--metrics-dir metrics] [--models models]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError, run_cli
from pipeline.outputs import check_writable, write_text

INPUTS = ("cv.json", "eval.json", "robustness.json", "train.json", "corpora.json")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "not found (run `dvc repro` first)") from None
    except (OSError, ValueError) as err:
        raise InputError(path, f"not readable JSON ({type(err).__name__})") from None


def corpora_section(corpora: dict[str, Any]) -> str:
    """Cross-corpus figures (evaluate's data.eval_corpora): the first test of a model off RAVDESS's studio."""
    if not corpora:
        return "None was scored: list a corpus's manifest in `data.eval_corpora` (README, other corpora)."
    rows = "\n".join(
        f"| {name} | {c['clips']} | {c['speakers']} | {', '.join(c['classes'])} | {c['balanced_accuracy']:.3f} | "
        f"{c['mean_prob']['balanced_accuracy']:.3f} | {1 / len(c['classes']):.3f} |"
        for name, c in corpora.items()
    )
    return f"""Each scored over its own classes only (a prediction of another class counts as wrong), replayed as the
backend runs; never trained on.

| corpus | clips | speakers | classes | balanced accuracy | mean rule | chance |
|---|---|---|---|---|---|---|
{rows}"""


def render(
    cv: dict[str, Any], test: dict[str, Any], robustness: dict[str, Any], train: dict[str, Any], corpora: dict[str, Any],
    labels: dict[str, Any],
) -> str:
    """The card's Markdown; every figure is read from the metrics, none is typed in."""
    names = [c["name"] for c in labels["classes"]]
    confusion = np.array(cv["confusion"])
    recall = confusion.diagonal() / confusion.sum(axis=1).clip(min=1)
    ba, mean_rule = cv["balanced_accuracy"], cv["mean_prob"]["balanced_accuracy"]
    clean = robustness.get("clean", {}).get("last")
    folds = cv.get("conditions", {})  # cross-validated per condition, where the cv stage scored them
    header = "| condition | balanced accuracy | change |" + (f" cross-validated ({len(cv['folds'])} folds) |" if folds else "")
    rows = "\n".join(
        f"| {name} | {s['last']:.3f} | {s['last'] - clean:+.3f} |"
        + (f" {folds[name]['last']:.3f} ± {folds[name]['last_std']:.3f} |" if name in folds else (" |" if folds else ""))
        for name, s in robustness.items()
    ) if clean is not None else ""
    rates = confusion / confusion.sum(axis=1, keepdims=True).clip(min=1)
    np.fill_diagonal(rates, 0)
    worst = np.dstack(np.unravel_index(np.argsort(rates, axis=None)[::-1][:3], rates.shape))[0]
    confused = "; ".join(f"{names[i]} taken for {names[j]} {rates[i, j]:.0%}" for i, j in worst)
    scored = {n: c["last"] for n, c in folds.items() if n != "clean"} or {n: c["last"] for n, c in robustness.items() if n != "clean"}
    where = "cross-validated" if folds else "test actors"
    reference = ba["mean"] if folds else clean  # cv's clean figure is its balanced accuracy
    hardest = min(scored, key=scored.get, default=None)
    conditions = (
        f"over the {len(scored)} recording conditions, balanced accuracy {np.mean(list(scored.values())):.3f} on average against"
        f" {reference:.3f} clean ({where}); the worst, {hardest}, {scored[hardest]:.3f} (table above)"
        if hardest is not None and reference is not None else "recording conditions were not scored"
    )
    class_rows = "\n".join(
        f"| {c['index']} | {c['name']} | {c['emoji']} | {r:.3f} |" for c, r in zip(labels["classes"], recall)
    )
    selection = (
        f"(the training and val actors' clips and their augmented copies; the val actors' {train['val_clips']} clips are"
        " among them, so the last of the schedule's epochs was kept, not one chosen on held-out speakers)"
        if train.get("validation") == "train"
        else f"(the training actors' clips and their augmented copies) and selected its checkpoint on {train['val_clips']}"
        " clips of other actors"
    )
    return f"""# Model card: speech emotion recognition, stateful LSTM on 13 MFCCs per 25 ms frame

Written by `python -m pipeline.card` from metrics/ and models/labels.json; do not edit by hand.

## What it is
- Input: the backend's raw MFCCs, one (1, 1, 13) frame at a time (25 ms frames every 10 ms, silent
  frames skipped); output: (1, {len(names)}) logits and the state to pass back. Normalisation lives
  inside the model. {train['stored_weights']} stored weights.
- Classes (`{labels['scheme']}`), by index: {', '.join(names)}.
- Load: `pipeline.model.load_model("models/model.pth")` (an allow-list of this package's classes),
  or `torch.load(path, weights_only=False)` for trusted files only.

## Data
RAVDESS speech: 24 professional actors (12 female, 12 male), North-American English, two neutral
sentences acted in 8 emotions, all recorded in one studio through one microphone. Training used
{train['train_clips']} sequences {selection}; no test speaker is in another split.

## How well it does
- Unseen actors, cross-validated ({len(cv['folds'])} folds of {len(cv['folds'][0]['test_actors'])} actors): balanced accuracy
  **{ba['mean']:.3f} ± {ba['std']:.3f}** (last-frame rule, the backend's default), {mean_rule['mean']:.3f} ±
  {mean_rule['std']:.3f} (mean over frames); chance {1 / len(names):.3f}.
- Test actors {test['test_actors']} ({test['clips']} clips), the exported model itself: balanced accuracy
  {test['balanced_accuracy']:.3f}; after 1 s of audio {test['early_decision'].get('1s', float('nan')):.3f}
  accuracy, at the end {test['early_decision']['end']:.3f}.

Recall per class (cross-validated, all folds):

| index | class | emoji | recall |
|---|---|---|---|
{class_rows}

## Recording conditions (test actors, last-frame rule; change against clean)

{header}
|---|---|---|{"---|" if folds else ""}
{rows}

## Other corpora

{corpora_section(corpora)}

## Intended use and known limits
- For a first, coarse reading of the emotion in a short utterance, shown to the speaker; not for
  decisions about people, not for clinical or hiring use.
- Acted, exaggerated emotion from 24 actors in one studio: spontaneous speech, other languages and
  accents, children and elderly speakers are untested, and the figures above will not hold there.
- Microphones, phone lines, noise and rooms unlike the studio's cost accuracy: {conditions}.
- Most confused (cross-validated, share of the actual class's clips): {confused}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics"))
    parser.add_argument("--models", type=Path, default=Path("models"))
    args = parser.parse_args()
    out = args.models / "MODEL_CARD.md"
    check_writable(out)
    cv, test, robustness, train, corpora = (read_json(args.metrics_dir / name) for name in INPUTS)
    write_text(out, render(cv, test, robustness, train, corpora, read_json(args.models / "labels.json")))


if __name__ == "__main__":
    run_cli(main)
