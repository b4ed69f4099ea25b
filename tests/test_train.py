"""The training loop (pipeline.training), the exported files, and the train stage as DVC runs it,
on the session's synthetic project (tests/conftest.py)."""
from __future__ import annotations

import json
import math
import os
import pickle
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from pipeline import metrics
from pipeline.config import TrainConfig, parse
from pipeline.dataset import SplitData, load_splits, random_crop
from pipeline.errors import InputError
from pipeline.features import N_MELS, dct_matrix
from pipeline.inference import backend_replay, decide, replay
from pipeline.model import EmotionLSTM, ensemble_of, load_model
from pipeline.ravdess import EMOJI
from pipeline.store import FeatureStore
from pipeline.train import MODEL_FILES, write_model_files
from pipeline.training import (
    bfloat16_runs, channel_offsets, effective_precision, fit, predictions, say_float32_fallback,
)
from tests.helpers import (
    FRONTEND6,
    RAVDESS8,
    TINY,
    assert_one_line_error,
    project_folder,
    run_stage,
    train_config,
    variant_store,
)

LOG_COLUMNS = [
    "epoch", "lr", "train_loss", "val_loss",
    "train_accuracy", "train_balanced_accuracy", "train_macro_f1",
    "val_accuracy", "val_balanced_accuracy", "val_macro_f1",
]


@pytest.fixture(scope="module")
def splits(project: Path) -> dict[str, SplitData]:
    return load_splits(project / "features/mfcc.h5", project / "features/split.csv", "ravdess8", False)


def state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- fit -------------------------------------------------------------------------------------------


def test_fit_is_deterministic(splits: dict[str, SplitData]) -> None:
    # Two layers and dropout: every random draw (init, batches, dropout masks) must follow the seed.
    c = train_config(num_layers=2, dropout=0.3, epochs=2)
    a, b = fit(splits, 8, c), fit(splits, 8, c)
    assert state_equal(a.model.state_dict(), b.model.state_dict())
    assert a.history == b.history and a.best_epoch == b.best_epoch
    other = fit(splits, 8, train_config(num_layers=2, dropout=0.3, epochs=2, seed=1))
    assert not state_equal(a.model.state_dict(), other.model.state_dict())  # the seed matters
    assert len(a.history) == 2 and a.history[0]["epoch"] == 1
    assert not a.model.training and next(a.model.parameters()).device.type == "cpu"


def test_a_single_model_is_exported_as_its_best_checkpoint(splits: dict[str, SplitData]) -> None:
    result = fit(splits, 8, train_config(epochs=3, patience=5))
    (member,) = result.members
    assert state_equal(result.model.state_dict(), member.model.state_dict())
    assert result.model.lstm.hidden_size == train_config().hidden_size and [r["member"] for r in result.history] == [1] * 3
    # the reported validation figures are those the kept epoch was selected with
    kept = result.history[result.best_epoch[0] - 1]
    assert result.val == pytest.approx({k[4:]: v for k, v in kept.items() if k.startswith("val_")}, abs=1e-12)


def test_validation_train_runs_every_epoch_and_keeps_the_last(splits: dict[str, SplitData]) -> None:
    result = fit(splits, 8, train_config(epochs=3, patience=1, validation="train"))
    assert result.epochs_run == [3] and result.best_epoch == [3]  # patience does not stop it
    last = result.history[-1]  # the exported model scores as the last epoch's weights did
    assert result.val == pytest.approx({k[4:]: v for k, v in last.items() if k.startswith("val_")}, abs=1e-12)


def test_fit_puts_the_training_frame_statistics_inside_the_model(splits: dict[str, SplitData]) -> None:
    result = fit(splits, 8, train_config(epochs=1))
    frames = torch.cat(splits["train"].sequences).double()
    assert torch.allclose(result.model.feature_mean.double(), frames.mean(0), rtol=1e-5)
    assert torch.allclose(result.model.feature_std.double(), frames.std(0), rtol=1e-5)
    assert float(result.model.feature_mean[0]) < -100  # raw MFCC scale: c0 is large and negative


