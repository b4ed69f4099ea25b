"""Training on several corpora (data.train_corpora) and scoring others (data.eval_corpora): the store
holds every training corpus's clips, the split assigns their speakers, cross-validation stays over
RAVDESS's actors, evaluate scores each evaluation-only corpus, and bad manifests are one-line errors."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.config import DataConfig, SplitConfig, parse
from pipeline.corpora import read_corpora
from pipeline.corpus import write_manifest
from pipeline.dataset import actor_splits, load_splits
from pipeline.errors import InputError
from pipeline.extract import extract
from pipeline.layouts import scan
from pipeline.manifest import COLUMNS, FOLDLESS, cv_folds
from pipeline.split import build_manifest
from pipeline.store import Clip, FeatureStore, write_store
from tests.helpers import (
    SPLIT,
    TINY,
    assert_no_files,
    assert_ok,
    assert_one_line_error,
    make_corpus,
    make_manifest_corpus,
    not_audio,
    project_folder,
    run_stages,
    serial_config,
)

TRAIN, EVAL = "corpora/train", "corpora/eval"
MINE = {"ann": "female", "bob": "male"}  # a user's own recordings: two speakers


def data_params(train: list[str] | None = None, evaluate: list[str] | None = None, **more: Any) -> dict[str, Any]:
    return {"classes": "ravdess8", "train_corpora": train or [], "eval_corpora": evaluate or [], "emotion_map": {}, **more}


# ---- params --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("train", "evaluate", "needle"),
    [
        (["mine.csv"], [], "data.train_corpora must be a list of corpora/train/NAME.csv"),
        (["corpora/eval/mine.csv"], [], "data.train_corpora must be a list of corpora/train/NAME.csv"),
        ([], ["corpora/train/mine.csv"], "data.eval_corpora must be a list of corpora/eval/NAME.csv"),
        (["corpora/train/ravdess.csv"], [], "not ravdess"),
        (["corpora/train/my corpus.csv"], [], "letters, digits"),
        (["corpora/train/a.csv", "corpora/train/a.csv"], [], "distinct NAMEs"),
        (["corpora/train/a.csv"], ["corpora/eval/a.csv"], "corpus a is in data.train_corpora and data.eval_corpora"),
    ],
)
def test_params_refuse_manifests_dvc_would_not_see(train: list[str], evaluate: list[str], needle: str) -> None:
    with pytest.raises(InputError, match="params.yaml") as err:
        parse(DataConfig, data_params(train, evaluate), "data")
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("emotion_map", "needle"),
    [({"joy": "joyful"}, "data.emotion_map must be a mapping of labels to one of"), (["joy"], "a mapping of names")],
)
def test_params_refuse_an_emotion_map_to_no_class(emotion_map: Any, needle: str) -> None:
    with pytest.raises(InputError, match="params.yaml") as err:
        parse(DataConfig, data_params(emotion_map=emotion_map), "data")
    assert needle in str(err.value)


def test_a_rule_across_fields_names_the_values_source() -> None:
    with pytest.raises(InputError, match="overrides.yaml: corpus a is in data.train_corpora"):
        parse(DataConfig, data_params(["corpora/train/a.csv"], ["corpora/eval/a.csv"]), "data", "overrides.yaml")


def test_params_accept_manifests_in_their_folders() -> None:
    config = parse(DataConfig, data_params(["corpora/train/mine.csv", "corpora/train/emo-db_2.csv"], ["corpora/eval/tess.csv"]), "data")
    assert config.train_corpora == ("corpora/train/mine.csv", "corpora/train/emo-db_2.csv")


# ---- data.emotion_map: a corpus's own labels, renamed or dropped ------------------------------------------


def labelled_manifest(folder: Path, *labels: str) -> Path:
    """A manifest of one speaker whose rows carry these labels, each row its own decodable file."""
    manifest = make_manifest_corpus(folder, "own", {"ann": "female"}, emotions=["happy"], takes=len(labels))
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([lines[0], *(line.replace(",happy,", f",{label},") for line, label in zip(lines[1:], labels))]) + "\n")
    return manifest


def test_emotion_map_renames_and_drops_labels(tmp_path: Path) -> None:
    manifest = labelled_manifest(tmp_path, "excited", "boredom", "happy", "calm")
    corpus = read_corpora([manifest], {"excited": "happy", "boredom": None, "calm": "neutral"})["own"]
    assert [(r.path, r.emotion) for r in corpus.rows] == [
        ("own/ann/happy_0.wav", "happy"), ("own/ann/happy_2.wav", "happy"), ("own/ann/happy_3.wav", "neutral"),
    ]
    with pytest.raises(InputError, match=r"row 2 \(own/ann/happy_1.wav\): unknown emotion 'boredom'"):
        read_corpora([manifest], {"excited": "happy"})  # a label neither named nor mapped: its own row number
    with pytest.raises(InputError, match="no usable row: data.emotion_map drops all 4 rows"):
        read_corpora([manifest], dict.fromkeys(("excited", "boredom", "happy", "calm")))


# ---- extract: one store for every training corpus --------------------------------------------------------


def read_store(path: Path) -> pd.DataFrame:
    with FeatureStore(path) as store:
        return store.clips.assign(mfcc=[store.sequence(i) for i in range(len(store))])


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """Two RAVDESS actors x 3 emotions, alone and with a two-speaker corpus, each clip with one noise variant."""
    root = tmp_path_factory.mktemp("stores")
    make_corpus(root / "ravdess", actors=[1, 2], emotions=[1, 3, 4], takes=1, seconds=0.3)
    manifest = make_manifest_corpus(root / TRAIN, "mine", MINE, emotions=["happy", "sad"])
    config = serial_config(noise_snr_db=[20])
    result = {}
    for name, corpora in (("alone", {}), ("both", read_corpora([manifest], {}))):
        out = root / name
        report = extract(root / "ravdess", out / "mfcc.h5", out / "report.json", config, corpora)
        result[name] = read_store(out / "mfcc.h5").assign(report=json.dumps(report))
    return result


def test_ravdess_alone_has_no_corpus_columns(stores: dict[str, pd.DataFrame]) -> None:
    alone = stores["alone"]
    assert not {"corpus", "speaker", "gender"} & set(alone.columns)
    assert "corpora" not in json.loads(alone["report"].iat[0])


def test_store_holds_every_training_corpus_with_a_corpus_column(stores: dict[str, pd.DataFrame]) -> None:
    both = stores["both"]
    mine = both[both["corpus"] == "mine"]
    assert len(mine) == 2 * 2 * 2  # 2 speakers x 2 emotions x (original + 1 variant): augmentation applies too
    assert sorted(mine["augment"].unique()) == ["", "noise=20"]
    assert set(mine["speaker"]) == {"mine:ann", "mine:bob"}
    assert dict(zip(mine["speaker"], mine["gender"])) == {"mine:ann": "female", "mine:bob": "male"}
    assert set(mine["path"]) == {f"mine:mine/{s}/{e}_0.wav" for s in MINE for e in ("happy", "sad")}
    happy = mine[mine["path"].str.contains("happy")]
    assert set(happy["emotion"]) == {3} and set(happy["actor"]) == {0}
    ravdess = both[both["corpus"] == "ravdess"]
    assert set(ravdess["speaker"]) == {"ravdess:01", "ravdess:02"}
    assert set(ravdess["gender"]) == {"male", "female"}
    assert json.loads(both["report"].iat[0])["corpora"] == {"mine": 4}


def test_ravdess_clips_are_unchanged_beside_another_corpus(stores: dict[str, pd.DataFrame]) -> None:
    alone, both = stores["alone"], stores["both"]
    ravdess = both[both["corpus"] == "ravdess"].reset_index(drop=True)
    for column in ("path", "actor", "emotion", "intensity", "statement", "repetition", "variant", "augment"):
        assert ravdess[column].tolist() == alone[column].tolist(), column
    for a, b in zip(alone["mfcc"], ravdess["mfcc"]):
        np.testing.assert_array_equal(a, b)


# ---- split: speakers of every corpus, folds over RAVDESS's actors ---------------------------------------

OTHERS = {  # corpus -> speaker -> gender
    "lab": {"m1": "male", "m2": "male", "m3": "male", "f1": "female", "f2": "female", "f3": "female"},
    "web": {f"s{i}": "" for i in range(5)},
}
CONFIG = parse(SplitConfig, {"seed": 0, **SPLIT, "corpus_val_fraction": 1 / 3}, "split")


def clips_table(others: dict[str, dict[str, str]]) -> pd.DataFrame:
    """A store's metadata: 8 RAVDESS actors x 8 emotions, and 8 clips per other corpus's speaker."""
    rows = [
        {"path": f"Actor_{a:02d}/03-01-{e:02d}-01-01-01-{a:02d}.wav", "actor": a, "emotion": e, "variant": 0,
         "corpus": "ravdess", "speaker": f"ravdess:{a:02d}", "gender": "male" if a % 2 else "female"}
        for a in range(1, 9) for e in range(1, 9)
    ]
    rows += [
        {"path": f"{c}:{s}/{e}.wav", "actor": 0, "emotion": e, "variant": 0, "corpus": c, "speaker": f"{c}:{s}", "gender": g}
        for c, speakers in others.items() for s, g in speakers.items() for e in range(1, 9)
    ]
    return pd.DataFrame(rows)


def speakers_of(manifest: pd.DataFrame, corpus: str) -> pd.DataFrame:
    rows = manifest[manifest["actor"].astype(str).str.startswith(f"{corpus}:")]
    assert (rows.groupby("actor")["split"].nunique() == 1).all(), "a speaker's clips in two splits"
    return rows.drop_duplicates("actor").set_index("actor")


def test_split_assigns_other_corpora_speakers_never_clips() -> None:
    manifest = build_manifest(clips_table(OTHERS), CONFIG)
    lab, web = speakers_of(manifest, "lab"), speakers_of(manifest, "web")
    for speakers in (lab, web):
        assert set(speakers["fold"]) == {FOLDLESS}
        assert set(speakers["split"]) == {"train", "val"}  # never test: the test figure stays RAVDESS's
    assert (lab["split"] == "val").sum() == 2 and (web["split"] == "val").sum() == 2  # round(6/3), round(5/3)
    assert sorted(lab[lab["split"] == "val"]["gender"]) == ["female", "male"]  # gender-balanced where known
    # RAVDESS's part is what RAVDESS alone gives, folds included.
    alone = build_manifest(clips_table({}).drop(columns=["corpus", "speaker", "gender"]), CONFIG)
    ravdess = manifest[manifest["fold"] != FOLDLESS].reset_index(drop=True)
    pd.testing.assert_frame_equal(ravdess[COLUMNS], alone[COLUMNS], check_dtype=False)  # actor: object beside speakers
    assert cv_folds(manifest) == [0, 1, 2, 3]


def test_a_corpus_split_depends_on_its_name_and_the_seed_only() -> None:
    both = speakers_of(build_manifest(clips_table(OTHERS), CONFIG), "lab")["split"]
    alone = speakers_of(build_manifest(clips_table({"lab": OTHERS["lab"]}), CONFIG), "lab")["split"]
    assert both.to_dict() == alone.to_dict()
    seeds = {
        tuple(speakers_of(build_manifest(clips_table(OTHERS), parse(SplitConfig, {**CONFIG.__dict__, "seed": s}, "split")), "web")["split"])
        for s in range(6)
    }
    assert len(seeds) > 1, "split.seed does not change which speakers validate"


def test_corpus_val_fraction_zero_trains_on_every_speaker() -> None:
    config = parse(SplitConfig, {**CONFIG.__dict__, "corpus_val_fraction": 0}, "split")
    assert set(build_manifest(clips_table(OTHERS), config).query("fold == @FOLDLESS")["split"]) == {"train"}


def test_a_single_speaker_corpus_trains() -> None:
    config = parse(SplitConfig, {**CONFIG.__dict__, "corpus_val_fraction": 0.9}, "split")
    assert set(speakers_of(build_manifest(clips_table({"one": {"x": ""}}), config), "one")["split"]) == {"train"}


def test_every_cv_fold_trains_on_other_corpora_training_speakers() -> None:
    manifest = build_manifest(clips_table(OTHERS), CONFIG)
    own = manifest.drop_duplicates("actor").set_index("actor")["split"]
    others = own[manifest.drop_duplicates("actor").set_index("actor")["fold"] == FOLDLESS]
    tested = []
    for fold in cv_folds(manifest):
        split_of = actor_splits(manifest, fold)
        assert {a: split_of[a] for a in others.index} == others.to_dict()
        tested += [a for a, s in split_of.items() if s == "test"]
    assert sorted(tested) == list(range(1, 9))  # the folds test every RAVDESS actor once, nothing else


def test_load_splits_reads_every_corpus_and_its_variants(tmp_path: Path) -> None:
    """Through the files: a mixed store and its manifest (written and read back as CSV, the actor column
    then text) give each split its clips; other corpora's variants train, none of their clips test."""
    table = clips_table(OTHERS)
    rng = np.random.default_rng(0)
    clips = []
    for row in table.to_dict("records"):
        meta = {**row, "intensity": 1, "statement": 1, "repetition": 1}
        for variant in (0, 1):
            mfcc = rng.standard_normal((3, 13)).astype(np.float32)
            clips.append(Clip({**meta, "variant": variant, "augment": "noise=20" if variant else ""}, mfcc))
    write_store(tmp_path / "mfcc.h5", clips, {"n_mfcc": 13})
    manifest = build_manifest(table, CONFIG)
    manifest[COLUMNS].to_csv(tmp_path / "split.csv", index=False)
    speakers = manifest.drop_duplicates("actor").set_index("actor")
    for fold in (None, *cv_folds(manifest)):
        data = load_splits(tmp_path / "mfcc.h5", tmp_path / "split.csv", "ravdess8", True, fold)
        split_of = actor_splits(manifest, fold)
        for split, part in data.items():
            units = [a if c == "ravdess" else s for a, c, s in zip(part.clips["actor"], part.clips["corpus"], part.clips["speaker"])]
            assert all(split_of[u] == split for u in units), (fold, split)
            others = part.clips[part.clips["corpus"] != "ravdess"]
            expected = 8 * sum((speakers.loc[s, "split"] == split) for s in speakers.index if isinstance(s, str))
            assert (others["variant"] == 0).sum() == expected, (fold, split)
            assert (others["variant"] == 1).sum() == (expected if split == "train" else 0)
        assert data["test"].clips["corpus"].eq("ravdess").all()


