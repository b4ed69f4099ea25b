"""A fixed suite of recording conditions for *evaluation*: the decoded clip as another device hears it.

The backend serves laptop and phone microphones, phone lines, lossy apps, noisy and echoing rooms
and clips cut short (CONTRACT.md, "The people it serves"); RAVDESS has one studio microphone. Each
condition maps a clip's decoded audio (float32 mono 16 kHz, as ``pipeline.audio.load_audio``
returns) to what the backend would receive instead; ``pipeline.features.backend_mfcc`` then runs on
the result. Names are stable: they become metric keys.

Everything is deterministic: randomness (noise draws, which babble talkers and where) comes from a
generator seeded by (``SUITE_SEED``, condition name, clip key), so a rerun gives identical bytes.

The SNR and speech span are defined in pipeline.mixing, which augmentation shares.

Keep this suite disjoint from training augmentation: augmentation (pipeline.augment) must use other
filters and settings, other noise seeds (never ``SUITE_SEED``), other babble talkers than the
evaluation clips' and other room geometries than ``ROOMS``; otherwise a model can be trained on
the test conditions themselves and the suite stops measuring robustness.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from pipeline.audio import FRAME_LENGTH, SAMPLE_RATE
from pipeline.errors import InputError
from pipeline.mixing import (
    BabbleSource,
    add_at_snr,
    at_codec_level,
    hard_clip,
    reverberate,
    shoebox_rir,
    speech_span,
    through_8k,
)

SUITE_SEED = 731_905_113  # used for evaluation conditions only; augmentation seeds must differ


Transform = Callable[[np.ndarray, np.random.Generator, BabbleSource | None], np.ndarray]
Draw = Callable[[int, np.random.Generator, BabbleSource | None], np.ndarray]  # noise of a given length


@dataclass(frozen=True)
class Condition:
    """One named condition; ``group`` lets reports summarise related metric keys together."""

    name: str
    group: str  # clean | mic | phone | codec | noise | room | level | length
    description: str
    transform: Transform


# --- microphones ---------------------------------------------------------------------------------
# Butterworth sections (scipy) for steep low/high/band-pass; RBJ shelves and peaks (pedalboard) for
# gentle tilts. All causal, as a real microphone or line is.


@lru_cache(maxsize=None)
def _butter(order: int, cutoff: float | tuple[float, float], btype: str) -> np.ndarray:
    import scipy.signal

    return scipy.signal.butter(order, cutoff, btype=btype, fs=SAMPLE_RATE, output="sos")


def _sos(order: int, cutoff: float | tuple[float, float], btype: str) -> Transform:
    def transform(audio: np.ndarray, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
        import scipy.signal

        return scipy.signal.sosfilt(_butter(order, cutoff, btype), audio)

    return transform


def _pedalboard(*make: Callable[[], object]) -> Transform:
    def transform(audio: np.ndarray, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
        import pedalboard

        board = pedalboard.Pedalboard([factory() for factory in make])
        return board(np.asarray(audio, dtype=np.float32), SAMPLE_RATE, reset=True)

    return transform


def _shelf(kind: str, hz: float, db: float) -> Callable[[], object]:
    def factory() -> object:
        import pedalboard

        return getattr(pedalboard, kind)(cutoff_frequency_hz=hz, gain_db=db, q=0.7071)

    return factory


def _peak(hz: float, db: float, q: float) -> Callable[[], object]:
    def factory() -> object:
        import pedalboard

        return pedalboard.PeakFilter(cutoff_frequency_hz=hz, gain_db=db, q=q)

    return factory


# --- phone lines and codecs ----------------------------------------------------------------------


def _phone_band(audio: np.ndarray) -> np.ndarray:
    import scipy.signal

    return scipy.signal.sosfilt(_butter(4, (300.0, 3400.0), "bandpass"), at_codec_level(audio))


def _mulaw8(narrow: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.mu_expand(librosa.mu_compress(narrow, mu=255, quantize=True), mu=255, quantize=True)  # 256 levels


def _phone_mulaw(audio: np.ndarray, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
    """G.711-like line: 300-3400 Hz, 8 kHz, 8-bit mu-law, back to 16 kHz."""
    return through_8k(_phone_band(audio), _mulaw8)


def _phone_gsm(audio: np.ndarray, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
    """2G call: 300-3400 Hz, then the GSM 06.10 full-rate codec (which runs at 8 kHz internally)."""
    import pedalboard

    band = np.clip(_phone_band(audio), -1.0, 1.0).astype(np.float32)
    return pedalboard.GSMFullRateCompressor()(band, SAMPLE_RATE, reset=True)


def _mp3_low(audio: np.ndarray, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
    """LAME at VBR quality 9 (its smallest, ~20 kbit/s on RAVDESS speech) on 16 kHz mono: a voice message."""
    import pedalboard

    level = at_codec_level(audio).astype(np.float32)
    return pedalboard.MP3Compressor(vbr_quality=9.0)(level, SAMPLE_RATE, reset=True)


# --- noise ---------------------------------------------------------------------------------------


def _colored(exponent: float) -> Draw:
    def draw(length: int, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
        import colorednoise

        # 1/f^exponent down to 20 Hz and flat below it, so brown noise is rumble, not DC drift.
        return colorednoise.powerlaw_psd_gaussian(exponent, length, fmin=20.0 / SAMPLE_RATE, random_state=rng)

    return draw


def _white(length: int, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
    return rng.standard_normal(length)


def _babble(length: int, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
    if babble is None:
        raise ValueError("babble conditions need a BabbleSource of other speakers' clips")
    return babble.mix(length, rng)


def _noise(draw: Draw, snr_db: float) -> Transform:
    def transform(audio: np.ndarray, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
        return add_at_snr(audio, draw(len(audio), rng, babble), snr_db)

    return transform


# --- rooms ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Room:
    rt60: float  # nominal: T30 of the RIR (Schroeder), about 0.5 s and 1.0 s
    sabine_rt60: float  # what inverse_sabine is asked for: image-source RIRs decay slower than Sabine
    size: tuple[float, float, float]
    source: tuple[float, float, float]
    mic: tuple[float, float, float]


# Fixed geometries (metres): an office with the talker ~2.4 m from the mic, and a hall at ~3.5 m.
ROOMS: Mapping[str, Room] = MappingProxyType(
    {
        "room_05": Room(0.5, 0.46, (5.0, 4.0, 2.8), (1.2, 2.5, 1.6), (3.4, 1.6, 1.2)),
        "room_10": Room(1.0, 0.82, (8.0, 6.0, 3.5), (2.0, 3.8, 1.7), (5.2, 2.3, 1.3)),
    }
)


@lru_cache(maxsize=None)
def room_rir(name: str) -> np.ndarray:
    """The suite room's impulse response (shoebox_rir), computed once per process (~1 s for both rooms)."""
    room = ROOMS[name]
    return shoebox_rir(room.sabine_rt60, room.size, room.source, room.mic)


