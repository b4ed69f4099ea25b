"""The figures stage: PNGs of the curves from the metrics, identical on a rerun, one line on bad input."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.helpers import assert_ok, assert_one_line_error, run_stage


def test_figures_from_the_logs_are_pngs_and_reruns_are_identical(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    rows = [
        {"member": m, "epoch": e, "lr": 0.003, "train_loss": 6 - e, "val_loss": 2.0, "train_balanced_accuracy": 0.1 * e,
         "val_balanced_accuracy": 0.1 * e - 0.05 * m}
        for m in (1, 2) for e in (1, 2, 3)
    ]
    pd.DataFrame(rows).to_csv(metrics / "train_log.csv", index=False)
    pd.DataFrame({"seconds": [0.5, 1.0], "accuracy": [0.3, 0.4], "balanced_accuracy": [0.28, 0.41]}).to_csv(
        metrics / "early_decision.csv", index=False
    )
    assert_ok(run_stage(tmp_path, "figures"))
    first = {name: (metrics / name).read_bytes() for name in ("training.png", "early_decision.png")}
    assert all(content.startswith(b"\x89PNG") for content in first.values())
    assert_ok(run_stage(tmp_path, "figures"))
    assert {name: (metrics / name).read_bytes() for name in first} == first

    (metrics / "train_log.csv").unlink()
    assert_one_line_error(run_stage(tmp_path, "figures"), "metrics/train_log.csv", "not found")