# ---- bad input: one line naming the manifest and the row, nothing written ------------------------------


def bad_manifest(folder: Path, case: str) -> tuple[Path, tuple[str, ...]]:
    """corpora/train/bad.csv with one bad row (or none); what its error line must say."""
    manifest = make_manifest_corpus(folder, "bad", MINE, emotions=["happy", "sad"])
    text = manifest.read_text().splitlines()
    rows = {
        "missing_file": ("bad/ann/gone.wav,happy,ann,female", ("row 5 (bad/ann/gone.wav)", "not found")),
        "unknown_label": ("bad/ann/happy_0.wav,bored,ann,female", ("row 1 (bad/ann/happy_0.wav)", "unknown emotion 'bored'")),
        "duplicate_path": ("bad/ann/happy_0.wav,happy,ann,female", ("row 5 (bad/ann/happy_0.wav)", "duplicate path (also row 1)")),
        "empty_speaker": ("bad/ann/happy_0.wav,happy,,female", ("row 1 (bad/ann/happy_0.wav)", "empty speaker")),
    }
    if case == "no_row":
        manifest.write_text(text[0] + "\n")
        return manifest, ("no usable row",)
    if case == "unreadable":
        not_audio(folder / "bad/bob/sad_0.wav")
        return manifest, ("row 4 (bad/bob/sad_0.wav)", "cannot decode")
    row, needles = rows[case]
    lines = text + [row] if case in ("missing_file", "duplicate_path") else [text[0], row, *text[2:]]
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, needles


