"""`python -m pipeline.predict`: the backend's answer for audio files, on the model trained by the
synthetic project of test_train; unusable files answered with one stderr line each, exit code 2."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.features import backend_mfcc
from pipeline.inference import backend_replay, decide, replay
from pipeline.model import load_model
from pipeline.store import FeatureStore
from tests.helpers import (
    RAVDESS8,
    SR,
    assert_one_line_error,
    good_audio,
    header_only,
    non_finite,
    not_audio,
    run_stages,
    truncated_header,
    write_wav,
)

TOL = 1e-5
Runs = dict[str, subprocess.CompletedProcess[str]]


# name -> (writer, words the stderr line must contain)
BAD = {
    "missing.wav": (lambda p: p, "not found"),
    "unreadable.wav": (lambda p: (p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)) * 8), p)[1],
                       "cannot decode"),
    "truncated.wav": (truncated_header, "cannot decode"),
    "header_only.wav": (header_only, "no audio samples"),
    "not_audio.wav": (not_audio, "cannot decode"),
    "too_short.wav": (lambda p: write_wav(p, good_audio()[:399]), "shorter than one 400-sample frame"),
    "silent.wav": (lambda p: write_wav(p, np.zeros(SR, np.float32)), "silent"),
    "nan.wav": (non_finite(np.nan), "non-finite"),
}


@pytest.fixture(scope="module")
def clips(project: Path, synth_corpus: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Two test-actor clips of the corpus and their stored sequences (what evaluate replays)."""
    with FeatureStore(project / "features/mfcc.h5") as store:
        table = store.clips
        chosen = {}
        for name, emotion in (("a", 3), ("b", 6)):
            i = int(table.index[(table["actor"] == 5) & (table["emotion"] == emotion) & (table["variant"] == 0)][0])
            chosen[name] = (synth_corpus / table["path"][i], store.sequence(i))
    return chosen


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The unusable files, and a good clip as 44.1 kHz stereo."""
    folder = tmp_path_factory.mktemp("inputs")
    made = {name: write(folder / name) for name, (write, _) in BAD.items()}
    tone = good_audio()
    resampled = librosa.resample(tone, orig_sr=SR, target_sr=44100)
    made["stereo_44k.wav"] = write_wav(folder / "stereo_44k.wav", np.stack([resampled, 0.5 * resampled], axis=1), 44100)
    made["mono_8k.flac"] = folder / "mono_8k.flac"
    sf.write(made["mono_8k.flac"], librosa.resample(tone, orig_sr=SR, target_sr=8000), 8000)
    return made


@pytest.fixture(scope="module")
def runs(project: Path, clips: dict[str, tuple[Path, np.ndarray]], files: dict[str, Path]) -> Runs:
    model = ["--model", project / "models/model.pth"]
    a, b = clips["a"][0], clips["b"][0]
    bad = [files[name] for name in BAD]
    # good and bad files interleaved: every good one is still answered, in order
    mixed = [a, bad[0], files["stereo_44k.wav"], *bad[1:4], b, *bad[4:], files["mono_8k.flac"]]
    return run_stages(
        {
            "one": (project, "predict", [a, *model]),
            "mean": (project, "predict", [a, *model, "--rule", "mean"]),
            "mixed": (project, "predict", [*mixed, *model]),
            "weights": (project, "predict", [a, "--model", project / "models/model_weights.pth"]),
        }
    )


def answer(line: str) -> dict:
    result = json.loads(line)
    assert list(result) == ["class", "confidence", "label", "file"]
    assert isinstance(result["class"], int) and len(result["confidence"]) == 8
    assert all(isinstance(p, float) for p in result["confidence"])
    assert sum(result["confidence"]) == pytest.approx(1.0, abs=1e-5)
    assert result["class"] == int(np.argmax(result["confidence"]))
    assert result["label"] == RAVDESS8[result["class"]]
    return result


@pytest.fixture(scope="module")
def evaluated(project: Path, clips: dict[str, tuple[Path, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-frame probabilities of each chosen clip's stored sequence, as evaluate's replay computes them."""
    model = load_model(project / "models/model.pth")
    probs = replay(model, [torch.from_numpy(seq) for _, seq in clips.values()])
    return dict(zip(clips, probs))


def test_one_file_one_json_line(runs: Runs, evaluated: dict[str, np.ndarray]) -> None:
    proc = runs["one"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    result = answer(lines[0])
    assert np.abs(np.array(result["confidence"]) - decide(evaluated["a"], "last")).max() <= TOL
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr


def test_mean_rule(runs: Runs, evaluated: dict[str, np.ndarray]) -> None:
    proc = runs["mean"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = proc.stdout.splitlines()
    result = answer(line)
    assert np.abs(np.array(result["confidence"]) - decide(evaluated["a"], "mean")).max() <= TOL
    assert np.abs(decide(evaluated["a"], "mean") - decide(evaluated["a"], "last")).max() > 1e-4  # rules differ


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # audioread, imported by librosa.load
def test_many_files_good_answered_bad_reported(
    runs: Runs, project: Path, clips: dict[str, tuple[Path, np.ndarray]], files: dict[str, Path],
    evaluated: dict[str, np.ndarray],
) -> None:
    proc = runs["mixed"]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    answers = [answer(line) for line in proc.stdout.splitlines()]
    assert len(answers) == 4  # a, stereo 44.1 kHz, b, mono 8 kHz FLAC: one line each, in order
    for result, name in ((answers[0], "a"), (answers[2], "b")):
        assert np.abs(np.array(result["confidence"]) - decide(evaluated[name])).max() <= TOL
    # any sample rate and channel count: librosa.load(path, sr=16000) (mono mix, soxr) then the backend loop
    model = load_model(project / "models/model.pth")
    for result, name in ((answers[1], "stereo_44k.wav"), (answers[3], "mono_8k.flac")):
        audio, _ = librosa.load(files[name], sr=16000)
        expected = backend_replay(model, backend_mfcc(audio))[-1]
        assert np.abs(np.array(result["confidence"]) - expected).max() <= TOL, name

    errors = proc.stderr.strip().splitlines()
    assert len(errors) == len(BAD), proc.stderr
    for line, (name, (_, reason)) in zip(errors, BAD.items()):
        assert line.startswith(f"error: {files[name]}: "), line
        assert reason in line, (name, line)


def test_a_state_dict_is_not_a_model(runs: Runs) -> None:
    assert_one_line_error(runs["weights"], "model_weights.pth", "expected an EmotionLSTM")
    assert runs["weights"].stdout == ""
