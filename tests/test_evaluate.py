"""The evaluate stage as DVC runs it, on the session's synthetic project (tests/conftest.py): test actors replayed
frame by frame, metrics for both decision rules, plots, a backend-loop cross-check, reproducible bytes."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from pipeline import metrics
from pipeline.audio import frames_after
from pipeline.dataset import SplitData, load_splits
from pipeline.errors import InputError
from pipeline.inference import decide, replay
from pipeline.model import EmotionLSTM, load_model
from pipeline.robustness import check_names, degraded_features
from pipeline.scoring import early_curve, replay_check
from tests.helpers import RAVDESS8, assert_ok, assert_one_line_error, run_stages

OUTPUTS = (
    "eval.json", "eval_predictions.csv", "early_decision.csv", "confusion.png", "robustness.json", "robustness.png",
    "corpora.json",  # data.eval_corpora's figures: {} here
)
Runs = dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def eval_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evaluate")


@pytest.fixture(scope="module")
def runs(project: Path, eval_base: Path, synth_corpus: Path) -> Runs:
    """Two identical runs (into eval_a/ and eval_b/) and two that must fail, all at once."""
    base = eval_base
    six, nomodel = base / "frontend6", base / "nomodel"
    params = yaml.safe_load((project / "params.yaml").read_text())
    nomodel.mkdir()
    (nomodel / "params.yaml").write_text(yaml.safe_dump(params))
    broken = load_model(project / "models/model.pth")
    broken.head.bias.fill_(float("nan"))  # a diverged training's model
    torch.save(broken, nomodel / "nan.pth")
    six.mkdir()
    params["data"]["classes"] = "frontend6"
    (six / "params.yaml").write_text(yaml.safe_dump(params))
    data = ["--store", project / "features/mfcc.h5", "--split", project / "features/split.csv"]
    return run_stages(
        {
            "a": (project, "evaluate", ["--data", synth_corpus, "--metrics-dir", "eval_a"]),
            "b": (project, "evaluate", ["--data", synth_corpus, "--metrics-dir", "eval_b"]),
            # an 8-class model scored as frontend6 would report nonsense: refused
            "six": (six, "evaluate", ["--model", project / "models/model.pth", *data, "--metrics-dir", "out"]),
            "missing": (nomodel, "evaluate", ["--model", base / "none.pth", *data, "--metrics-dir", "out"]),
            "nan": (nomodel, "evaluate", ["--model", nomodel / "nan.pth", *data, "--data", synth_corpus, "--metrics-dir", "out"]),
        }
    )


@pytest.fixture(scope="module")
def held_out(project: Path) -> SplitData:
    return load_splits(project / "features/mfcc.h5", project / "features/split.csv", "ravdess8", False)["test"]


@pytest.fixture(scope="module")
def frame_probs(project: Path, held_out: SplitData) -> list[np.ndarray]:
    return replay(load_model(project / "models/model.pth"), held_out.sequences)


def test_eval_json(project: Path, runs: Runs, held_out: SplitData, frame_probs: list[np.ndarray]) -> None:
    assert_ok(runs["a"])
    report = json.loads((project / "eval_a/eval.json").read_text())
    labels = held_out.labels.numpy()
    manifest = pd.read_csv(project / "features/split.csv")
    test_actors = sorted(manifest.loc[manifest["split"] == "test", "actor"].unique().tolist())
    assert len(test_actors) == 2
    assert report["test_actors"] == test_actors
    assert report["clips"] == len(held_out) == 2 * 8 * 2
    assert report["classes"] == "ravdess8"

    # the same figures recomputed here from the stored sequences
    for key, rule in (("top", "last"), ("mean_prob", "mean")):
        predicted = np.array([decide(p, rule).argmax() for p in frame_probs])
        expected = metrics.summary(labels, predicted, 8)
        got = report if key == "top" else report["mean_prob"]
        for name in ("accuracy", "balanced_accuracy", "macro_f1"):
            assert 0 <= got[name] <= 1
            assert got[name] == pytest.approx(expected[name], abs=1e-6), (key, name)
    assert set(report["mean_prob"]) == {"accuracy", "balanced_accuracy", "macro_f1"}

    assert list(report["per_class"]) == sorted(RAVDESS8)  # JSON keys are sorted
    last = np.array([decide(p).argmax() for p in frame_probs])
    expected_per_class = metrics.per_class(labels, last, RAVDESS8)
    for name, figures in report["per_class"].items():
        assert set(figures) == {"precision", "recall", "f1", "support"}
        assert figures["support"] == 4  # 2 actors x 2 takes
        for k in ("precision", "recall", "f1"):
            assert figures[k] == pytest.approx(expected_per_class[name][k], abs=1e-6)

    early = report["early_decision"]
    assert list(early) == sorted(["0.5s", "1s", "2s", "end"])
    assert early["end"] == report["accuracy"]
    assert early["2s"] == report["accuracy"]  # the 0.8 s clips have ended by then
    assert report["replay_check"]["clips"] == 8
    assert 0 <= report["replay_check"]["max_abs_diff"] <= 1e-5


def test_tables_and_plot(project: Path, runs: Runs, held_out: SplitData, frame_probs: list[np.ndarray]) -> None:
    assert_ok(runs["a"])
    out = project / "eval_a"
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)  # no temporary files left
    assert json.loads((out / "corpora.json").read_text()) == {}  # no data.eval_corpora
    table = pd.read_csv(out / "eval_predictions.csv")
    assert list(table.columns) == ["path", "actual", "predicted"]
    assert table["path"].tolist() == held_out.clips["path"].tolist()
    assert table["actual"].tolist() == [RAVDESS8[i] for i in held_out.labels.tolist()]
    assert table["predicted"].tolist() == [RAVDESS8[int(decide(p).argmax())] for p in frame_probs]
    report = json.loads((out / "eval.json").read_text())
    assert np.mean(table["actual"] == table["predicted"]) == pytest.approx(report["accuracy"], abs=1e-6)

    curve = pd.read_csv(out / "early_decision.csv")
    assert list(curve.columns) == ["seconds", "accuracy", "balanced_accuracy", "macro_f1"]
    assert curve["seconds"].iloc[0] == 0.25 and curve["seconds"].is_monotonic_increasing
    assert curve["accuracy"].iloc[-1] == pytest.approx(report["accuracy"], abs=1e-5)

    png = (out / "confusion.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def test_rerun_is_byte_identical(project: Path, runs: Runs) -> None:
    assert_ok(runs["a"])
    assert_ok(runs["b"])
    for name in OUTPUTS:
        assert (project / "eval_a" / name).read_bytes() == (project / "eval_b" / name).read_bytes(), name


def test_refusals_are_one_line_and_write_nothing(runs: Runs, eval_base: Path) -> None:
    assert_one_line_error(runs["six"], "model.pth", "predicts 8 classes", "frontend6")
    assert_one_line_error(runs["missing"], "none.pth", "not found")
    assert_one_line_error(runs["nan"], "nan.pth", "not finite (NaN or Inf)")
    assert not (eval_base / "frontend6/out").exists() and not (eval_base / "nomodel/out").exists()


# ---- the pieces, in-process ------------------------------------------------------------------------


def test_frames_after_counts_whole_frames() -> None:
    # 400-sample frames every 160 samples at 16 kHz
    assert frames_after(0.0) == 1 and frames_after(0.025) == 1
    assert frames_after(0.035) == 2
    assert frames_after(0.5) == 1 + (8000 - 400) // 160 == 48
    assert frames_after(1) == 1 + (16000 - 400) // 160


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_early_curve_reads_the_frame_reached_by_then() -> None:
    """A clip that turns right only at frame 60: wrong after 0.5 s (frame 48), right after 1 s."""
    probs = np.full((80, 3), 0.1)
    probs[:60, 1] = 0.8
    probs[60:, 2] = 0.8
    short = np.full((10, 3), 0.1)
    short[:, 0] = 0.8  # ends before 0.5 s: its last frame counts
    rows = early_curve([probs, short], np.array([2, 0]), [0.5, 1.0])
    assert [r["accuracy"] for r in rows] == [0.5, 1.0]
    assert [r["seconds"] for r in rows] == [0.5, 1.0]


def test_replay_check_catches_a_batched_replay_that_drifts(project: Path, held_out: SplitData) -> None:
    model: EmotionLSTM = load_model(project / "models/model.pth")
    batched = replay(model, held_out.sequences)
    check = replay_check(model, held_out, batched, 4, seed=0)
    assert check["clips"] == 4 and check["max_abs_diff"] <= 1e-5
    drifted = [p + 1e-3 for p in batched]
    with pytest.raises(InputError, match="differs from the backend loop"):
        replay_check(model, held_out, drifted, len(held_out), seed=0)


def test_robustness_scores_every_condition_and_clean_is_the_store(project: Path, runs: Runs) -> None:
    """Every condition of params.yaml scored with both rules; the clean condition recomputes the
    features from the audio, and they must be the store's: the same figure as eval.json's."""
    assert_ok(runs["a"])
    scores = json.loads((project / "eval_a/robustness.json").read_text())
    conditions = yaml.safe_load((project / "params.yaml").read_text())["evaluate"]["conditions"]
    assert sorted(scores) == sorted(conditions) and len(conditions) >= 20
    assert all(set(s) == {"last", "mean"} and 0 <= s["last"] <= 1 for s in scores.values())
    report = json.loads((project / "eval_a/eval.json").read_text())
    assert scores["clean"]["last"] == report["balanced_accuracy"]
    assert scores["clean"]["mean"] == report["mean_prob"]["balanced_accuracy"]
    assert len({s["last"] for s in scores.values()}) > 1  # the conditions change what the model hears


def test_clean_features_from_audio_equal_the_store(project: Path, synth_corpus: Path, held_out: SplitData) -> None:
    clips = held_out.clips.iloc[:4]
    features = degraded_features(
        [synth_corpus / p for p in clips["path"]], list(clips["path"]), list(clips["actor"]), ["clean", "pink_10"], 1
    )
    for got, stored in zip(features["clean"], held_out.sequences[:4]):
        np.testing.assert_array_equal(got, stored.numpy())
    assert not any(np.array_equal(a, b) for a, b in zip(features["pink_10"], features["clean"]))


def test_unknown_condition_is_one_line_naming_params() -> None:
    with pytest.raises(InputError, match=r"params.yaml: evaluate.conditions: unknown condition 'phone_5g'"):
        check_names(["clean", "phone_5g"])
