"""Cached augmentation variants (params extract.augment): white noise at an SNR, time-stretch,
pitch-shift, noise of a random colour per clip (white to brown) at an SNR, babble at an SNR, hard
clipping, a reverberant room, a narrowband phone line, speed perturbation, and a voice message through
the Opus codec.

Babble is made of the same speaker's other clips, each resampled by 2-5 semitones up or down (pitch and
tempo together: other voices, other speaking rates), never of other speakers: the store does not know
the split, and another actor's voice in a training clip's babble could be a test actor's. The
evaluation suite's babble (pipeline.conditions) is other speakers' at another SNR: what the model meets
there, it has not memorised. Likewise the rooms are drawn at random (ROOM_POOL per RT60, other
geometries than the suite's two), and the phone line has random band edges and a linear quantiser
where the suite's lines are 300-3400 Hz with mu-law or GSM. Speed perturbation plays the clip faster or
slower, pitch and tempo together (Ko et al. 2015, Kaldi's 0.9/1.1): another speaker's vocal tract length
and rate, the speaker variety that pitch shift alone gives only half of. Opus is what browsers and
messaging apps record voice in (WebRTC, MediaRecorder), another codec family than the suite's MP3 and GSM.

Each variant is computed once at extract time from the decoded 16 kHz audio and stored with
variant > 0; only training actors' variants are ever read (pipeline.dataset).
"""
from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile

from pipeline.audio import SAMPLE_RATE
from pipeline.config import AugmentConfig
from pipeline.mixing import BabbleSource, add_at_snr, at_codec_level, hard_clip, reverberate, shoebox_rir, through_8k


@dataclass(frozen=True)
class Variant:
    index: int  # 1.. in params order; 0 is the original clip
    kind: str  # noise | stretch | pitch | colored | babble | clipping | room | phone | speed | opus
    value: float  # SNR in dB, stretch rate, semitones, overdrive in dB, RT60 in s, bits, playback rate, or kbit/s

    @property
    def name(self) -> str:
        return f"{self.kind}={self.value:g}"


def variants(config: AugmentConfig) -> list[Variant]:
    """The variants that params ask for, numbered from 1 in a fixed order."""
    specs = [("noise", v) for v in config.noise_snr_db]
    specs += [("stretch", v) for v in config.time_stretch]
    specs += [("pitch", v) for v in config.pitch_shift]
    specs += [("colored", v) for v in config.colored_noise_snr_db]
    specs += [("babble", v) for v in config.babble_snr_db]
    specs += [("clipping", v) for v in config.clipping_db]
    specs += [("room", v) for v in config.room_rt60]
    specs += [("phone", v) for v in config.phone_bits]
    specs += [("speed", v) for v in config.speed]
    specs += [("opus", v) for v in config.opus_kbps]  # last: the earlier kinds keep their numbers and draws
    return [Variant(i, kind, value) for i, (kind, value) in enumerate(specs, start=1)]


def apply(audio: np.ndarray, variant: Variant, seed: int, key: str, talkers: Sequence[np.ndarray] = ()) -> np.ndarray:
    """The variant of one clip; random draws are seeded by (seed, clip path, variant) so reruns agree.
    Babble needs ``talkers``: the speaker's other clips (extract.babble_talkers)."""
    import librosa

    rng = np.random.default_rng([seed, zlib.crc32(key.encode()), variant.index])
    if variant.kind in ("noise", "colored"):
        power = float(np.mean(audio.astype(np.float64) ** 2)) / 10 ** (variant.value / 10)
        if variant.kind == "noise":
            noise = rng.standard_normal(audio.shape) * np.sqrt(power)
        else:  # 1/f^e noise, e uniform in [0, 2]: white, pink, brown and between; flat below 20 Hz
            import colorednoise

            shaped = colorednoise.powerlaw_psd_gaussian(rng.uniform(0.0, 2.0), len(audio), fmin=20 / SAMPLE_RATE, random_state=rng)
            noise = shaped * np.sqrt(power / np.mean(shaped**2))
        return (audio + noise).astype(np.float32)
    if variant.kind == "babble":
        if not talkers:
            raise ValueError(f"{key}: a babble variant needs the speaker's clips (extract.babble_talkers)")
        voices = [resampled_voice(clip, rng) for clip in talkers]
        mix = BabbleSource(voices, talkers=len(voices)).mix(len(audio), rng)
        return add_at_snr(audio, mix, variant.value).astype(np.float32)
    if variant.kind == "clipping":
        return hard_clip(audio, variant.value).astype(np.float32)
    if variant.kind == "room":
        return reverberate(audio, training_rir(seed, variant.value, int(rng.integers(ROOM_POOL)))).astype(np.float32)
    if variant.kind == "phone":
        return phone_line(audio, int(variant.value), rng)
    if variant.kind == "speed":
        return played_at(audio, variant.value)
    if variant.kind == "opus":
        return through_opus(audio, variant.value * 1.5 ** rng.uniform(-1.0, 1.0))
    if variant.kind == "stretch":
        return librosa.effects.time_stretch(audio, rate=variant.value)
    return librosa.effects.pitch_shift(audio, sr=SAMPLE_RATE, n_steps=variant.value)


