"""Cached augmentation variants (params extract.augment): white noise at an SNR, time-stretch,
pitch-shift, and noise of a random colour per clip (white to brown) at an SNR.

Each variant is computed once at extract time from the decoded 16 kHz audio and stored with
variant > 0; only training actors' variants are ever read (pipeline.dataset).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from pipeline.audio import SAMPLE_RATE
from pipeline.config import AugmentConfig


@dataclass(frozen=True)
class Variant:
    index: int  # 1.. in params order; 0 is the original clip
    kind: str  # noise | stretch | pitch | colored
    value: float  # SNR in dB, stretch rate, or semitones

    @property
    def name(self) -> str:
        return f"{self.kind}={self.value:g}"


def variants(config: AugmentConfig) -> list[Variant]:
    """The variants that params ask for, numbered from 1 in a fixed order."""
    specs = [("noise", v) for v in config.noise_snr_db]
    specs += [("stretch", v) for v in config.time_stretch]
    specs += [("pitch", v) for v in config.pitch_shift]
    specs += [("colored", v) for v in config.colored_noise_snr_db]
    return [Variant(i, kind, value) for i, (kind, value) in enumerate(specs, start=1)]


def apply(audio: np.ndarray, variant: Variant, seed: int, key: str) -> np.ndarray:
    """The variant of one clip; noise is seeded by (seed, clip path, variant) so reruns agree."""
    import librosa

    if variant.kind in ("noise", "colored"):
        rng = np.random.default_rng([seed, zlib.crc32(key.encode()), variant.index])
        power = float(np.mean(audio.astype(np.float64) ** 2)) / 10 ** (variant.value / 10)
        if variant.kind == "noise":
            noise = rng.standard_normal(audio.shape) * np.sqrt(power)
        else:  # 1/f^e noise, e uniform in [0, 2]: white, pink, brown and between; flat below 20 Hz
            import colorednoise

            shaped = colorednoise.powerlaw_psd_gaussian(rng.uniform(0.0, 2.0), len(audio), fmin=20 / SAMPLE_RATE, random_state=rng)
            noise = shaped * np.sqrt(power / np.mean(shaped**2))
        return (audio + noise).astype(np.float32)
    if variant.kind == "stretch":
        return librosa.effects.time_stretch(audio, rate=variant.value)
    return librosa.effects.pitch_shift(audio, sr=SAMPLE_RATE, n_steps=variant.value)
