"""The real DVC pipeline, end to end, on a small synthetic corpus inside a throwaway git repository
(and once more with a second corpus to train on and a third only scored).

One test walks through what a user does with DVC: reproduce everything, reproduce again (nothing
runs), change a split parameter (split and its descendants rerun, the features do not), change an
evaluate parameter (evaluate and the card rerun), force a rerun with the same params (same metrics, byte
for byte), and run an experiment with `dvc exp run -S train.lr=0.0001` (metrics differ from HEAD and
`dvc exp show` lists it).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pipeline.config import TrainConfig, load
from tests.helpers import make_corpus, make_manifest_corpus

pytest.importorskip("dvc")
if shutil.which("git") is None:
    pytest.skip("git is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
STAGES = ("fetch", "extract", "split", "train", "evaluate", "cv", "card", "figures")
OUTPUTS = (
    "features/mfcc.h5",
    "features/split.csv",
    "models/model.pth",
    "models/labels.json",
    "metrics/train.json",
    "metrics/eval.json",
    "metrics/cv.json",
    "metrics/robustness.json",
    "models/MODEL_CARD.md",
    "dvc.lock",
)
# Small enough for ~1-2 minutes on two cores. 8 actors (4 male, 4 female): 2 val, 2 test, 4 train.
# folds must be >= 3 (fold k tests, fold k+1 selects, the rest trains) and divide the 4 male actors.
FAST_PARAMS = {
    "split": {"val_actors": 2, "test_actors": 2, "folds": 4},
    "train": {"hidden_size": 8, "num_layers": 1, "epochs": 2, "batch_size": 16},
    "evaluate": {"backend_check_clips": 2},
}
EXPERIMENT = "lr-1e-4"
TIMEOUT = 600


class Project:
    """A temporary git + DVC repository holding a copy of the pipeline; runs git and dvc in it."""

    def __init__(self, root: Path, corpus: Path, scratch: Path) -> None:
        self.root = root
        bin_dir = str(Path(sys.executable).parent)  # the stages run `python -m pipeline.<stage>`
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DVC_"))}
        env.update(
            PATH=os.pathsep.join([bin_dir, env.get("PATH", "")]),
            RAVDESS_SOURCE=str(corpus),
            NUMBA_CACHE_DIR=str(scratch / "numba"),
            MPLCONFIGDIR=str(scratch / "matplotlib"),
            DVC_NO_ANALYTICS="1",
            GIT_CONFIG_NOSYSTEM="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.pop("PYTHONPATH", None)  # the copied pipeline/ in cwd must be the one imported
        self.env = env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            args, cwd=self.root, env=self.env, text=True, timeout=TIMEOUT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,  # one stream, in order: stage stderr included
        )
        if check and proc.returncode != 0:
            pytest.fail(f"`{' '.join(args)}` exited with {proc.returncode}:\n{proc.stdout[-8000:]}", pytrace=False)
        return proc

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def repro(self, *args: str) -> list[str]:
        """Run `dvc repro`; returns the stages it ran, in order."""
        out = self.dvc("repro", *args).stdout
        return ran_stages(out)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "--allow-empty", "-m", message)

    def set_params(self, changes: dict[str, dict[str, Any]]) -> None:
        path = self.root / "params.yaml"
        params = yaml.safe_load(path.read_text())
        for stage, values in changes.items():
            params[stage].update(values)
        path.write_text(yaml.safe_dump(params, sort_keys=False))

    def fingerprint(self, *paths: str) -> dict[str, tuple[str, int]]:
        """sha256 and mtime of each output: a stage that reruns changes at least the mtime."""
        result = {}
        for rel in paths:
            path = self.root / rel
            result[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        return result

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def status_clean(self) -> bool:
        return json.loads(self.dvc("status", "--json").stdout or "{}") == {}


def ran_stages(output: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", output, flags=re.MULTILINE)


def find_experiment(nodes: Any, name: str) -> dict[str, Any] | None:
    """The `dvc exp show --json` entry (at any depth) whose name is `name`."""
    if isinstance(nodes, list):
        for node in nodes:
            found = find_experiment(node, name)
            if found:
                return found
    elif isinstance(nodes, dict):
        if nodes.get("name") == name and isinstance(nodes.get("data"), dict):
            return nodes
        for key in ("experiments", "revs"):
            found = find_experiment(nodes.get(key), name)
            if found:
                return found
    return None


@pytest.fixture()
def dvc_project(tmp_path: Path) -> Project:
    corpus = tmp_path / "corpus"
    make_corpus(corpus, actors=range(1, 9), emotions=range(1, 9), takes=2, seconds=0.3)  # 0.5 s clips
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(REPO / "corpora", root / "corpora")  # a dependency of extract and evaluate, even empty
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copyfile(REPO / name, root / name)
    # As in the real repository: the corpus (an uncached DVC output) stays out of git.
    (root / ".gitignore").write_text("__pycache__/\n/data/ravdess/\n")
    p = Project(root, corpus, tmp_path)
    p.set_params(FAST_PARAMS)
    p.run("git", "init", "-q")
    for key, value in (("user.name", "test"), ("user.email", "test@example.com"), ("commit.gpgsign", "false")):
        p.run("git", "config", key, value)
    p.dvc("init", "-q")
    p.dvc("config", "core.analytics", "false")
    p.commit("pipeline")
    return p


def test_dvc_pipeline_end_to_end(dvc_project: Project) -> None:
    project = dvc_project
    p = project

    # 1. A fresh repository: every stage runs, in dependency order, and writes its outputs.
    ran = p.repro()
    assert sorted(ran) == sorted(STAGES), ran
    assert ran.index("fetch") < ran.index("extract") < ran.index("split") < ran.index("train") < ran.index("evaluate")
    assert ran.index("card") > max(ran.index("evaluate"), ran.index("cv"))
    for rel in OUTPUTS:
        assert (p.root / rel).is_file(), f"{rel} missing after dvc repro"
    labels = json.loads(p.read("models/labels.json"))
    assert len(labels["classes"]) == 8
    evaluation = json.loads(p.read("metrics/eval.json"))
    assert {"accuracy", "balanced_accuracy", "macro_f1", "mean_prob"} <= set(evaluation)
    assert len(evaluation["test_actors"]) == 2
    assert len(json.loads(p.read("metrics/cv.json"))["folds"]) == 4
    p.commit("dvc repro")
    # The feature store is DVC-cached: ignored by git, not committed.
    assert p.run("git", "ls-files", "features/mfcc.h5").stdout.strip() == ""
    assert p.run("git", "status", "--porcelain").stdout.strip() == ""

    # 2. Nothing changed: nothing runs, nothing is rewritten.
    watched = OUTPUTS + ("metrics/train_log.csv", "metrics/cv_predictions.csv", "data/validation.json")
    before = p.fingerprint(*watched)
    assert p.status_clean(), p.dvc("status").stdout
    out = p.dvc("repro").stdout
    assert ran_stages(out) == [], out
    assert p.fingerprint(*watched) == before
    assert "up to date" in p.dvc("status").stdout

    # 3. The same params give the same metrics: a forced rerun of train and evaluate (only them: -s,
    #    since `repro -f` alone would force every upstream stage too) reproduces eval.json byte for byte.
    metrics_before = {rel: p.read(rel) for rel in ("metrics/eval.json", "metrics/train.json")}
    assert p.repro("-f", "-s", "train", "evaluate") == ["train", "evaluate"]
    for rel, content in metrics_before.items():
        assert p.read(rel) == content, f"{rel} differs after a forced rerun with the same params"
    p.commit("forced rerun")
    assert p.status_clean(), p.dvc("status").stdout

    # 4. A split parameter: split and what depends on it rerun; fetch and extract do not.
    store = p.fingerprint("features/mfcc.h5", "data/validation.json")
    manifest = p.read("features/split.csv")
    p.set_params({"split": {"seed": 1}})
    ran = p.repro()
    assert "split" in ran and "fetch" not in ran and "extract" not in ran, ran
    assert p.fingerprint("features/mfcc.h5", "data/validation.json") == store
    assert p.read("features/split.csv") != manifest, "split.seed=1 gave the same manifest as seed 0"
    p.commit("split.seed=1")

    # 5. An evaluate parameter: evaluate reruns, and the card that quotes its metrics; nothing upstream.
    p.set_params({"evaluate": {"backend_check_clips": 3}})
    ran = p.repro()
    assert ran == ["evaluate", "card"], ran
    assert json.loads(p.read("metrics/eval.json"))["replay_check"]["clips"] == 3
    p.commit("evaluate.backend_check_clips=3")
    assert p.status_clean(), p.dvc("status").stdout

    # 6. An experiment: DVC 3 runs it in the workspace and leaves its results there, so
    #    `dvc metrics diff` (workspace against HEAD) shows what the lower learning rate changed.
    out = p.dvc("exp", "run", "-n", EXPERIMENT, "-S", "train.lr=0.0001").stdout
    ran = ran_stages(out)
    assert "train" in ran and "split" not in ran and "extract" not in ran, out
    lr = yaml.safe_load((p.root / "params.yaml").read_text())["train"]["lr"]
    assert float(lr) == pytest.approx(1e-4), lr  # YAML 1.1 may read DVC's '1e-04' back as a string

    params_diff = json.loads(p.dvc("params", "diff", "--json").stdout)
    change = params_diff["params.yaml"]["train.lr"]
    assert float(change["old"]) == pytest.approx(0.003) and float(change["new"]) == pytest.approx(1e-4), change

    metrics_diff = json.loads(p.dvc("metrics", "diff", "--json").stdout)
    changed = {
        f"{rel}:{key}"
        for rel in ("metrics/train.json", "metrics/eval.json")
        for key, d in metrics_diff.get(rel, {}).items()
        if d.get("old") != d.get("new")
    }
    assert changed, f"train.lr=0.0001 changed no metric of train.json or eval.json: {metrics_diff}"

    shown = json.loads(p.dvc("exp", "show", "--json").stdout)
    experiment = find_experiment(shown, EXPERIMENT)
    assert experiment is not None, f"`dvc exp show --json` does not list {EXPERIMENT}: {json.dumps(shown)[:2000]}"
    exp_lr = experiment["data"]["params"]["params.yaml"]["data"]["train"]["lr"]
    assert float(exp_lr) == pytest.approx(1e-4), exp_lr
    exp_metrics = experiment["data"]["metrics"]["metrics/eval.json"]["data"]
    workspace = json.loads(p.read("metrics/eval.json"))
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):  # exp show drops list-valued fields
        assert exp_metrics[key] == workspace[key], key


def test_dvc_pipeline_on_two_corpora(dvc_project: Project) -> None:
    """A user's own recordings trained on beside RAVDESS, and another corpus only scored: every stage
    runs; the store, the split, the model's training set and metrics/corpora.json hold them; an
    evaluation-only manifest's change reruns evaluate alone, a training one's extract and what follows."""
    p = dvc_project
    speakers = {"ann": "female", "bob": "male", "cat": "female", "dan": "male"}
    make_manifest_corpus(p.root / "corpora/train", "mine", speakers)
    held = make_manifest_corpus(p.root / "corpora/eval", "held", {"x1": "", "x2": ""}, ["neutral", "happy", "sad", "angry"])
    p.set_params({
        "data": {"train_corpora": ["corpora/train/mine.csv"], "eval_corpora": ["corpora/eval/held.csv"]},
        "split": {"corpus_val_fraction": 0.5},
    })
    p.commit("two corpora")
    assert p.run("git", "ls-files", "corpora").stdout.split() == [
        "corpora/README.md", "corpora/eval/.gitignore", "corpora/eval/held.csv", "corpora/train/.gitignore", "corpora/train/mine.csv",
    ]  # the manifests, not the audio

    ran = p.repro()
    assert sorted(ran) == sorted(STAGES), ran
    report = json.loads(p.read("features/extract_report.json"))
    assert report["clips"] == 128 + 32 and report["corpora"] == {"mine": 32}
    split = pd.read_csv(p.root / "features/split.csv")
    mine = split[split["actor"].str.startswith("mine:")].drop_duplicates("actor")
    assert len(split) == 160 and set(mine["actor"]) == {f"mine:{s}" for s in speakers}
    assert set(mine["fold"]) == {-1} and sorted(mine["split"]) == ["train", "train", "val", "val"]
    assert sorted(mine[mine["split"] == "val"]["gender"]) == ["female", "male"]
    train = json.loads(p.read("metrics/train.json"))
    val_clips = 2 * 16 + 2 * 8  # RAVDESS's 2 val actors and the corpus's 2 val speakers
    trained = 4 * 16 + 2 * 8 + (val_clips if load(TrainConfig, "train", p.root / "params.yaml").trains_on_val else 0)
    assert train["train_clips"] == trained * (1 + len(report["variants"]))  # variants of both corpora (and of the val speakers')
    assert train["val_clips"] == val_clips
    evaluation = json.loads(p.read("metrics/eval.json"))
    assert evaluation["clips"] == 32 and all(isinstance(a, int) for a in evaluation["test_actors"])
    corpora = json.loads(p.read("metrics/corpora.json"))
    assert list(corpora) == ["held"] and corpora["held"]["clips"] == 8
    assert corpora["held"]["classes"] == ["neutral", "happy", "sad", "angry"]
    cv = json.loads(p.read("metrics/cv.json"))
    assert sorted(a for f in cv["folds"] for a in f["test_actors"]) == list(range(1, 9))
    p.commit("dvc repro")
    assert p.status_clean(), p.dvc("status").stdout

    held.write_text("".join(held.read_text().splitlines(keepends=True)[:-1]))  # one clip fewer
    p.commit("held: one clip fewer")
    assert p.repro() == ["evaluate", "card"]  # the card quotes metrics/corpora.json
    assert json.loads(p.read("metrics/corpora.json"))["held"]["clips"] == 7

    manifest = p.root / "corpora/train/mine.csv"
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:-1]))
    p.commit("mine: one clip fewer")
    ran = p.repro()
    assert ran[:3] == ["extract", "split", "train"], ran
    assert json.loads(p.read("features/extract_report.json"))["corpora"] == {"mine": 31}
