"""scripts/compare.py: experiments paired by replicate and fold, from files, git revisions and sweep lines."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    r = compare.paired([0.5, 0.5, 0.5, 0.5], [0.6, 0.55, 0.5, 0.7], resolution=0.02)
    assert r["n"] == 4 and r["diff"] == pytest.approx(0.0875) and (r["wins"], r["losses"]) == (3, 0)
    assert r["low"] < r["diff"] < r["high"]
    assert r["sign_p"] == pytest.approx(0.25)  # 3 wins of 3 non-tied pairs, two-sided


def test_pairs_needed_is_the_fewest_whose_interval_is_narrow_enough() -> None:
    n = compare.pairs_needed(0.038, 0.02)
    assert compare.half_width(0.038, n) <= 0.02 < compare.half_width(0.038, n - 1)
    assert n == 17  # the seed-to-seed spread of one fold's run (docs/experiments.md): 17 pairs for +-0.02
    assert compare.pairs_needed(0.0, 0.02) == 2 and compare.pairs_needed(1.0, 0.001, most=50) == 50
    r = compare.paired([0.5, 0.5, 0.5, 0.5], [0.6, 0.55, 0.5, 0.7], resolution=0.05)
    assert r["sd"] == pytest.approx(np.std([0.1, 0.05, 0.0, 0.2], ddof=1)) and r["pairs_needed"] == compare.pairs_needed(r["sd"], 0.05)


def test_folds_pair_by_number_and_replicates_by_order(tmp_path: Path) -> None:
    a = [run({0: 0.5, 1: 0.4, 2: 0.45}, {"pink_10": 0.2, "tilt_up": 0.3}), run({0: 0.52, 1: 0.41})]
    b = [run({2: 0.5, 0: 0.55, 1: 0.42}, {"pink_10": 0.3, "tilt_up": 0.2}), run({1: 0.40, 0: 0.5})]
    table = compare.pairs(a, b)
    assert table["balanced_accuracy"] == ([0.5, 0.4, 0.45, 0.52, 0.41], [0.55, 0.42, 0.5, 0.5, 0.40])
    assert table["conditions_mean"] == ([0.25] * 3, [0.25] * 3) and table["conditions_worst"][1] == [0.2] * 3
    assert table["condition pink_10"] == ([0.2] * 3, [0.3] * 3) and "condition clean" not in table


def test_cli_reads_files_and_sweep_lines(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(run({0: 0.5, 1: 0.4})))
    lines = [{"name": "x", "replicate": 1, **run({0: 0.7, 1: 0.4})}, {"name": "x", "replicate": 0, **run({0: 0.6, 1: 0.5})}]
    (tmp_path / "sweep.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/compare.py"), "--a", str(tmp_path / "a.json"), str(tmp_path / "a.json"),
         "--b", f"{tmp_path}/sweep.jsonl#x", "--json"],
        capture_output=True, text=True, check=True,
    )
    result = json.loads(proc.stdout)["balanced_accuracy"]  # replicate 0 then 1, each against a.json
    assert result["n"] == 4 and result["diff"] == pytest.approx(0.1) and (result["wins"], result["losses"]) == (3, 0)
    (tmp_path / "c.json").write_text(json.dumps(run({0: 0.5, 1: 0.4}, {"pink_10": 0.2, "tilt_up": 0.3})))
    (tmp_path / "d.json").write_text(json.dumps(run({0: 0.5, 1: 0.4}, {"pink_10": 0.25, "tilt_up": 0.3})))
    shown = subprocess.run(
        [sys.executable, str(REPO / "scripts/compare.py"), "--a", str(tmp_path / "c.json"), "--b", str(tmp_path / "d.json"),
         "--conditions"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert [line.split("  ")[0].strip() for line in shown[1:]] == [
        "balanced_accuracy", "mean_rule", "conditions_mean", "conditions_worst", "condition pink_10", "condition tilt_up"]
    assert "+0.050" in shown[5] and " 2/2 " in shown[5]
    bad = subprocess.run(
        [sys.executable, str(REPO / "scripts/compare.py"), "--a", str(tmp_path / "a.json"), "--b", f"{tmp_path}/sweep.jsonl#y"],
        capture_output=True, text=True,
    )
    assert bad.returncode == 1 and bad.stderr.strip() == f"error: {tmp_path}/sweep.jsonl: no experiment named 'y'"


def test_partial_runs_joined_by_plus_make_one_replicate(tmp_path: Path) -> None:
    (tmp_path / "f01.json").write_text(json.dumps(run({0: 0.5, 1: 0.4})))
    (tmp_path / "f2.json").write_text(json.dumps(run({2: 0.6})))
    joined = compare.read_runs(f"{tmp_path}/f01.json+{tmp_path}/f2.json")
    assert [[f["fold"] for f in r["folds"]] for r in joined] == [[0, 1, 2]]
    assert compare.pairs(joined, [run({2: 0.7, 1: 0.5, 0: 0.5})])["balanced_accuracy"] == ([0.5, 0.4, 0.6], [0.5, 0.5, 0.7])
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/compare.py"), "--a", f"{tmp_path}/f01.json+{tmp_path}/f01.json", "--b", str(tmp_path / "f2.json")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1 and proc.stderr.startswith("error:") and "different folds" in proc.stderr


def test_sweep_runs_replicates_that_compare_reads(tmp_path: Path) -> None:
    """scripts/sweep.py on a store written directly: one line per (experiment, replicate), which
    compare.py pairs by replicate and fold."""
    from tests.helpers import SPLIT, TINY, cli_env, project_folder, variant_store

    cwd = project_folder(tmp_path, split=SPLIT, train={**TINY, "epochs": 1, "ensemble": 1})
    variant_store(cwd / "features")
    (cwd / "experiments.yaml").write_text("base: {}\nwide: {hidden_size: 16}\n")
    sweep = subprocess.run(
        [sys.executable, str(REPO / "scripts/sweep.py"), "experiments.yaml", "--workers", "2", "--folds", "0", "1",
         "--replicates", "2", "--no-conditions"],
        cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=600,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    rows = [json.loads(line) for line in (cwd / "sweep.jsonl").read_text().splitlines()]
    assert sorted((r["name"], r["replicate"]) for r in rows) == [("base", 0), ("base", 1), ("wide", 0), ("wide", 1)]
    assert all([f["fold"] for f in r["folds"]] == [0, 1] for r in rows)
    base = {r["replicate"]: r["balanced_accuracy"]["mean"] for r in rows if r["name"] == "base"}
    assert base[0] != base[1]  # replicates train with other seeds
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/compare.py"), "--a", "sweep.jsonl#base", "--b", "sweep.jsonl#wide", "--json"],
        cwd=cwd, capture_output=True, text=True, check=True,
    )
    assert json.loads(proc.stdout)["balanced_accuracy"]["n"] == 4
    (cwd / "experiments.yaml").write_text("typo: {hiden_size: 16}\n")  # refused before any work: one line, no traceback
    bad = subprocess.run(
        [sys.executable, str(REPO / "scripts/sweep.py"), "experiments.yaml", "--workers", "2", "--folds", "0", "--no-conditions"],
        cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=600,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "experiments.yaml (typo): unknown parameter train.hiden_size" in bad.stderr, bad.stderr
