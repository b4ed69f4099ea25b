"""The evaluation conditions: deterministic, at their nominal SNRs, responses, lengths and decay."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from pipeline import conditions, mixing
from pipeline.audio import FRAME_LENGTH, SAMPLE_RATE, load_audio
from pipeline.conditions import CONDITIONS, ROOMS, apply
from pipeline.mixing import BabbleSource, speech_power
from pipeline.errors import InputError
from pipeline.features import backend_mfcc
from tests.helpers import synth_clip, t30

SR = SAMPLE_RATE
NOISE_SNR = {"pink_20": 20, "pink_10": 10, "pink_5": 5, "brown_10": 10, "babble_10": 10, "white_5": 5}
RANDOM = set(NOISE_SNR)


def _db(ratio: float) -> float:
    return float(10 * np.log10(max(ratio, 1e-30)))


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, dtype=np.float64) ** 2))


@pytest.fixture(scope="module")
def babble() -> BabbleSource:
    """Other 'speakers': synthetic clips of actors 11-16."""
    return BabbleSource([synth_clip(e, a, 0, seconds=1.0) for a in range(11, 17) for e in (2, 5)])


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return synth_clip(4, 1, 0, seconds=2.0)


def _framed_speech(lead: float = 0.5, speech: float = 3.0, tail: float = 0.5) -> np.ndarray:
    """Room tone (-80 dB), a voiced 3 s stretch, room tone: the speech span is known to the sample."""
    rng = np.random.default_rng(7)
    t = np.arange(int(speech * SR)) / SR
    voiced = 0.4 * np.sin(2 * np.pi * 150 * t) + 0.2 * np.sin(2 * np.pi * 450 * t)
    room = lambda seconds: 1e-4 * rng.standard_normal(int(seconds * SR))  # noqa: E731
    return np.concatenate([room(lead), voiced, room(tail)]).astype(np.float32)


def test_suite_names_are_stable_snake_case() -> None:
    required = {
        "clean", "tilt_up", "tilt_down", "lowpass_3k", "highpass_250", "resonance", "phone_mulaw",
        "phone_gsm", "mp3_low", "pink_20", "pink_10", "pink_5", "brown_10", "babble_10", "white_5",
        "room_05", "room_10", "clipping", "speech_only", "cut_1s", "cut_2s",
    }  # fmt: skip
    assert required <= set(CONDITIONS)
    assert list(CONDITIONS)[0] == "clean"
    for name, condition in CONDITIONS.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name) and condition.name == name
        assert condition.group in {"clean", "mic", "phone", "codec", "noise", "room", "level", "length"}


def test_deterministic_and_keyed(clip: np.ndarray, babble: BabbleSource) -> None:
    for name in CONDITIONS:
        first = apply(name, clip, "Actor_01/a.wav", babble)
        assert first.tobytes() == apply(name, clip.copy(), "Actor_01/a.wav", babble).tobytes(), name
        other = apply(name, clip, "Actor_01/b.wav", babble)
        if name in RANDOM:  # another clip gets another noise draw
            noise_a, noise_b = first - clip, other - clip
            assert abs(np.corrcoef(noise_a, noise_b)[0, 1]) < 0.5, name
        else:
            assert first.tobytes() == other.tobytes(), name
    # Conditions do not share draws: pink_10 is not pink_20's noise scaled up.
    noise_20 = apply("pink_20", clip, "k") - clip
    noise_10 = apply("pink_10", clip, "k") - clip
    assert abs(np.corrcoef(noise_20, noise_10)[0, 1]) < 0.5


def test_speech_power_is_the_speech_span_mean_power() -> None:
    audio = _framed_speech(lead=1.0, tail=1.0)
    assert abs(_db(speech_power(audio) / (0.4**2 / 2 + 0.2**2 / 2))) < 0.5
    assert _db(speech_power(audio) / _power(audio)) > 1.5  # the whole clip's mean would be 1.8 dB lower


@pytest.mark.parametrize("name", sorted(NOISE_SNR))
def test_noise_at_nominal_snr(name: str, babble: BabbleSource) -> None:
    for key, audio in [("a", synth_clip(1, 2, 0, seconds=2.0)), ("b", _framed_speech())]:
        out = apply(name, audio, key, babble)
        snr = _db(speech_power(audio) / _power(out.astype(np.float64) - audio))
        assert abs(snr - NOISE_SNR[name]) < 0.5, (key, snr)


@pytest.mark.parametrize(("name", "slope"), [("white_5", 0.0), ("pink_10", -12.0), ("brown_10", -24.0)])
def test_noise_colour(name: str, slope: float) -> None:
    """Power from 250 Hz to 4 kHz (4 octaves) falls 0, 3 or 6 dB per octave."""
    audio = np.full(4 * SR, 0.1, dtype=np.float32)
    freqs, psd = scipy.signal.welch(apply(name, audio, "k") - audio, SR, nperseg=2048)
    level = lambda hz: np.mean(psd[(freqs > hz / 1.2) & (freqs < hz * 1.2)])  # noqa: E731
    assert abs(_db(level(4000) / level(250)) - slope) < 3.0


def test_babble_sums_distinct_talkers() -> None:
    pitches = (200, 300, 400, 500, 600, 700)
    tones = [(0.3 * np.sin(2 * np.pi * hz * np.arange(SR) / SR)).astype(np.float32) for hz in pitches]
    mix = BabbleSource(tones, talkers=4).mix(2 * SR, np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(mix)) / len(mix)
    present = [hz for hz in pitches if spectrum[2 * hz] > 0.1]
    assert len(present) == 4
    with pytest.raises(ValueError):
        BabbleSource([np.zeros(SR, dtype=np.float32)])
    with pytest.raises(ValueError, match="BabbleSource"):
        apply("babble_10", synth_clip(1, 1, 0), "k")


def _gain(name: str, hz: float) -> float:
    """Steady-state gain (dB) of a condition on a 0.5-amplitude tone, transients excluded."""
    tone = (0.5 * np.sin(2 * np.pi * hz * np.arange(SR) / SR)).astype(np.float32)
    mid = slice(SR // 4, 3 * SR // 4)
    return _db(_power(apply(name, tone, "tone")[mid]) / _power(tone[mid]))


def test_microphone_responses() -> None:
    assert _gain("lowpass_3k", 5000) < -20 and abs(_gain("lowpass_3k", 500)) < 1
    assert abs(_gain("lowpass_3k", 3000) + 3) < 1  # the corner where the name says
    assert _gain("highpass_250", 80) < -20 and abs(_gain("highpass_250", 1000)) < 1
    assert abs(_gain("highpass_250", 250) + 3) < 1
    assert abs(_gain("tilt_up", 6000) - 9) < 1.5 and abs(_gain("tilt_up", 300)) < 1
    assert abs(_gain("tilt_down", 6000) + 9) < 1.5 and _gain("tilt_down", 100) > 4
    assert abs(_gain("resonance", 1800) - 10) < 1 and abs(_gain("resonance", 500)) < 1
    assert abs(_gain("resonance", 5000)) < 1


@pytest.mark.parametrize("name", ["phone_mulaw", "phone_gsm"])
def test_phone_band(name: str) -> None:
    passband = _gain(name, 1000)
    assert abs(passband) < 1.5  # the line's gain stage sets the tone's 0.5 peak
    assert _gain(name, 4500) - passband < -20
    assert _gain(name, 100) - passband < -20


def test_mp3_is_lossy_but_aligned() -> None:
    audio = synth_clip(6, 3, 1, seconds=2.0)
    out = apply("mp3_low", audio, "k")
    assert len(out) == len(audio)
    level = audio * (mixing.CODEC_PEAK / np.max(np.abs(audio)))
    assert np.corrcoef(out, level)[0, 1] > 0.95  # no delay, no inversion
    assert -45 < _db(_power(out - level) / _power(level)) < -15  # but coded, not copied


def test_lengths() -> None:
    audio = _framed_speech(lead=0.5, speech=3.0, tail=0.5)
    assert abs(len(apply("cut_1s", audio, "k")) - 1.5 * SR) < 0.1 * SR
    assert abs(len(apply("cut_2s", audio, "k")) - 2.5 * SR) < 0.1 * SR
    assert abs(len(apply("speech_only", audio, "k")) - 3.0 * SR) < 0.15 * SR
    padded = synth_clip(2, 1, 0, seconds=1.0)  # 0.1 s of silence on each side
    assert len(apply("speech_only", padded, "k")) < len(padded) - 0.1 * SR
    for name in CONDITIONS:
        if CONDITIONS[name].group != "length":
            assert len(apply(name, audio, "k", None if name != "babble_10" else BabbleSource([padded]))) == len(audio)


def test_clipping_peak(clip: np.ndarray) -> None:
    out = apply("clipping", clip, "k")
    peak = float(np.max(np.abs(clip)))
    assert np.isclose(np.max(np.abs(out)), 0.1 * peak, rtol=1e-6)
    assert np.mean(np.abs(out) >= 0.1 * peak * (1 - 1e-6)) > 0.2  # overdriven most of the time


@pytest.mark.parametrize("name", sorted(ROOMS))
def test_room_decay(name: str, clip: np.ndarray) -> None:
    impulse = np.zeros(3 * SR, dtype=np.float32)
    impulse[0] = 1.0
    response = apply(name, impulse, "k")
    assert abs(t30(response) / ROOMS[name].rt60 - 1) < 0.15
    assert np.argmax(np.abs(response)) < 64  # direct path first, no added delay beyond the filter's
    # Reverberant energy spills into the clip's trailing silence, which was exact zeros.
    out = apply(name, clip, "k")
    tail = slice(len(clip) - int(0.08 * SR), len(clip))
    assert not np.any(clip[tail]) and _db(_power(out[tail]) / speech_power(clip)) > -40


def test_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="silent"):
        apply("clean", np.zeros(SR, dtype=np.float32), "quiet.wav")
    with pytest.raises(InputError, match="shorter"):
        apply("clean", np.ones(FRAME_LENGTH - 1, dtype=np.float32), "short.wav")
    with pytest.raises(InputError, match="non-finite"):
        apply("clean", np.full(SR, np.nan, dtype=np.float32), "nan.wav")
    with pytest.raises(ValueError, match="unknown condition"):
        apply("nope", np.ones(SR, dtype=np.float32), "k")
    mute = conditions.Condition("mute", "level", "everything to zero", lambda audio, rng, babble: audio * 0)
    monkeypatch.setattr(conditions, "CONDITIONS", {"mute": mute})
    with pytest.raises(InputError, match="only silence") as err:
        apply("mute", np.ones(SR, dtype=np.float32), "muted.wav")
    assert err.value.path == "muted.wav"


def test_every_condition_on_a_real_clip(real_ravdess: Path) -> None:
    (path,) = sorted((real_ravdess / "Actor_01").glob("03-01-05-02-01-01-01.*"))  # .flac here, .wav from Zenodo
    audio = load_audio(path)
    others = [load_audio(p) for p in sorted((real_ravdess / "Actor_02").iterdir())[:3]]
    others += [load_audio(p) for p in sorted((real_ravdess / "Actor_03").iterdir())[:3]]
    babble = BabbleSource(others)
    for name in CONDITIONS:
        out = apply(name, audio, f"Actor_01/{path.name}", babble)
        assert out.dtype == np.float32 and out.ndim == 1 and np.all(np.isfinite(out)), name
        mfcc = backend_mfcc(out)
        assert mfcc.shape[1] == 13 and len(mfcc) > 0 and np.all(np.isfinite(mfcc)), name
