"""Reading the pipeline's CSV files: a missing or unreadable one is one line naming it, not a traceback."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.errors import InputError


def read_csv(path: str | Path, missing: str) -> pd.DataFrame:
    """The table at path; `missing` is the reason given when there is no such file (what to run)."""
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(path, missing) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(path, f"not a readable CSV ({str(err).splitlines()[0]})") from None