def test_the_frame_loss_changes_training(splits: dict[str, SplitData]) -> None:
    base = fit(splits, 8, train_config(epochs=2, frame_loss_weight=0.0))
    varied = fit(splits, 8, train_config(epochs=2, frame_loss_weight=0.5))
    assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]) for row in varied.history)
    assert not state_equal(base.model.state_dict(), varied.model.state_dict())


def test_channel_offsets_are_the_mfccs_of_smooth_curves() -> None:
    """Each offset is the 13-coefficient DCT of a 128-band curve (what a channel adds to log-mel
    energies), as librosa's MFCC computes it; draws follow torch's seed."""
    import scipy.fft

    curve = np.linspace(-6, 6, N_MELS)
    expected = scipy.fft.dct(curve, type=2, norm="ortho")[:13]
    np.testing.assert_allclose(curve @ dct_matrix(), expected, atol=1e-9)
    torch.manual_seed(0)
    a = channel_offsets(64, 12.0)
    torch.manual_seed(0)
    assert torch.equal(a, channel_offsets(64, 12.0)) and a.shape == (64, 13)
    assert 10 < float(a[:, 1].std()) < 200 and float(a[:, 12].std()) < float(a[:, 1].std())


def test_channel_augmentation_runs_and_changes_training(splits: dict[str, SplitData]) -> None:
    base = fit(splits, 8, train_config(epochs=2, channel_augment_db=0.0))  # off explicitly, whatever params.yaml says
    varied = fit(splits, 8, train_config(epochs=2, channel_augment_db=12.0))
    assert all(math.isfinite(row["train_loss"]) for row in varied.history)
    assert not state_equal(base.model.state_dict(), varied.model.state_dict())


def test_bfloat16_falls_back_to_float32_where_the_cpu_cannot_run_it(
    splits: dict[str, SplitData], capsys: pytest.CaptureFixture[str]
) -> None:
    c = train_config(epochs=1, precision="bfloat16")
    if bfloat16_runs("cpu"):
        assert effective_precision(c) == "bfloat16"
        pytest.skip("this CPU runs the LSTM in bfloat16 (AVX-512)")
    say_float32_fallback.cache_clear()
    assert effective_precision(c) == "float32"  # an AVX2 CPU: oneDNN refuses the bfloat16 LSTM
    assert "bfloat16" not in capsys.readouterr().err  # asking (cv's cache keys do) trains nothing: silent
    fallback, full = fit(splits, 8, c), fit(splits, 8, train_config(epochs=1, precision="float32"))
    assert state_equal(fallback.model.state_dict(), full.model.state_dict()) and fallback.history == full.history
    fit(splits, 8, c)
    assert capsys.readouterr().err.count("cannot run the LSTM in bfloat16") == 1  # said once per process


def test_bfloat16_steps_train_a_float32_model_deterministically(splits: dict[str, SplitData]) -> None:
    """Only the steps' products round to bfloat16: the model, its validation and its export stay float32."""
    if not bfloat16_runs("cpu"):
        pytest.skip("this CPU cannot run the LSTM in bfloat16 (no AVX-512)")
    c = train_config(epochs=2, precision="bfloat16")
    a, b = fit(splits, 8, c), fit(splits, 8, c)
    assert state_equal(a.model.state_dict(), b.model.state_dict()) and a.history == b.history
    assert all(t.dtype == torch.float32 for t in a.model.state_dict().values())
    assert all(math.isfinite(row["train_loss"]) for row in a.history)
    full = fit(splits, 8, train_config(epochs=2, precision="float32"))
    assert not state_equal(a.model.state_dict(), full.model.state_dict())


