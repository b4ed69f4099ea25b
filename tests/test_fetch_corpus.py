"""fetch_corpus: a public corpus from a folder, a zip or a download lands as the same audio, report and
manifest; bad audio is reported and left out; every failure is one line and leaves nothing behind."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipeline import acquire, arrival
from pipeline.corpus import Row, read_corpus
from pipeline.errors import InputError
from tests.helpers import (
    assert_no_files,
    assert_ok,
    assert_one_line_error,
    run_stage,
    synth_clip,
    truncated_header,
    write_wav,
)

# Each layout's files as its download names them (folders included), and the row each becomes.
CORPORA: dict[str, dict[str, Row | None]] = {
    "emodb": {
        "wav/03a01Wa.wav": Row("03a01Wa.wav", "angry", "03", "male"),
        "wav/08a02Fb.wav": Row("08a02Fb.wav", "happy", "08", "female"),
        "wav/16b10Td.wav": Row("16b10Td.wav", "sad", "16", "female"),
        "wav/03a04Lc.wav": None,  # boredom: no class, dropped
    },
    "cremad": {
        "AudioWAV/1001_DFA_ANG_XX.wav": Row("1001_DFA_ANG_XX.wav", "angry", "1001"),
        "AudioWAV/1002_IEO_HAP_HI.wav": Row("1002_IEO_HAP_HI.wav", "happy", "1002"),
        "AudioWAV/1091_TSI_FEA_LO.wav": Row("1091_TSI_FEA_LO.wav", "fearful", "1091"),
    },
    "tess": {
        "TESS data/OAF_angry/OAF_back_angry.wav": Row("OAF_angry/OAF_back_angry.wav", "angry", "OAF", "female"),
        "TESS data/YAF_fear/YAF_bite_Fear.wav": Row("YAF_fear/YAF_bite_Fear.wav", "fearful", "YAF", "female"),
        "TESS data/OAF_ps/OAF_bar_ps.wav": Row("OAF_ps/OAF_bar_ps.wav", "surprised", "OAF", "female"),
    },
    "savee": {
        "ALL/DC_a01.wav": Row("DC_a01.wav", "angry", "DC", "male"),
        "ALL/JE_sa02.wav": Row("JE_sa02.wav", "sad", "JE", "male"),
        "ALL/KL_su15.wav": Row("KL_su15.wav", "surprised", "KL", "male"),
    },
}


def make_source(folder: Path, layout: str) -> Path:
    """A small synthetic corpus as its download lays it out, each file a different tone."""
    for number, rel in enumerate(CORPORA[layout], 1):
        write_wav(folder / rel, synth_clip(number, number, 0, seconds=0.3))
    return folder


def make_zip(folder: Path, archive: Path, wrapper: str = "", junk: bool = True) -> Path:
    """Zip a folder, optionally inside a wrapper folder and with the clutter real zips carry."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(path, wrapper + path.relative_to(folder).as_posix())
        if junk:
            zf.writestr(wrapper + "README.txt", "not audio")
            zf.writestr("__MACOSX/" + wrapper + "._clip.wav", b"resource fork")
    return archive


