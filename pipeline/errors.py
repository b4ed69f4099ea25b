"""One exception type for every input problem, so each command can report it as one line."""
from __future__ import annotations

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


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a command's main: input errors become one line on stderr and exit code 2, no traceback."""
    try:
        code = main()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code or 0)
