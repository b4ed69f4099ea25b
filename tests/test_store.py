"""The feature store's layout (CONTRACT.md) as the extract stage writes it, and FeatureStore's reads."""
from __future__ import annotations

import re
from pathlib import Path

import h5py
import librosa
import numpy as np
import pytest

from pipeline.audio import load_audio
from pipeline.errors import InputError
from pipeline.extract import extract
from pipeline.features import backend_mfcc
from pipeline.store import Clip, FeatureStore, write_store
from tests.helpers import serial_config

FIELDS = ("actor", "emotion", "intensity", "statement", "repetition")


@pytest.fixture(scope="module")
def store(synth_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic corpus extracted in this process (one worker: no fork inside pytest)."""
    out = tmp_path_factory.mktemp("store")
    extract(synth_corpus, out / "mfcc.h5", out / "report.json", serial_config())
    return out / "mfcc.h5"


def name_fields(path: str) -> dict[str, int]:
    """RAVDESS fields read straight off the file name, independently of pipeline.ravdess."""
    codes = [int(c) for c in re.fullmatch(r"Actor_\d\d/(\d\d(?:-\d\d){6})\.wav", path)[1].split("-")]
    return dict(zip(("modality", "channel", "emotion", "intensity", "statement", "repetition", "actor"), codes))


def test_layout_matches_contract(store: Path, synth_corpus: Path) -> None:
    files = sorted(p.relative_to(synth_corpus).as_posix() for p in synth_corpus.rglob("*.wav"))
    with h5py.File(store, "r") as f:
        mfcc, offsets, clips = f["mfcc"], f["offsets"][:], f["clips"]
        assert mfcc.dtype == np.float32 and mfcc.ndim == 2 and mfcc.shape[1] == 13
        assert offsets.dtype == np.int64 and offsets.shape == (len(files) + 1,)
        assert offsets[0] == 0 and offsets[-1] == mfcc.shape[0] and np.all(np.diff(offsets) > 0)
        paths = clips["path"].asstr()[:].tolist()
        assert sorted(paths) == files  # relative to the data root, one row per clip
        for field in (*FIELDS, "variant"):
            assert clips[field].shape == (len(files),) and clips[field].dtype.kind == "i"
        for i, path in enumerate(paths):
            expected = name_fields(path)
            assert {k: int(clips[k][i]) for k in FIELDS} == {k: expected[k] for k in FIELDS}, path
        assert set(clips["variant"][:].tolist()) == {0}
        attrs = dict(f.attrs)
    assert attrs["sample_rate"] == 16000 and attrs["frame_length"] == 400
    assert attrs["hop_length"] == 160 and attrs["n_mfcc"] == 13
    assert attrs["librosa_version"] == librosa.__version__


def test_sequences_are_backend_mfcc_of_each_file(store: Path, synth_corpus: Path) -> None:
    with h5py.File(store, "r") as f:
        mfcc, offsets = f["mfcc"][:], f["offsets"][:]
        paths = f["clips/path"].asstr()[:]
    for i, path in enumerate(paths):
        expected = backend_mfcc(load_audio(synth_corpus / path))
        np.testing.assert_array_equal(mfcc[offsets[i] : offsets[i + 1]], expected, err_msg=path)


def test_feature_store_metadata_and_sequence(store: Path) -> None:
    with h5py.File(store, "r") as f:
        mfcc, offsets = f["mfcc"][:], f["offsets"][:]
        paths = f["clips/path"].asstr()[:].tolist()
        emotions = f["clips/emotion"][:].tolist()
    with FeatureStore(store) as fs:
        assert len(fs) == len(paths)
        assert fs.clips["path"].tolist() == paths and fs.clips["emotion"].tolist() == emotions
        assert fs.clips["n_frames"].tolist() == np.diff(offsets).tolist()
        for i in (0, 17, len(fs) - 1):
            np.testing.assert_array_equal(fs.sequence(i), mfcc[offsets[i] : offsets[i + 1]])
        for i, seq in zip((5, 3), fs.sequences([5, 3])):
            np.testing.assert_array_equal(seq, mfcc[offsets[i] : offsets[i + 1]])
        with pytest.raises(IndexError):
            fs.sequence(len(fs))
        with pytest.raises(IndexError):
            fs.sequence(-1)


def test_sequence_reads_only_its_own_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sequence(i) slices the HDF5 dataset: one read of exactly clip i's rows, whatever the store's size."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 150, size=2000)  # ~200k frames, ~10 MB: far more than one clip
    clips = [
        Clip({"path": f"c{i}.wav", "actor": 1, "emotion": 1, "intensity": 1, "statement": 1, "repetition": 1,
              "variant": 0, "augment": ""}, rng.standard_normal((n, 13)).astype(np.float32))
        for i, n in enumerate(lengths)
    ]
    write_store(tmp_path / "big.h5", clips, {"n_mfcc": 13})
    reads: list[tuple[str, object]] = []
    original = h5py.Dataset.__getitem__

    def spy(self: h5py.Dataset, key: object) -> np.ndarray:
        reads.append((self.name, key))
        return original(self, key)

    with FeatureStore(tmp_path / "big.h5") as fs:
        monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
        seq = fs.sequence(1234)
        monkeypatch.undo()
    start = int(lengths[:1234].sum())
    assert [(name, (key.start, key.stop)) for name, key in reads] == [("/mfcc", (start, start + lengths[1234]))]
    np.testing.assert_array_equal(seq, clips[1234].mfcc)


def test_write_store_roundtrip_and_empty_sequence(tmp_path: Path) -> None:
    meta = {"path": "a.wav", "actor": 3, "emotion": 8, "intensity": 2, "statement": 2, "repetition": 1}
    clips = [
        Clip({**meta, "variant": 0, "augment": ""}, np.ones((3, 13), np.float64)),
        Clip({**meta, "variant": 2, "augment": "pitch=2"}, np.full((2, 13), 2, np.float32)),
    ]
    write_store(tmp_path / "s.h5", clips, {"n_mfcc": 13, "sample_rate": 16000})
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert fs.clips[["variant", "augment"]].values.tolist() == [[0, ""], [2, "pitch=2"]]
        assert fs.sequence(0).dtype == np.float32 and fs.sequence(1).tolist() == [[2.0] * 13] * 2
        assert fs.attrs["sample_rate"] == 16000
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]  # no temp file left beside it


def test_feature_store_refuses_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.h5: feature store not found"):
        FeatureStore(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputError, match="text.h5: not a readable HDF5"):
        FeatureStore(tmp_path / "text.h5")
    with h5py.File(tmp_path / "partial.h5", "w") as f:
        f["mfcc"] = np.zeros((1, 13), np.float32)
        f["offsets"] = np.array([0, 1])
    with pytest.raises(InputError, match="partial.h5: missing dataset") as refused:
        FeatureStore(tmp_path / "partial.h5")
    with h5py.File(tmp_path / "partial.h5", "a"):  # not held open, even while its traceback lives
        pass
    del refused
    with h5py.File(tmp_path / "partial.h5", "a") as f:
        del f["mfcc"]
        f["mfcc"] = np.zeros((2, 13), np.float32)  # /offsets ends at 1: a damaged store
        group = f.create_group("clips")
        for field in ("actor", "emotion", "intensity", "statement", "repetition", "variant"):
            group[field] = np.array([1])
        for field in ("path", "augment"):
            group[field] = np.array(["a.wav"], dtype=h5py.string_dtype())
    with pytest.raises(InputError, match="partial.h5: .*disagree"):
        FeatureStore(tmp_path / "partial.h5")
