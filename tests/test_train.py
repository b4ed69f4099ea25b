"""The train stage: its config, the fit loop, the exported files and the CLI as DVC runs it.

This module also builds the synthetic project that test_evaluate and test_predict reuse: the
synth_corpus extracted, split (2 val, 2 test, 4 train actors) and trained by the real CLIs, once
per session (`synthetic_project`).
"""
from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from pipeline import metrics
from pipeline import train as train_module
from pipeline.dataset import SplitData, actor_splits, load_splits
from pipeline.errors import InputError
from pipeline.inference import backend_replay, decide, replay
from pipeline.model import EmotionLSTM, ensemble_of, load_model
from pipeline.split import COLUMNS, build_manifest
from pipeline.store import Clip, write_store
from pipeline.train import TrainConfig, drop_frames, export, fit, member_splits, predictions, validation
from tests.test_extract import project as project_folder

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240  # seconds per subprocess: a hang fails its test instead of the whole run
SPLIT = {"val_actors": 2, "test_actors": 2, "folds": 4}  # the 8-actor synthetic corpus: 4 / 2 / 2 actors
TINY = {
    "hidden_size": 12, "num_layers": 1, "dropout": 0.1, "epochs": 3, "batch_size": 16, "patience": 10,
    "device": "cpu",  # the deterministic baseline, also where a GPU is present
}
RAVDESS8 = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
FRONTEND6 = ["happy", "sad", "angry", "neutral", "fearful", "surprised"]
EMOJI = {
    "neutral": "😐", "calm": "😌", "happy": "😊", "sad": "😢",
    "angry": "😠", "fearful": "😨", "disgust": "🤢", "surprised": "😲",
}
LOG_COLUMNS = [
    "epoch", "lr", "train_loss", "val_loss",
    "train_accuracy", "train_balanced_accuracy", "train_macro_f1",
    "val_accuracy", "val_balanced_accuracy", "val_macro_f1",
]


# ---- helpers shared with test_evaluate and test_predict ----------------------------------------


def cli_env(pythonpath: bool = True) -> dict[str, str]:
    """One BLAS/OpenMP thread: the stages' tiny LSTM steps crawl when 2 threads fight for 2 busy cores."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = str(REPO)  # this checkout's package, whatever is installed
    return env


def run_stage(cwd: Path, module: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline.<module> ARGS` in cwd (a project folder with its own params.yaml)."""
    return subprocess.run(
        [sys.executable, "-m", f"pipeline.{module}", *map(str, args)],
        cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )


