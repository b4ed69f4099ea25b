"""Hostile and broken input: every case ends in one `error:` line (exit code 2) or an InputError,
never a traceback, a hang, gigabytes of memory, invalid JSON or code run from a pickle.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.audio import load_audio
from pipeline.errors import InputError
from pipeline.outputs import atomic_path
from tests.helpers import RAVDESS8, SR, TIMEOUT, assert_one_line_error, cli_env, synth_clip


def run_module(module: str, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline.<module> ARGS` with these extra environment variables."""
    return subprocess.run(
        [sys.executable, "-m", f"pipeline.{module}", *map(str, args)],
        env={**cli_env(), **env}, capture_output=True, text=True, timeout=TIMEOUT,
    )


def assert_input_error(path: Path, *needles: str) -> None:
    """load_audio(path) raises a one-line InputError naming path and containing every needle."""
    with deadline(60), pytest.raises(InputError) as caught:
        load_audio(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a FIFO opened for reading blocks until a writer appears)."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def wav(path: Path, audio: np.ndarray | None = None, sr: int = SR) -> Path:
    sf.write(path, synth_clip(3, 1, 0) if audio is None else audio, sr, subtype="PCM_16")
    return path


# --- InputError crosses process boundaries --------------------------------------------------------


def test_input_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(InputError("a.wav", "bad")))
    assert (type(err), err.path, err.reason, str(err)) == (InputError, "a.wav", "bad", "a.wav: bad")
    bare = pickle.loads(pickle.dumps(InputError(None, "no path")))
    assert (bare.path, bare.reason, str(bare)) == (None, "no path", "no path")


# --- models: predict must refuse what it cannot run -----------------------------------------------


class WritesMarker:
    """A pickle that creates a file when loaded: what a malicious model file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def save_model(folder: Path, model: object) -> Path:
    """model.pth plus the labels.json predict reads beside it."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model, folder / "model.pth")
    (folder / "labels.json").write_text(json.dumps({"classes": [{"name": n} for n in RAVDESS8]}))
    return folder / "model.pth"


def small_model(input_size: int = 13) -> object:
    import torch

    from pipeline.model import EmotionLSTM

    torch.manual_seed(0)
    return EmotionLSTM(input_size, hidden_size=8, num_layers=1, num_classes=len(RAVDESS8), dropout=0.0).eval()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("good") / "models", small_model())


@pytest.fixture(scope="module")
def good_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wav(tmp_path_factory.mktemp("audio") / "good.wav")


def test_forced_unsafe_load_still_runs_no_code_from_a_model_file(tmp_path: Path, good_wav: Path) -> None:
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 switches torch.load to plain pickle unless the call says otherwise."""
    marker = tmp_path / "marker"
    path = save_model(tmp_path / "models", WritesMarker(marker))
    proc = run_module("predict", good_wav, "--model", path, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    assert_one_line_error(proc, str(path), "refused")
    assert not marker.exists(), "load_model ran code from a pickle"


def test_model_of_another_input_size_is_refused(tmp_path: Path, good_wav: Path) -> None:
    path = save_model(tmp_path / "models", small_model(input_size=20))
    proc = run_module("predict", good_wav, "--model", path)
    assert_one_line_error(proc, str(path), "20", "13")
    assert proc.stdout == ""


def test_model_with_non_finite_output_is_refused(tmp_path: Path, good_wav: Path) -> None:
    import torch

    model = small_model()
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    path = save_model(tmp_path / "models", model)
    proc = run_module("predict", good_wav, "--model", path)
    assert_one_line_error(proc, str(path), str(good_wav), "not finite")
    assert proc.stdout == ""  # never `NaN`, which is not JSON


# --- predict's answers ----------------------------------------------------------------------------


def test_each_answer_names_its_file_as_given(model_path: Path, good_wav: Path) -> None:
    given = [str(good_wav), f"{good_wav.parent}/./{good_wav.name}"]
    proc = run_module("predict", *given, "--model", model_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [list(a) for a in answers] == [["class", "confidence", "label", "file"]] * 2
    assert [a["file"] for a in answers] == given


def test_a_closed_stdout_ends_predict_quietly(model_path: Path, good_wav: Path) -> None:
    """`predict A B ... | head -1`: the reader goes away after one line; no BrokenPipeError traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.predict", *[str(good_wav)] * 12, "--model", str(model_path)],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # like head -1: the other eleven answers meet a closed pipe
    stderr = proc.stderr.read()
    proc.wait(timeout=TIMEOUT)
    assert json.loads(first)["file"] == str(good_wav)
    assert stderr == "", stderr
    assert proc.returncode == 128 + signal.SIGPIPE  # what a shell reports for a tool killed by SIGPIPE


