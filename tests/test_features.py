"""backend_mfcc (the fast path used everywhere) must match reference_mfcc (the backend's literal
per-frame librosa loop): the same frames kept and skipped, every coefficient within 2e-3.

The worst difference seen is printed at the end of the module (pytest -s shows it).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import librosa
import numpy as np
import pytest

from pipeline.audio import FRAME_LENGTH, HOP_LENGTH, SAMPLE_RATE, frame_audio, load_audio, normalise
from pipeline.features import AMIN, N_MFCC, backend_mfcc, reference_mfcc

TOLERANCE = 2e-3
WORST: dict[str, float] = {"real": 0.0, "synthetic": 0.0}

# Spread over actors (male and female), all eight emotions, both intensities.
REAL_CLIPS = (
    "Actor_01/03-01-01-01-01-01-01",
    "Actor_04/03-01-02-02-01-02-04",
    "Actor_07/03-01-03-02-02-01-07",
    "Actor_10/03-01-04-01-02-02-10",
    "Actor_13/03-01-05-02-01-01-13",
    "Actor_16/03-01-06-02-02-02-16",
    "Actor_19/03-01-07-01-01-02-19",
    "Actor_24/03-01-08-02-02-01-24",
)


@pytest.fixture(scope="module", autouse=True)
def report_worst() -> Iterator[None]:
    yield
    print("\nworst |backend_mfcc - reference_mfcc|: " + ", ".join(f"{k} {v:.2e}" for k, v in WORST.items()))


def n_frames(audio: np.ndarray) -> int:
    return 1 + (len(audio) - FRAME_LENGTH) // HOP_LENGTH


def assert_equivalent(audio: np.ndarray, kind: str) -> np.ndarray:
    """Fast path == oracle in shape (same frames skipped) and within TOLERANCE; returns the fast result."""
    fast = backend_mfcc(audio)
    oracle = reference_mfcc(audio)
    assert fast.dtype == np.float32
    assert fast.shape == oracle.shape
    diff = float(np.max(np.abs(fast - oracle), initial=0.0))
    WORST[kind] = max(WORST[kind], diff)
    assert diff <= TOLERANCE, f"max |difference| {diff:.2e}"
    return fast


def t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE


def noise(n: int, level: float = 1.0, seed: int = 0) -> np.ndarray:
    return level * np.random.default_rng(seed).standard_normal(n)


def tone(freq: float, seconds: float = 0.3, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * t(seconds) + 0.3)


def near_silence() -> np.ndarray:
    """A loud start, then noise sweeping from 1e-4 down to 3e-8 of full scale: the quiet frames'
    mel power crosses the 1e-10 floor, first in some bands, then in all of them."""
    levels = np.geomspace(1e-4, 3e-8, 12)
    quiet = np.concatenate([noise(640, level, seed=i) for i, level in enumerate(levels)])
    return np.concatenate([noise(800), quiet])


def ringing() -> np.ndarray:
    """A burst, digital silence, a 3 kHz ring from 1e-3 decaying through float32 denormals to
    exact zeros, and digital silence again."""
    ring = 1e-3 * np.exp(-t(0.4) / 0.004) * np.sin(2 * np.pi * 3000 * t(0.4))
    return np.concatenate([noise(800), np.zeros(800), ring, np.zeros(800)])


def clipped_square() -> np.ndarray:
    return 3e4 * np.clip(5 * np.sin(2 * np.pi * 440 * t(0.3)), -1, 1)


SYNTHETIC: dict[str, Callable[[], np.ndarray]] = {
    "tone-100Hz": lambda: tone(100),
    "tone-1kHz-on-bin": lambda: tone(1000),  # 1000 Hz is exactly bin 128 of the 2048-point FFT
    "tone-7.9kHz": lambda: tone(7900),
    "tone-quiet": lambda: tone(440, amp=1e-6),  # normalised back to full scale
    "white-noise": lambda: noise(4800),
    "uniform-noise": lambda: np.random.default_rng(1).uniform(-1, 1, 4800),
    "near-silence": near_silence,
    "ringing-into-silence": ringing,
    "clipped-square-loud": clipped_square,
    "dc": lambda: np.full(4000, 0.7),
    "dc-plus-tone": lambda: 0.5 + tone(300, amp=0.1),
    "minimum-length": lambda: noise(FRAME_LENGTH),
}


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_signal_matches_oracle(name: str) -> None:
    assert_equivalent(SYNTHETIC[name]().astype(np.float32), "synthetic")


def test_float64_input_matches_oracle() -> None:
    assert_equivalent(noise(4800, seed=7), "synthetic")


def test_near_silence_reaches_the_power_floor() -> None:
    """Guards the near-silence case itself: some frames are floored in some bands, some in all."""
    audio = normalise(near_silence().astype(np.float32))
    frames = librosa.util.frame(audio, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH)
    mel_min, mel_max = [], []
    for frame in frames.T:
        mel = librosa.feature.melspectrogram(y=frame, sr=SAMPLE_RATE, n_fft=2048)
        mel_min.append(mel.min())
        mel_max.append(mel.max())
    mel_min, mel_max = np.array(mel_min), np.array(mel_max)
    assert np.any((mel_min < AMIN) & (mel_max > AMIN)), "no frame partly below the floor"
    assert np.any(mel_max < AMIN), "no frame wholly below the floor"


def test_all_zero_frames_are_skipped_exactly() -> None:
    """Zero gaps inside noise: exactly the frames that lie wholly inside a gap are skipped, and a
    gap frame holding a single tiny (even denormal) sample is kept."""
    audio = noise(16000).astype(np.float32)
    gaps = {  # (start, length): all-zero frames it makes
        (160 * 20, 400): 1,  # aligned, exactly one frame
        (160 * 40, 560): 2,  # one hop longer: two frames
        (160 * 60 + 1, 400): 0,  # one sample off the frame grid: none
        (160 * 80 - 80, 640): 2,  # off the grid by half a hop: frames 80 and 81
        (160 * 90, 400): 0,  # holds a 1e-30 sample below
        (160 * 95, 400): 0,  # holds a denormal sample below
    }
    for start, length in gaps:
        audio[start : start + length] = 0
    audio[160 * 90 + 200] = 1e-30
    audio[160 * 95 + 399] = np.float32(1e-41)
    fast = assert_equivalent(audio, "synthetic")
    assert n_frames(audio) - len(fast) == sum(gaps.values()) == 5


def test_single_impulse_keeps_its_three_frames() -> None:
    audio = np.zeros(8000, dtype=np.float32)
    audio[4000] = 1.0  # inside frames 23, 24 and 25
    assert len(assert_equivalent(audio, "synthetic")) == 3


def test_one_nonzero_frame_keeps_its_five_overlapping_frames() -> None:
    audio = np.zeros(8000, dtype=np.float32)
    audio[160 * 20 : 160 * 20 + 400] = noise(400)
    assert len(assert_equivalent(audio, "synthetic")) == 5  # frames 18 to 22 overlap it


def test_all_silent_input_gives_no_frames() -> None:
    for audio in (np.zeros(16000, dtype=np.float32), np.zeros(FRAME_LENGTH, dtype=np.float32)):
        result = backend_mfcc(audio)
        assert result.shape == (0, N_MFCC) and result.dtype == np.float32
        assert reference_mfcc(audio).shape == (0, N_MFCC)


@pytest.mark.parametrize("length", [0, 1, FRAME_LENGTH - 1])
def test_input_shorter_than_a_frame_raises(length: int) -> None:
    with pytest.raises(ValueError, match="shorter than one 400-sample frame"):
        backend_mfcc(np.ones(length, dtype=np.float32))


def test_same_input_gives_the_same_bytes() -> None:
    audio = np.concatenate([near_silence(), clipped_square(), noise(20000, seed=3)]).astype(np.float32)
    assert backend_mfcc(audio).tobytes() == backend_mfcc(audio.copy()).tobytes()


@pytest.mark.parametrize("stem", REAL_CLIPS)
def test_real_clip_matches_oracle(real_ravdess: Path, stem: str) -> None:
    paths = sorted(real_ravdess.glob(f"{stem}.*"))
    if not paths:
        pytest.skip(f"{stem} not in {real_ravdess}")
    audio = load_audio(paths[0])
    assert len(assert_equivalent(audio, "real")) > 100


def test_a_crop_of_the_features_is_the_features_of_the_cropped_audio(real_ravdess: Path) -> None:
    """What training on random crops of the cached sequences relies on: features are per frame, so
    cutting a clip's audio at the frame boundaries of a window of its (kept, non-silent) frames, keeping
    its peak, gives exactly that window of its features (the backend normalises a recording by its peak)."""
    paths = sorted(real_ravdess.glob("Actor_0[1-3]/*"))[::20]
    assert paths
    for path in paths:
        audio = load_audio(path)
        full = backend_mfcc(audio)
        kept = np.flatnonzero(frame_audio(normalise(audio)).any(axis=1))  # all-zero frames are skipped
        assert len(kept) == len(full)
        peak = int(np.abs(audio).argmax())
        at_peak = int(np.searchsorted(kept * HOP_LENGTH + FRAME_LENGTH, peak, side="right"))  # first kept frame reaching it
        for first, n in ((max(0, at_peak - 100), 150), (max(0, at_peak - 10), 40)):
            n = min(n, len(full) - first)
            cut = audio[kept[first] * HOP_LENGTH : kept[first + n - 1] * HOP_LENGTH + FRAME_LENGTH]
            assert np.abs(cut).max() == np.abs(audio).max(), path  # the cut keeps the peak
            # equal to float rounding (the fast path batches frames in blocks): the oracle tolerance
            np.testing.assert_allclose(backend_mfcc(cut), full[first : first + n], atol=2e-3, rtol=0, err_msg=str(path))
