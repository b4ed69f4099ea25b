"""The extract stage as DVC runs it: `python -m pipeline.extract` in a project folder with its params.yaml.

Every subprocess run of this file is prepared and launched together by the `runs` fixture (each one
spends ~1.5 s importing), so the file stays fast on a 2-core CI machine.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from pipeline import augment, conditions, mixing
from pipeline import extract as extract_module
from pipeline.extract import extract
from tests.helpers import (
    REPO,
    assert_no_files,
    assert_ok,
    assert_one_line_error,
    clip_name,
    good_audio,
    make_corpus,
    non_finite,
    not_audio,
    run_stage,
    serial_config,
    session_processes,
    sha256,
    synth_clip,
    t30,
    truncated_header,
    write_wav,
)
from tests.helpers import project_folder as project

Run = tuple[Path, "subprocess.CompletedProcess[str]"]  # (project folder, finished process)


def run_extract(cwd: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return run_stage(cwd, "extract", "--data", data, "--out", "out/mfcc.h5", "--report", "out/report.json")


def read_store(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        data = {"mfcc": f["mfcc"][:], "offsets": f["offsets"][:]}
        for key in f["clips"]:
            data[key] = f["clips"][key].asstr()[:] if key in ("path", "augment") else f["clips"][key][:]
    return data


# case -> (file relative to the data root, writer, words the reason must contain)
BAD: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    "truncated": (f"Actor_01/{clip_name(8, 1, 1, 1, 1)}.wav", truncated_header, ("cannot decode",)),
    "not_audio": (f"Actor_01/{clip_name(8, 1, 1, 2, 1)}.wav", not_audio, ("cannot decode",)),
    "bad_name": ("Actor_01/recording.wav", lambda p: write_wav(p, good_audio()), ("not a RAVDESS file name",)),
    "bad_emotion": (f"Actor_01/{clip_name(9, 1, 1, 1, 1)}.wav", lambda p: write_wav(p, good_audio()),
                    ("unknown emotion code 09",)),
    "too_short": (f"Actor_02/{clip_name(5, 1, 1, 1, 2)}.wav", lambda p: write_wav(p, good_audio()[:399]),
                  ("399 samples", "shorter than one 400-sample frame")),
    "all_zero": (f"Actor_02/{clip_name(6, 1, 1, 1, 2)}.wav", lambda p: write_wav(p, np.zeros(8000, np.float32)),
                 ("silent",)),
    "nan": (f"Actor_02/{clip_name(7, 1, 1, 1, 2)}.wav", non_finite(np.nan), ("non-finite samples",)),
}
AUGMENT = {
    "seed": 0, "noise_snr_db": [20], "time_stretch": [1.1], "pitch_shift": [2], "colored_noise_snr_db": [10],
    "babble_snr_db": [10], "clipping_db": [20], "room_rt60": [0.4], "phone_bits": [8], "speed": [1.1], "opus_kbps": [12],
}


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 actors x 4 emotions x 2 takes of 0.3 s: 16 clips, enough for 4 chunks over 2 workers."""
    root = tmp_path_factory.mktemp("small")
    make_corpus(root, actors=[1, 2], emotions=[1, 2, 3, 4], takes=2, seconds=0.3)
    return root


