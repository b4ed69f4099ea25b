"""Synthetic RAVDESS-named corpora for tests: small, fast, and learnable (each emotion its own pitch)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def clip_name(emotion: int, intensity: int, statement: int, repetition: int, actor: int) -> str:
    return f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}"


def synth_clip(emotion: int, actor: int, take: int, seconds: float = 0.6, sr: int = SR) -> np.ndarray:
    """A voiced-ish tone whose pitch and loudness contour encode the emotion, with silence around it."""
    rng = np.random.default_rng([emotion, actor, take])
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120.0 * (1.0 + 0.12 * emotion) * (1.0 + 0.03 * (actor % 3))
    tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in (1, 2, 3))
    envelope = np.sin(np.pi * t / seconds) ** (1 + emotion % 3)
    audio = 0.3 * tone * envelope + 0.002 * rng.standard_normal(t.size)
    pad = np.zeros(int(0.1 * sr))
    return np.concatenate([pad, audio, pad]).astype(np.float32)


def make_corpus(
    root: Path,
    actors: range | list[int] = range(1, 9),
    emotions: range | list[int] = range(1, 9),
    takes: int = 2,
    sr: int = SR,
    fmt: str = "wav",
    seconds: float = 0.6,
) -> list[Path]:
    """Write Actor_XX/<ravdess name>.<fmt> files; `takes` (statement, repetition) pairs per emotion."""
    paths = []
    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for emotion in emotions:
            for take in range(takes):
                statement, repetition = take // 2 + 1, take % 2 + 1
                audio = synth_clip(emotion, actor, take, seconds, SR)
                if sr != SR:
                    import librosa

                    audio = librosa.resample(audio, orig_sr=SR, target_sr=sr)
                path = folder / f"{clip_name(emotion, 1, statement, repetition, actor)}.{fmt}"
                sf.write(path, audio, sr, subtype="PCM_16")
                paths.append(path)
    return paths