# --- audio files that must not be decoded ---------------------------------------------------------


@pytest.mark.parametrize("sr", [1, 3999, 1_000_000])
def test_implausible_sample_rate_is_refused_before_decoding(tmp_path: Path, sr: int) -> None:
    """At 1 Hz, a 124 KB file resamples to ~990 M samples; 2000 samples here are enough to tell."""
    path = wav(tmp_path / "odd_rate.wav", synth_clip(3, 1, 0)[:2000], sr)
    assert_input_error(path, f"sample rate {sr} Hz")


def test_hours_of_silence_are_refused_before_decoding(tmp_path: Path) -> None:
    """Digital silence compresses to almost nothing in FLAC but decodes to 4 bytes per sample."""
    path = tmp_path / "silence.flac"
    sf.write(path, np.zeros(11 * 60 * SR, np.int16), SR, subtype="PCM_16")
    assert path.stat().st_size < 200_000
    assert_input_error(path, "11.0 minutes", "at most 10")


def test_truncated_flac_reports_libsndfiles_reason(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    sf.write(path, synth_clip(3, 1, 0, seconds=3.0), SR)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # header intact, data cut
    assert_input_error(path, "cannot decode audio", "lost sync")


def test_a_directory_is_not_a_missing_file(tmp_path: Path) -> None:
    folder = tmp_path / "clip.wav"
    folder.mkdir()
    assert_input_error(folder, "is a directory")


def test_a_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "clip.wav"
    os.mkfifo(fifo)
    assert_input_error(fifo, "not a regular file")


def test_a_symlink_loop_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.wav").symlink_to(tmp_path / "b.wav")
    (tmp_path / "b.wav").symlink_to(tmp_path / "a.wav")
    assert_input_error(tmp_path / "a.wav", "symlink loop")


def test_a_dangling_symlink_is_named(tmp_path: Path) -> None:
    (tmp_path / "clip.wav").symlink_to(tmp_path / "gone.wav")
    assert_input_error(tmp_path / "clip.wav", "broken symlink")


def test_a_good_file_through_a_symlink_still_loads(tmp_path: Path) -> None:
    target = wav(tmp_path / "real.wav")
    (tmp_path / "link.wav").symlink_to(target)
    assert np.array_equal(load_audio(tmp_path / "link.wav"), load_audio(target))


# --- temporaries of killed runs -------------------------------------------------------------------


def test_atomic_path_removes_temporaries_of_dead_processes_only(tmp_path: Path) -> None:
    """A run killed during its write leaves `.NAME.<pid>.<random>.tmp`; the next write of NAME removes it
    once that pid is gone, and never touches a temporary a running process is still writing."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        stale = tmp_path / f".out.json.{dead.pid}.k2x9_q.tmp"
        busy = tmp_path / f".out.json.{alive.pid}.a8f3zz.tmp"
        other = tmp_path / f".other.json.{dead.pid}.b7c1de.tmp"  # another target's: not ours to judge
        for path in (stale, busy, other):
            path.write_text("half written")
        with atomic_path(tmp_path / "out.json") as tmp:
            tmp.write_text("{}\n")
        assert (tmp_path / "out.json").read_text() == "{}\n"
        assert not stale.exists()
        assert busy.exists() and other.exists()
    finally:
        alive.kill()
        alive.wait()


def test_symlinked_actor_folders_are_found_and_a_link_loop_ends(tmp_path: Path) -> None:
    """A corpus assembled from links (Actor_XX -> elsewhere) is read like a real one; a link that
    points back up the tree is visited once, not forever."""
    from pipeline.ravdess import find_clips
    from tests.helpers import make_corpus

    real = tmp_path / "real"
    make_corpus(real, actors=[1, 2], emotions=[1], takes=1, seconds=0.2)
    linked = tmp_path / "linked"
    linked.mkdir()
    for actor in ("Actor_01", "Actor_02"):
        (linked / actor).symlink_to(real / actor, target_is_directory=True)
    (linked / "Actor_01" / "loop").symlink_to(linked, target_is_directory=True)
    with deadline(30):
        found = find_clips(linked)
    assert [p.relative_to(linked).as_posix() for p in found] == [
        p.relative_to(real).as_posix() for p in find_clips(real)
    ]
