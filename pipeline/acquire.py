"""Getting a corpus's audio into place and decoding every file of it on arrival, for fetch (RAVDESS, a
DVC stage) and fetch_corpus (other public corpora): one implementation, so that both take the same
sources (an http(s) zip, checksum-verified where the checksum is known, a local zip or folder), never
leave a half-built corpus, and judge audio files by the same rules."""
from __future__ import annotations

import hashlib
import http.client
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
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from pipeline.audio import FRAME_LENGTH, SAMPLE_RATE
from pipeline.errors import InputError
from pipeline.hashing import file_digest
from pipeline.outputs import atomic_path
from pipeline.ravdess import AUDIO_SUFFIXES, find_clips
from pipeline.workers import pool as worker_pool

MIN_SECONDS = FRAME_LENGTH / SAMPLE_RATE  # 0.025 s: the backend needs at least one 400-sample frame
WORKERS = 2  # the real RAVDESS decodes in 1.3 s serially, 1.0 s with two processes
# libsndfile silently decodes what is left of a truncated WAV/AIFF; only its log shows the shortfall.
_TRUNCATED = re.compile(r"^(?:data|SSND)\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)
DIGEST_LENGTHS = {"md5": 32, "sha256": 64}  # the algorithms a published or given checksum may use


# --- decoding on arrival ------------------------------------------------------------------------

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


def decode_all(files: list[Path]) -> list[dict[str, Any]]:
    """inspect_audio of every file, in order, on up to WORKERS processes."""
    with worker_pool(min(WORKERS, os.cpu_count() or 1), "fork") as pool:
        return list(pool.map(inspect_audio, files, chunksize=16))


def audio_report(rels: list[str], decoded: list[dict[str, Any]]) -> dict[str, Any]:
    """The audio half of a validation report: bad files, rates, channel counts, durations, duplicated
    takes (the same decoded samples under two names). rels name the files as the report should."""
    takes: dict[str, list[str]] = {}
    for rel, d in zip(rels, decoded):
        if "digest" in d:
            takes.setdefault(d["digest"], []).append(rel)
    seconds = [d["frames"] / d["sample_rate"] for d in decoded if "frames" in d]
    return {
        "bad_audio": [{"path": rel, "reason": d["problem"]} for rel, d in zip(rels, decoded) if "problem" in d],
        "sample_rates": _tally(d.get("sample_rate") for d in decoded),
        "channels": _tally(d.get("channels") for d in decoded),
        "duration_s": {
            "min": round(min(seconds), 3), "median": round(statistics.median(seconds), 3),
            "max": round(max(seconds), 3),
        } if seconds else {},
        "duplicate_takes": sorted(sorted(group) for group in takes.values() if len(group) > 1),
    }


def _tally(values: Iterable[Any]) -> dict[str, int]:
    counts = Counter(v for v in values if v is not None)
    return {str(v): n for v, n in sorted(counts.items())}


def audio_anomalies(report: dict[str, Any]) -> list[str]:
    """One line per bad file and per duplicated take of an audio_report."""
    lines = [f"bad audio: {b['path']}: {b['reason']}" for b in report["bad_audio"]]
    return lines + ["duplicate take: " + " = ".join(group) for group in report["duplicate_takes"]]


def audio_summary(report: dict[str, Any]) -> str:
    """', 0.9-3.1 s; 535 at 16000 Hz; 535 with 1 ch': the span, rates and channel counts in one line."""
    duration = report["duration_s"]
    span = f", {duration['min']}-{duration['max']} s" if duration else ""
    rates = ", ".join(f"{n} at {sr} Hz" for sr, n in report["sample_rates"].items())
    channels = ", ".join(f"{n} with {c} ch" for c, n in report["channels"].items())
    return f"{span}; {rates}; {channels}"


def print_finished(command: str, report: dict[str, Any], source: str, start: float, report_path: Path) -> None:
    """A fetch's last line on stderr: its anomalies, where from, how long since ``start``, where the report is."""
    n = report["anomalies"]
    seconds = time.perf_counter() - start
    print(f"{command}: {n} {'anomaly' if n == 1 else 'anomalies'} from {source} in {seconds:.1f} s -> {report_path}", file=sys.stderr)


# --- taking the files from a folder or a zip ----------------------------------------------------

def _wanted(parts: tuple[str, ...]) -> bool:
    """Audio, and not macOS metadata (__MACOSX/, ._name) or another hidden file that only looks like audio.

    '..' is not hidden: such a path must reach corpus_paths, which refuses it.
    """
    hidden = any(p == "__MACOSX" or (p.startswith(".") and p != "..") for p in parts)
    return bool(parts) and parts[-1].lower().endswith(AUDIO_SUFFIXES) and not hidden


def corpus_paths(names: list[str], source: str | Path, keep: re.Pattern[str] | None = None) -> list[PurePosixPath]:
    """Where each file goes in the corpus: the folders every file sits in (a zip's wrapper folder) dropped,
    except from the first folder that `keep` matches (RAVDESS's Actor_XX/) down; escapes refused."""
    paths = [PurePosixPath(name) for name in names]
    for name, path in zip(names, paths):
        if path.is_absolute() or ".." in path.parts:
            raise InputError(source, f"unsafe path {name!r} would land outside the corpus folder")
    depth = 0
    while paths and all(len(p.parts) > depth + 1 and p.parts[depth] == paths[0].parts[depth] for p in paths):
        if keep is not None and keep.match(paths[0].parts[depth]):
            break
        depth += 1
    return [PurePosixPath(*p.parts[depth:]) for p in paths]


def copy_folder(src: Path, out: Path, keep: re.Pattern[str] | None = None) -> int:
    """Copy the audio files of a folder; returns how many."""
    files = [p for p in find_clips(src) if _wanted(p.relative_to(src).parts)]
    for path, rel in zip(files, corpus_paths([p.relative_to(src).as_posix() for p in files], src, keep)):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out / rel)
    return len(files)


