"""Write a corpus manifest (CONTRACT.md, "Other corpora") from a public corpus's file names.

    python -m pipeline.corpus_manifest {emodb,cremad,tess,savee,ravdess} FOLDER --out MANIFEST.csv [--skip-unknown]

Every .wav/.flac file under FOLDER becomes a row (path relative to MANIFEST's folder, emotion, speaker,
gender), sorted by path. A file name the layout cannot parse is a one-line error naming it, or with
--skip-unknown a line `skipped: FILE: reason` on stderr. Files whose label has no class (EmoDB's
boredom) are dropped and counted. Then: python -m pipeline.evaluate --corpus MANIFEST.csv --out FILE.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.corpus import write_manifest
from pipeline.errors import run_cli
from pipeline.layouts import LAYOUTS, scan
from pipeline.outputs import check_writable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layout", choices=sorted(LAYOUTS))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="the manifest to write (CSV)")
    parser.add_argument("--skip-unknown", action="store_true", help="skip and list files the layout cannot parse")
    args = parser.parse_args()
    check_writable(args.out)
    found = scan(args.layout, args.folder, args.out, args.skip_unknown)
    for err in found.skipped:
        print(f"skipped: {err}", file=sys.stderr)
    write_manifest(args.out, found.rows)
    dropped = ", ".join(f"{n} labelled {label}" for label, n in sorted(found.dropped.items()))
    print(
        f"corpus_manifest: {len(found.rows)} clips of {len({r.speaker for r in found.rows})} speakers -> {args.out}"
        f"; skipped {len(found.skipped)} unparsed" + (f"; dropped (no class) {dropped}" if dropped else ""),
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_cli(main)
