"""Take a public corpus (EmoDB, CREMA-D, TESS, SAVEE), check every file on arrival, write its manifest.

    python -m pipeline.fetch_corpus {emodb,cremad,tess,savee} --source SRC --out corpora/train/NAME.csv
        [--dest FOLDER] [--report FILE.json] [--md5 HEX | --sha256 HEX] [--skip-unknown]

SRC is a local folder, a local .zip, an http(s) URL of a zip, or `official` (a download this command
verifies against a published checksum: none is known yet, so it says where to download the corpus and
under which license). --md5/--sha256 check a zip, local or downloaded; a download so checked is kept as
FOLDER.zip beside FOLDER, and a rerun reuses it. The audio goes to FOLDER (default: beside the manifest,
corpora/train/NAME/, where DVC sees it), built beside it and moved into place only when complete; a
source that is FOLDER itself is only checked. Every file is decoded and its name parsed by the layout:
an unparsed name is a one-line error (--skip-unknown lists it instead), unreadable, truncated, silent or
too short audio is reported and left out of the manifest, counts against the corpus's documented totals
and duplicated takes are reported. The report (default NAME.validation.json beside the manifest) and the
manifest are written last; a fatal error leaves FOLDER, the manifest and the report untouched. Then:
data.train_corpora / data.eval_corpora in params.yaml, or python -m pipeline.evaluate --corpus MANIFEST.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.acquire import Checksum, audio_summary, print_finished
from pipeline.arrival import PUBLISHED, anomalies, arrive, default_paths
from pipeline.errors import run_cli


def print_summary(report: dict[str, Any], dest: Path, manifest: Path) -> None:
    """Counts, then each anomaly on its own line, then what the manifest holds, on stderr."""
    print(
        f"fetch_corpus: {report['files']} audio files of {report['corpus']} in {dest}{audio_summary(report)}",
        file=sys.stderr,
    )
    for line in anomalies(report):
        print(f"fetch_corpus: anomaly: {line}", file=sys.stderr)
    left_out = [f"{len(report['bad_audio'])} bad audio", f"{len(report['unparsed'])} unparsed"]
    left_out += [f"{n} labelled {label} (no class)" for label, n in report["no_class"].items()]
    print(
        f"fetch_corpus: {report['clips']} clips of {len(report['speakers'])} speakers -> {manifest}; "
        f"left out: {', '.join(left_out)}",
        file=sys.stderr,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layout", choices=sorted(PUBLISHED))
    parser.add_argument("--source", required=True, help="official | URL of a zip | .zip | folder")
    parser.add_argument("--out", type=Path, required=True, help="the manifest to write: corpora/train/NAME.csv")
    parser.add_argument("--dest", type=Path, help="the corpus's audio folder (default: the manifest's path without .csv)")
    parser.add_argument("--report", type=Path, help="validation report (default: NAME.validation.json beside the manifest)")
    digest = parser.add_mutually_exclusive_group()
    digest.add_argument("--md5", help="the zip's md5, checked before it is unpacked")
    digest.add_argument("--sha256", help="the zip's sha256, checked before it is unpacked")
    parser.add_argument("--skip-unknown", action="store_true", help="list files the layout cannot parse instead of failing")
    args = parser.parse_args()
    checksum = None
    if args.md5 is not None or args.sha256 is not None:
        checksum = Checksum.parse("md5", args.md5) if args.md5 is not None else Checksum.parse("sha256", args.sha256)
    dest = args.dest or default_paths(args.out)[0]
    report_path = args.report or default_paths(args.out)[1]
    start = time.perf_counter()
    report = arrive(args.layout, args.source, args.out, dest, report_path, args.skip_unknown, checksum)
    print_summary(report, dest, args.out)
    print_finished("fetch_corpus", report, args.source, start, report_path)


if __name__ == "__main__":
    run_cli(main)
