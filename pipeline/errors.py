"""One exception type for every input problem, so each command can report it as one line; and one
for a lost worker process, which a command reports the same way."""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from os import PathLike


class InputError(Exception):
    """Unusable input: the message names the file and the reason."""

    def __init__(self, path: str | PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(reason if path is None else f"{path}: {reason}")

    def __reduce__(self) -> tuple[type[InputError], tuple[str | None, str]]:
        """Rebuild from (path, reason): the default pickles only the message, and unpickling it
        then fails, which kills a multiprocessing pool's result thread and hangs its caller."""
        return type(self), (self.path, self.reason)


class WorkerLost(Exception):
    """A worker process ended without returning its task's result (killed, out of memory, crashed)."""


_interrupted = False


def _on_sigint(signum: int, frame: object) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def check_interrupt() -> None:
    """Raise KeyboardInterrupt if Ctrl-C came at all. Python drops an exception raised inside a C
    callback (numba's JIT cache notifies through ctypes) with a printed warning, and the command
    then ran to its end and wrote its outputs (CI, 2026-12-01); the flag outlives the dropped one."""
    if _interrupted:
        raise KeyboardInterrupt


def _drop_quietly(unraisable: sys.UnraisableHookArgs) -> None:
    """Print nothing for a Ctrl-C that Python drops inside a C callback: the flag keeps it and the
    command ends with its one line; the default hook printed a traceback above that line."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a command's main: input errors become one line on stderr and exit code 2, a lost worker one
    line and exit code 1, no traceback.

    A closed stdout (`predict A B | head -1`) ends the command quietly, as SIGPIPE ends other tools.
    Ctrl-C is remembered (check_interrupt), unless the command was started with SIGINT ignored."""
    global _interrupted
    _interrupted = False
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
        sys.unraisablehook = _drop_quietly
    try:
        code = main()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        code = 2
    except WorkerLost as err:
        print(f"error: {err}", file=sys.stderr)
        code = 1
    except BrokenPipeError:
        # Python flushes stdout again at exit, which would fail and print once more: point it at devnull.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + signal.SIGPIPE  # the status a shell shows for a tool killed by SIGPIPE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code or 0)
