"""scripts/compare.py: experiments paired by replicate and fold, from files, git revisions and sweep lines."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import compare  # noqa: E402


def run(folds: dict[int, float], conditions: dict[str, float] | None = None) -> dict:
    return {"folds": [
        {"fold": k, "balanced_accuracy": v, "mean_prob": {"balanced_accuracy": v - 0.01}}
        | ({"conditions": {"clean": v, **conditions}} if conditions else {})
        for k, v in folds.items()
    ]}


def test_paired_difference_interval_and_sign_test() -> None:
    r = compare.paired([0.5, 0.5, 0.5, 0.5], [0.6, 0.55, 0.5, 0.7])
    assert r["n"] == 4 and r["diff"] == pytest.approx(0.0875) and (r["wins"], r["losses"]) == (3, 0)
    assert r["low"] < r["diff"] < r["high"]
    assert r["sign_p"] == pytest.approx(0.25)  # 3 wins of 3 non-tied pairs, two-sided


def test_folds_pair_by_number_and_replicates_by_order(tmp_path: Path) -> None:
    a = [run({0: 0.5, 1: 0.4, 2: 0.45}, {"pink_10": 0.2, "tilt_up": 0.3}), run({0: 0.52, 1: 0.41})]
    b = [run({2: 0.5, 0: 0.55, 1: 0.42}, {"pink_10": 0.3, "tilt_up": 0.2}), run({1: 0.40, 0: 0.5})]
    table = compare.pairs(a, b)
    assert table["balanced_accuracy"] == ([0.5, 0.4, 0.45, 0.52, 0.41], [0.55, 0.42, 0.5, 0.5, 0.40])
    assert table["conditions_mean"] == ([0.25] * 3, [0.25] * 3) and table["conditions_worst"][1] == [0.2] * 3


def test_cli_reads_files_and_sweep_lines(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(run({0: 0.5, 1: 0.4})))
    (tmp_path / "sweep.jsonl").write_text(json.dumps({"name": "x", **run({0: 0.6, 1: 0.5})}) + "\n")
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/compare.py"), "--a", str(tmp_path / "a.json"), "--b", f"{tmp_path}/sweep.jsonl#x", "--json"],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(proc.stdout)["balanced_accuracy"]["diff"] == pytest.approx(0.1)
    bad = subprocess.run(
        [sys.executable, str(REPO / "scripts/compare.py"), "--a", str(tmp_path / "a.json"), "--b", f"{tmp_path}/sweep.jsonl#y"],
        capture_output=True, text=True,
    )
    assert bad.returncode == 1 and bad.stderr.strip() == f"error: {tmp_path}/sweep.jsonl: no experiment named 'y'"
