"""The cv stage as DVC runs it: finished folds survive an interrupted run (the fold cache), outputs
do not depend on the cache or the number of workers, and a killed run leaves no worker training.

Each test runs on a store written directly (tests.helpers.variant_store) and a tiny model: seconds.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from pipeline.config import TrainConfig
from pipeline.crossval import cache_keys
from tests.helpers import (
    SPLIT,
    TINY,
    assert_ok,
    cli_env,
    project_folder,
    run_stage,
    run_stages,
    session_processes,
    train_config,
    variant_store,
)

OUTPUTS = ("metrics/cv.json", "metrics/cv_predictions.csv")


def cv_project(folder: Path, workers: int, **train: object) -> Path:
    """A project folder with its own store and manifest (4 folds) and a tiny model."""
    project_folder(
        folder, split=SPLIT, train={**TINY, "epochs": 2, "ensemble": 1, **train}, cv={"workers": workers},
        evaluate={"conditions": []},  # a store without audio: the conditions are test_suite_per_fold's
    )
    variant_store(folder / "features")
    return folder


def outputs(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


def test_finished_folds_are_reused_and_the_outputs_do_not_change(tmp_path: Path) -> None:
    plain, cached = cv_project(tmp_path / "plain", 1), cv_project(tmp_path / "cached", 2)
    runs = run_stages({"plain": (plain, "cv", ["--no-cache"]), "partial": (cached, "cv", ["--folds", "0", "2"])})
    for proc in runs.values():
        assert_ok(proc)
        assert "leaked semaphore" not in proc.stderr, proc.stderr
    assert not (plain / ".cache").exists()
    assert sorted(p.name for p in (cached / ".cache/cv").iterdir()) != []

    full = run_stages({"full": (cached, "cv", [])})["full"]  # as if the partial run had been interrupted
    assert_ok(full)
    for fold in range(4):
        assert (f"cv: fold {fold} reused from cache" in full.stderr) == (fold in (0, 2)), full.stderr
    assert "leaked semaphore" not in full.stderr, full.stderr
    assert outputs(cached) == outputs(plain)  # byte-identical, whatever the cache or the workers

    params = yaml.safe_load((cached / "params.yaml").read_text())
    params["train"]["seed"] += 1
    (cached / "params.yaml").write_text(yaml.safe_dump(params))
    other = run_stages({"other": (cached, "cv", ["--folds", "0"])})["other"]
    assert_ok(other)
    assert "reused" not in other.stderr, other.stderr


def test_the_cache_key_changes_with_everything_a_fold_depends_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, split, _ = variant_store(tmp_path)
    config = train_config()

    def key(scheme: str = "ravdess8", fold: int = 1, config: TrainConfig = config) -> str:
        return cache_keys(store, split, scheme, config, [fold])[fold]

    first = key()
    assert key() == first  # stable
    assert len({first, key(scheme="frontend6"), key(fold=2), key(config=train_config(lr=0.5))}) == 4
    for path in (store, split):
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert key() != first, path
        path.write_bytes(original)
    code = tmp_path / "pipeline"
    shutil.copytree(Path(__file__).resolve().parents[1] / "pipeline", code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr("pipeline.crossval.PACKAGE", code)
    assert key() == first
    (code / "metrics.py").write_text((code / "metrics.py").read_text() + "\n")
    assert key() != first


@contextmanager
def training_cv_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """(process, stderr log, project) of a cv run whose two folds would train for hours, once they train;
    every process of the run is killed on leaving, whatever the test did."""
    cwd = cv_project(tmp_path / "project", 2, epochs=100_000, patience=100_000)
    log = tmp_path / "stderr"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cv"], cwd=cwd, env=cli_env(), stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,  # its own process group, like a terminal's foreground job
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as test_extract's Ctrl-C test says
        )
    try:
        deadline = time.monotonic() + 120
        while "fold " not in log.read_text():  # a worker's progress bar: it trains
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield proc, log, cwd
    finally:
        for pid in session_processes(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_no_worker_outlives_its_cv_run(tmp_path: Path, sig: signal.Signals) -> None:
    """SIGKILL of the parent alone (a killed job, an OOM kill) or Ctrl-C to the whole group, once the
    folds train: within seconds no process of the run is left, so that none goes on training."""
    with training_cv_run(tmp_path) as (proc, log, _):
        (os.kill if sig == signal.SIGKILL else os.killpg)(proc.pid, sig)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 10
        while session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert session_processes(proc.pid) == [], "cv workers outlived their parent"
    if sig == signal.SIGINT:
        text = log.read_text()
        assert proc.returncode == 130, text
        # one message, at the end (after a worker's progress bar, which has no newline of its own)
        assert "Traceback" not in text and text.count("error:") == 1 and text.rstrip().endswith("error: interrupted"), text


def test_a_worker_killed_mid_fold_ends_the_run_with_one_line(tmp_path: Path) -> None:
    """What the out-of-memory killer does to one fold's process: multiprocessing.Pool waited for its
    result forever; now the run stops at once, says why in one line and writes no output."""
    with training_cv_run(tmp_path) as (proc, log, cwd):
        workers = [pid for pid in session_processes(proc.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        proc.wait(timeout=60)
    lines = [line for line in log.read_text().replace("\r", "\n").splitlines() if line.startswith("error")]
    assert proc.returncode == 1 and "Traceback" not in log.read_text(), log.read_text()
    assert lines == ["error: a worker process ended without its result: killed by SIGKILL (often the out-of-memory killer)"]
    assert not any((cwd / name).exists() for name in OUTPUTS)


def test_each_folds_test_actors_are_scored_under_the_conditions_and_their_audio_work_is_kept(
    tmp_path: Path, project: Path, synth_corpus: Path
) -> None:
    """cv scores fold 0's test clips under each condition from their audio (clean equals the store's
    figure: the backend's features of the same audio); another train config reuses the degraded features."""
    names = ["clean", "tilt_up", "pink_10", "cut_1s"]
    cwd = project_folder(
        tmp_path / "suite", split=SPLIT, train={**TINY, "epochs": 1, "ensemble": 1}, evaluate={"conditions": names}
    )
    shutil.copytree(project / "features", cwd / "features")
    first = run_stage(cwd, "cv", "--data", synth_corpus, "--folds", "0")
    assert_ok(first)
    assert "fold 0's 32 clips under 4 conditions" in first.stderr, first.stderr
    summary = json.loads((cwd / "metrics/cv.json").read_text())
    fold = summary["folds"][0]
    assert sorted(fold["conditions"]) == sorted(names) == sorted(summary["conditions"])
    assert fold["conditions"]["clean"] == fold["balanced_accuracy"]
    assert summary["robustness"]["worst"] == min(fold["conditions"][n] for n in names[1:])
    assert (cwd / "metrics/cv_robustness.png").read_bytes().startswith(b"\x89PNG")
    assert len(list((cwd / ".cache/suite").iterdir())) == 1

    params = yaml.safe_load((cwd / "params.yaml").read_text())
    params["train"]["seed"] += 1
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))
    second = run_stage(cwd, "cv", "--data", synth_corpus, "--folds", "0")
    assert_ok(second)
    assert "clips under" not in second.stderr and "reused" not in second.stderr, second.stderr  # trained again, no audio work
    assert len(list((cwd / ".cache/suite").iterdir())) == 1