def run_stages(jobs: dict[str, tuple[Path, str, list[str | Path]]]) -> dict[str, subprocess.CompletedProcess[str]]:
    """Several stage runs at once (each spends seconds importing torch and librosa)."""
    with ThreadPoolExecutor(max(2, len(jobs))) as pool:
        futures = {name: pool.submit(run_stage, cwd, module, *args) for name, (cwd, module, args) in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit code 2 and exactly one `error:` line on stderr (no traceback) containing every needle."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


_BUILT: dict[str, Path] = {}


def synthetic_project(factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """Once per session: a project folder whose features/mfcc.h5, features/split.csv, models/ and
    metrics/train.* come from `python -m pipeline.extract`, `split` and `train` on the synthetic corpus."""
    if "project" not in _BUILT:
        root = project_folder(factory.mktemp("project"), extract={"workers": 2}, split=SPLIT, train=TINY)
        for module, args in (("extract", ["--data", corpus]), ("split", []), ("train", [])):
            proc = run_stage(root, module, *args)
            assert proc.returncode == 0, f"{module}: {proc.stderr[-3000:]}"
        _BUILT["project"] = root
    return _BUILT["project"]


@pytest.fixture(scope="module", autouse=True)
def single_thread() -> Iterator[None]:
    """In-process torch on one thread too (fast and stable on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- fixtures of this module ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, synth_corpus: Path) -> Path:
    return synthetic_project(tmp_path_factory, synth_corpus)


@pytest.fixture(scope="module")
def splits(project: Path) -> dict[str, SplitData]:
    return load_splits(project / "features/mfcc.h5", project / "features/split.csv", "ravdess8", False)


def config(**overrides: Any) -> TrainConfig:
    return TrainConfig(**{**TINY, **overrides})


def state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- TrainConfig.from_params ---------------------------------------------------------------------


def test_from_params_reads_the_strings_dvc_writes() -> None:
    # `dvc exp run -S train.lr=1e-05` writes `lr: 1e-05`, which YAML 1.1 reads as a string.
    written = yaml.safe_load("lr: 1e-05\nhidden_size: 16\n")
    assert written["lr"] == "1e-05"
    c = TrainConfig.from_params(
        {**written, "epochs": "3", "batch_size": 8.0, "dropout": "0.25", "weight_decay": "0",
         "augment_variants": True, "optimizer": "adam", "device": "cpu"}
    )
    assert c.lr == 1e-5 and type(c.lr) is float
    assert (c.hidden_size, c.epochs, c.batch_size) == (16, 3, 8)
    assert all(type(v) is int for v in (c.hidden_size, c.epochs, c.batch_size))
    assert (c.dropout, c.weight_decay, c.augment_variants, c.optimizer) == (0.25, 0.0, True, "adam")
    assert c.seed == TrainConfig.seed  # absent keys keep their defaults


def test_from_params_takes_the_repo_params_as_they_are() -> None:
    section = yaml.safe_load((REPO / "params.yaml").read_text())["train"]
    c = TrainConfig.from_params(section)
    for key, value in section.items():
        assert getattr(c, key) == value, key


def test_from_params_refuses_unknown_keys_in_one_line() -> None:
    with pytest.raises(InputError) as caught:
        TrainConfig.from_params({"lr": 0.01, "learning_rate": 0.01})
    message = str(caught.value)
    assert "learning_rate" in message and "\n" not in message and message.startswith("params.yaml: ")


@pytest.mark.parametrize(
    "key, value",
    [
        ("lr", "fast"), ("lr", 0), ("lr", -1e-3), ("lr", "nan"), ("hidden_size", 1.5), ("hidden_size", "0"),
        ("num_layers", 0), ("epochs", 0), ("batch_size", -4), ("patience", 0), ("warmup_epochs", -1),
        ("dropout", 1.0), ("dropout", -0.1), ("frame_dropout", 1), ("label_smoothing", 1.5),
        ("feature_noise", -0.5), ("frame_loss_weight", "inf"), ("seed", -1), ("grad_clip", None),
        ("augment_variants", "yes"), ("class_weighting", 1), ("optimizer", "sgd"), ("schedule", "step"),
        ("device", "tpu"), ("epochs", True), ("ema_decay", 1.0), ("ema_decay", -0.1),
        ("ensemble", 0), ("rotate_val", "true"),
    ],
)
def test_from_params_refuses_bad_values_in_one_line(key: str, value: Any) -> None:
    with pytest.raises(InputError) as caught:
        TrainConfig.from_params({key: value})
    message = str(caught.value)
    assert f"train.{key}" in message and "\n" not in message, message


# ---- fit -------------------------------------------------------------------------------------------


def test_fit_is_deterministic(splits: dict[str, SplitData]) -> None:
    # Two layers and dropout: every random draw (init, batches, dropout masks) must follow the seed.
    c = config(num_layers=2, dropout=0.3, epochs=2)
    a, b = fit(splits, 8, c), fit(splits, 8, c)
    assert state_equal(a.model.state_dict(), b.model.state_dict())
    assert a.history == b.history and a.best_epoch == b.best_epoch
    other = fit(splits, 8, config(num_layers=2, dropout=0.3, epochs=2, seed=1))
    assert not state_equal(a.model.state_dict(), other.model.state_dict())  # the seed matters
    assert len(a.history) == 2 and a.history[0]["epoch"] == 1
    assert not a.model.training and next(a.model.parameters()).device.type == "cpu"


def test_a_single_model_is_exported_as_its_best_checkpoint(splits: dict[str, SplitData]) -> None:
    result = fit(splits, 8, config(epochs=3, patience=5))
    (member,) = result.members
    assert state_equal(result.model.state_dict(), member.model.state_dict())
    assert result.model.lstm.hidden_size == config().hidden_size and [r["member"] for r in result.history] == [1] * 3
    # the reported validation figures are those the kept epoch was selected with
    kept = result.history[result.best_epoch[0] - 1]
    assert result.val == pytest.approx({k[4:]: v for k, v in kept.items() if k.startswith("val_")}, abs=1e-12)


def test_fit_puts_the_training_frame_statistics_inside_the_model(splits: dict[str, SplitData]) -> None:
    result = fit(splits, 8, config(epochs=1))
    frames = torch.cat(splits["train"].sequences).double()
    assert torch.allclose(result.model.feature_mean.double(), frames.mean(0), rtol=1e-5)
    assert torch.allclose(result.model.feature_std.double(), frames.std(0), rtol=1e-5)
    assert float(result.model.feature_mean[0]) < -100  # raw MFCC scale: c0 is large and negative


@pytest.mark.parametrize(
    "knob",
    [{"frame_loss_weight": 0.5}, {"feature_noise": 0.3}, {"frame_dropout": 0.3}, {"label_smoothing": 0.1},
     {"ema_decay": 0.9}],
)
def test_regularisation_paths_run_and_change_training(splits: dict[str, SplitData], knob: dict[str, float]) -> None:
    base = fit(splits, 8, config(epochs=2))
    varied = fit(splits, 8, config(epochs=2, **knob))
    assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]) for row in varied.history)
    assert not state_equal(base.model.state_dict(), varied.model.state_dict()), knob


def test_ema_keeps_and_exports_the_averaged_weights(splits: dict[str, SplitData]) -> None:
    # With a decay near 1 the average hardly moves from the weights after the first step, so the
    # kept checkpoint sits next to the initial weights while the trained ones have moved away.
    c = config(epochs=3, patience=5)
    torch.manual_seed(c.seed)
    initial = EmotionLSTM(13, c.hidden_size, c.num_layers, 8, c.dropout).state_dict()
    plain = fit(splits, 8, c).model.state_dict()
    averaged = fit(splits, 8, config(epochs=3, patience=5, ema_decay=0.999999)).model.state_dict()

    def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        return sum(float((a[k] - b[k]).abs().sum()) for k in a if k.startswith(("lstm", "head")))

    moved_averaged, moved_plain = distance(averaged, initial), distance(plain, initial)
    assert moved_averaged < 0.25 * moved_plain, (moved_averaged, moved_plain)
    assert torch.equal(averaged["feature_mean"], plain["feature_mean"])  # statistics are not averaged


def test_an_ensemble_is_its_members_trained_with_successive_seeds(splits: dict[str, SplitData]) -> None:
    c = config(epochs=2, ensemble=3)  # three members on two workers: one worker trains two
    members = [fit(splits, 8, config(epochs=2, seed=c.seed + k)) for k in range(3)]
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


def test_rotated_validation_gives_each_member_its_own_actors(project: Path, splits: dict[str, SplitData]) -> None:
    c = config(epochs=2, ensemble=3, rotate_val=True)
    data = member_splits(project / "features/mfcc.h5", project / "features/split.csv", "ravdess8", c)
    actors = [{name: set(d[name].clips["actor"]) for name in ("train", "val", "test")} for d in data]
    usual = {name: set(splits[name].clips["actor"]) for name in ("train", "val", "test")}
    assert actors[0] == usual  # member 1 keeps the manifest's split
    for k in (1, 2):
        assert actors[k]["test"] == usual["test"]  # the test actors are never trained or selected on
        assert usual["val"] <= actors[k]["train"]  # the usual val actors are trained on
        assert len(actors[k]["val"]) == len(usual["val"]) and actors[k]["val"] <= usual["train"]
    assert actors[1]["val"].isdisjoint(actors[2]["val"])
    # the manifest's folds: test fold 0, member k validates on fold k + 1
    fold_of = pd.read_csv(project / "features/split.csv").drop_duplicates("actor").set_index("actor")["fold"]
    assert [{fold_of[a] for a in a_k["val"]} for a_k in actors] == [{1}, {2}, {3}]

    result = fit(data, 8, c)
    alone = fit(splits, 8, config(epochs=2))
    assert state_equal(result.members[0].model.state_dict(), alone.model.state_dict())
    assert not torch.equal(result.members[1].model.feature_mean, result.members[0].model.feature_mean)
    assert result.model.lstm.hidden_size == 3 * c.hidden_size
    # no split is unseen by every member: the reported figures are each member's on its own val actors
    own = [validation(m.model, d["val"], 8) for m, d in zip(result.members, data)]
    assert result.val == pytest.approx({k: float(np.mean([o[k] for o in own])) for k in own[0]}, abs=1e-9)
    # a fourth member would find no fold left: the 4 folds are test, and val for 3 members
    with pytest.raises(InputError, match="no fold left"):
        member_splits(project / "features/mfcc.h5", project / "features/split.csv", "ravdess8", config(ensemble=4, rotate_val=True))


def test_rotated_validation_needs_whole_folds(project: Path, tmp_path: Path) -> None:
    manifest = pd.read_csv(project / "features/split.csv")
    assert actor_splits(manifest, None, 1) != actor_splits(manifest, None, 0)
    test_actor = manifest.loc[manifest["split"] == "test", "actor"].iloc[0]
    swapped = manifest.assign(fold=manifest["fold"].where(manifest["actor"] != test_actor, 2))
    assert actor_splits(swapped, None, 0) == actor_splits(manifest, None, 0)  # the manifest's own split: fine
    with pytest.raises(InputError, match="one fold each"):
        actor_splits(swapped, None, 1)


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


def test_frame_dropout_shortens_sequences_but_never_empties_one(
    splits: dict[str, SplitData], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[torch.Tensor] = []

    def recording_pad(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, lengths = original(sequences)
        seen.append(lengths)
        return x, lengths

    original = train_module.pad
    monkeypatch.setattr(train_module, "pad", recording_pad)
    fit(splits, 8, config(epochs=1, frame_dropout=0.3))
    kept = torch.cat(seen)
    total = int(splits["train"].lengths.sum())
    assert 0.6 * total < int(kept.sum()) < 0.8 * total  # about 30% dropped
    seen.clear()
    fit(splits, 8, config(epochs=1, frame_dropout=0.999))  # nearly everything dropped
    assert int(torch.cat(seen).min()) >= 1  # a length-0 sequence's "last step" would be padding
    for _ in range(200):
        assert len(drop_frames(torch.zeros(3, 13), 0.999)) >= 1


def test_fit_learns_the_synthetic_emotions(splits: dict[str, SplitData]) -> None:
    """Each synthetic emotion has its own pitch: a slightly bigger model separates them quickly."""
    result = fit(splits, 8, config(hidden_size=32, epochs=8, batch_size=8, lr=0.01, dropout=0.0))
    (best_epoch,) = result.best_epoch
    best = result.history[best_epoch - 1]
    assert best["val_balanced_accuracy"] >= 0.6, [r["val_balanced_accuracy"] for r in result.history]
    test = splits["test"]
    predicted = np.array([decide(p).argmax() for p in replay(result.model, test.sequences)])
    assert np.mean(predicted == test.labels.numpy()) >= 0.5  # chance is 1/8


def test_fit_refuses_an_empty_split(splits: dict[str, SplitData]) -> None:
    empty = SplitData([], torch.zeros(0, dtype=torch.long), splits["val"].clips.iloc[:0])
    with pytest.raises(InputError, match="must both hold clips"):
        fit({"train": splits["train"], "val": empty}, 8, config())


# ---- export and labels ----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme, names", [("ravdess8", RAVDESS8), ("frontend6", FRONTEND6)])
def test_export_writes_the_backend_files(project: Path, tmp_path: Path, scheme: str, names: list[str]) -> None:
    data = load_splits(project / "features/mfcc.h5", project / "features/split.csv", scheme, False)
    result = fit(data, len(names), config(epochs=1))
    export(result, scheme, tmp_path)
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


def variant_store(folder: Path) -> tuple[Path, Path, pd.DataFrame]:
    """A store written directly: 8 actors x 8 emotions, each clip with one augmented variant
    (variant 1), random raw-scale MFCCs; and its 4/2/2 manifest."""
    rng = np.random.default_rng(0)
    clips = []
    for actor in range(1, 9):
        for emotion in range(1, 9):
            path = f"Actor_{actor:02d}/03-01-{emotion:02d}-01-01-01-{actor:02d}.wav"
            meta = {"path": path, "actor": actor, "emotion": emotion, "intensity": 1, "statement": 1, "repetition": 1}
            for variant, name in ((0, ""), (1, "noise_20db")):
                mfcc = (rng.standard_normal((int(rng.integers(3, 9)), 13)) * 50 - 500).astype(np.float32)
                clips.append(Clip({**meta, "variant": variant, "augment": name}, mfcc))
    store = folder / "mfcc.h5"
    write_store(store, clips, {"sample_rate": 16000, "frame_length": 400, "hop_length": 160, "n_mfcc": 13})
    table = pd.DataFrame([{**c.meta, "n_frames": len(c.mfcc)} for c in clips])
    manifest = build_manifest(table, SPLIT)
    manifest[COLUMNS].to_csv(folder / "split.csv", index=False)
    return store, folder / "split.csv", manifest


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
    # each sequence is its own clip's (variant 1 frames are not the original's)
    from pipeline.store import FeatureStore

    with FeatureStore(store) as fs:
        index = {(p, v): i for i, (p, v) in enumerate(zip(fs.clips["path"], fs.clips["variant"]))}
        for row, seq in zip(train.clips.itertuples(), train.sequences):
            np.testing.assert_array_equal(seq.numpy(), fs.sequence(index[(row.path, row.variant)]))


# ---- the CLI as DVC runs it ----------------------------------------------------------------------------


def test_cli_end_to_end(project: Path, splits: dict[str, SplitData]) -> None:
    # params.yaml's default reaches the CLI: an ensemble of two, trained in worker processes
    params = yaml.safe_load((project / "params.yaml").read_text())
    config = TrainConfig.from_params(params["train"])
    assert config.ensemble == 2
    report = json.loads((project / "metrics/train.json").read_text())
    assert set(report) == {"best_epoch", "epochs_run", "train_clips", "val_clips", "parameters", "val"}
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
    assert report["parameters"] == sum(p.numel() for p in model.parameters())
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

