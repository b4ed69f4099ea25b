"""A public emotional-speech corpus (EmoDB, CREMA-D, TESS, SAVEE) taken in as fetch takes RAVDESS: from
a folder, a zip or a download, built beside its destination and moved into place only when complete,
every file decoded and its name parsed on arrival, counts held against what the corpus documents;
then its manifest (CONTRACT.md, "Other corpora"), so that training and evaluation can use it at once.

Where each corpus is downloaded from, and under which license, is recorded here too. `official` (a
download this pipeline verifies by itself) needs an official URL and a published checksum; for no
corpus here were both found (the notes below PUBLISHED say where they were looked for), so `official`
says where to get the corpus instead.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.acquire import (
    Checksum,
    audio_anomalies,
    audio_report,
    check_local,
    decode_all,
    is_url,
    kept_download,
    staging,
    take,
    unpack,
)
from pipeline.corpus import Row, write_manifest
from pipeline.errors import InputError
from pipeline.hashing import file_digest
from pipeline.layouts import (
    CREMA_D,
    EMODB,
    LAYOUTS,
    SAVEE,
    TESS,
    NameLayout,
    manifest_path,
    scan,
)
from pipeline.outputs import check_writable, write_json
from pipeline.ravdess import find_clips

OFFICIAL = "official"
WHO = "fetch_corpus"  # the command these messages come from


@dataclass(frozen=True)
class Download:
    """An official archive and its published checksum, and where both were found."""

    url: str
    checksum: Checksum
    found: str  # the public page or file that lists the URL and the checksum
    size: int | None = None


@dataclass(frozen=True)
class Published:
    """What a corpus documents about itself: its totals, its speakers, where it is downloaded, its license."""

    name: str
    files: int  # audio files in the complete corpus
    speakers: tuple[str, ...]  # as its layout names them
    home: str  # where to download it by hand
    license: str
    official: Download | None = None


# Totals: EmoDB's documentation (535 utterances of 10 actors); CREMA-D's README (7,442 clips of 91
# actors, numbered 1001-1091); TESS's Dataverse record (2,800 stimuli of 2 actresses); SAVEE's site
# (480 utterances of 4 male speakers).
PUBLISHED: dict[str, Published] = {
    "emodb": Published(
        EMODB.name, 535, tuple(EMODB.genders), "http://emodb.bilderbar.info/download/download.zip",
        "free of charge; cite Burkhardt et al., Interspeech 2005",
    ),
    "cremad": Published(
        CREMA_D.name, 7442, tuple(str(n) for n in range(1001, 1092)),
        "https://github.com/CheyneyComputerScience/CREMA-D, its AudioWAV/ folder (git-lfs)", "ODbL",
    ),
    "tess": Published(
        TESS.name, 2800, tuple(TESS.genders), "https://doi.org/10.5683/SP2/E8H2MF", "CC BY-NC-ND 4.0, non-commercial",
    ),
    "savee": Published(
        SAVEE.name, 480, tuple(SAVEE.genders), "http://kahlan.eps.surrey.ac.uk/savee/ after registering",
        "the terms accepted when registering",
    ),
}
# Where an official URL with a published checksum was looked for, and what was found (none is used):
# - EmoDB: download.zip is linked from emodb.bilderbar.info/download; neither it, audeering's audb
#   scripts (github.com/audeering/emodb, which fetch the same URL) nor other public code give a checksum.
#   Zenodo records 7447302 / 16273947 hold audeering's audformat conversions, not the original archive.
# - CREMA-D: no archive; tensorflow_datasets (audio/crema_d.py) downloads each AudioWAV file from
#   media.githubusercontent.com, checked against a separate checksum list, not one archive's checksum.
# - TESS: the Dataverse record offers its files, not one archive with a published checksum;
#   PaddleAudio's TESS zip with an md5 is a mirror on bj.bcebos.com, not the official host.
# - SAVEE: download only after registration (tensorflow_datasets' savee.py asks for a manual download
#   of AudioData.zip).


def default_paths(manifest: Path) -> tuple[Path, Path]:
    """The audio folder and the report beside the manifest (corpora/train/emodb.csv: corpora/train/emodb/,
    corpora/train/emodb.validation.json): DVC watches corpora/train/ and corpora/eval/ whole."""
    return manifest.with_suffix(""), manifest.with_name(f"{manifest.stem}.validation.json")


def speaker_folder(layout: str) -> re.Pattern[str] | None:
    """A folder named as a speaker, where the layout reads speakers from folders (SAVEE's DC/): kept
    even when every file is in it (a zip of one speaker), as fetch keeps RAVDESS's Actor_XX/."""
    parse = LAYOUTS[layout]
    if not (isinstance(parse, NameLayout) and parse.speaker_folders):
        return None
    return re.compile("^(?:" + "|".join(map(re.escape, PUBLISHED[layout].speakers)) + ")$")


def kept_archive(dest: Path) -> Path:
    """Where a verified download is kept (beside dest), so that a rerun does not download it again."""
    return dest.with_name(f"{dest.name}.zip")


def check(
    root: Path, layout: str, manifest: Path, placed_at: Path, skip_unknown: bool, source: str | Path
) -> tuple[dict[str, Any], list[Row]]:
    """The report on a corpus folder and its manifest's rows (paths as they will be once root is at
    placed_at). Names first, so an unparsed name fails before minutes of decoding; then every file
    decoded. Bad audio is reported and left out of the rows; all else that is odd is only reported.
    Report paths are relative to root and nothing depends on time: same corpus, same bytes."""
    try:
        found = scan(layout, root, manifest, skip_unknown, placed_at)
    except InputError as err:  # name the file inside the source, not in the staging folder
        where = os.path.relpath(err.path or str(root), root)
        raise InputError(source, err.reason if where == "." else f"{Path(where).as_posix()}: {err.reason}") from None
    files = find_clips(root)
    rels = [p.relative_to(root).as_posix() for p in files]
    audio = audio_report(rels, decode_all(files))
    bad = {manifest_path(placed_at / b["path"], manifest) for b in audio["bad_audio"]}
    rows = [row for row in found.rows if row.path not in bad]
    if not rows:
        raise InputError(source, "no usable clip: every file named with a class is unreadable audio")
    published = PUBLISHED[layout]
    speakers = Counter(row.speaker for row in rows)
    report = {
        "layout": layout,
        "corpus": published.name,
        "files": len(files),
        "clips": len(rows),
        "expected": {"files": published.files, "speakers": len(published.speakers)},
        "speakers": dict(sorted(speakers.items())),
        "missing_speakers": [s for s in published.speakers if s not in speakers],  # no clip in the manifest
        "emotions": dict(sorted(Counter(row.emotion for row in rows).items())),
        "no_class": dict(sorted(found.dropped.items())),
        "unparsed": [
            {"path": Path(os.path.relpath(str(err.path), root)).as_posix(), "reason": err.reason} for err in found.skipped
        ],
        **audio,
    }
    report["anomalies"] = len(anomalies(report))
    return report, rows


def anomalies(report: dict[str, Any]) -> list[str]:
    """One line per anomaly of a check() report. Fewer files than documented is one: a subset is allowed,
    but it should be one the user meant."""
    name, expected = report["corpus"], report["expected"]
    lines = []
    if report["files"] != expected["files"]:
        lines.append(
            f"{report['files']} audio files, where {name} documents {expected['files']} "
            "(a subset or extra files: allowed, the manifest lists the usable clips that arrived)"
        )
    if report["missing_speakers"]:
        missing = report["missing_speakers"]
        lines.append(f"{len(missing)} of {expected['speakers']} documented speakers have no usable clip: {', '.join(missing)}")
    lines += [f"unparsed name: {u['path']}: {u['reason']}" for u in report["unparsed"]]
    return lines + audio_anomalies(report)


def source_hint(published: Published) -> str:
    """What to do where this pipeline cannot get the corpus by itself: where to download it, its license."""
    return f"download {published.name} from {published.home} (license: {published.license}) and pass the .zip or folder as --source"


def official_download(published: Published) -> Download:
    """The corpus's official download, or the one-line error saying where to get it by hand."""
    if published.official is None:
        raise InputError(
            OFFICIAL, f"no official {published.name} download with a published checksum is known; {source_hint(published)}"
        )
    return published.official


def _populate(source: str, out: Path, dest: Path, layout: str, checksum: Checksum | None) -> int:
    """Fill out from source; a download with a known checksum (official, or given) is kept beside dest."""
    published = PUBLISHED[layout]
    hint, keep = source_hint(published), speaker_folder(layout)
    if source == OFFICIAL:
        official = official_download(published)
        archive = kept_download(kept_archive(dest), official.url, official.checksum, hint, official.size, WHO)
        return unpack(archive, out, official.url, keep)
    if is_url(source) and checksum is not None:
        return unpack(kept_download(kept_archive(dest), source, checksum, hint, None, WHO, "given"), out, source, keep)
    return take(source, out, dest, hint, keep)


def arrive(
    layout: str, source: str, manifest: str | Path, dest: str | Path | None = None, report_path: str | Path | None = None,
    skip_unknown: bool = False, checksum: Checksum | None = None,
) -> dict[str, Any]:
    """Take a corpus from source into dest, check it, then write its report and manifest; returns the
    report. A fatal error leaves dest, the manifest and the report untouched. A source that is dest
    itself is only checked (a corpus already in place gets its report and manifest)."""
    published = PUBLISHED[layout]
    manifest = Path(manifest)
    default_dest, default_report = default_paths(manifest)
    dest, report_path = Path(dest or default_dest), Path(report_path or default_report)
    check_writable(manifest, report_path)
    if source == OFFICIAL:
        official_download(published)  # before anything is staged
        if checksum is not None:
            raise InputError(OFFICIAL, f"--{checksum.algorithm} is for a URL or a local zip; official has its published checksum")
    local = None if source == OFFICIAL or is_url(source) else Path(source).expanduser()
    if checksum is not None and local is not None and local.is_dir():
        raise InputError(local, f"--{checksum.algorithm} checks an archive, and this source is a folder")
    if local is not None and local.is_dir() and local.resolve() == dest.resolve():
        report, rows = check(dest, layout, manifest, dest, skip_unknown, local)
    else:
        if local is not None:
            check_local(local, dest, source_hint(published))
            if checksum is not None and (digest := file_digest(local, checksum.algorithm)) != checksum.hexdigest:
                raise InputError(local, f"{checksum.algorithm} {digest} does not match the given {checksum.hexdigest}")
        with staging(dest) as tmp:
            if _populate(source, tmp, dest, layout, checksum) == 0:
                raise InputError(local or source, "no .wav or .flac audio files in the source")
            report, rows = check(tmp, layout, manifest, dest, skip_unknown, local or source)
    write_json(report_path, report)
    write_manifest(manifest, rows)
    return report
