"""Signal operations that the evaluation suite (pipeline.conditions) and the cached training variants
(pipeline.augment) share: an SNR against the speech span, a babble crowd, a room, clipping and an 8 kHz
line, so that training and evaluation degrade audio the same way with different settings. Augmentation,
and so extract, imports this module, not the suite: a change to the suite does not rerun extract.
One exception: training's white and coloured noise (pipeline.augment.apply) set their SNR against the
whole clip's power, about 3 dB quieter by this module's measure on RAVDESS; mixing them here made no
measurable difference (docs/experiments.md, snr-speech) and would change every cached variant.

Definitions used throughout:
- Speech span: the part of the clip ``librosa.effects.trim(top_db=30)`` keeps, i.e. from the first
  to the last 2048-sample frame whose RMS is within 30 dB of the loudest frame's.
- SNR: 10 log10(speech power / noise power), where speech power is the mean power of the clean clip
  over its speech span (leading and trailing room tone excluded, so clips with more silence do not get
  quieter noise) and noise power is the added noise's mean power over the whole clip.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pipeline.audio import FRAME_LENGTH, SAMPLE_RATE

SPEECH_TOP_DB = 30.0
CODEC_PEAK = 0.5  # codecs and the phone line get the clip at -6 dBFS peak, as a device's gain stage would
_RIR_LEAD = 40  # samples kept before the direct path: half of pyroomacoustics' fractional-delay filter


def speech_span(audio: np.ndarray) -> tuple[int, int]:
    """[start, end) sample indices of the speech span (module docstring); (0, 0) for silence."""
    import librosa

    if not np.any(audio):
        return 0, 0
    _, (start, end) = librosa.effects.trim(np.asarray(audio), top_db=SPEECH_TOP_DB)
    return int(start), int(end)


def speech_power(audio: np.ndarray) -> float:
    """Mean power of the clip over its speech span: the reference for every SNR here."""
    start, end = speech_span(audio)
    return float(np.mean(np.asarray(audio[start:end], dtype=np.float64) ** 2)) if end > start else 0.0


class BabbleSource:
    """Babble noise from a pool of other talkers' clips, summed at random offsets.

    The caller passes clips of speakers other than the one being degraded (e.g. other test actors),
    in a fixed order: which talkers are drawn depends on that order. Each clip is cut to its speech
    span and scaled to unit power so that no talker dominates; a mix sums ``talkers`` distinct
    clips (fewer if the pool is smaller), each looped from its own offset.
    """

    def __init__(self, clips: Sequence[np.ndarray], talkers: int = 5) -> None:
        if talkers < 1:
            raise ValueError(f"talkers must be >= 1, got {talkers}")
        pool = []
        for clip in clips:
            clip = np.asarray(clip, dtype=np.float64).reshape(-1)
            start, end = speech_span(clip)
            speech = clip[start:end]
            power = float(np.mean(speech**2)) if speech.size else 0.0
            if speech.size >= FRAME_LENGTH and power > 0 and np.isfinite(power):
                pool.append(speech / np.sqrt(power))
        if not pool:
            raise ValueError("babble needs at least one clip with speech")
        self.pool: tuple[np.ndarray, ...] = tuple(pool)
        self.talkers = talkers

    def mix(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """``length`` samples of babble (float64, unscaled): distinct talkers, each at its own offset."""
        chosen = rng.choice(len(self.pool), size=min(self.talkers, len(self.pool)), replace=False)
        out = np.zeros(length)
        for index in chosen:
            clip = self.pool[index]
            offset = int(rng.integers(len(clip)))
            out += clip[(offset + np.arange(length)) % len(clip)]
        return out


def add_at_snr(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """The clip plus the noise scaled to ``snr_db`` below the clip's speech power (module docstring)."""
    noise = np.asarray(noise, dtype=np.float64)
    target = speech_power(audio) / 10 ** (snr_db / 10)
    return audio + noise * np.sqrt(target / np.mean(noise**2))


def hard_clip(audio: np.ndarray, overdrive_db: float) -> np.ndarray:
    """Hard clip ``overdrive_db`` below the peak, as with an input gain set that much too high."""
    limit = 10 ** (-overdrive_db / 20) * float(np.max(np.abs(audio)))
    return np.clip(audio, -limit, limit)


def at_codec_level(audio: np.ndarray) -> np.ndarray:
    """The clip at CODEC_PEAK: what a device's gain stage hands a codec or a line."""
    return np.asarray(audio, dtype=np.float64) * (CODEC_PEAK / np.max(np.abs(audio)))


def through_8k(band: np.ndarray, code: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """A band-limited clip down to 8 kHz (soxr), through ``code`` (a narrowband codec, given samples
    clipped to [-1, 1]) and back to 16 kHz at its own length."""
    import soxr

    narrow = np.clip(soxr.resample(band, SAMPLE_RATE, 8000, quality="HQ"), -1.0, 1.0)
    return soxr.resample(code(narrow), 8000, SAMPLE_RATE, quality="HQ")[: len(band)]


def shoebox_rir(sabine_rt60: float, size: Sequence[float], source: Sequence[float], mic: Sequence[float]) -> np.ndarray:
    """An image-source shoebox room's impulse response from ``source`` to ``mic`` (pyroomacoustics),
    starting just before the direct path, scaled so the direct path has unit peak. The suite's rooms
    (pipeline.conditions) and the training rooms (pipeline.augment) are different geometries."""
    import pyroomacoustics as pra

    absorption, max_order = pra.inverse_sabine(sabine_rt60, list(size))
    shoebox = pra.ShoeBox(list(size), fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=max_order)
    shoebox.add_source(list(source))
    shoebox.add_microphone(list(mic))
    shoebox.compute_rir()
    rir = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    direct = int(np.argmax(np.abs(rir)))
    rir = rir[max(direct - _RIR_LEAD, 0) :] / np.abs(rir[direct])
    rir.setflags(write=False)  # cached and shared: no caller may change it
    return rir


def reverberate(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """The clip through a room, trimmed to its length: the tail after the clip's end is lost, as when
    recording stops."""
    import scipy.signal

    return scipy.signal.oaconvolve(audio, rir)[: len(audio)]