def _jobs(base: Path, small: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (project folder, data folder) for every scenario, written out and ready to run."""
    one = base / "one_clip"
    make_corpus(one, actors=[1], emotions=[1], takes=1, seconds=0.3)
    jobs = {
        "det_a": (project(base / "det_a", extract={"workers": 2}), small),
        "serial": (project(base / "serial", extract={"workers": 1}), small),
        "aug_a": (project(base / "aug_a", extract={"workers": 2, "augment": AUGMENT}), small),
    }
    for case, (rel, write, _) in BAD.items():  # on_error: error (the default), one bad clip each
        shutil.copytree(one, base / f"data_{case}")
        write(base / f"data_{case}" / rel)
        jobs[f"bad_{case}"] = (project(base / f"bad_{case}"), base / f"data_{case}")
    shutil.copytree(small, base / "data_all_bad")
    for rel, write, _ in BAD.values():
        write(base / "data_all_bad" / rel)
    jobs["skip"] = (project(base / "skip", extract={"on_error": "skip", "workers": 2}), base / "data_all_bad")
    (base / "data_empty/Actor_01").mkdir(parents=True)
    (base / "data_empty/Actor_01/notes.txt").write_text("no audio here")
    for folder in ("empty", "missing"):
        for mode in ("error", "skip"):
            cwd = project(base / f"{folder}_{mode}", extract={"on_error": mode})
            jobs[f"{folder}_{mode}"] = (cwd, base / f"data_{folder}")
    BAD["all_zero"][1](base / "data_only_bad" / BAD["all_zero"][0])
    jobs["only_bad"] = (project(base / "only_bad", extract={"on_error": "skip"}), base / "data_only_bad")
    return jobs


@pytest.fixture(scope="module")
def runs(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """name -> (project folder, process); det_b and aug_b rerun det_a and aug_a over a second later."""
    base = tmp_path_factory.mktemp("runs")
    jobs = _jobs(base, small_corpus)
    with ThreadPoolExecutor(max(2, os.cpu_count() or 1)) as pool:
        futures = {name: pool.submit(run_extract, cwd, data) for name, (cwd, data) in jobs.items()}
        done = {name: future.result() for name, future in futures.items()}
        time.sleep(1.1)  # a store that recorded times would now differ
        for name in ("det", "aug"):
            jobs[f"{name}_b"] = (project(base / f"{name}_b"), small_corpus)
            shutil.copy(base / f"{name}_a/params.yaml", base / f"{name}_b/params.yaml")
        futures = {name: pool.submit(run_extract, jobs[name][0], small_corpus) for name in ("det_b", "aug_b")}
        done.update({name: future.result() for name, future in futures.items()})
    return {name: (jobs[name][0], done[name]) for name in jobs}


# ---- determinism, parallelism, atomicity -------------------------------------------------------


def test_rerun_is_byte_identical(runs: dict[str, Run]) -> None:
    (a, proc_a), (b, proc_b) = runs["det_a"], runs["det_b"]
    assert_ok(proc_a)
    assert_ok(proc_b)
    assert sha256(a / "out/mfcc.h5") == sha256(b / "out/mfcc.h5")
    assert sha256(a / "out/report.json") == sha256(b / "out/report.json")
    assert sorted(p.name for p in (a / "out").iterdir()) == ["mfcc.h5", "report.json"]  # no temp files


def test_a_log_gets_progress_lines_where_a_terminal_gets_a_bar(runs: dict[str, Run]) -> None:
    """DVC's log is no terminal: tqdm stays off there, and extract says how far it got on stdout."""
    _, proc = runs["det_a"]
    assert_ok(proc)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("extract: ")]
    assert lines and lines[-1].startswith("extract: 16/16 clips,"), proc.stdout
    assert "it/s" not in proc.stderr and "clip/s" not in proc.stderr  # no bar in the log


def test_one_and_two_workers_give_identical_stores(runs: dict[str, Run]) -> None:
    (serial, proc), (parallel, _) = runs["serial"], runs["det_a"]
    assert_ok(proc)
    assert sha256(serial / "out/mfcc.h5") == sha256(parallel / "out/mfcc.h5")


def test_no_augment_params_store_originals_only(runs: dict[str, Run], small_corpus: Path) -> None:
    cwd, proc = runs["det_a"]
    assert_ok(proc)
    store = read_store(cwd / "out/mfcc.h5")
    assert set(store["variant"].tolist()) == {0} and set(store["augment"].tolist()) == {""}
    with h5py.File(cwd / "out/mfcc.h5", "r") as f:  # every kind empty: nothing drawn, whatever kinds exist
        assert json.loads(f.attrs["augment"]) == {"seed": 0, "variants": []}
    assert len(store["path"]) == len(list(small_corpus.rglob("*.wav")))
    report = json.loads((cwd / "out/report.json").read_text())
    assert report["clips"] == report["sequences"] == 16 and report["skipped"] == []


