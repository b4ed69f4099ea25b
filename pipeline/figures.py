"""Stage figures: readable PNGs of the training curves and the early-decision curve, committed beside
DVC's plots (`dvc plots show` needs vega from a CDN, which an offline machine cannot reach).

    python -m pipeline.figures [--metrics-dir metrics]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.errors import run_cli
from pipeline.outputs import check_writable
from pipeline.plots import early_decision_png, training_png
from pipeline.tables import read_csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics"))
    args = parser.parse_args()
    out = args.metrics_dir
    check_writable(out / "training.png", out / "early_decision.png")
    log, curve = (read_csv(out / name, "not found (run `dvc repro` first)") for name in ("train_log.csv", "early_decision.csv"))
    training_png(out / "training.png", log)
    early_decision_png(out / "early_decision.png", curve, "the exported model on the test actors, by audio heard")


if __name__ == "__main__":
    run_cli(main)
