"""Audio exactly as the production backend sees it: librosa.load at 16 kHz, peak-normalised, framed."""
from __future__ import annotations

import errno
import os
import stat
import warnings
from os import PathLike

import numpy as np

from pipeline.errors import InputError

SAMPLE_RATE = 16000
FRAME_LENGTH = int(0.025 * SAMPLE_RATE)  # 400 samples, 25 ms
HOP_LENGTH = int(0.010 * SAMPLE_RATE)  # 160 samples, 10 ms


def frames_after(seconds: float) -> int:
    """Frames the backend has seen once `seconds` of audio have arrived (at least one)."""
    return max(1, 1 + int((seconds * SAMPLE_RATE - FRAME_LENGTH) // HOP_LENGTH))

# Limits read from the header before decoding. Decoding allocates float32 samples at the file's own
# rate and again at 16 kHz, so a corrupt or hostile header would otherwise cost gigabytes: a 124 KB
# WAV whose header says 1 Hz resamples to ~990 M samples, and 2 hours of digital silence compress
# to a 402 KB FLAC that decodes to 1.6 GB.
MIN_SAMPLE_RATE = 4000  # half of telephone audio's 8 kHz: anything lower is a broken header
MAX_SAMPLE_RATE = 384000  # the highest rate audio interfaces record at
MAX_SECONDS = 600  # 10 minutes, far longer than an utterance the backend answers


def load_audio(path: str | PathLike[str]) -> np.ndarray:
    """Decode any WAV/FLAC/... to float32 mono 16 kHz, equal to ``librosa.load(path, sr=16000)``.

    Raises InputError (file and reason) for a missing, unreadable or truncated file, anything but
    a regular file, a sample rate or duration outside the limits above, and non-finite samples,
    instead of librosa's tracebacks.
    """
    import librosa  # imported lazily: numba compilation costs seconds at first import

    check_regular_file(path)
    check_header(path)
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
    except Exception as err:  # libsndfile, audioread (librosa's fallback), numpy: a dozen types
        raise InputError(path, f"cannot decode audio ({decode_failure(err)})") from None
    if audio.size == 0:
        raise InputError(path, "no audio samples")
    if not np.all(np.isfinite(audio)):
        raise InputError(path, "non-finite samples (NaN or Inf)")
    return audio


def check_regular_file(path: str | PathLike[str]) -> None:
    """InputError unless path is a regular file, saying what it is instead. Only stat()ed, never
    opened: opening a FIFO would block until something writes to it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        reason = "broken symlink (its target does not exist)" if os.path.islink(path) else "file not found"
        raise InputError(path, reason) from None
    except OSError as err:
        reason = "symlink loop" if err.errno == errno.ELOOP else (err.strerror or type(err).__name__).lower()
        raise InputError(path, reason) from None
    if stat.S_ISDIR(mode):
        raise InputError(path, "is a directory")
    if not stat.S_ISREG(mode):
        raise InputError(path, "not a regular file (a FIFO, socket or device)")


def check_header(path: str | PathLike[str]) -> None:
    """InputError if the header's sample rate or duration is outside the limits, before any decoding.
    Files libsndfile cannot read pass: librosa then decodes them or says why it cannot."""
    import soundfile

    try:
        info = soundfile.info(os.fspath(path))
    except soundfile.SoundFileError:
        return
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise InputError(
            path, f"sample rate {info.samplerate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz (a broken header?)"
        )
    if info.frames > MAX_SECONDS * info.samplerate:
        minutes = info.frames / info.samplerate / 60
        raise InputError(path, f"{minutes:.1f} minutes long; at most {MAX_SECONDS // 60} minutes are accepted")


def decode_failure(err: Exception) -> str:
    """One line on why decoding failed. When libsndfile fails, librosa falls back to audioread, whose
    NoBackendError says nothing: libsndfile's own reason (e.g. "flac decoder lost sync") is its context."""
    import soundfile

    if isinstance(err.__context__, soundfile.SoundFileError):
        err = err.__context__
    text = str(err).strip()
    return text.splitlines()[0].removeprefix("Error : ").rstrip(".") if text else type(err).__name__


def normalise(audio: np.ndarray) -> np.ndarray:
    """The backend's peak normalisation, in its exact float32 arithmetic."""
    return audio / (np.max(np.abs(audio)) + 1e-9)


def frame_audio(audio: np.ndarray) -> np.ndarray:
    """Frames as rows, (n_frames, 400): the transpose of ``librosa.util.frame(audio, 400, 160)``."""
    if audio.shape[-1] < FRAME_LENGTH:
        raise ValueError(f"{audio.shape[-1]} samples is shorter than one {FRAME_LENGTH}-sample frame")
    return np.lib.stride_tricks.sliding_window_view(audio, FRAME_LENGTH)[::HOP_LENGTH]
