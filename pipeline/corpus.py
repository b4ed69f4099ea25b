"""Any emotional-speech corpus as a manifest (CONTRACT.md, "Other corpora"): read and checked before
minutes of decoding, written with deterministic bytes, its emotion names mapped onto a class scheme.

A manifest is a CSV file with columns path (relative to the manifest's folder), emotion (a RAVDESS
emotion name), speaker and, optionally, gender (male | female | empty). Other columns are ignored.
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass, replace
from pathlib import Path

from pipeline.audio import check_regular_file
from pipeline.errors import InputError
from pipeline.outputs import write_text
from pipeline.ravdess import EMOTIONS, class_index

COLUMNS = ("path", "emotion", "speaker", "gender")
REQUIRED = COLUMNS[:3]
GENDERS = ("male", "female")


@dataclass(frozen=True, order=True)
class Row:
    """One clip of a corpus; ordered by path first, the order a manifest is written in."""

    path: str  # relative to the manifest's folder, as written in it
    emotion: str  # one of ravdess.EMOTIONS
    speaker: str
    gender: str = ""  # male, female, or empty where unknown


@dataclass(frozen=True)
class Corpus:
    manifest: Path
    rows: list[Row]

    def audio_path(self, row: Row) -> Path:
        return self.manifest.parent / row.path

    def row_error(self, number: int, row_path: str, reason: str) -> InputError:
        """The one line every problem of a row becomes: the manifest, the row (1-based, header not
        counted) and its path, then the reason."""
        return InputError(self.manifest, f"row {number} ({row_path}): {reason}")


def class_of(emotion: str, scheme: str) -> int:
    """Class index of an emotion name under the scheme: frontend6 folds calm and disgust as
    ravdess.class_index does for RAVDESS's codes."""
    return class_index(EMOTIONS.index(emotion) + 1, scheme)


def read_corpus(manifest: str | Path, emotion_map: Mapping[str, str | None] | None = None) -> Corpus:
    """Read and check a manifest: every row's values, duplicate paths, and that each audio file is a
    regular file, so that a bad row fails in a second rather than after decoding the rows before it.
    The first problem found is one InputError naming the manifest and the row. emotion_map (the
    pipeline's data.emotion_map) renames labels first, or drops their rows (None): a corpus's own
    labels need not be edited in its manifest."""
    manifest = Path(manifest)
    check_regular_file(manifest)
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as f:  # -sig: a BOM from spreadsheet exports
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            records = list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(manifest, f"not a readable CSV ({err})") from None
    except OSError as err:
        reason = (err.strerror or type(err).__name__).lower()
        raise InputError(manifest, f"cannot read the manifest ({reason})") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(manifest, f"missing columns {missing} (expected {', '.join(COLUMNS)}, gender optional)")
    if not records:
        raise InputError(manifest, "no usable row: the manifest lists no clips")
    corpus = Corpus(manifest, [])
    first_row: dict[str, int] = {}
    for number, record in enumerate(records, 1):
        row = _checked_row(corpus, number, record, len(header), emotion_map or {})
        if row is None:
            continue
        key = os.path.normpath(row.path)
        if key in first_row:
            raise corpus.row_error(number, row.path, f"duplicate path (also row {first_row[key]})")
        first_row[key] = number
        try:
            check_regular_file(corpus.audio_path(row))
        except InputError as err:
            raise corpus.row_error(number, row.path, err.reason) from None
        corpus.rows.append(row)
    if not corpus.rows:
        raise InputError(manifest, f"no usable row: data.emotion_map drops all {len(records)} rows")
    return corpus


def _checked_row(
    corpus: Corpus, number: int, record: dict[str | None, str | None], n_columns: int, emotion_map: Mapping[str, str | None]
) -> Row | None:
    """A row's values, stripped, its emotion mapped; a short row's missing fields read as empty (then
    refused if required). None where emotion_map drops its label."""
    path = (record.get("path") or "").strip()
    if None in record:  # DictReader files a row's fields beyond the header under None: a comma too many
        raise corpus.row_error(number, path, f"more fields than the header's {n_columns} (an unquoted comma?)")
    row = Row(**{c: (record.get(c) or "").strip() for c in COLUMNS})
    if row.emotion in emotion_map:
        emotion = emotion_map[row.emotion]
        if emotion is None:
            return None
        row = replace(row, emotion=emotion)
    if not row.path:
        raise corpus.row_error(number, row.path, "empty path")
    if row.emotion not in EMOTIONS:
        expected = ", ".join(EMOTIONS)
        raise corpus.row_error(number, row.path, f"unknown emotion {row.emotion!r} (expected one of {expected})")
    if not row.speaker:
        raise corpus.row_error(number, row.path, "empty speaker")
    if row.gender not in ("", *GENDERS):
        raise corpus.row_error(number, row.path, f"unknown gender {row.gender!r} (expected male, female or empty)")
    return row


def format_manifest(rows: Iterable[Row]) -> str:
    """The manifest's text: all four columns, rows sorted by path, '\\n' line ends: equal rows, equal bytes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(astuple(row) for row in sorted(rows))
    return buffer.getvalue()


def write_manifest(path: str | Path, rows: Iterable[Row]) -> None:
    write_text(path, format_manifest(rows))