BAD_CASES = ("missing_file", "unreadable", "unknown_label", "duplicate_path", "empty_speaker", "no_row")


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, tuple[str, ...], subprocess.CompletedProcess[str]]]:
    base = tmp_path_factory.mktemp("bad")
    make_corpus(base / "ravdess", actors=[1, 2], emotions=[1], takes=1, seconds=0.2)
    jobs, needles = {}, {}
    for case in BAD_CASES:
        root = project_folder(base / case, data={"train_corpora": ["corpora/train/bad.csv"]})
        _, needles[case] = bad_manifest(root / TRAIN, case)
        needles[case] = (f"{TRAIN}/bad.csv", *needles[case])
        jobs[case] = (root, "extract", ["--data", base / "ravdess"])
    root = project_folder(base / "eval_only", data={"eval_corpora": ["corpora/eval/bad.csv"]})
    _, found = bad_manifest(root / EVAL, "duplicate_path")
    needles["eval_only"] = (f"{EVAL}/bad.csv", *found)
    jobs["eval_only"] = (root, "evaluate", ["--data", base / "ravdess"])
    root = project_folder(base / "all_dropped", data={"train_corpora": ["corpora/train/bad.csv"], "emotion_map": {"happy": None, "sad": None}})
    make_manifest_corpus(root / TRAIN, "bad", MINE, emotions=["happy", "sad"])
    needles["all_dropped"] = (f"{TRAIN}/bad.csv", "no usable row: data.emotion_map drops all 4 rows")
    jobs["all_dropped"] = (root, "extract", ["--data", base / "ravdess"])
    root = project_folder(base / "outside", data={"train_corpora": ["bad.csv"]})
    needles["outside"] = ("params.yaml", "data.train_corpora must be a list of corpora/train/NAME.csv")
    jobs["outside"] = (root, "extract", ["--data", base / "ravdess"])
    runs = run_stages(jobs)
    return {case: (jobs[case][0], needles[case], runs[case]) for case in jobs}


