"""Stage fetch: put the RAVDESS speech corpus into data/ravdess and validate every file on arrival.

    python -m pipeline.fetch [--source SRC] [--dest data/ravdess] [--report data/validation.json]

SRC is `official` (the Zenodo archive, checked against its md5), any http(s) URL of a zip, a local
.zip or a local folder. --source beats the environment variable RAVDESS_SOURCE, which beats
params.yaml's fetch.source. The corpus is built beside the destination and moved into place only
when complete; anomalies (bad names, unreadable clips, wrong counts, duplicated takes) are reported
in the JSON report and on stderr, never fatal.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.acquire import (
    Checksum,
    audio_anomalies,
    audio_report,
    audio_summary,
    check_local,
    decode_all,
    is_url,
    kept_download,
    print_finished,
    staging,
    take,
    unpack,
)
from pipeline.config import FetchConfig, load
from pipeline.errors import InputError, run_cli
from pipeline.outputs import write_json
from pipeline.ravdess import CLIPS_PER_ACTOR, DATA, N_ACTORS, find_clips, parse_name

OFFICIAL = "official"
OFFICIAL_URL = "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1"
OFFICIAL_SIZE = 208_468_073
OFFICIAL_MD5 = "bc696df654c87fed845eb13823edef8a"
ARCHIVE_NAME = "Audio_Speech_Actors_01-24.zip"  # kept beside dest, so a rerun does not download again
ENV_SOURCE = "RAVDESS_SOURCE"
HINT = f"set {ENV_SOURCE} to a local RAVDESS folder or .zip"
_ACTOR_DIR = re.compile(r"^Actor_\d+$")  # a zip's folders above it are wrappers; it and below are the corpus


# --- validation -------------------------------------------------------------------------------

def validate(root: str | Path) -> dict[str, Any]:
    """Check a corpus folder against what RAVDESS speech must be; anomalies are listed, not raised.

    InputError only when root is missing or holds no audio. Paths in the report are relative to
    root and nothing depends on time, so the same corpus always gives the same report.
    """
    root = Path(root)
    files = find_clips(root)
    rels = [p.relative_to(root).as_posix() for p in files]
    bad_names: list[dict[str, str]] = []
    per_actor: Counter[int] = Counter()
    for path, rel in zip(files, rels):
        try:
            info = parse_name(path, root)
        except InputError as err:
            bad_names.append({"path": rel, "reason": err.reason})
            continue
        per_actor[info.actor] += 1
        folder = PurePosixPath(rel).parent.as_posix()
        if folder != f"Actor_{info.actor:02d}":  # extract and split trust the name, so flag the mismatch
            bad_names.append({"path": rel, "reason": f"actor {info.actor:02d} filed under '{folder}'"})

    report = {
        "files": len(files),
        "expected": {"actors": N_ACTORS, "clips_per_actor": CLIPS_PER_ACTOR},
        "actors": {f"{a:02d}": n for a, n in sorted(per_actor.items())},
        "missing_actors": [a for a in range(1, N_ACTORS + 1) if a not in per_actor],
        "wrong_counts": {f"{a:02d}": n for a, n in sorted(per_actor.items()) if n != CLIPS_PER_ACTOR},
        "bad_names": bad_names,
        **audio_report(rels, decode_all(files)),
    }
    report["anomalies"] = len(anomalies(report))
    return report


def anomalies(report: dict[str, Any]) -> list[str]:
    """One human-readable line per anomaly in a validate() report."""
    lines = [f"actor {a:02d} missing" for a in report["missing_actors"]]
    lines += [f"actor {a}: {n} clips, expected {CLIPS_PER_ACTOR}" for a, n in report["wrong_counts"].items()]
    lines += [f"bad name: {b['path']}: {b['reason']}" for b in report["bad_names"]]
    return lines + audio_anomalies(report)


def print_summary(report: dict[str, Any], where: str | Path) -> None:
    """Counts, then each anomaly on its own line, on stderr (stdout stays free for pipes)."""
    print(
        f"fetch: {report['files']} audio files in {where}, {len(report['actors'])} actors{audio_summary(report)}",
        file=sys.stderr,
    )
    for line in anomalies(report):
        print(f"fetch: anomaly: {line}", file=sys.stderr)


# --- getting the files --------------------------------------------------------------------------

def official_archive(folder: Path) -> Path:
    """The verified official zip in folder, downloaded only if no intact copy is there yet."""
    return kept_download(folder / ARCHIVE_NAME, OFFICIAL_URL, Checksum("md5", OFFICIAL_MD5), HINT, OFFICIAL_SIZE)


def is_remote(source: str) -> bool:
    return source in (OFFICIAL, OFFICIAL_URL) or is_url(source)


def populate(source: str, out: Path, dest: Path) -> int:
    """Fill out from source (official, URL, zip or folder); returns the number of audio files taken."""
    if source in (OFFICIAL, OFFICIAL_URL):
        return unpack(official_archive(dest.parent), out, OFFICIAL_URL, _ACTOR_DIR)
    return take(source, out, dest, HINT, _ACTOR_DIR)


def fetch(source: str, dest: str | Path, report_path: str | Path) -> dict[str, Any]:
    """Run the stage; returns the report. A fatal error leaves dest and the report untouched.

    A source that is dest itself is only validated, so a corpus already in place can be checked.
    """
    dest, report_path = Path(dest), Path(report_path)
    local = None if is_remote(source) else Path(source).expanduser()
    if local is not None and local.is_dir() and local.resolve() == dest.resolve():
        report = validate(dest)
    else:
        if local is not None:
            check_local(local, dest, f"{HINT} (or pass --source, or edit fetch.source)")
        with staging(dest) as tmp:
            if populate(source, tmp, dest) == 0:
                raise InputError(local or source, "no .wav or .flac audio files in the source")
            report = validate(tmp)
    write_json(report_path, report)
    return report


def resolve_source(cli: str | None, config: FetchConfig) -> str:
    """--source, else RAVDESS_SOURCE (a machine's local copy), else the committed params.yaml default."""
    if cli:
        return cli
    env = os.environ.get(ENV_SOURCE, "").strip()
    return env or config.source.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help=f"official | URL | folder | .zip (default: ${ENV_SOURCE}, params.yaml)")
    parser.add_argument("--dest", type=Path, default=DATA, help="corpus folder (%(default)s)")
    parser.add_argument("--report", type=Path, default=Path("data/validation.json"), help="(%(default)s)")
    args = parser.parse_args()
    source = resolve_source(args.source, load(FetchConfig, "fetch"))
    start = time.perf_counter()
    report = fetch(source, args.dest, args.report)
    print_summary(report, args.dest)
    print_finished("fetch", report, source, start, args.report)


if __name__ == "__main__":
    run_cli(main)
