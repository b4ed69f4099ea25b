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
import hashlib
import http.client
import multiprocessing
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from pipeline.audio import FRAME_LENGTH, SAMPLE_RATE
from pipeline.config import FetchConfig, load
from pipeline.errors import InputError, run_cli
from pipeline.hashing import file_md5
from pipeline.outputs import atomic_path, write_json
from pipeline.ravdess import (
    AUDIO_SUFFIXES,
    CLIPS_PER_ACTOR,
    DATA,
    N_ACTORS,
    find_clips,
    parse_name,
)

OFFICIAL = "official"
OFFICIAL_URL = "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1"
OFFICIAL_SIZE = 208_468_073
OFFICIAL_MD5 = "bc696df654c87fed845eb13823edef8a"
ARCHIVE_NAME = "Audio_Speech_Actors_01-24.zip"  # kept beside dest, so a rerun does not download again
ENV_SOURCE = "RAVDESS_SOURCE"
HINT = f"set {ENV_SOURCE} to a local RAVDESS folder or .zip"
MIN_SECONDS = FRAME_LENGTH / SAMPLE_RATE  # 0.025 s: the backend needs at least one 400-sample frame
WORKERS = 2  # the real corpus decodes in 1.3 s serially, 1.0 s with two processes
_ACTOR_DIR = re.compile(r"^Actor_\d+$")
# libsndfile silently decodes what is left of a truncated WAV/AIFF; only its log shows the shortfall.
_TRUNCATED = re.compile(r"^(?:data|SSND)\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)


# --- validation -------------------------------------------------------------------------------

def inspect_audio(path: Path) -> dict[str, Any]:
    """Decode the whole file: a header can look fine while the samples behind it are missing or broken.

    Returns sample_rate, channels, frames and either `digest` (sha256 of the decoded float32 samples,
    to find the same take filed twice) or `problem`.
    """
    if path.stat().st_size == 0:
        return {"problem": "empty file (0 bytes)"}
    try:
        with sf.SoundFile(path) as f:
            sr, channels, declared, log = f.samplerate, f.channels, f.frames, f.extra_info
            audio = f.read(dtype="float32", always_2d=True)
    except sf.LibsndfileError as err:  # its str() names the absolute path; the report must not
        return {"problem": f"cannot decode audio ({err.error_string.strip()})"}
    except (RuntimeError, ValueError, EOFError, OSError) as err:
        return {"problem": f"cannot decode audio ({type(err).__name__})"}
    info: dict[str, Any] = {"sample_rate": sr, "channels": channels, "frames": len(audio)}
    truncated = _TRUNCATED.search(log)
    if truncated:
        info["problem"] = f"truncated: header promises {truncated[1]} data bytes, file holds {truncated[2]}"
    elif len(audio) < declared:
        info["problem"] = f"truncated: decoded {len(audio)} of {declared} frames"
    elif len(audio) == 0:
        info["problem"] = "no audio samples"
    elif not np.isfinite(audio).all():
        info["problem"] = "non-finite samples (NaN or Inf)"
    elif len(audio) < MIN_SECONDS * sr:
        info["problem"] = f"too short: {len(audio) / sr:.4f} s, under one {FRAME_LENGTH}-sample frame at 16 kHz"
    elif not audio.any():
        info["problem"] = "silent: every sample is zero"
    else:
        info["digest"] = hashlib.sha256(audio.tobytes()).hexdigest()
    return info


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

    with multiprocessing.get_context("fork").Pool(min(WORKERS, os.cpu_count() or 1)) as pool:
        decoded = pool.map(inspect_audio, files, chunksize=16)

    bad_audio = [{"path": rel, "reason": d["problem"]} for rel, d in zip(rels, decoded) if "problem" in d]
    takes: dict[str, list[str]] = {}
    for rel, d in zip(rels, decoded):
        if "digest" in d:
            takes.setdefault(d["digest"], []).append(rel)
    seconds = [d["frames"] / d["sample_rate"] for d in decoded if "frames" in d]
    report = {
        "files": len(files),
        "expected": {"actors": N_ACTORS, "clips_per_actor": CLIPS_PER_ACTOR},
        "actors": {f"{a:02d}": n for a, n in sorted(per_actor.items())},
        "missing_actors": [a for a in range(1, N_ACTORS + 1) if a not in per_actor],
        "wrong_counts": {f"{a:02d}": n for a, n in sorted(per_actor.items()) if n != CLIPS_PER_ACTOR},
        "bad_names": bad_names,
        "bad_audio": bad_audio,
        "sample_rates": _tally(d.get("sample_rate") for d in decoded),
        "channels": _tally(d.get("channels") for d in decoded),
        "duration_s": {
            "min": round(min(seconds), 3), "median": round(statistics.median(seconds), 3),
            "max": round(max(seconds), 3),
        } if seconds else {},
        "duplicate_takes": sorted(sorted(group) for group in takes.values() if len(group) > 1),
    }
    report["anomalies"] = len(anomalies(report))
    return report


def _tally(values: Iterable[Any]) -> dict[str, int]:
    counts = Counter(v for v in values if v is not None)
    return {str(v): n for v, n in sorted(counts.items())}


def anomalies(report: dict[str, Any]) -> list[str]:
    """One human-readable line per anomaly in a validate() report."""
    lines = [f"actor {a:02d} missing" for a in report["missing_actors"]]
    lines += [f"actor {a}: {n} clips, expected {CLIPS_PER_ACTOR}" for a, n in report["wrong_counts"].items()]
    lines += [f"bad name: {b['path']}: {b['reason']}" for b in report["bad_names"]]
    lines += [f"bad audio: {b['path']}: {b['reason']}" for b in report["bad_audio"]]
    lines += ["duplicate take: " + " = ".join(group) for group in report["duplicate_takes"]]
    return lines


def print_summary(report: dict[str, Any], where: str | Path) -> None:
    """Counts, then each anomaly on its own line, on stderr (stdout stays free for pipes)."""
    duration = report["duration_s"]
    span = f", {duration['min']}-{duration['max']} s" if duration else ""
    rates = ", ".join(f"{n} at {sr} Hz" for sr, n in report["sample_rates"].items())
    channels = ", ".join(f"{n} with {c} ch" for c, n in report["channels"].items())
    print(
        f"fetch: {report['files']} audio files in {where}, {len(report['actors'])} actors{span}; "
        f"{rates}; {channels}",
        file=sys.stderr,
    )
    for line in anomalies(report):
        print(f"fetch: anomaly: {line}", file=sys.stderr)


# --- getting the files --------------------------------------------------------------------------

def _wanted(parts: tuple[str, ...]) -> bool:
    """Audio, and not macOS metadata (__MACOSX/, ._name) or another hidden file that only looks like audio.

    '..' is not hidden: such a path must reach corpus_paths, which refuses it.
    """
    hidden = any(p == "__MACOSX" or (p.startswith(".") and p != "..") for p in parts)
    return bool(parts) and parts[-1].lower().endswith(AUDIO_SUFFIXES) and not hidden


def corpus_paths(names: list[str], source: str | Path) -> list[PurePosixPath]:
    """Where each file goes in the corpus: wrapper folders above Actor_XX/ dropped, escapes refused."""
    paths = [PurePosixPath(name) for name in names]
    for name, path in zip(names, paths):
        if path.is_absolute() or ".." in path.parts:
            raise InputError(source, f"unsafe path {name!r} would land outside the corpus folder")
    depth = 0
    while paths and all(len(p.parts) > depth + 1 and p.parts[depth] == paths[0].parts[depth] for p in paths):
        if _ACTOR_DIR.match(paths[0].parts[depth]):
            break
        depth += 1
    return [PurePosixPath(*p.parts[depth:]) for p in paths]


def copy_folder(src: Path, out: Path) -> int:
    """Copy the audio files of a folder; returns how many."""
    files = [p for p in find_clips(src) if _wanted(p.relative_to(src).parts)]
    for path, rel in zip(files, corpus_paths([p.relative_to(src).as_posix() for p in files], src)):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out / rel)
    return len(files)


