"""Shared fixtures: a synthetic corpus for every test, and the real RAVDESS copy where it exists."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.synth import make_corpus

REPO = Path(__file__).resolve().parents[1]
REAL_RAVDESS = (REPO.parent / "shared" / "ravdess").resolve()


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 actors x 8 emotions x 2 takes of 0.8 s synthetic clips, 16 kHz WAV."""
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root)
    return root


@pytest.fixture(scope="session")
def real_ravdess() -> Path:
    if not (REAL_RAVDESS / "Actor_01").is_dir():
        pytest.skip(f"real RAVDESS copy not found at {REAL_RAVDESS}")
    return REAL_RAVDESS