def resampled_voice(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The clip played 2-5 semitones higher or lower (soxr): pitch and tempo move together, as on tape."""
    semitones = rng.uniform(2.0, 5.0) * rng.choice([-1.0, 1.0])
    return played_at(clip, 2 ** (semitones / 12))


def played_at(audio: np.ndarray, rate: float) -> np.ndarray:
    """The clip played ``rate`` times as fast (soxr): 1/rate as long, every frequency times rate."""
    import soxr

    return soxr.resample(audio, SAMPLE_RATE * rate, SAMPLE_RATE).astype(np.float32)


def opus_stream(audio: np.ndarray, kbps: float) -> bytes:
    """The clip at the codec level as an Ogg Opus stream of about ``kbps`` (libsndfile through soundfile).
    libsndfile maps its compression level linearly onto Opus bitrates from 256 kbit/s (level 0) to
    6 kbit/s (level 1); below ~12 kbit/s Opus also narrows the band by itself."""
    level = float(np.clip((256.0 - kbps) / 250.0, 0.0, 1.0))
    buffer = io.BytesIO()
    soundfile.write(buffer, at_codec_level(audio).astype(np.float32), SAMPLE_RATE, format="OGG", subtype="OPUS", compression_level=level)
    return buffer.getvalue()


def through_opus(audio: np.ndarray, kbps: float) -> np.ndarray:
    """The clip encoded (opus_stream) and decoded, cut or padded to its length."""
    decoded = soundfile.read(io.BytesIO(opus_stream(audio, kbps)), dtype="float32")[0]
    return np.pad(decoded[: len(audio)], (0, max(0, len(audio) - len(decoded))))


ROOM_POOL = 16  # rooms per RT60: an RIR costs 0.1-1 s, so each clip draws one of a pool rather than its own


@lru_cache(maxsize=None)
def training_rir(seed: int, rt60: float, number: int) -> np.ndarray:
    """Room ``number`` of the pool for ``rt60`` (Sabine, s): a shoebox 4-10 x 3.5-8 x 2.5-4 m, talker and
    microphone 0.5 m or more from the walls and from each other, drawn by (seed, rt60, number)."""
    rng = np.random.default_rng([seed, zlib.crc32(f"room {rt60:g}".encode()), number])
    size = rng.uniform([4.0, 3.5, 2.5], [10.0, 8.0, 4.0])
    while True:
        source = np.append(rng.uniform(0.5, size[:2] - 0.5), rng.uniform(1.2, 1.9))
        mic = np.append(rng.uniform(0.5, size[:2] - 0.5), rng.uniform(0.7, 1.5))
        if np.linalg.norm(source - mic) >= 0.5:
            return shoebox_rir(rt60, size, source, mic)


def phone_line(audio: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    """A narrowband line: at the codec level, a Butterworth band-pass of order 2-6 from 150-450 Hz to
    2900-3800 Hz (scipy), 8 kHz (soxr), quantised to ``bits`` (pedalboard.Bitcrush), back to 16 kHz."""
    import pedalboard
    import scipy.signal

    edges = (rng.uniform(150.0, 450.0), rng.uniform(2900.0, 3800.0))
    sos = scipy.signal.butter(int(rng.integers(1, 4)), edges, btype="bandpass", fs=SAMPLE_RATE, output="sos")
    crush = pedalboard.Bitcrush(bit_depth=bits)
    band = scipy.signal.sosfilt(sos, at_codec_level(audio))
    return through_8k(band, lambda narrow: crush(narrow.astype(np.float32), 8000, reset=True)).astype(np.float32)
