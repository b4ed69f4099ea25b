"""The backend's MFCC features: one 13-coefficient vector per non-silent 25 ms frame.

The backend calls ``librosa.feature.mfcc`` once per 400-sample frame. Each call centres the frame
in a zero-padded 2048-point STFT (a single column, Hann-windowed), takes 128 mel bands, converts
to dB clipped 80 dB below *that frame's* maximum, and keeps 13 DCT coefficients. ``backend_mfcc``
does the same for all frames at once with one batched FFT and two matrix products;
``reference_mfcc`` keeps the literal per-frame loop as the oracle.
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import scipy.fft

from pipeline.audio import FRAME_LENGTH, HOP_LENGTH, SAMPLE_RATE, frame_audio, normalise

N_MFCC = 13
N_FFT = 2048  # librosa's default, zero-padding each 400-sample frame
N_MELS = 128
TOP_DB = 80.0
AMIN = 1e-10


@lru_cache(maxsize=1)
def _constants() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window slice, mel filterbank and DCT matrix, built once per process."""
    import librosa

    # With center=True the single STFT column starts n_fft/2 samples before the frame, so the
    # frame meets the window's second half: samples [n_fft/2, n_fft/2 + 400) of a periodic Hann.
    window = librosa.filters.get_window("hann", N_FFT, fftbins=True)
    window = window[N_FFT // 2 : N_FFT // 2 + FRAME_LENGTH].astype(np.float32)
    mel_t = np.ascontiguousarray(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).T)
    dct_t = scipy.fft.dct(np.eye(N_MELS), type=2, norm="ortho", axis=0)[:N_MFCC].T
    return window, mel_t, np.ascontiguousarray(dct_t)


def frames_mfcc(frames: np.ndarray) -> np.ndarray:
    """MFCCs of each row of ``frames`` (n, 400), each as if it were its own librosa call."""
    window, mel_t, dct_t = _constants()
    # A float32 FFT stays within 3e-4 of librosa's float64 one (measured on RAVDESS and on
    # near-silent synthetic frames) at a third of the cost. The DCT is summed in float64:
    # c0 is near -1131, where float32 accumulation alone drifts by 1.5e-3.
    spectrum = scipy.fft.rfft(frames * window, n=N_FFT, axis=1)
    power = np.square(np.abs(spectrum))
    mel_db = 10.0 * np.log10(np.maximum(power @ mel_t, np.float32(AMIN)))
    mel_db = np.maximum(mel_db, mel_db.max(axis=1, keepdims=True) - np.float32(TOP_DB))
    return (mel_db @ dct_t).astype(np.float32)


def backend_mfcc(audio: np.ndarray) -> np.ndarray:
    """(n_kept_frames, 13) float32: normalise, frame, skip all-zero frames, MFCC per frame."""
    frames = frame_audio(normalise(audio))
    kept = frames[np.any(frames != 0, axis=1)]
    if len(kept) == 0:
        return np.zeros((0, N_MFCC), dtype=np.float32)
    return frames_mfcc(kept)


def reference_mfcc(audio: np.ndarray) -> np.ndarray:
    """The backend's literal loop (TRAINING_PLAN.md), kept as the oracle for tests and benchmarks."""
    import librosa

    audio = audio / (np.max(np.abs(audio)) + 1e-9)
    frames = librosa.util.frame(audio, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH)
    mfcc_features = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "n_fft=2048 is too large for ... length=400"
        for i in range(frames.shape[1]):
            frame = frames[:, i]
            if np.all(frame == 0):
                continue
            mfccs = librosa.feature.mfcc(y=frame, sr=SAMPLE_RATE, n_mfcc=N_MFCC)
            mfcc_features.append(np.mean(mfccs, axis=1))
    if not mfcc_features:
        return np.zeros((0, N_MFCC), dtype=np.float32)
    return np.vstack(mfcc_features).astype(np.float32)