def test_failed_write_leaves_nothing(small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that dies half-way through writing the store leaves neither output nor temp files."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(h5py.Group, "create_group", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract(small_corpus, tmp_path / "out/mfcc.h5", tmp_path / "out/report.json", serial_config())
    assert_no_files(tmp_path / "out")


def test_failed_report_leaves_no_store(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store and its report appear together or not at all (DVC would cache a store without report)."""

    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pipeline.extract.write_json", disk_full)
    with pytest.raises(OSError):
        extract(small_corpus, tmp_path / "out/mfcc.h5", tmp_path / "out/report.json", serial_config())
    assert_no_files(tmp_path / "out")


def test_ctrl_c_during_extraction(synth_corpus: Path, tmp_path: Path) -> None:
    """Ctrl-C while the pool works: exit 130, one line, no traceback, no output, no worker left behind."""
    cwd = project(tmp_path, extract={"workers": 2, "augment": {"seed": 0, "pitch_shift": [2, -2, 1, -1]}})
    args = ["--data", synth_corpus, "--out", "out/mfcc.h5", "--report", "out/report.json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.extract", *map(str, args)], cwd=cwd, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, like a terminal's foreground job
        # and, like one, Ctrl-C at its default: a runner started in the background (`cmd &`) ignores SIGINT,
        # children inherit that, and the extraction then ran to its end (twice in this project's CI clone)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while len(session_processes(proc.pid)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # until the parent and its two pool workers run
        assert proc.poll() is None, "extraction finished before it could be interrupted"
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "error: interrupted", stderr
    assert_no_files(cwd / "out")
    deadline = time.monotonic() + 10
    while session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert session_processes(proc.pid) == [], "pool workers outlived the interrupted run"


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD)
def test_bad_clip_stops_the_run(case: str, runs: dict[str, Run]) -> None:
    rel, _, needles = BAD[case]
    cwd, proc = runs[f"bad_{case}"]
    line = assert_one_line_error(proc, rel, *needles)
    assert re.fullmatch(r": \S.{3,}", line.split(rel, 1)[1]), line  # "error: <file>: <reason>"
    assert_no_files(cwd / "out")


def test_skip_lists_every_bad_clip_and_stores_the_rest(runs: dict[str, Run], small_corpus: Path) -> None:
    cwd, proc = runs["skip"]
    assert_ok(proc)
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    report = json.loads((cwd / "out/report.json").read_text())
    skipped = {s["path"]: s["reason"] for s in report["skipped"]}
    assert sorted(skipped) == sorted(rel for rel, _, _ in BAD.values())
    for rel, _, needles in BAD.values():
        assert skipped[rel] and all(n in skipped[rel] for n in needles), (rel, skipped[rel])
    good = sorted(p.relative_to(small_corpus).as_posix() for p in small_corpus.rglob("*.wav"))
    assert sorted(read_store(cwd / "out/mfcc.h5")["path"].tolist()) == good
    assert report["clips"] == len(good)


@pytest.mark.parametrize("on_error", ["error", "skip"])
@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_no_data_folder_or_no_clips(folder: str, on_error: str, runs: dict[str, Run]) -> None:
    cwd, proc = runs[f"{folder}_{on_error}"]
    reason = "no .wav or .flac files" if folder == "empty" else "data folder not found"
    assert_one_line_error(proc, f"data_{folder}", reason)
    assert_no_files(cwd / "out")


def test_only_bad_clips_with_skip_is_an_error(runs: dict[str, Run]) -> None:
    cwd, proc = runs["only_bad"]
    assert_one_line_error(proc, "data_only_bad", "no usable clips")
    assert_no_files(cwd / "out")


# ---- augmentation ----------------------------------------------------------------------------------


def test_augmented_store_has_every_variant(runs: dict[str, Run], small_corpus: Path) -> None:
    cwd, proc = runs["aug_a"]
    assert_ok(proc)
    store = read_store(cwd / "out/mfcc.h5")
    n_clips = len(list(small_corpus.rglob("*.wav")))
    names = ["", "noise=20", "stretch=1.1", "pitch=2", "colored=10", "babble=10", "clipping=20", "room=0.4", "phone=8", "speed=1.1", "opus=12"]
    assert len(store["path"]) == 11 * n_clips
    for path in set(store["path"]):
        rows = np.flatnonzero(store["path"] == path)
        assert store["variant"][rows].tolist() == list(range(11))
        assert store["augment"][rows].tolist() == names
        for field in ("actor", "emotion", "intensity", "statement", "repetition"):
            assert len(set(store[field][rows].tolist())) == 1
        original, noisy, stretched, shifted, colored, babbled, clipped, room, phone, fast, coded = (
            store["mfcc"][store["offsets"][r] : store["offsets"][r + 1]] for r in rows
        )
        # Noise (and the leakage of stretch and shift) fills the synthetic clips' digital silence,
        # whose frames the original skips: the noisy variant keeps every frame of the clip.
        assert len(noisy) > len(original) and not np.allclose(noisy[-len(original) :], original, atol=1e-3)
        assert abs(len(stretched) - len(noisy) / 1.1) <= 2  # 10 % faster: 10 % fewer frames
        assert len(original) <= len(shifted) <= len(noisy) == len(colored) == len(babbled)  # same duration
        assert len(clipped) >= len(original) and not np.allclose(clipped[-len(original) :], original, atol=1e-3)
        assert len(room) >= len(original) and len(phone) >= len(original)  # the room's tail and the line's noise fill silence
        assert not np.allclose(room[-len(original) :], original, atol=1e-1)
        assert not np.allclose(phone[-len(original) :], original, atol=1e-1)
        assert len(fast) <= len(noisy) / 1.1 + 1  # 1/1.1 of the clip's duration at most (resampler ringing fills some silence)
        assert len(coded) >= len(original) - 2 and not np.allclose(coded[-len(original) :], original, atol=1e-1)
        assert not np.allclose(fast[: len(original) // 2], original[: len(original) // 2], atol=1e-1)
        middle = slice(len(original) // 4, len(original) // 2)
        assert not np.allclose(shifted[-len(original) :][middle], original[middle], atol=1e-1)
    report = json.loads((cwd / "out/report.json").read_text())
    assert report["clips"] == n_clips and report["sequences"] == 11 * n_clips
    assert report["variants"] == names[1:]
    with h5py.File(cwd / "out/mfcc.h5", "r") as f:
        assert json.loads(f.attrs["augment"]) == {"seed": AUGMENT["seed"], "variants": names[1:]}


def test_augmented_store_is_deterministic(runs: dict[str, Run]) -> None:
    (a, proc_a), (b, proc_b) = runs["aug_a"], runs["aug_b"]
    assert_ok(proc_a)
    assert_ok(proc_b)
    assert sha256(a / "out/mfcc.h5") == sha256(b / "out/mfcc.h5")


def test_noise_follows_the_augment_seed(small_corpus: Path, runs: dict[str, Run], tmp_path: Path) -> None:
    """Another augment seed changes the drawn variants and nothing else (not the speed's: it draws nothing)."""
    one = sorted(small_corpus.rglob("*.wav"))[0]
    (tmp_path / "data" / one.parent.name).mkdir(parents=True)
    shutil.copy(one, tmp_path / "data" / one.parent.name)
    extract(tmp_path / "data", tmp_path / "mfcc.h5", tmp_path / "report.json", serial_config(**{**AUGMENT, "seed": 1}))
    reseeded = read_store(tmp_path / "mfcc.h5")
    store = read_store(runs["aug_a"][0] / "out/mfcc.h5")
    rows = np.flatnonzero(store["path"] == reseeded["path"][0])
    assert len(rows) == len(reseeded["path"]) == 11
    for variant, row in enumerate(rows):
        ours = store["mfcc"][store["offsets"][row] : store["offsets"][row + 1]]
        theirs = reseeded["mfcc"][reseeded["offsets"][variant] : reseeded["offsets"][variant + 1]]
        # the noises, the babble, the room, the phone line's band and the Opus bitrate follow it
        assert np.array_equal(ours, theirs) == (variant not in (1, 4, 5, 7, 8, 10)), variant


def test_colored_noise_has_its_snr_and_a_colour_per_clip() -> None:
    """The added noise sits at the nominal SNR (over the whole clip), and its spectral slope differs
    from clip to clip: white to brown."""
    audio = synth_clip(3, 1, 0, seconds=2.0)
    variant = augment.Variant(1, "colored", 10.0)
    slopes = []
    for key in ("Actor_01/a.wav", "Actor_01/b.wav", "Actor_02/c.wav", "Actor_03/d.wav"):
        noise = augment.apply(audio, variant, 0, key).astype(np.float64) - audio
        snr = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) / np.mean(noise**2))
        assert abs(snr - 10.0) < 0.05, snr
        spectrum = np.abs(np.fft.rfft(noise)) ** 2
        freqs = np.fft.rfftfreq(len(noise), 1 / 16000)
        low, high = spectrum[(freqs > 100) & (freqs < 400)].mean(), spectrum[(freqs > 3200) & (freqs < 6400)].mean()
        slopes.append(10 * np.log10(low / high))
    assert max(slopes) - min(slopes) > 6, slopes  # exponents drawn per clip
    np.testing.assert_array_equal(augment.apply(audio, variant, 0, "k"), augment.apply(audio, variant, 0, "k"))


def test_babble_is_the_speakers_other_clips_at_its_snr() -> None:
    """A crowd of the speaker's own clips, 2-5 semitones away, mixed at the nominal SNR over the speech span
    (as the suite measures SNR); the same draw every run, another for another clip."""
    audio = synth_clip(3, 1, 0, seconds=2.0)
    talkers = [synth_clip(e, 1, 0, seconds=1.5) for e in (1, 2, 4, 5, 6)]
    variant = augment.Variant(1, "babble", 8.0)
    mixed = augment.apply(audio, variant, 0, "Actor_01/a.wav", talkers)
    babble = mixed.astype(np.float64) - audio
    snr = 10 * np.log10(mixing.speech_power(audio) / np.mean(babble**2))
    assert abs(snr - 8.0) < 0.05, snr
    np.testing.assert_array_equal(mixed, augment.apply(audio, variant, 0, "Actor_01/a.wav", talkers))
    assert not np.array_equal(mixed, augment.apply(audio, variant, 0, "Actor_01/b.wav", talkers))
    with pytest.raises(ValueError, match="babble"):
        augment.apply(audio, variant, 0, "Actor_01/a.wav")


def test_training_rooms_decay_at_their_rt60_and_are_not_the_suites() -> None:
    """Each clip reverberates in one of a pool of random rooms: decaying at about the asked RT60 (image-source
    rooms decay somewhat slower than Sabine's formula), direct path first, never the suite's rooms."""
    impulse = np.zeros(3 * 16000, dtype=np.float32)
    impulse[0] = 1.0
    responses = {augment.apply(impulse, augment.Variant(1, "room", 0.5), 0, f"Actor_01/{i}.wav").tobytes() for i in range(8)}
    assert len(responses) >= 3  # several rooms of the pool drawn
    for raw in responses:
        response = np.frombuffer(raw, dtype=np.float32)
        assert np.argmax(np.abs(response)) < 64
        assert 0.4 < t30(response) < 1.0, t30(response)
        for name in conditions.ROOMS:
            suite = conditions.apply(name, impulse, "k")
            assert not np.allclose(response, suite, atol=1e-3)
    audio = synth_clip(3, 1, 0, seconds=1.0)
    variant = augment.Variant(1, "room", 0.5)
    np.testing.assert_array_equal(augment.apply(audio, variant, 0, "k"), augment.apply(audio, variant, 0, "k"))
    assert not np.array_equal(augment.apply(audio, variant, 0, "k"), augment.apply(audio, variant, 1, "k"))  # another seed, other rooms


def test_phone_line_is_narrowband_quantised_and_drawn_per_clip() -> None:
    """Nothing above the 8 kHz line's 4 kHz, little below 100 Hz, an error that grows as the bits go down,
    band edges drawn per clip, the same draw every run."""
    audio = np.concatenate([np.zeros(8000, np.float32), synth_clip(3, 1, 0, seconds=2.0)])
    variant = augment.Variant(1, "phone", 8)
    out = augment.apply(audio, variant, 0, "Actor_01/a.wav")
    assert out.dtype == np.float32 and out.shape == audio.shape
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(out), 1 / 16000)
    speech = spectrum[(freqs > 500) & (freqs < 2500)].mean()
    assert spectrum[freqs > 4200].mean() < 1e-4 * speech and spectrum[freqs < 80].mean() < 1e-1 * speech
    np.testing.assert_array_equal(out, augment.apply(audio, variant, 0, "Actor_01/a.wav"))
    assert not np.array_equal(out, augment.apply(audio, variant, 0, "Actor_01/b.wav"))
    bits = {b: augment.apply(audio, augment.Variant(1, "phone", b), 0, "Actor_01/a.wav") for b in (8, 12, 16)}
    error = {b: np.mean((bits[b] - bits[16]).astype(np.float64) ** 2) for b in (8, 12)}
    assert error[8] > 16 * error[12] > 0  # 4 bits fewer: ~24 dB more quantisation noise