def unpack(archive: Path | IO[bytes], out: Path, source: str | Path, keep: re.Pattern[str] | None = None) -> int:
    """Unpack the audio files of a zip, with or without a wrapper folder; returns how many."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if _wanted(PurePosixPath(m.filename).parts) and not m.is_dir()]
            for member, rel in zip(members, corpus_paths([m.filename for m in members], source, keep)):
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, (out / rel).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
        raise InputError(source, f"cannot unpack as a zip archive ({first_line(err)})") from None
    return len(members)


def first_line(err: object) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --- downloads ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checksum:
    """A published (or user-given) checksum of a download: md5 or sha256, lower-case hex."""

    algorithm: str
    hexdigest: str

    @classmethod
    def parse(cls, algorithm: str, text: str) -> Checksum:
        """A checksum as typed: refused (one line) unless it is the algorithm's number of hex digits."""
        value = text.strip().lower()
        length = DIGEST_LENGTHS[algorithm]
        if len(value) != length or not re.fullmatch(r"[0-9a-f]+", value):
            raise InputError(None, f"--{algorithm} must be {length} hexadecimal digits, got {text!r}")
        return cls(algorithm, value)


def stream(url: str, out: IO[bytes], hint: str, size: int | None = None, algorithm: str = "md5") -> tuple[int, str]:
    """Copy url into out with a progress bar; returns the byte count and digest. Failure is one line
    ending in hint (what to do without internet)."""
    digest, count = hashlib.new(algorithm), 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = size or int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="download", file=sys.stderr) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    count += len(chunk)
                    bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as err:  # URLError, HTTPError and timeouts are OSErrors
        plain = isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError)
        reason = first_line(err.reason if plain else err)  # URLError's own str() wraps it in <urlopen error>
        raise InputError(url, f"download failed ({reason}); without internet, {hint}") from None
    return count, digest.hexdigest()


def kept_download(
    archive: Path, url: str, checksum: Checksum, hint: str, size: int | None = None,
    who: str = "fetch", whose: str = "published",
) -> Path:
    """archive, verified: downloaded from url only if no intact copy is there yet (a rerun reuses it),
    and renamed into place only once its size (where known) and checksum are right."""
    if archive.is_file():
        if (size is None or archive.stat().st_size == size) and file_digest(archive, checksum.algorithm) == checksum.hexdigest:
            return archive
        print(f"{who}: {archive} fails its checksum; downloading it again", file=sys.stderr)
    with atomic_path(archive) as part:
        with part.open("wb") as out:
            count, digest = stream(url, out, hint, size, checksum.algorithm)
        if size is not None and count != size:
            raise InputError(url, f"downloaded {count} bytes, expected {size}")
        if digest != checksum.hexdigest:
            raise InputError(url, f"{checksum.algorithm} {digest} does not match the {whose} {checksum.hexdigest}")
    return archive


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


# --- building the corpus folder -----------------------------------------------------------------

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


def check_local(path: Path, dest: Path, missing: str) -> None:
    """Refuse a source that is missing (`missing` says what to do), or that replacing dest would read
    from or delete."""
    if not path.exists():
        raise InputError(path, f"source not found; {missing}")
    if not (path.is_dir() or path.is_file()) or not os.access(path, os.R_OK):
        raise InputError(path, "source is not a readable folder or .zip file")
    src, dst = path.resolve(), dest.resolve()
    if src == dst or dst in src.parents or src in dst.parents:
        raise InputError(path, f"source and destination {dest} overlap; copy from somewhere else")


def take(source: str, out: Path, dest: Path, hint: str, keep: re.Pattern[str] | None = None) -> int:
    """Fill out from an unverified URL (downloaded beside dest, then deleted), a zip or a folder;
    returns the number of audio files taken."""
    if is_url(source):
        with tempfile.TemporaryFile(dir=dest.parent) as download:
            stream(source, download, hint)
            return unpack(download, out, source, keep)
    path = Path(source).expanduser()
    return copy_folder(path, out, keep) if path.is_dir() else unpack(path, out, path, keep)
