"""Cached augmentation variants (params extract.augment): white noise at an SNR, time-stretch,
pitch-shift, noise of a random colour per clip (white to brown) at an SNR, babble at an SNR, and hard
clipping.

Babble is made of the same speaker's other clips, each resampled by 2-5 semitones up or down (pitch and
tempo together: other voices, other speaking rates), never of other speakers: the store does not know
the split, and another actor's voice in a training clip's babble could be a test actor's. The
evaluation suite's babble (pipeline.conditions) is other speakers' at another SNR: what the model meets
there, it has not memorised.

Each variant is computed once at extract time from the decoded 16 kHz audio and stored with
variant > 0; only training actors' variants are ever read (pipeline.dataset).
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.audio import SAMPLE_RATE
from pipeline.conditions import BabbleSource, add_at_snr, hard_clip
from pipeline.config import AugmentConfig


@dataclass(frozen=True)
class Variant:
    index: int  # 1.. in params order; 0 is the original clip
    kind: str  # noise | stretch | pitch | colored | babble | clipping
    value: float  # SNR in dB, stretch rate, semitones, or overdrive in dB

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
    if variant.kind == "stretch":
        return librosa.effects.time_stretch(audio, rate=variant.value)
    return librosa.effects.pitch_shift(audio, sr=SAMPLE_RATE, n_steps=variant.value)


def resampled_voice(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The clip played 2-5 semitones higher or lower (soxr): pitch and tempo move together, as on tape."""
    import soxr

    semitones = rng.uniform(2.0, 5.0) * rng.choice([-1.0, 1.0])
    return soxr.resample(clip, SAMPLE_RATE * 2 ** (semitones / 12), SAMPLE_RATE)