def test_opus_variant_is_a_real_encode_at_about_its_bitrate_drawn_per_clip() -> None:
    """Same length, drawn per clip and repeatable; the bitrate libsndfile is asked for is what the
    stream gets (the level mapping), and fewer kbit/s lose more of the spectrum."""
    audio = np.concatenate([synth_clip(3, 1, 0, seconds=2.0), synth_clip(5, 2, 1, seconds=2.0)])
    variant = augment.Variant(1, "opus", 12)
    out = augment.apply(audio, variant, 0, "Actor_01/a.wav")
    assert out.dtype == np.float32 and out.shape == audio.shape
    np.testing.assert_array_equal(out, augment.apply(audio, variant, 0, "Actor_01/a.wav"))
    assert not np.array_equal(out, augment.apply(audio, variant, 0, "Actor_01/b.wav"))  # another bitrate draw
    for kbps in (8, 32):
        assert 0.5 * kbps < len(augment.opus_stream(audio, kbps)) * 8 / (len(audio) / 16000) / 1000 < 1.3 * kbps

    def spectral_error(kbps: float) -> float:
        reference, coded = (np.abs(np.fft.rfft(x.astype(np.float64))) for x in (mixing.at_codec_level(audio), augment.through_opus(audio, kbps)))
        return float(np.mean((np.log1p(coded) - np.log1p(reference)) ** 2))

    assert spectral_error(8) > spectral_error(64) > 0