def unpack(archive: Path | IO[bytes], out: Path, source: str | Path) -> int:
    """Unpack the audio files of a zip, with or without a wrapper folder; returns how many."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if _wanted(PurePosixPath(m.filename).parts) and not m.is_dir()]
            for member, rel in zip(members, corpus_paths([m.filename for m in members], source)):
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, (out / rel).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
        raise InputError(source, f"cannot unpack as a zip archive ({_first_line(err)})") from None
    return len(members)


def _first_line(err: object) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def stream(url: str, out: IO[bytes], size: int | None = None) -> tuple[int, str]:
    """Copy url into out with a progress bar; returns the byte count and md5. Failure is one line."""
    md5, count = hashlib.md5(), 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = size or int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="download", file=sys.stderr) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    md5.update(chunk)
                    count += len(chunk)
                    bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as err:  # URLError, HTTPError and timeouts are OSErrors
        plain = isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError)
        reason = _first_line(err.reason if plain else err)  # URLError's own str() wraps it in <urlopen error>
        raise InputError(url, f"download failed ({reason}); without internet, {HINT}") from None
    return count, md5.hexdigest()


def official_archive(folder: Path) -> Path:
    """The verified official zip in folder, downloaded only if no intact copy is there yet."""
    archive = folder / ARCHIVE_NAME
    if archive.is_file():
        if archive.stat().st_size == OFFICIAL_SIZE and file_md5(archive) == OFFICIAL_MD5:
            return archive
        print(f"fetch: {archive} fails its checksum; downloading it again", file=sys.stderr)
    for stale in folder.glob(f".{ARCHIVE_NAME}.*.tmp"):  # a download that was killed outright
        stale.unlink()
    with atomic_path(archive) as part:  # renamed to archive only once size and md5 are right
        with part.open("wb") as out:
            count, md5 = stream(OFFICIAL_URL, out, OFFICIAL_SIZE)
        if count != OFFICIAL_SIZE:
            raise InputError(OFFICIAL_URL, f"downloaded {count} bytes, expected {OFFICIAL_SIZE}")
        if md5 != OFFICIAL_MD5:
            raise InputError(OFFICIAL_URL, f"md5 {md5} does not match the published {OFFICIAL_MD5}")
    return archive


@contextmanager
def staging(dest: Path) -> Iterator[Path]:
    """A fresh folder beside dest that replaces dest only if the block succeeds: never a half corpus."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.*.tmp"):  # left by a run that was killed outright
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it private; the corpus is not
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def is_remote(source: str) -> bool:
    return source in (OFFICIAL, OFFICIAL_URL) or urllib.parse.urlsplit(source).scheme in ("http", "https")