def test_an_ensemble_is_its_members_trained_with_successive_seeds(splits: dict[str, SplitData]) -> None:
    c = train_config(epochs=2, ensemble=3)  # three members on two workers: one worker trains two
    members = [fit(splits, 8, train_config(epochs=2, seed=c.seed + k)) for k in range(3)]
    expected = ensemble_of([m.model for m in members]).state_dict()
    in_process, in_workers = fit(splits, 8, c), fit(splits, 8, c, workers=2)
    assert state_equal(in_process.model.state_dict(), expected)
    assert state_equal(in_workers.model.state_dict(), expected)  # processes change nothing
    assert in_process.model.lstm.hidden_size == 3 * c.hidden_size
    assert in_process.best_epoch == [m.best_epoch[0] for m in members] == in_workers.best_epoch
    assert in_process.epochs_run == [len(m.history) for m in members]
    assert [row["member"] for row in in_process.history] == [k + 1 for k, m in enumerate(members) for _ in m.history]
    assert in_process.seconds_per_epoch > 0
    # the reported validation figures are the merged model's own
    val_pred, _ = predictions(in_process.model, splits["val"])
    assert in_process.val["balanced_accuracy"] == pytest.approx(
        metrics.summary(splits["val"].labels.numpy(), val_pred, 8)["balanced_accuracy"]
    )


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open descriptors in /proc")
def test_split_data_travels_to_workers_as_one_array(splits: dict[str, SplitData]) -> None:
    # Pool workers receive their tasks through multiprocessing's pickler, where torch sends every tensor
    # as a file descriptor: the real training split (~6000 tensors) per member exhausted the limit.
    train = splits["train"]
    open_before = len(os.listdir("/proc/self/fd"))
    payload = ForkingPickler.dumps(train)
    assert len(os.listdir("/proc/self/fd")) == open_before
    back = pickle.loads(payload)
    assert len(back) == len(train) and all(torch.equal(a, b) for a, b in zip(back.sequences, train.sequences))
    assert torch.equal(back.labels, train.labels) and back.clips.equals(train.clips)
    empty = pickle.loads(ForkingPickler.dumps(SplitData([], torch.zeros(0, dtype=torch.long), train.clips.iloc[:0])))
    assert len(empty) == 0 and len(empty.labels) == 0


def test_fit_learns_the_synthetic_emotions(splits: dict[str, SplitData]) -> None:
    """Each synthetic emotion has its own pitch: a slightly bigger model separates them quickly."""
    result = fit(splits, 8, train_config(hidden_size=32, epochs=16, batch_size=8, lr=0.01, dropout=0.0))
    (best_epoch,) = result.best_epoch
    best = result.history[best_epoch - 1]
    assert best["val_balanced_accuracy"] >= 0.6, [r["val_balanced_accuracy"] for r in result.history]
    test = splits["test"]
    predicted = np.array([decide(p).argmax() for p in replay(result.model, test.sequences)])
    assert np.mean(predicted == test.labels.numpy()) >= 0.5  # chance is 1/8


def test_fit_refuses_an_empty_split(splits: dict[str, SplitData]) -> None:
    empty = SplitData([], torch.zeros(0, dtype=torch.long), splits["val"].clips.iloc[:0])
    with pytest.raises(InputError, match="must both hold clips"):
        fit({"train": splits["train"], "val": empty}, 8, train_config())


# ---- export and labels ----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme, names", [("ravdess8", RAVDESS8), ("frontend6", FRONTEND6)])
def test_export_writes_the_backend_files(project: Path, tmp_path: Path, scheme: str, names: list[str]) -> None:
    data = load_splits(project / "features/mfcc.h5", project / "features/split.csv", scheme, False)
    result = fit(data, len(names), train_config(epochs=1))
    write_model_files(result, scheme, [tmp_path / name for name in MODEL_FILES])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.json", "model.pth", "model_weights.pth"]

    labels = json.loads((tmp_path / "labels.json").read_text(encoding="utf-8"))
    assert labels == {
        "scheme": scheme,
        "classes": [{"index": i, "name": n, "emoji": EMOJI[n]} for i, n in enumerate(names)],
    }
    assert EMOJI["happy"].encode() in (tmp_path / "labels.json").read_bytes()  # UTF-8, not \\u escapes

    x = data["test"].sequences[0]
    expected = backend_replay(result.model, x)
    full = load_model(tmp_path / "model.pth")
    assert full.head.out_features == len(names)
    np.testing.assert_array_equal(backend_replay(full, x), expected)
    weights = torch.load(tmp_path / "model_weights.pth")  # a plain state_dict loads with weights_only=True
    assert {"feature_mean", "feature_std"} <= set(weights)
    fresh = EmotionLSTM(13, TINY["hidden_size"], TINY["num_layers"], len(names), TINY["dropout"])
    fresh.load_state_dict(weights)
    np.testing.assert_array_equal(backend_replay(fresh, x), expected)


