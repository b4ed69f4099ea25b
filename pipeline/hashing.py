"""Content hashes of files and of plain data: the keys under which finished work is reused."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def file_digest(path: str | Path, algorithm: str) -> str:
    """hex digest of a file, read in 1 MiB chunks (never the whole file in memory)."""
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_md5(path: str | Path) -> str:
    return file_digest(path, "md5")


def data_key(obj: Any) -> str:
    """sha256 of obj as canonical JSON: equal for equal data, whatever the order of its dict keys."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
