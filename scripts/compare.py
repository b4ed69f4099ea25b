"""Compare two cross-validated experiments paired by fold (and replicate): is B better than A?

    python scripts/compare.py --a RUN [RUN ...] --b RUN [RUN ...] [--conditions]

RUN is a cv.json file, `REV:metrics/cv.json` (that file at a git revision or DVC experiment ref, e.g.
`HEAD~1:metrics/cv.json`), `sweep.jsonl#NAME` (scripts/sweep.py's lines of that name, one per
replicate), or such runs joined by `+` into one replicate (partial runs of other folds, e.g.
`folds01-cv.json+folds2345-cv.json`). Give A's and B's replicates in the same order (the i-th of each trained with the same
seeds); their folds pair up by fold number. One run per fold moves by ~0.03 from seed and machine alone, so a lever is kept on
the paired differences: their mean with a 95 % t-interval, and a two-sided sign test.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

Figures = dict[str, float]


def read_runs(spec: str) -> list[dict[str, Any]]:
    """Cv summaries (cv.json's shape) from a file, a git revision, or a sweep's lines of one name
    (each of its replicates, in replicate order); partial runs joined by `+` make one run of their folds."""
    if "+" in spec and not Path(spec).exists():
        parts = [read_runs(part) for part in spec.split("+")]
        folds = [fold for runs in parts for run in runs for fold in run["folds"]]
        numbers = [fold["fold"] for fold in folds]
        if any(len(runs) != 1 for runs in parts) or len(set(numbers)) != len(numbers):
            sys.exit(f"error: {spec}: its parts must be single runs of different folds (folds {sorted(numbers)})")
        return [{"folds": sorted(folds, key=lambda fold: fold["fold"])}]
    if "#" in spec:
        path, name = spec.rsplit("#", 1)
        rows = [row for line in Path(path).read_text().splitlines() if line.strip() and (row := json.loads(line))["name"] == name]
        if not rows:
            sys.exit(f"error: {path}: no experiment named {name!r}")
        return sorted(rows, key=lambda row: row.get("replicate", 0))
    if ":" in spec and not Path(spec).exists():
        shown = subprocess.run(["git", "show", spec], capture_output=True, text=True)
        if shown.returncode != 0:
            sys.exit(f"error: {spec}: {shown.stderr.strip().splitlines()[-1]}")
        return [json.loads(shown.stdout)]
    try:
        return [json.loads(Path(spec).read_text())]
    except (OSError, ValueError) as err:
        sys.exit(f"error: {spec}: {err}")


HEADLINE = ("balanced_accuracy", "mean_rule", "conditions_mean", "conditions_worst")
CONDITION = "condition "  # prefix of one recording condition's figure (last-frame rule)


def fold_figures(fold: dict[str, Any]) -> Figures:
    """The figures a fold is judged on: both decision rules and, where scored, the conditions' mean and
    worst, and each condition on its own."""
    figures = {"balanced_accuracy": fold["balanced_accuracy"], "mean_rule": fold["mean_prob"]["balanced_accuracy"]}
    each = {CONDITION + name: v for name, v in fold.get("conditions", {}).items() if name != "clean"}
    if each:
        figures |= {"conditions_mean": float(np.mean(list(each.values()))), "conditions_worst": float(min(each.values()))}
    return figures | each


def pairs(a_runs: list[dict[str, Any]], b_runs: list[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    """figure -> (A's values, B's values), one per (replicate, fold) that both have."""
    if len(a_runs) != len(b_runs):
        sys.exit(f"error: {len(a_runs)} runs of A but {len(b_runs)} of B: give them replicate by replicate")
    out: dict[str, tuple[list[float], list[float]]] = {}
    for a, b in zip(a_runs, b_runs):
        b_folds = {f["fold"]: fold_figures(f) for f in b["folds"]}
        for fold in a["folds"]:
            if fold["fold"] not in b_folds:
                continue
            fa, fb = fold_figures(fold), b_folds[fold["fold"]]
            for name in fa.keys() & fb.keys():
                out.setdefault(name, ([], []))
                out[name][0].append(fa[name])
                out[name][1].append(fb[name])
    if not out:
        sys.exit("error: A and B share no fold")
    return out


def half_width(sd: float, n: int) -> float:
    """Half the width of a 95 % t-interval of a mean of n differences with this spread."""
    return float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 else float("nan")


def pairs_needed(sd: float, half: float, most: int = 999) -> int:
    """How many pairs of this spread a 95 % interval of +-half needs (most, when even that is not enough):
    how many more replicates a lever of that size would need before the interval could exclude zero."""
    return next((n for n in range(2, most) if half_width(sd, n) <= half), most)


def paired(a: list[float], b: list[float], resolution: float) -> dict[str, float]:
    """Mean difference B - A with a 95 % t-interval, the sign test over the non-tied pairs, and the
    pairs an interval of +-resolution would need at the differences' spread."""
    d = np.asarray(b) - np.asarray(a)
    n = len(d)
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    half = half_width(sd, n)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    p = stats.binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
    return {
        "n": n, "a": float(np.mean(a)), "b": float(np.mean(b)), "diff": float(d.mean()),
        "low": float(d.mean()) - half, "high": float(d.mean()) + half, "wins": wins, "losses": losses, "sign_p": float(p),
        "sd": sd, "pairs_needed": pairs_needed(sd, resolution) if n > 1 else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", nargs="+", required=True, help="the baseline's runs")
    parser.add_argument("--b", nargs="+", required=True, help="the candidate's runs, replicate by replicate")
    parser.add_argument("--conditions", action="store_true", help="also each recording condition, paired by fold")
    parser.add_argument(
        "--resolution", type=float, default=0.02, help="the pairs column: pairs a 95%% interval of +-this needs (%(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args()
    table = {name: paired(*values, args.resolution) for name, values in pairs([r for s in args.a for r in read_runs(s)], [r for s in args.b for r in read_runs(s)]).items()}
    if args.json:
        print(json.dumps(table, indent=2, sort_keys=True))
        return
    names = [name for name in HEADLINE if name in table]
    if args.conditions:
        names += sorted(name for name in table if name.startswith(CONDITION))
    pairs_head = f"pairs for +-{args.resolution:g}"
    print(f"{'figure':22s} {'n':>3s} {'A':>6s} {'B':>6s} {'B-A':>7s}  95% interval      B better  sign p  {'sd':>5s}  {pairs_head}")
    for name in names:
        r = table[name]
        print(
            f"{name:22s} {r['n']:3d} {r['a']:6.3f} {r['b']:6.3f} {r['diff']:+7.3f}  [{r['low']:+.3f}, {r['high']:+.3f}]"
            f"  {r['wins']:2d}/{r['wins'] + r['losses']:<2d}     {r['sign_p']:.3f}  {r['sd']:5.3f}  {r['pairs_needed']:{len(pairs_head)}d}"
        )


if __name__ == "__main__":
    main()
