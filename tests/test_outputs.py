"""Output sets replaced together (atomic_paths) and output paths refused before the work (check_writable)."""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.outputs import atomic_paths, check_writable
from tests.helpers import (
    REPO,
    SPLIT,
    TINY,
    assert_no_files,
    assert_one_line_error,
    project_folder,
    run_stages,
    variant_store,
)


def test_a_set_is_replaced_only_when_every_file_is_written(tmp_path: Path) -> None:
    paths = [tmp_path / "a.txt", tmp_path / "sub/b.txt"]
    with atomic_paths(*paths) as temps:
        for tmp, text in zip(temps, ("old a", "old b")):
            tmp.write_text(text)
        assert not any(p.exists() for p in paths)  # nothing in place before the block ends
    with pytest.raises(RuntimeError), atomic_paths(*paths) as temps:
        temps[0].write_text("new a")
        raise RuntimeError("killed between the two files")
    assert [p.read_text() for p in paths] == ["old a", "old b"]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.txt", "b.txt"]  # no temporaries


def _write_set(paths: list[Path], text: str, slow: bool) -> None:
    """One run's end: its set of files, the renames slowed down in the slow run."""
    import pipeline.outputs

    if slow:
        replace = os.replace
        pipeline.outputs.os.replace = lambda a, b: (replace(a, b), time.sleep(0.5))  # type: ignore[assignment]
    with atomic_paths(*paths) as temps:
        for tmp in temps:
            tmp.write_text(text)


def test_two_runs_finishing_at_once_leave_one_runs_set(tmp_path: Path) -> None:
    """Run A renames its store, run B ends meanwhile: without the lock B's store and report were
    replaced by A's report a moment later, pairing B's store with A's report."""
    paths = [tmp_path / "mfcc.h5", tmp_path / "extract_report.json"]
    context = multiprocessing.get_context("fork")
    slow = context.Process(target=_write_set, args=(paths, "A", True))
    slow.start()
    deadline = time.monotonic() + 10
    while not paths[-1].exists() and not paths[0].exists():  # A's first rename (the last path: LIFO) is done
        assert time.monotonic() < deadline
        time.sleep(0.01)
    fast = context.Process(target=_write_set, args=(paths, "B", False))
    fast.start()
    slow.join(10)
    fast.join(10)
    assert slow.exitcode == fast.exitcode == 0
    assert len({p.read_text() for p in paths}) == 1, [p.read_text() for p in paths]


def test_check_writable_refuses_a_directory_or_a_file_as_a_folder(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    check_writable(tmp_path / "new/out.json", tmp_path / "file")  # absent or a file: fine
    for path, needle in ((tmp_path / "folder", "is a directory"), (tmp_path / "file/x/out.json", "is not a directory")):
        with pytest.raises(InputError) as caught:
            check_writable(tmp_path / "ok.json", path)
        assert caught.value.path == str(path) and needle in str(caught.value)


def test_stages_refuse_an_unwritable_output_before_the_work(tmp_path: Path) -> None:
    """Before any training or extraction: one line naming the path, and nothing written."""
    cwd = project_folder(tmp_path / "project", split=SPLIT, train={**TINY, "ensemble": 1})
    variant_store(cwd / "features")
    (cwd / "taken/cv.json").mkdir(parents=True)  # a directory where cv writes cv.json
    (cwd / "file").write_text("")
    runs = run_stages({
        "train": (cwd, "train", ["--metrics", "taken"]),
        "log": (cwd, "train", ["--log", "file/metrics/log.csv"]),
        "cv": (cwd, "cv", ["--metrics-dir", "taken"]),
        "extract": (cwd, "extract", ["--data", "features", "--out", "out/mfcc.h5", "--report", "taken"]),
    })
    assert_one_line_error(runs["train"], "taken", "is a directory")
    assert_one_line_error(runs["log"], "file/metrics/log.csv", "is not a directory")
    assert_one_line_error(runs["cv"], "taken/cv.json", "is a directory")
    assert_one_line_error(runs["extract"], "taken", "is a directory")
    for folder in ("models", "metrics", "out", ".cache"):
        assert_no_files(cwd / folder)


def test_ctrl_c_dropped_inside_a_c_callback_still_stops_the_outputs(tmp_path: Path) -> None:
    """Python prints and drops a KeyboardInterrupt raised inside a C callback (numba's JIT cache
    notifies through ctypes: CI's interrupted extraction once wrote its store and exited 0, and later
    printed that traceback above its one line). The command must still exit 130 with its one line
    alone, and publish nothing."""
    script = (
        "import ctypes, os, signal, sys\n"
        "from pipeline.errors import run_cli\n"
        "from pipeline.outputs import write_json\n"
        "def main():\n"
        "    ctypes.CFUNCTYPE(None)(lambda: os.kill(os.getpid(), signal.SIGINT))()\n"
        "    print('after the callback')\n"
        "    write_json(sys.argv[1], {'written': True})\n"
        "run_cli(main)\n"
    )
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(out)], capture_output=True, text=True, cwd=REPO,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal, whatever ran pytest
    )
    assert proc.stdout == "after the callback\n"  # the interrupt really was dropped where it was raised
    assert (proc.returncode, proc.stderr) == (130, "error: interrupted\n")
    assert_no_files(tmp_path)