def test_frontend6_merges_calm_into_neutral_and_disgust_into_angry(project: Path) -> None:
    data = load_splits(project / "features/mfcc.h5", project / "features/split.csv", "frontend6", False)
    # RAVDESS code -> frontend6 index (0 happy, 1 sad, 2 angry, 3 neutral, 4 fearful, 5 surprised)
    expected = {1: 3, 2: 3, 3: 0, 4: 1, 5: 2, 6: 4, 7: 2, 8: 5}
    for split in data.values():
        codes = split.clips["emotion"].to_numpy()
        assert split.labels.tolist() == [expected[int(c)] for c in codes]


# ---- augmented variants in load_splits --------------------------------------------------------------


def test_variants_never_leave_the_training_actors(tmp_path: Path) -> None:
    store, manifest_path, manifest = variant_store(tmp_path)
    split_of = manifest.drop_duplicates("actor").set_index("actor")["split"].to_dict()
    plain = load_splits(store, manifest_path, "ravdess8", train_variants=False)
    augmented = load_splits(store, manifest_path, "ravdess8", train_variants=True)
    for name in ("train", "val", "test"):
        for data in (plain[name], augmented[name]):
            assert set(data.clips["actor"].map(split_of)) == {name}  # speaker-independent
    for name, data in plain.items():
        assert set(data.clips["variant"]) == {0}, name
    assert set(augmented["val"].clips["variant"]) == set(augmented["test"].clips["variant"]) == {0}
    train = augmented["train"]
    assert set(train.clips["variant"]) == {0, 1}
    assert len(train) == 2 * len(plain["train"]) == 2 * 4 * 8
    assert augmented["val"].clips.equals(plain["val"].clips) and augmented["test"].clips.equals(plain["test"].clips)
    # train.validation: train: the val actors and their variants train too; val keeps their originals
    pooled = load_splits(store, manifest_path, "ravdess8", train_variants=True, train_on_val=True)
    assert set(pooled["train"].clips["actor"].map(split_of)) == {"train", "val"}
    assert len(pooled["train"]) == 2 * (len(plain["train"]) + len(plain["val"]))
    assert pooled["val"].clips.equals(plain["val"].clips) and pooled["test"].clips.equals(plain["test"].clips)
    assert not set(pooled["train"].clips["path"]) & set(pooled["test"].clips["path"])
    # each sequence is its own clip's (variant 1 frames are not the original's)
    with FeatureStore(store) as fs:
        index = {(p, v): i for i, (p, v) in enumerate(zip(fs.clips["path"], fs.clips["variant"]))}
        for row, seq in zip(train.clips.itertuples(), train.sequences):
            np.testing.assert_array_equal(seq.numpy(), fs.sequence(index[(row.path, row.variant)]))


# ---- the CLI as DVC runs it ----------------------------------------------------------------------------