@pytest.mark.parametrize("rate", [0.9, 1.1])
def test_speed_variant_moves_pitch_and_tempo_together(rate: float) -> None:
    """1/rate as long, a 440 Hz tone at 440 * rate Hz, nothing drawn: every clip the same way."""
    t = np.arange(32000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = augment.apply(tone, augment.Variant(1, "speed", rate), 0, "Actor_01/a.wav")
    assert out.dtype == np.float32 and abs(len(out) - len(tone) / rate) <= 1
    spectrum = np.abs(np.fft.rfft(out[1000:-1000] * np.hanning(len(out) - 2000)))
    peak = np.fft.rfftfreq(len(out) - 2000, 1 / 16000)[np.argmax(spectrum)]
    assert abs(peak - 440 * rate) < 2
    np.testing.assert_array_equal(out, augment.apply(tone, augment.Variant(1, "speed", rate), 0, "Actor_02/b.wav"))


def test_babble_talkers_are_other_clips_of_the_same_speaker() -> None:
    sources = [(Path(f"{actor}/{take}.wav"), {"path": f"{actor}/{take}", "actor": actor}, None)
               for actor in (1, 2, 3) for take in range(8 if actor < 3 else 1)]
    talkers = extract_module.babble_talkers(sources, seed=0)
    for (path, meta, _), voices in zip(sources, talkers):
        if meta["actor"] == 3:
            assert voices == [path]  # a speaker of one clip: its own voice, shifted
            continue
        assert len(voices) == extract_module.BABBLE_TALKERS == len(set(voices))
        assert path not in voices and all(v.parts[0] == path.parts[0] for v in voices)
    assert talkers == extract_module.babble_talkers(sources, seed=0)
    assert talkers != extract_module.babble_talkers(sources, seed=1)


def test_clipping_variant_clips_its_overdrive_below_the_peak() -> None:
    audio = synth_clip(3, 1, 0, seconds=1.0)
    clipped = augment.apply(audio, augment.Variant(1, "clipping", 26.0), 0, "k")
    limit = 10 ** (-26 / 20) * np.max(np.abs(audio))
    assert np.isclose(np.max(np.abs(clipped)), limit) and np.mean(np.abs(clipped) >= limit * 0.999) > 0.2
