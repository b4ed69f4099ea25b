"""pipeline.audio must reproduce the backend's decoding, normalisation and framing bit for bit,
and turn every unusable file into one InputError line instead of a librosa traceback."""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from pipeline.audio import FRAME_LENGTH, HOP_LENGTH, SAMPLE_RATE, frame_audio, load_audio, normalise
from pipeline.errors import InputError
from tests.helpers import header_only, non_finite, not_audio, synth_clip, truncated_header

# A few real clips spread over actors and emotions (neutral, happy strong, angry strong, surprised).
REAL_CLIPS = (
    "Actor_01/03-01-01-01-01-01-01",
    "Actor_07/03-01-03-02-02-01-07",
    "Actor_13/03-01-05-02-01-01-13",
    "Actor_24/03-01-08-02-02-01-24",
)


def librosa_load(path: Path) -> np.ndarray:
    """What the backend does, verbatim."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # audioread fallback deprecation on undecodable files
        return librosa.load(path, sr=16000)[0]


def tone_mix(sr: int, seconds: float = 0.7, seed: int = 0) -> np.ndarray:
    """Harmonics up to 7 kHz plus noise, generated at the file's own rate so resampling has work."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    freqs = (220, 1330, 4100, 7000)
    audio = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) / (k + 1) for k, f in enumerate(freqs))
    return (0.25 * audio + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def assert_same_as_librosa(path: Path) -> None:
    expected = librosa_load(path)
    actual = load_audio(path)
    assert actual.dtype == np.float32 and actual.ndim == 1
    assert np.array_equal(actual, expected)


@pytest.mark.parametrize(
    ("sr", "ext", "subtype"),
    [
        (48000, "wav", "PCM_16"),  # RAVDESS's own format
        (44100, "wav", "PCM_16"),
        (16000, "wav", "PCM_16"),  # no resampling
        (48000, "wav", "FLOAT"),
        (16000, "flac", "PCM_16"),  # the shared local copy's format
        (48000, "flac", "PCM_24"),
    ],
)
def test_load_audio_equals_librosa(tmp_path: Path, sr: int, ext: str, subtype: str) -> None:
    path = tmp_path / f"clip.{ext}"
    sf.write(path, tone_mix(sr), sr, subtype=subtype)
    assert_same_as_librosa(path)


@pytest.mark.parametrize("sr", [48000, 16000])
def test_load_audio_stereo_equals_librosa(tmp_path: Path, sr: int) -> None:
    """Five RAVDESS files are 2-channel: librosa averages the channels before resampling."""
    left, right = tone_mix(sr, seed=1), tone_mix(sr, seed=2)[::-1]
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), sr, subtype="PCM_16")
    assert_same_as_librosa(path)
    left_only = tmp_path / "left.wav"
    sf.write(left_only, left, sr, subtype="PCM_16")
    assert not np.array_equal(load_audio(path), load_audio(left_only))  # both channels count


def test_load_audio_synth_clip_at_48k(tmp_path: Path) -> None:
    path = tmp_path / "synth.wav"
    clip = librosa.resample(synth_clip(3, 2, 0), orig_sr=SAMPLE_RATE, target_sr=48000)
    sf.write(path, clip, 48000, subtype="PCM_16")
    assert_same_as_librosa(path)


@pytest.mark.parametrize("stem", REAL_CLIPS)
def test_load_audio_real_clips(real_ravdess: Path, stem: str) -> None:
    paths = sorted(real_ravdess.glob(f"{stem}.*"))
    if not paths:
        pytest.skip(f"{stem} not in {real_ravdess}")
    assert_same_as_librosa(paths[0])


@pytest.mark.parametrize("length", [400, 401, 559, 560, 561, 16037])
def test_frame_audio_equals_librosa_frame(length: int) -> None:
    audio = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    expected = librosa.util.frame(audio, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH).T
    frames = frame_audio(audio)
    assert frames.shape == expected.shape == (1 + (length - FRAME_LENGTH) // HOP_LENGTH, FRAME_LENGTH)
    assert np.array_equal(frames, expected)


def test_frame_audio_too_short() -> None:
    with pytest.raises(ValueError, match="shorter than one 400-sample frame"):
        frame_audio(np.ones(FRAME_LENGTH - 1, dtype=np.float32))


@pytest.mark.parametrize("scale", [1.0, 3e-5, 2e4])
def test_normalise_is_the_backend_expression(scale: float) -> None:
    audio = (scale * np.random.default_rng(0).standard_normal(5000)).astype(np.float32)
    expected = audio / (np.max(np.abs(audio)) + 1e-9)
    result = normalise(audio)
    assert result.dtype == expected.dtype == np.float32
    assert np.array_equal(result, expected)


def test_normalise_silence_stays_zero() -> None:
    assert np.array_equal(normalise(np.zeros(800, dtype=np.float32)), np.zeros(800, dtype=np.float32))


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda path: path,  # never written: missing
        truncated_header,
        header_only,
        not_audio,
        non_finite(np.nan),
        non_finite(np.inf),
        non_finite(-np.inf),
        _empty,
    ],
    ids=["missing", "truncated-header", "header-only", "not-audio", "nan", "inf", "-inf", "zero-length"],
)
def test_unusable_input_is_one_line_input_error(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    path = make(tmp_path / "bad.wav")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError) as caught:
            load_audio(path)
    message = str(caught.value)
    assert str(path) in message
    assert caught.value.reason.strip(), "no reason given"
    assert message == f"{path}: {caught.value.reason}"
    assert "\n" not in message and "\r" not in message