def _room(name: str) -> Transform:
    def transform(audio: np.ndarray, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
        return reverberate(audio, room_rir(name))

    return transform


# --- level and length ----------------------------------------------------------------------------


def _clipping(audio: np.ndarray, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
    """Hard clip at 10% of the peak: 20 dB of overdrive."""
    return hard_clip(audio, 20.0)


def _speech_only(audio: np.ndarray, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
    start, end = speech_span(audio)
    return audio[start:end]


def _cut(seconds: float) -> Transform:
    def transform(audio: np.ndarray, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
        start, _ = speech_span(audio)
        return audio[: start + int(seconds * SAMPLE_RATE)]

    return transform


def _identity(audio: np.ndarray, rng: np.random.Generator, babble: BabbleSource | None) -> np.ndarray:
    return audio


CONDITIONS: Mapping[str, Condition] = MappingProxyType(
    {
        c.name: c
        for c in (
            Condition("clean", "clean", "the decoded clip unchanged", _identity),
            Condition(
                "tilt_up",
                "mic",
                "bright mic: high shelf +9 dB at 2.5 kHz",
                _pedalboard(_shelf("HighShelfFilter", 2500.0, 9.0)),
            ),
            Condition(
                "tilt_down",
                "mic",
                "dull, boomy mic: low shelf +6 dB at 250 Hz, high shelf -9 dB at 2 kHz",
                _pedalboard(_shelf("LowShelfFilter", 250.0, 6.0), _shelf("HighShelfFilter", 2000.0, -9.0)),
            ),
            Condition("lowpass_3k", "mic", "low-pass: Butterworth order 8 at 3 kHz", _sos(8, 3000.0, "lowpass")),
            Condition("highpass_250", "mic", "high-pass: Butterworth order 4 at 250 Hz", _sos(4, 250.0, "highpass")),
            Condition("resonance", "mic", "resonant peak +10 dB, Q 4 at 1.8 kHz", _pedalboard(_peak(1800.0, 10.0, 4.0))),
            Condition("phone_mulaw", "phone", "300-3400 Hz band, 8 kHz, 8-bit mu-law (G.711-like)", _phone_mulaw),
            Condition("phone_gsm", "phone", "300-3400 Hz band, GSM 06.10 full-rate codec", _phone_gsm),
            Condition("mp3_low", "codec", "MP3 (LAME) VBR quality 9 at 16 kHz, ~20 kbit/s", _mp3_low),
            Condition("pink_20", "noise", "pink (1/f) noise at 20 dB SNR", _noise(_colored(1.0), 20.0)),
            Condition("pink_10", "noise", "pink (1/f) noise at 10 dB SNR", _noise(_colored(1.0), 10.0)),
            Condition("pink_5", "noise", "pink (1/f) noise at 5 dB SNR", _noise(_colored(1.0), 5.0)),
            Condition("brown_10", "noise", "brown (1/f^2) noise at 10 dB SNR", _noise(_colored(2.0), 10.0)),
            Condition("babble_10", "noise", "babble of other speakers at 10 dB SNR", _noise(_babble, 10.0)),
            Condition("white_5", "noise", "white noise at 5 dB SNR", _noise(_white, 5.0)),
            Condition("room_05", "room", "shoebox room, RT60 ~0.5 s, mic 2.4 m away", _room("room_05")),
            Condition("room_10", "room", "shoebox hall, RT60 ~1.0 s, mic 3.5 m away", _room("room_10")),
            Condition("clipping", "level", "hard clip at 10% of peak (20 dB overdrive)", _clipping),
            Condition("speech_only", "length", "leading and trailing room tone cut (speech span)", _speech_only),
            Condition("cut_1s", "length", "recording stops 1 s after the speech starts", _cut(1.0)),
            Condition("cut_2s", "length", "recording stops 2 s after the speech starts", _cut(2.0)),
        )
    }
)


def apply(name: str, audio: np.ndarray, key: str, babble: BabbleSource | None = None) -> np.ndarray:
    """The clip under condition ``name``: float32, 1-D, finite, at least one 400-sample frame.

    ``key`` identifies the clip (e.g. its path relative to the data root) and seeds the condition's
    randomness together with ``name``. Raises InputError(key, reason) for input the backend could not
    use either (not 1-D, non-finite, shorter than a frame, silent) and for a condition that leaves
    only silence; ValueError for an unknown name or a babble condition without ``babble``.
    """
    if name not in CONDITIONS:
        raise ValueError(f"unknown condition {name!r}; known: {', '.join(CONDITIONS)}")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise InputError(key, f"expected 1-D audio, got shape {audio.shape}")
    if len(audio) < FRAME_LENGTH:
        raise InputError(key, f"{len(audio)} samples is shorter than one {FRAME_LENGTH}-sample frame")
    if not np.all(np.isfinite(audio)):
        raise InputError(key, "non-finite samples (NaN or Inf)")
    if not np.any(audio):
        raise InputError(key, "silent throughout")
    rng = np.random.default_rng([SUITE_SEED, zlib.crc32(name.encode()), zlib.crc32(key.encode())])
    out = np.asarray(CONDITIONS[name].transform(audio.astype(np.float32), rng, babble), dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(out)):
        raise InputError(key, f"condition {name} produced non-finite samples")
    if not np.any(out):
        raise InputError(key, f"condition {name} leaves only silence")
    if len(out) < FRAME_LENGTH:  # a very short speech span: zeros, which the backend skips, complete the frame
        out = np.pad(out, (0, FRAME_LENGTH - len(out)))
    return out