@pytest.mark.parametrize("case", [*BAD_CASES, "eval_only", "all_dropped", "outside"])
def test_bad_manifest_is_one_line_naming_it_and_the_row(case: str, bad_runs: dict[str, Any]) -> None:
    root, needles, proc = bad_runs[case]
    assert_one_line_error(proc, *needles)
    for outputs in ("features", "metrics", "models"):
        assert_no_files(root / outputs)


# ---- evaluate: each evaluation-only corpus scored as `evaluate --corpus` scores it ------------------------


def test_evaluate_scores_each_eval_corpus(project: Path, synth_corpus: Path, tmp_path: Path) -> None:
    root = project_folder(
        tmp_path / "p", split=SPLIT, train=TINY, evaluate={"conditions": ["clean"], "backend_check_clips": 1},
        data={"eval_corpora": ["corpora/eval/mine.csv", "corpora/eval/four.csv"]},
    )
    for folder in ("features", "models"):
        shutil.copytree(project / folder, root / folder)
    make_manifest_corpus(root / EVAL, "mine", MINE)
    make_manifest_corpus(root / EVAL, "four", {"x": ""}, emotions=["neutral", "happy", "sad", "angry"])
    jobs = {"stage": (root, "evaluate", ["--data", synth_corpus])}
    for name in ("mine", "four"):
        jobs[name] = (root, "evaluate", ["--corpus", f"{EVAL}/{name}.csv", "--out", f"{name}.json"])
    runs = run_stages(jobs)
    for proc in runs.values():
        assert_ok(proc)
    scored = json.loads((root / "metrics/corpora.json").read_text())
    assert list(scored) == ["four", "mine"]
    for name in ("mine", "four"):
        assert scored[name] == json.loads((root / f"{name}.json").read_text())
    assert scored["four"]["classes"] == ["neutral", "happy", "sad", "angry"] and scored["four"]["clips"] == 4
    assert 0 <= scored["mine"]["balanced_accuracy"] <= 1 and scored["mine"]["speakers"] == 2
    assert "evaluate: mine: 16 clips" in runs["stage"].stderr


