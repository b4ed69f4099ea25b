"""Stage fetch: every kind of source lands as the same corpus, anomalies are reported, failures are clean."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline import acquire, fetch
from pipeline.config import FetchConfig
from pipeline.errors import InputError
from tests.helpers import make_corpus, synth_clip

REPO = Path(__file__).resolve().parents[1]


def audio_files(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under root."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_zip(corpus: Path, archive: Path, wrapper: str = "", junk: bool = True) -> Path:
    """Zip a corpus folder, optionally inside a wrapper folder and with the clutter real zips carry."""
    with zipfile.ZipFile(archive, "w") as zf:
        for rel, data in audio_files(corpus).items():
            zf.writestr(wrapper + rel, data)
        if junk:
            zf.writestr(wrapper + "README.txt", "not audio")
            zf.writestr("__MACOSX/" + wrapper + "Actor_01/._03-01-01-01-01-01-01.wav", b"resource fork")
    return archive


def run_fetch(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The stage as DVC runs it: a subprocess in a project folder holding params.yaml."""
    shutil.copy(REPO / "params.yaml", cwd / "params.yaml")
    full_env = {k: v for k, v in os.environ.items() if k != fetch.ENV_SOURCE}
    full_env["PYTHONPATH"] = str(REPO)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pipeline.fetch", *args], cwd=cwd, env=full_env, capture_output=True, text=True
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the real archive, whatever it does."""
    monkeypatch.setattr(fetch, "OFFICIAL_URL", "http://127.0.0.1:9/never-fetched.zip")
    monkeypatch.delenv(fetch.ENV_SOURCE, raising=False)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small")
    make_corpus(root, actors=[1, 2], emotions=[1, 2], takes=2)
    return root


def test_copy_folder(synth_corpus: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(synth_corpus, source)
    (source / "notes.txt").write_text("not audio")
    (source / "Actor_01" / ".hidden.wav").write_bytes(b"editor backup")
    dest = tmp_path / "data" / "ravdess"
    report = fetch.fetch(str(source), dest, tmp_path / "data" / "validation.json")
    assert audio_files(dest) == audio_files(synth_corpus)
    assert report["files"] == 8 * 8 * 2 and report["bad_names"] == [] and report["bad_audio"] == []
    # 8 of 24 actors with 16 clips each: every count is an anomaly, as is every missing actor
    assert report["missing_actors"] == list(range(9, 25))
    assert report["wrong_counts"] == {f"{a:02d}": 16 for a in range(1, 9)}
    assert report["sample_rates"] == {"16000": 128} and report["channels"] == {"1": 128}
    assert report["duplicate_takes"] == []
    assert report["anomalies"] == 16 + 8
    assert not list(dest.parent.glob(".*.tmp"))


@pytest.mark.parametrize("wrapper", ["", "Audio_Speech_Actors_01-24/"])
def test_unpack_zip(small_corpus: Path, tmp_path: Path, wrapper: str) -> None:
    archive = make_zip(small_corpus, tmp_path / "corpus.zip", wrapper)
    dest = tmp_path / "ravdess"
    report = fetch.fetch(str(archive), dest, tmp_path / "validation.json")
    assert audio_files(dest) == audio_files(small_corpus)  # no README, no __MACOSX, no wrapper folder
    assert report["files"] == 8 and report["bad_names"] == []


def test_zip_of_one_actor_keeps_its_actor_folder(small_corpus: Path, tmp_path: Path) -> None:
    archive = make_zip(small_corpus / "Actor_01", tmp_path / "one.zip", "Actor_01/", junk=False)
    fetch.fetch(str(archive), tmp_path / "ravdess", tmp_path / "validation.json")
    assert audio_files(tmp_path / "ravdess") == {
        k: v for k, v in audio_files(small_corpus).items() if k.startswith("Actor_01/")
    }


@pytest.mark.parametrize("name", ["../evil.wav", "/abs/evil.wav", "Actor_01/../../evil.wav"])
def test_zip_slip_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(name, b"RIFF")
    with pytest.raises(InputError, match="unsafe path"):
        fetch.fetch(str(archive), tmp_path / "out" / "ravdess", tmp_path / "out" / "validation.json")
    assert not (tmp_path / "evil.wav").exists() and not (tmp_path / "out" / "ravdess").exists()
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_source_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    params = FetchConfig(source="official")
    assert fetch.resolve_source(None, params) == "official"
    monkeypatch.setenv(fetch.ENV_SOURCE, "")
    assert fetch.resolve_source(None, params) == "official"  # set but empty: ignored
    monkeypatch.setenv(fetch.ENV_SOURCE, "/some/folder")
    assert fetch.resolve_source(None, params) == "/some/folder"
    assert fetch.resolve_source("x.zip", params) == "x.zip"


def test_env_override_cli(small_corpus: Path, tmp_path: Path) -> None:
    """params.yaml says official (unreachable here): RAVDESS_SOURCE must win without touching the network."""
    result = run_fetch(tmp_path, env={fetch.ENV_SOURCE: str(small_corpus)})
    assert result.returncode == 0, result.stderr
    assert audio_files(tmp_path / "data" / "ravdess") == audio_files(small_corpus)
    assert (tmp_path / "data" / "validation.json").is_file()
    assert "8 audio files" in result.stderr and "Traceback" not in result.stderr


def write_anomalies(root: Path) -> dict[str, str]:
    """A 2-actor corpus with one of each anomaly; returns path -> expected reason fragment."""
    make_corpus(root, actors=[1, 2], emotions=[1, 2], takes=2)
    a1, a2 = root / "Actor_01", root / "Actor_02"
    good = a1 / "03-01-01-01-01-01-01.wav"
    wav = (a1 / "03-01-03-01-01-01-01.wav")
    sf.write(wav, synth_clip(3, 1, 0), 16000, subtype="PCM_16")
    data = wav.read_bytes()
    (a1 / "03-01-03-01-01-02-01.wav").write_bytes(data[: len(data) // 2 + 1])  # truncated, odd byte
    (a1 / "03-01-03-01-02-01-01.wav").write_text("this is not audio at all " * 20)  # junk named .wav
    (a1 / "03-01-03-01-02-02-01.wav").write_bytes(b"")
    sf.write(a1 / "03-01-04-01-01-01-01.wav", np.zeros(16000, np.float32), 16000)
    sf.write(a1 / "03-01-04-01-01-02-01.wav", np.full(100, 0.1, np.float32), 16000)  # 6 ms
    nan = synth_clip(4, 1, 2)
    nan[5] = np.nan
    sf.write(a1 / "03-01-04-01-02-01-01.flac", synth_clip(4, 1, 3), 48000)  # fine: other rate, FLAC
    sf.write(a1 / "03-01-04-01-02-02-01.wav", nan, 16000, subtype="FLOAT")
    stereo = np.stack([synth_clip(5, 1, 0)] * 2, axis=1)
    sf.write(a1 / "03-01-05-01-01-01-01.wav", stereo, 44100)  # fine: 2 channels
    shutil.copyfile(good, a1 / "03-01-05-01-01-02-01.WAV")  # the same take filed twice
    sf.write(a1 / "hello.wav", synth_clip(1, 1, 7), 16000)
    sf.write(a1 / "03-01-09-01-01-01-01.wav", synth_clip(1, 1, 9), 16000)
    sf.write(a1 / "03-01-01-01-01-01-02.wav", synth_clip(1, 2, 9), 16000)  # actor 02 filed under Actor_01
    (a2 / "03-01-01-01-01-01-02.wav").unlink()
    return {
        "Actor_01/03-01-03-01-01-02-01.wav": "truncated",
        "Actor_01/03-01-03-01-02-01-01.wav": "cannot decode",
        "Actor_01/03-01-03-01-02-02-01.wav": "empty file",
        "Actor_01/03-01-04-01-01-01-01.wav": "every sample is zero",
        "Actor_01/03-01-04-01-01-02-01.wav": "too short",
        "Actor_01/03-01-04-01-02-02-01.wav": "non-finite",
        "Actor_01/hello.wav": "not a RAVDESS file name",
        "Actor_01/03-01-09-01-01-01-01.wav": "unknown emotion code 09",
        "Actor_01/03-01-01-01-01-01-02.wav": "filed under 'Actor_01'",
    }


def test_anomalies_reported(tmp_path: Path) -> None:
    expected = write_anomalies(tmp_path / "src")
    report = fetch.fetch(str(tmp_path / "src"), tmp_path / "ravdess", tmp_path / "validation.json")
    reasons = {b["path"]: b["reason"] for b in report["bad_names"] + report["bad_audio"]}
    assert set(reasons) == set(expected)
    for path, fragment in expected.items():
        assert fragment in reasons[path], (path, reasons[path])
    assert report["duplicate_takes"] == [
        ["Actor_01/03-01-01-01-01-01-01.wav", "Actor_01/03-01-05-01-01-02-01.WAV"]
    ]
    # actor 01: 4 made + 10 added; actor 02: 4 made - 1 removed + 1 misfiled under Actor_01
    assert report["wrong_counts"] == {"01": 14, "02": 4} and len(report["missing_actors"]) == 22
    assert report["files"] == 20
    # the empty and the junk file decode to nothing, so they have no rate or channel count
    assert report["channels"] == {"1": 17, "2": 1}
    assert report["sample_rates"] == {"16000": 16, "44100": 1, "48000": 1}
    lines = fetch.anomalies(report)
    assert report["anomalies"] == len(lines) == 22 + 2 + len(expected) + 1
    assert all("\n" not in line for line in lines)


def test_summary_on_stderr(tmp_path: Path) -> None:
    write_anomalies(tmp_path / "src")
    result = run_fetch(tmp_path, "--source", "src")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "truncated" in result.stderr and "duplicate take: Actor_01/" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["missing", "empty", "junk-only"])
def test_unusable_source_exits_2(tmp_path: Path, kind: str) -> None:
    source = tmp_path / "src"
    if kind != "missing":
        source.mkdir()
    if kind == "junk-only":
        (source / "readme.txt").write_text("no audio here")
    result = run_fetch(tmp_path, "--source", str(source))
    assert_one_line_error(result, str(source))
    assert not (tmp_path / "data" / "ravdess").exists()
    assert not (tmp_path / "data" / "validation.json").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_download_failure_is_one_line(tmp_path: Path) -> None:
    result = run_fetch(tmp_path, "--source", "http://127.0.0.1:9/corpus.zip")
    assert_one_line_error(result, "http://127.0.0.1:9/corpus.zip", "download failed", fetch.ENV_SOURCE)
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())


def test_failure_keeps_old_corpus(small_corpus: Path, tmp_path: Path) -> None:
    dest, report = tmp_path / "ravdess", tmp_path / "validation.json"
    fetch.fetch(str(small_corpus), dest, report)
    before, report_before = audio_files(dest), report.read_bytes()
    broken = make_zip(small_corpus, tmp_path / "broken.zip")
    broken.write_bytes(broken.read_bytes()[:-200])  # the central directory is gone
    with pytest.raises(InputError, match="cannot unpack"):
        fetch.fetch(str(broken), dest, report)
    assert audio_files(dest) == before and report.read_bytes() == report_before
    assert not list(tmp_path.glob(".*.tmp"))


def test_source_overlapping_dest(small_corpus: Path, tmp_path: Path) -> None:
    dest = tmp_path / "data" / "ravdess"
    fetch.fetch(str(small_corpus), dest, tmp_path / "v1.json")
    # the corpus itself as source: validated in place, nothing copied or removed
    report = fetch.fetch(str(dest), dest, tmp_path / "v2.json")
    assert report["files"] == 8 and audio_files(dest) == audio_files(small_corpus)
    assert (tmp_path / "v1.json").read_bytes() == (tmp_path / "v2.json").read_bytes()
    for source in (tmp_path / "data", dest / "Actor_01"):
        with pytest.raises(InputError, match="overlap"):
            fetch.fetch(str(source), dest, tmp_path / "v3.json")
    assert audio_files(dest) == audio_files(small_corpus) and not (tmp_path / "v3.json").exists()


def test_report_is_byte_identical(small_corpus: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "validation.json", tmp_path / "b" / "validation.json"
    fetch.fetch(str(small_corpus), tmp_path / "a" / "ravdess", first)
    fetch.fetch(str(make_zip(small_corpus, tmp_path / "c.zip", "wrap/")), tmp_path / "b" / "ravdess", second)
    assert first.read_bytes() == second.read_bytes()
    fetch.fetch(str(small_corpus), tmp_path / "a" / "ravdess", second)  # rerun over an existing corpus
    assert first.read_bytes() == second.read_bytes()
    assert str(tmp_path) not in first.read_text()


@pytest.fixture
def official_zip(small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small zip posing as the official archive, served from a file:// URL."""
    archive = make_zip(small_corpus, tmp_path / "served.zip")
    data = archive.read_bytes()
    monkeypatch.setattr(fetch, "OFFICIAL_URL", archive.as_uri())
    monkeypatch.setattr(fetch, "OFFICIAL_SIZE", len(data))
    monkeypatch.setattr(fetch, "OFFICIAL_MD5", hashlib.md5(data).hexdigest())
    return archive