def test_cli_end_to_end(project: Path, splits: dict[str, SplitData]) -> None:
    # params.yaml's default reaches the CLI: an ensemble of two, trained in worker processes
    params = yaml.safe_load((project / "params.yaml").read_text())
    config = parse(TrainConfig, params["train"], "train")
    assert config.ensemble == 2
    report = json.loads((project / "metrics/train.json").read_text())
    assert set(report) == {"best_epoch", "epochs_run", "train_clips", "val_clips", "validation", "stored_weights", "val"}
    assert (report["train_clips"], report["val_clips"], report["epochs_run"]) == (64, 32, [TINY["epochs"]] * 2)
    assert all(1 <= best <= run for best, run in zip(report["best_epoch"], report["epochs_run"]))
    assert set(report["val"]) == {"accuracy", "balanced_accuracy", "macro_f1", "loss"}

    log = pd.read_csv(project / "metrics/train_log.csv")
    assert list(log.columns) == ["member", *LOG_COLUMNS]
    for member, (best, run) in enumerate(zip(report["best_epoch"], report["epochs_run"]), start=1):
        rows = log[log["member"] == member]
        assert rows["epoch"].tolist() == list(range(1, run + 1))
        kept = rows.iloc[best - 1]["val_balanced_accuracy"]
        assert kept == pytest.approx(rows["val_balanced_accuracy"].max(), abs=1e-9)

    model = load_model(project / "models/model.pth")
    assert model.lstm.hidden_size == 2 * TINY["hidden_size"]
    # exported frozen: the backend's loop, without torch.no_grad(), builds no autograd graph
    trusted = torch.load(project / "models/model.pth", weights_only=False)
    assert not any(p.requires_grad for p in trusted.parameters())
    output, hidden = trusted(torch.zeros(1, 1, 13), None)
    output, hidden = trusted(torch.zeros(1, 1, 13), hidden)
    assert output.grad_fn is None and hidden[0].grad_fn is None
    assert report["stored_weights"] == sum(p.numel() for p in model.parameters())
    val_pred, _ = predictions(model, splits["val"])  # the reported figures are the merged model's
    assert report["val"]["balanced_accuracy"] == pytest.approx(
        metrics.summary(splits["val"].labels.numpy(), val_pred, 8)["balanced_accuracy"], abs=1e-5
    )
    labels = json.loads((project / "models/labels.json").read_text(encoding="utf-8"))
    assert labels["scheme"] == "ravdess8" and [c["name"] for c in labels["classes"]] == RAVDESS8
    # the CLI is fit() on load_splits() with params.yaml's config: same weights in-process
    in_process = fit(splits, 8, config)
    weights = torch.load(project / "models/model_weights.pth")
    assert in_process.best_epoch == report["best_epoch"]
    for key, value in in_process.model.state_dict().items():
        torch.testing.assert_close(weights[key], value, rtol=0, atol=1e-6)


def test_cli_bad_params_give_one_line_and_no_outputs(project: Path, tmp_path: Path) -> None:
    cwd = project_folder(tmp_path / "bad", train={"epochs": 0})
    proc = run_stage(
        cwd, "train", "--store", project / "features/mfcc.h5", "--split", project / "features/split.csv"
    )
    assert_one_line_error(proc, "train.epochs")
    assert sorted(p.name for p in cwd.iterdir()) == ["params.yaml"]



def test_a_failed_run_leaves_the_previous_outputs_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Model, weights, labels, log and metrics change together: a failure after the model file is
    written leaves the last run's set as it was, and no temporary file."""
    from pipeline import train

    variant_store(tmp_path / "features")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["train"])
    outputs = ["models/model.pth", "models/model_weights.pth", "models/labels.json", "metrics/train_log.csv", "metrics/train.json"]
    project_folder(tmp_path, train={**TINY, "epochs": 1, "ensemble": 1})
    train.main()
    before = {name: (tmp_path / name).read_bytes() for name in outputs}

    project_folder(tmp_path, train={**TINY, "epochs": 1, "ensemble": 1, "seed": 1})  # another model

    def fail(*args: object) -> None:
        raise RuntimeError("killed after the model was written")

    monkeypatch.setattr(train, "write_text", fail)  # the log: after model.pth and the weights
    with pytest.raises(RuntimeError):
        train.main()
    assert {name: (tmp_path / name).read_bytes() for name in outputs} == before
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["labels.json", "model.pth", "model_weights.pth"]
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["train.json", "train_log.csv"]


def test_random_crops_run_and_are_shorter(splits: dict[str, SplitData]) -> None:
    rng = np.random.default_rng(0)
    seq = torch.arange(50.0)[:, None].repeat(1, 13)
    crops = [random_crop(seq, 20, rng) for _ in range(30)]
    assert all(len(c) == 20 and torch.equal(c, seq[int(c[0, 0]) : int(c[0, 0]) + 20]) for c in crops)
    assert len({int(c[0, 0]) for c in crops}) > 5 and torch.equal(random_crop(seq[:10], 20, rng), seq[:10])
    cropped = fit(splits, 8, train_config(epochs=2, crop_seconds=0.05))
    assert not state_equal(fit(splits, 8, train_config(epochs=2)).model.state_dict(), cropped.model.state_dict())
    assert state_equal(cropped.model.state_dict(), fit(splits, 8, train_config(epochs=2, crop_seconds=0.05)).model.state_dict())
