"""Shared fixtures: a synthetic corpus, a synthetic project built by the real stage commands, and
the real RAVDESS copy where it exists."""
from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, SPLIT, TINY, make_corpus, project_folder, run_stage

REAL_RAVDESS = (REPO.parent / "shared" / "ravdess").resolve()


@pytest.fixture(scope="session", autouse=True)
def single_thread() -> Iterator[None]:
    """In-process torch on one thread (fast and stable on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 actors x 8 emotions x 2 takes of 0.8 s synthetic clips, 16 kHz WAV."""
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root)
    return root


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory, synth_corpus: Path) -> Path:
    """A project folder whose features/, models/ and metrics/train.* come from `python -m pipeline.extract`,
    `split` and `train` on the synthetic corpus (2 val, 2 test, 4 train actors; a tiny model)."""
    root = project_folder(tmp_path_factory.mktemp("project"), extract={"workers": 2}, split=SPLIT, train=TINY)
    for module, args in (("extract", ["--data", synth_corpus]), ("split", []), ("train", [])):
        proc = run_stage(root, module, *args)
        assert proc.returncode == 0, f"{module}: {proc.stderr[-3000:]}"
    return root


def real_corpus_candidates() -> list[Path]:
    """Where the real corpus may be, in order: RAVDESS_SOURCE when it names a folder (as for the
    pipeline), the folder the fetch stage filled, the team machines' shared copy."""
    source = os.environ.get("RAVDESS_SOURCE", "").strip()
    return [Path(source)] * bool(source) + [REPO / "data" / "ravdess", REAL_RAVDESS]


@pytest.fixture(scope="session")
def real_ravdess() -> Path:
    for folder in real_corpus_candidates():
        if (folder / "Actor_01").is_dir():
            return folder.resolve()
    looked = ", ".join(str(p) for p in real_corpus_candidates())
    pytest.skip(f"no real RAVDESS folder (looked in {looked}; set RAVDESS_SOURCE to a folder)")


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server (127.0.0.1 only) serving a folder."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()