def test_official_download_is_verified_and_kept(
    official_zip: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "data" / "ravdess"
    fetch.fetch("official", dest, tmp_path / "data" / "validation.json")
    assert audio_files(dest) == audio_files(small_corpus)
    kept = tmp_path / "data" / fetch.ARCHIVE_NAME
    assert kept.read_bytes() == official_zip.read_bytes()

    def offline(*args: object, **kwargs: object) -> None:
        raise AssertionError("downloaded again although a verified archive was there")

    monkeypatch.setattr(acquire.urllib.request, "urlopen", offline)
    fetch.fetch("official", dest, tmp_path / "data" / "validation.json")
    assert audio_files(dest) == audio_files(small_corpus)


def test_a_download_leaves_another_live_runs_partial_archive(official_zip: Path, small_corpus: Path, tmp_path: Path) -> None:
    """Two fetches downloading at once: each removes only partial downloads of dead processes."""
    data = tmp_path / "data"
    data.mkdir()
    live = data / f".{fetch.ARCHIVE_NAME}.{os.getppid()}.abc.tmp"  # a writer that still runs
    dead = data / f".{fetch.ARCHIVE_NAME}.999999999.abc.tmp"  # beyond pid_max: its writer is gone
    live.write_bytes(b"partial")
    dead.write_bytes(b"partial")
    fetch.fetch("official", data / "ravdess", data / "validation.json")
    assert audio_files(data / "ravdess") == audio_files(small_corpus)
    assert live.read_bytes() == b"partial" and not dead.exists()


def test_official_checksum_mismatch_is_fatal(
    official_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch, "OFFICIAL_MD5", "0" * 32)
    with pytest.raises(InputError, match="does not match"):
        fetch.fetch("official", tmp_path / "data" / "ravdess", tmp_path / "data" / "validation.json")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == []  # no archive, corpus or report


def test_http_url(http_root: tuple[str, Path], small_corpus: Path, tmp_path: Path) -> None:
    url, root = http_root
    make_zip(small_corpus, root / "corpus.zip", "wrap/")
    dest = tmp_path / "data" / "ravdess"
    fetch.fetch(f"{url}/corpus.zip", dest, tmp_path / "data" / "validation.json")
    assert audio_files(dest) == audio_files(small_corpus)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["ravdess", "validation.json"]  # download gone
    with pytest.raises(InputError, match="download failed.*404"):
        fetch.fetch(f"{url}/missing.zip", dest, tmp_path / "data" / "validation.json")


def test_real_corpus(real_ravdess: Path) -> None:
    report = fetch.validate(real_ravdess)
    assert report["files"] == 1440
    assert report["actors"] == {f"{a:02d}": 60 for a in range(1, 25)}
    assert report["missing_actors"] == [] and report["wrong_counts"] == {}
    assert report["bad_names"] == [] and report["bad_audio"] == []
    assert report["duplicate_takes"] == [
        ["Actor_07/03-01-03-01-02-01-07.flac", "Actor_07/03-01-03-01-02-02-07.flac"]
    ]
    assert report["anomalies"] == 1