# ---- RAVDESS described by a manifest ---------------------------------------------------------------------


def test_ravdess_by_manifest_gives_the_built_in_readers_store(real_ravdess: Path, tmp_path: Path) -> None:
    """A few real clips read as RAVDESS and as a corpus its manifest describes (pipeline.layouts): the
    same MFCCs, emotions, speakers and genders, in the same order."""
    folder = tmp_path / "ravdess"
    for actor in ("Actor_01", "Actor_02"):
        (folder / actor).mkdir(parents=True)
        for clip in sorted((real_ravdess / actor).iterdir())[:2]:
            shutil.copyfile(clip, folder / actor / clip.name)
    manifest = tmp_path / TRAIN / "rv.csv"
    write_manifest(manifest, scan("ravdess", folder, manifest).rows)
    out = tmp_path / "out"
    extract(folder, out / "mfcc.h5", out / "report.json", serial_config(), read_corpora([manifest], {}))
    store = read_store(out / "mfcc.h5")
    builtin, described = store[store["corpus"] == "ravdess"], store[store["corpus"] == "rv"]
    assert len(builtin) == len(described) == 4
    assert [Path(p).name for p in described["path"]] == [Path(p).name for p in builtin["path"]]
    assert described["emotion"].tolist() == builtin["emotion"].tolist()
    assert described["speaker"].tolist() == [s.replace("ravdess:", "rv:") for s in builtin["speaker"]]
    assert described["gender"].tolist() == builtin["gender"].tolist()
    for a, b in zip(builtin["mfcc"], described["mfcc"]):
        np.testing.assert_array_equal(a, b)
