"""Audio exactly as the production backend sees it: librosa.load at 16 kHz, peak-normalised, framed."""
from __future__ import annotations

import warnings
from os import PathLike
from pathlib import Path

import numpy as np

from pipeline.errors import InputError

SAMPLE_RATE = 16000
FRAME_LENGTH = int(0.025 * SAMPLE_RATE)  # 400 samples, 25 ms
HOP_LENGTH = int(0.010 * SAMPLE_RATE)  # 160 samples, 10 ms


def load_audio(path: str | PathLike[str]) -> np.ndarray:
    """Decode any WAV/FLAC/... to float32 mono 16 kHz, equal to ``librosa.load(path, sr=16000)``.

    Raises InputError (file and reason) for a missing, unreadable or truncated file and for
    non-finite samples, instead of librosa's tracebacks.
    """
    import librosa  # imported lazily: numba compilation costs seconds at first import
    import soundfile

    if not Path(path).is_file():
        raise InputError(path, "file not found")
    try:
        with warnings.catch_warnings():
            # librosa warns, then falls back to audioread, when libsndfile cannot read a file;
            # the caller gets the outcome as one InputError line instead.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            audio, _ = librosa.load(path, sr=SAMPLE_RATE)
    except librosa.util.exceptions.ParameterError as err:
        if "not finite" in str(err):  # librosa refuses NaN/Inf itself before resampling
            raise InputError(path, "non-finite samples (NaN or Inf)") from None
        raise InputError(path, f"cannot decode audio ({err})") from None
    except (soundfile.LibsndfileError, EOFError, RuntimeError, ValueError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(path, f"cannot decode audio ({reason})") from None
    except Exception as err:  # audioread's fallback raises its own NoBackendError family
        raise InputError(path, f"cannot decode audio ({type(err).__name__})") from None
    if audio.size == 0:
        raise InputError(path, "no audio samples")
    if not np.all(np.isfinite(audio)):
        raise InputError(path, "non-finite samples (NaN or Inf)")
    return audio


def normalise(audio: np.ndarray) -> np.ndarray:
    """The backend's peak normalisation, in its exact float32 arithmetic."""
    return audio / (np.max(np.abs(audio)) + 1e-9)


def frame_audio(audio: np.ndarray) -> np.ndarray:
    """Frames as rows, (n_frames, 400): the transpose of ``librosa.util.frame(audio, 400, 160)``."""
    if audio.shape[-1] < FRAME_LENGTH:
        raise ValueError(f"{audio.shape[-1]} samples is shorter than one {FRAME_LENGTH}-sample frame")
    return np.lib.stride_tricks.sliding_window_view(audio, FRAME_LENGTH)[::HOP_LENGTH]
