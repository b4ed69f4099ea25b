"""Output sets replaced together (atomic_paths) and output paths refused before the work (check_writable)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.outputs import atomic_paths, check_writable
from tests.helpers import (
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
