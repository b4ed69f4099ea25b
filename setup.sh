#!/usr/bin/env bash
# Create .venv with everything the pipeline and its tests need. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build where a CPU one will do.
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
