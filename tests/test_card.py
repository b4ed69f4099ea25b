"""The card stage: models/MODEL_CARD.md written from the metrics, every figure read, none typed in."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO, assert_ok, assert_one_line_error, run_stage

INPUTS = (
    "metrics/cv.json", "metrics/eval.json", "metrics/robustness.json", "metrics/train.json", "metrics/corpora.json",
    "models/labels.json",
)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    for rel in INPUTS:
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    return tmp_path


def test_the_card_quotes_the_metrics(folder: Path) -> None:
    cv = json.loads((folder / "metrics/cv.json").read_text())
    cv["balanced_accuracy"] = {"mean": 0.777777, "std": 0.0123}
    cv["conditions"] = {"tilt_up": {"last": 0.654321, "last_std": 0.0456, "mean": 0.6}}
    (folder / "metrics/cv.json").write_text(json.dumps(cv))
    robustness = json.loads((folder / "metrics/robustness.json").read_text())
    assert_ok(run_stage(folder, "card"))
    card = (folder / "models/MODEL_CARD.md").read_text(encoding="utf-8")
    assert "**0.778 ± 0.012**" in card  # from the file, not from the repo's figures
    for name, scores in robustness.items():
        assert f"| {name} | {scores['last']:.3f} |" in card
    assert "cross-validated (6 folds) |" in card and " 0.654 ± 0.046 |" in card  # the cv stage's figure beside it
    assert "balanced accuracy 0.654 on average against 0.778 clean (cross-validated); the worst, tilt_up, 0.654" in card
    labels = json.loads((folder / "models/labels.json").read_text())
    assert all(f"| {c['index']} | {c['name']} | {c['emoji']} |" in card for c in labels["classes"])
    first = card
    assert_ok(run_stage(folder, "card"))
    assert (folder / "models/MODEL_CARD.md").read_text(encoding="utf-8") == first  # reruns are identical


def test_the_card_gives_each_scored_corpus(folder: Path) -> None:
    """data.eval_corpora's figures (metrics/corpora.json) get a row each; none scored is said, not left blank."""
    assert_ok(run_stage(folder, "card"))
    assert "None was scored: list a corpus's manifest in `data.eval_corpora`" in (folder / "models/MODEL_CARD.md").read_text(encoding="utf-8")
    scored = {"clips": 535 - 81, "speakers": 10, "classes": ["neutral", "happy", "sad", "angry", "fearful", "disgust"],
              "balanced_accuracy": 0.31234, "mean_prob": {"balanced_accuracy": 0.29876}}
    (folder / "metrics/corpora.json").write_text(json.dumps({"emodb": scored}))
    assert_ok(run_stage(folder, "card"))
    card = (folder / "models/MODEL_CARD.md").read_text(encoding="utf-8")
    assert "| emodb | 454 | 10 | neutral, happy, sad, angry, fearful, disgust | 0.312 | 0.299 | 0.167 |" in card


def test_a_missing_metric_is_one_line_and_writes_nothing(folder: Path) -> None:
    (folder / "metrics/robustness.json").unlink()
    assert_one_line_error(run_stage(folder, "card"), "robustness.json", "not found")
    assert not (folder / "models/MODEL_CARD.md").exists()


def test_the_committed_card_is_current() -> None:
    """dvc.lock's card matches the committed metrics: rendered again, it is the same text."""
    from pipeline.card import INPUTS as NAMES
    from pipeline.card import read_json, render

    metrics = [read_json(REPO / "metrics" / name) for name in NAMES]
    assert (REPO / "models/MODEL_CARD.md").read_text(encoding="utf-8") == render(*metrics, read_json(REPO / "models/labels.json"))


def test_the_card_says_when_the_val_actors_were_trained_on(folder: Path) -> None:
    train = json.loads((folder / "metrics/train.json").read_text())
    for validation, phrase in (("select", "selected its checkpoint on"), ("train", "the val actors'")):
        (folder / "metrics/train.json").write_text(json.dumps(train | {"validation": validation}))
        assert_ok(run_stage(folder, "card"))
        card = (folder / "models/MODEL_CARD.md").read_text(encoding="utf-8")
        assert f"{phrase} {train['val_clips']} clips" in card
