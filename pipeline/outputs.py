"""Atomic, deterministic output files: a run that dies leaves no half-written output behind."""
from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, check_interrupt


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    The temporary, ``.NAME.<pid>.<random>.tmp``, carries its writer's pid: a run killed outright
    (SIGKILL, out of memory, power loss) cannot remove its own, so each write of NAME removes those
    whose writer is gone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        check_interrupt()  # an interrupted run publishes nothing, even where the interrupt was dropped
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """atomic_path for files that belong together (a model and its metrics): one temporary per path,
    in order, renamed into place only once the block has written them all; on failure none is, and
    every temporary goes. The renames run under a lock on the first path's folder, so that two runs
    finishing at once (two extracts, two trains) leave one run's set, never a mix of both. They follow
    one another: a kill in those microseconds still mixes two sets, where replacing the files one by
    one as each was written left minutes."""
    with ExitStack() as renames_locked:
        with ExitStack() as temporaries:
            written = [temporaries.enter_context(atomic_path(path)) for path in paths]
            yield written
            renames_locked.enter_context(folder_lock(Path(paths[0]).parent))  # held until every rename is done


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive flock on the folder itself (no lock file to leave behind); waits for the holder."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_writable(*paths: str | Path) -> None:
    """Refuse, before a stage's work, an output path that its end could not write: a directory, or
    below a file or a folder this user cannot write. Without this, train learned for minutes first."""
    for path in map(Path, paths):
        if path.is_dir():
            raise InputError(path, "is a directory, not an output file")
        folder = next(p for p in path.parents if p.exists())  # the nearest existing one: atomic_path makes the rest
        if not folder.is_dir():
            raise InputError(path, f"{folder} is not a directory")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(path, f"{folder} is not writable")


def remove_stale_temporaries(path: Path) -> None:
    """Remove atomic_path's temporaries of ``path`` whose process no longer runs. Those of a live
    process (another run writing the same file now) stay, as do names without a pid."""
    own = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[^.]+\.tmp")  # mkstemp's random part has no dot
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        found = own.fullmatch(candidate.name)
        if found and not process_alive(int(found.group(1))):
            candidate.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (signal 0 only checks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def write_json(path: str | Path, obj: Any) -> None:
    """JSON with sorted keys and a trailing newline, so equal content gives equal bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