def populate(source: str, out: Path, dest: Path) -> int:
    """Fill out from source (official, URL, zip or folder); returns the number of audio files taken."""
    if source in (OFFICIAL, OFFICIAL_URL):
        return unpack(official_archive(dest.parent), out, OFFICIAL_URL)
    if is_remote(source):
        with tempfile.TemporaryFile(dir=dest.parent) as download:
            stream(source, download)
            return unpack(download, out, source)
    path = Path(source).expanduser()
    return copy_folder(path, out) if path.is_dir() else unpack(path, out, path)


def check_local(path: Path, dest: Path) -> None:
    """Refuse a source that is missing, or that replacing dest would read from or delete."""
    if not path.exists():
        raise InputError(path, f"source not found; {HINT} (or pass --source, or edit fetch.source)")
    if not (path.is_dir() or path.is_file()) or not os.access(path, os.R_OK):
        raise InputError(path, "source is not a readable folder or .zip file")
    src, dst = path.resolve(), dest.resolve()
    if src == dst or dst in src.parents or src in dst.parents:
        raise InputError(path, f"source and destination {dest} overlap; copy from somewhere else")


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
            check_local(local, dest)
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
    n = report["anomalies"]
    print(
        f"fetch: {n} {'anomaly' if n == 1 else 'anomalies'} from {source} in "
        f"{time.perf_counter() - start:.1f} s -> {args.report}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_cli(main)