def files(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under root."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def expected_rows(layout: str, prefix: str) -> list[Row]:
    return sorted(dataclasses.replace(r, path=prefix + r.path) for r in CORPORA[layout].values() if r is not None)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    return {layout: make_source(root / layout, layout) for layout in CORPORA}


def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise AssertionError("downloaded again although a verified archive was there")

    monkeypatch.setattr(acquire.urllib.request, "urlopen", offline)


# ---- every layout, from a folder and from zips -----------------------------------------------------------


@pytest.mark.parametrize("form", ["folder", "zip", "zip in a wrapper folder"])
@pytest.mark.parametrize("layout", sorted(CORPORA))
def test_each_layout_arrives_with_its_manifest(sources: dict[str, Path], tmp_path: Path, layout: str, form: str) -> None:
    source = sources[layout]
    if form != "folder":
        source = make_zip(source, tmp_path / "corpus.zip", "Download-1.0/" if "wrapper" in form else "")
    manifest = tmp_path / "corpora" / "train" / f"{layout}.csv"
    report = arrival.arrive(layout, str(source), manifest)

    dest = tmp_path / "corpora" / "train" / layout  # the default: beside the manifest
    kept = [r.path for r in CORPORA[layout].values() if r is not None] + (["03a04Lc.wav"] if layout == "emodb" else [])
    assert sorted(files(dest)) == sorted(kept)  # the folders all files shared are gone, TESS's speaker folders stay; no junk
    corpus = read_corpus(manifest)
    assert corpus.rows == expected_rows(layout, f"{layout}/")
    assert report["clips"] == len(corpus.rows) and report["files"] == len(CORPORA[layout])
    assert report["bad_audio"] == [] and report["unparsed"] == [] and report["duplicate_takes"] == []
    assert report["no_class"] == ({"L": 1} if layout == "emodb" else {})
    assert sum(report["speakers"].values()) == sum(report["emotions"].values()) == len(corpus.rows)
    # a subset of the documented corpus is allowed, and said
    assert report["expected"]["files"] == arrival.PUBLISHED[layout].files
    missing = [s for s in arrival.PUBLISHED[layout].speakers if s not in {r.speaker for r in corpus.rows}]
    assert report["missing_speakers"] == missing
    lines = arrival.anomalies(report)
    assert report["anomalies"] == len(lines) == 1 + bool(missing) and "a subset" in lines[0]
    report_file = manifest.with_name(f"{layout}.validation.json")
    assert str(tmp_path) not in report_file.read_text()
    assert not list(dest.parent.glob(".*.tmp")) and not (dest.parent / f"{layout}.zip").exists()


def test_reports_and_manifests_are_byte_identical_whatever_the_source(sources: dict[str, Path], tmp_path: Path) -> None:
    outputs = []
    for name, source in (
        ("a", sources["tess"]),
        ("b", make_zip(sources["tess"], tmp_path / "tess.zip", "wrapper/")),
        ("a", sources["tess"]),  # a rerun over the corpus in place
    ):
        manifest = tmp_path / name / "tess.csv"
        arrival.arrive("tess", str(source), manifest)
        outputs.append((manifest.read_bytes(), manifest.with_name("tess.validation.json").read_bytes()))
    assert outputs[0] == outputs[1] == outputs[2]


def test_a_corpus_already_in_place_is_only_checked(sources: dict[str, Path], tmp_path: Path) -> None:
    manifest = tmp_path / "corpora" / "eval" / "savee.csv"
    arrival.arrive("savee", str(sources["savee"]), manifest)
    dest, before = tmp_path / "corpora" / "eval" / "savee", manifest.read_bytes()
    manifest.unlink()
    arrival.arrive("savee", str(dest), manifest)
    assert manifest.read_bytes() == before and sorted(files(dest)) == ["DC_a01.wav", "JE_sa02.wav", "KL_su15.wav"]
    for overlapping in (dest.parent, tmp_path):
        with pytest.raises(InputError, match="overlap"):
            arrival.arrive("savee", str(overlapping), manifest)


@pytest.mark.parametrize("speakers", [("DC", "JE"), ("KL",)])
def test_savee_as_its_own_zip_files_it_speaker_folders(tmp_path: Path, speakers: tuple[str, ...]) -> None:
    """SAVEE's AudioData.zip names clips AudioData/DC/a01.wav: the folder is the speaker, so it is kept
    even in a zip of one speaker, where every file shares it."""
    for number, speaker in enumerate(speakers, 1):
        write_wav(tmp_path / "src" / "AudioData" / speaker / "a01.wav", synth_clip(number, number, 0, seconds=0.3))
        write_wav(tmp_path / "src" / "AudioData" / speaker / "sa02.wav", synth_clip(number, number, 1, seconds=0.3))
    archive = make_zip(tmp_path / "src", tmp_path / "AudioData.zip")
    report = arrival.arrive("savee", str(archive), tmp_path / "out" / "savee.csv")
    assert read_corpus(tmp_path / "out" / "savee.csv").rows == sorted(
        Row(f"savee/{speaker}/{name}.wav", emotion, speaker, "male")
        for speaker in speakers for name, emotion in (("a01", "angry"), ("sa02", "sad"))
    )
    assert report["unparsed"] == [] and sorted(report["speakers"]) == sorted(speakers)


def test_paths_are_relative_to_the_manifest_wherever_the_audio_goes(sources: dict[str, Path], tmp_path: Path) -> None:
    manifest = tmp_path / "corpora" / "train" / "emo.csv"
    arrival.arrive("emodb", str(sources["emodb"]), manifest, dest=tmp_path / "data" / "corpora" / "emodb")
    assert read_corpus(manifest).rows == expected_rows("emodb", "../../data/corpora/emodb/")


# ---- bad audio, duplicates, names ---------------------------------------------------------------------------


def test_bad_audio_is_reported_and_left_out_of_the_manifest(sources: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(sources["cremad"], source)
    write_wav(source / "AudioWAV" / "1003_DFA_SAD_XX.wav", np.zeros(8000, np.float32))  # silent
    truncated_header(source / "AudioWAV" / "1004_DFA_NEU_XX.wav")
    write_wav(source / "AudioWAV" / "1005_DFA_DIS_XX.wav", np.full(100, 0.1, np.float32))  # 6 ms
    manifest = tmp_path / "out" / "cremad.csv"
    proc = run_stage(tmp_path, "fetch_corpus", "cremad", "--source", source, "--out", manifest)
    assert_ok(proc)
    report = json.loads(manifest.with_name("cremad.validation.json").read_text())
    reasons = {b["path"]: b["reason"] for b in report["bad_audio"]}
    assert sorted(reasons) == ["1003_DFA_SAD_XX.wav", "1004_DFA_NEU_XX.wav", "1005_DFA_DIS_XX.wav"]
    assert "silent" in reasons["1003_DFA_SAD_XX.wav"] and "too short" in reasons["1005_DFA_DIS_XX.wav"]
    assert read_corpus(manifest).rows == expected_rows("cremad", "cremad/")  # only the good clips
    for path in reasons:  # a stderr line each
        assert sum(f"bad audio: {path}:" in line for line in proc.stderr.splitlines()) == 1, proc.stderr
    assert "3 clips of 3 speakers" in proc.stderr and "left out: 3 bad audio" in proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr


def test_duplicate_take_is_reported_and_kept(sources: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(sources["savee"], source)
    shutil.copyfile(source / "ALL" / "DC_a01.wav", source / "ALL" / "DC_a02.wav")  # the same take filed twice
    report = arrival.arrive("savee", str(source), tmp_path / "savee.csv")
    assert report["duplicate_takes"] == [["DC_a01.wav", "DC_a02.wav"]]
    assert "duplicate take: DC_a01.wav = DC_a02.wav" in arrival.anomalies(report)
    assert report["clips"] == 4 and report["speakers"]["DC"] == 2


def test_unparsed_name_is_refused_or_listed(sources: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(sources["emodb"], source)
    write_wav(source / "wav" / "hello.wav", synth_clip(2, 2, 9))
    out = tmp_path / "out"
    manifest = out / "emodb.csv"
    with pytest.raises(InputError) as err:
        arrival.arrive("emodb", str(source), manifest)
    assert str(err.value).startswith(f"{source}: hello.wav: not named as EmoDB names its files")
    assert "--skip-unknown" in str(err.value)
    assert_no_files(out)  # no audio, manifest, report or temporary

    report = arrival.arrive("emodb", str(source), manifest, skip_unknown=True)
    assert report["unparsed"] == [
        {"path": "hello.wav", "reason": "not named as EmoDB names its files (e.g. 03a01Wa.wav)"}
    ]
    assert read_corpus(manifest).rows == expected_rows("emodb", "emodb/")
    assert "unparsed name: hello.wav: not named as EmoDB" in arrival.anomalies(report)[-1]


def test_a_corpus_of_no_usable_clip_is_refused(tmp_path: Path) -> None:
    write_wav(tmp_path / "src" / "DC_a01.wav", np.zeros(8000, np.float32))
    with pytest.raises(InputError, match="no usable clip"):
        arrival.arrive("savee", str(tmp_path / "src"), tmp_path / "out" / "savee.csv")
    assert_no_files(tmp_path / "out")


# ---- downloads and checksums --------------------------------------------------------------------------------


def test_download_with_its_checksum_is_verified_kept_and_reused(
    http_root: tuple[str, Path], sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, www = http_root
    archive = make_zip(sources["emodb"], www / "download.zip", "wrap/")
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    out = tmp_path / "corpora" / "train"
    manifest = out / "emodb.csv"

    wrong = acquire.Checksum("sha256", "0" * 64)
    with pytest.raises(InputError, match="does not match the given"):
        arrival.arrive("emodb", f"{url}/download.zip", manifest, checksum=wrong)
    assert_no_files(out)

    arrival.arrive("emodb", f"{url}/download.zip", manifest, checksum=acquire.Checksum("sha256", sha256))
    assert (out / "emodb.zip").read_bytes() == archive.read_bytes()  # kept beside the audio folder
    assert read_corpus(manifest).rows == expected_rows("emodb", "emodb/")
    before = files(out)

    no_download(monkeypatch)
    (out / "emodb.csv").unlink()
    arrival.arrive("emodb", f"{url}/download.zip", manifest, checksum=acquire.Checksum("sha256", sha256))
    assert files(out) == before


def test_download_without_a_checksum_is_not_kept(http_root: tuple[str, Path], sources: dict[str, Path], tmp_path: Path) -> None:
    url, www = http_root
    make_zip(sources["tess"], www / "tess.zip")
    arrival.arrive("tess", f"{url}/tess.zip", tmp_path / "out" / "tess.csv")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tess", "tess.csv", "tess.validation.json"]
    with pytest.raises(InputError, match="download failed.*404"):
        arrival.arrive("tess", f"{url}/missing.zip", tmp_path / "out" / "tess.csv")


def test_local_zip_checked_against_a_given_md5(sources: dict[str, Path], tmp_path: Path) -> None:
    archive = make_zip(sources["savee"], tmp_path / "savee.zip")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    with pytest.raises(InputError, match=f"md5 {md5} does not match the given {'f' * 32}"):
        arrival.arrive("savee", str(archive), tmp_path / "out" / "savee.csv", checksum=acquire.Checksum("md5", "f" * 32))
    assert_no_files(tmp_path / "out")
    arrival.arrive("savee", str(archive), tmp_path / "out" / "savee.csv", checksum=acquire.Checksum("md5", md5))
    assert not (tmp_path / "out" / "savee.zip").exists()  # a local zip stays where it is, not copied
    with pytest.raises(InputError, match="checks an archive"):
        arrival.arrive("savee", str(sources["savee"]), tmp_path / "x.csv", checksum=acquire.Checksum("md5", md5))


@pytest.mark.parametrize("layout", sorted(CORPORA))
def test_official_without_a_published_checksum_says_where_to_get_it(tmp_path: Path, layout: str) -> None:
    published = arrival.PUBLISHED[layout]
    with pytest.raises(InputError) as err:
        arrival.arrive(layout, "official", tmp_path / "out" / f"{layout}.csv")
    message = str(err.value)
    assert message.startswith("official: no official") and published.home in message and published.license in message
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


def test_official_download_is_verified_and_kept(
    http_root: tuple[str, Path], sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path an official archive with a published checksum would take (none is known yet)."""
    url, www = http_root
    data = make_zip(sources["cremad"], www / "cremad.zip").read_bytes()
    official = arrival.Download(f"{url}/cremad.zip", acquire.Checksum("md5", hashlib.md5(data).hexdigest()), "a test", len(data))
    published = dataclasses.replace(arrival.PUBLISHED["cremad"], official=official)
    monkeypatch.setitem(arrival.PUBLISHED, "cremad", published)
    manifest = tmp_path / "corpora" / "eval" / "cremad.csv"
    arrival.arrive("cremad", "official", manifest)
    assert (manifest.parent / "cremad.zip").read_bytes() == data
    no_download(monkeypatch)
    arrival.arrive("cremad", "official", manifest)
    assert read_corpus(manifest).rows == expected_rows("cremad", "cremad/")

    (manifest.parent / "cremad.zip").write_bytes(data[:-1])  # a damaged copy is fetched again, and refused here
    with pytest.raises(AssertionError, match="downloaded again"):
        arrival.arrive("cremad", "official", manifest)


# ---- failures leave everything as it was ------------------------------------------------------------------


def test_failure_keeps_the_old_corpus_manifest_and_report(sources: dict[str, Path], tmp_path: Path) -> None:
    manifest = tmp_path / "out" / "savee.csv"
    arrival.arrive("savee", str(sources["savee"]), manifest)
    before = files(tmp_path / "out")
    broken = make_zip(sources["savee"], tmp_path / "broken.zip")
    broken.write_bytes(broken.read_bytes()[:-200])  # the central directory is gone
    with pytest.raises(InputError, match="cannot unpack"):
        arrival.arrive("savee", str(broken), manifest)
    assert files(tmp_path / "out") == before


def test_zip_slip_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../DC_a01.wav", b"RIFF")
    with pytest.raises(InputError, match="unsafe path"):
        arrival.arrive("savee", str(archive), tmp_path / "out" / "savee.csv")
    assert not (tmp_path / "DC_a01.wav").exists()
    assert_no_files(tmp_path / "out")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--source", "missing"], ["missing: source not found; download SAVEE from http://kahlan"]),
        (["--source", "official"], ["official: no official SAVEE download", "after registering"]),
        (["--source", "x.zip", "--md5", "123"], ["--md5 must be 32 hexadecimal digits"]),
        (["--source", "empty"], ["empty: no .wav or .flac files"]),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio")
    proc = run_stage(tmp_path, "fetch_corpus", "savee", *args, "--out", "corpora/train/savee.csv")
    assert_one_line_error(proc, *needles)
    assert not [p for p in (tmp_path / "corpora").rglob("*") if not p.is_dir()]  # at most the empty folder
