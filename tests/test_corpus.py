"""Other corpora: manifests written from each public layout's file names (pipeline.layouts,
`python -m pipeline.corpus_manifest`), read and checked (pipeline.corpus), and the exported model
scored on them (`python -m pipeline.evaluate --corpus`, pipeline.corpus_eval)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.corpus import Row, class_of, format_manifest, read_corpus
from pipeline.corpus_eval import score_corpus
from pipeline.dataset import SplitData, load_splits
from pipeline.errors import InputError
from pipeline.inference import decide, replay
from pipeline.labels import ModelClasses, labels_document, model_classes
from pipeline.layouts import scan
from pipeline.model import EmotionLSTM, load_model
from pipeline.ravdess import SCHEMES
from pipeline.scoring import score
from tests.helpers import (
    FRONTEND6,
    RAVDESS8,
    assert_no_files,
    assert_ok,
    assert_one_line_error,
    clip_name,
    not_audio,
    run_stage,
    run_stages,
    synth_clip,
    write_wav,
)

Runs = dict[str, subprocess.CompletedProcess[str]]


def tiny_wav(path: Path) -> Path:
    """50 ms of tone: the layouts read only names, the bad-input cases need a decodable file."""
    return write_wav(path, synth_clip(3, 1, 0, seconds=0.05))


def manifest_text(*rows: str, header: str = "path,emotion,speaker,gender") -> str:
    return "\n".join([header, *rows]) + "\n"


# ---- layouts: file names -> rows ---------------------------------------------------------------------

# layout -> (files under corpus/, rows expected with the manifest beside corpus/)
LAYOUT_CASES: dict[str, tuple[list[str], list[Row]]] = {
    "emodb": (
        ["wav/03a01Wa.wav", "wav/08b02Lb.wav", "wav/16a05Tc.wav", "wav/12a02Ad.wav", "wav/13b01Ea.wav",
         "wav/09a04Nc.wav", "wav/11b03Fb.wav"],
        [Row("corpus/wav/03a01Wa.wav", "angry", "03", "male"),
         Row("corpus/wav/09a04Nc.wav", "neutral", "09", "female"),
         Row("corpus/wav/11b03Fb.wav", "happy", "11", "male"),
         Row("corpus/wav/12a02Ad.wav", "fearful", "12", "male"),
         Row("corpus/wav/13b01Ea.wav", "disgust", "13", "female"),
         Row("corpus/wav/16a05Tc.wav", "sad", "16", "female")],  # 08b02Lb: boredom, dropped
    ),
    "cremad": (
        ["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1002_IEO_DIS_HI.wav", "AudioWAV/1091_TIE_FEA_LO.wav",
         "AudioWAV/1010_ITS_HAP_MD.wav", "AudioWAV/1020_WSI_NEU_XX.wav", "AudioWAV/1033_MTI_SAD_XX.wav"],
        [Row("corpus/AudioWAV/1001_DFA_ANG_XX.wav", "angry", "1001"),
         Row("corpus/AudioWAV/1002_IEO_DIS_HI.wav", "disgust", "1002"),
         Row("corpus/AudioWAV/1010_ITS_HAP_MD.wav", "happy", "1010"),
         Row("corpus/AudioWAV/1020_WSI_NEU_XX.wav", "neutral", "1020"),
         Row("corpus/AudioWAV/1033_MTI_SAD_XX.wav", "sad", "1033"),
         Row("corpus/AudioWAV/1091_TIE_FEA_LO.wav", "fearful", "1091")],
    ),
    "tess": (
        ["OAF_angry/OAF_back_angry.wav", "OAF_disgust/OAF_bar_disgust.wav", "OAF_Fear/OAF_bite_Fear.wav",
         "YAF_happy/YAF_chain_happy.wav", "YAF_neutral/YAF_date_neutral.wav",
         "YAF_pleasant_surprised/YAF_dime_ps.wav", "OAF_Sad/OAF_germ_sad.wav"],
        [Row("corpus/OAF_Fear/OAF_bite_Fear.wav", "fearful", "OAF", "female"),
         Row("corpus/OAF_Sad/OAF_germ_sad.wav", "sad", "OAF", "female"),
         Row("corpus/OAF_angry/OAF_back_angry.wav", "angry", "OAF", "female"),
         Row("corpus/OAF_disgust/OAF_bar_disgust.wav", "disgust", "OAF", "female"),
         Row("corpus/YAF_happy/YAF_chain_happy.wav", "happy", "YAF", "female"),
         Row("corpus/YAF_neutral/YAF_date_neutral.wav", "neutral", "YAF", "female"),
         Row("corpus/YAF_pleasant_surprised/YAF_dime_ps.wav", "surprised", "YAF", "female")],
    ),
    "savee": (
        ["DC_a01.wav", "JE_d02.wav", "JK_f03.wav", "KL_h04.wav", "DC_n05.wav", "JE_sa06.wav", "JK_su07.wav"],
        [Row("corpus/DC_a01.wav", "angry", "DC", "male"),
         Row("corpus/DC_n05.wav", "neutral", "DC", "male"),
         Row("corpus/JE_d02.wav", "disgust", "JE", "male"),
         Row("corpus/JE_sa06.wav", "sad", "JE", "male"),
         Row("corpus/JK_f03.wav", "fearful", "JK", "male"),
         Row("corpus/JK_su07.wav", "surprised", "JK", "male"),
         Row("corpus/KL_h04.wav", "happy", "KL", "male")],
    ),
}


@pytest.mark.parametrize("layout", sorted(LAYOUT_CASES))
def test_layout_rows(layout: str, tmp_path: Path) -> None:
    files, expected = LAYOUT_CASES[layout]
    for name in files:
        tiny_wav(tmp_path / "corpus" / name)
    found = scan(layout, tmp_path / "corpus", tmp_path / "manifest.csv")
    assert found.rows == expected
    assert found.skipped == []
    assert dict(found.dropped) == ({"L": 1} if layout == "emodb" else {})


def test_ravdess_layout_lists_the_synthetic_corpus(synth_corpus: Path, tmp_path: Path) -> None:
    """Paths relative to a manifest elsewhere (../), speaker = actor, gender from its parity."""
    (tmp_path / "sub").mkdir()
    found = scan("ravdess", synth_corpus, tmp_path / "sub" / "manifest.csv")
    relative = Path(os.path.relpath(synth_corpus, tmp_path / "sub")).as_posix()
    expected = sorted(
        Row(f"{relative}/Actor_{actor:02d}/{clip_name(emotion, 1, take // 2 + 1, take % 2 + 1, actor)}.wav",
            RAVDESS8[emotion - 1], f"{actor:02d}", "male" if actor % 2 else "female")
        for actor in range(1, 9) for emotion in range(1, 9) for take in range(2)
    )
    assert found.rows == expected and len(expected) == 128
    assert all((tmp_path / "sub" / row.path).is_file() for row in found.rows)


def test_unparsed_names_are_refused_or_skipped(tmp_path: Path) -> None:
    for name in ("DC_a01.wav", "DC_x02.wav", "notes/intro.wav"):
        tiny_wav(tmp_path / "corpus" / name)
    with pytest.raises(InputError, match=r"DC_x02.wav: unknown SAVEE emotion code 'x'.*--skip-unknown"):
        scan("savee", tmp_path / "corpus", tmp_path / "m.csv")
    found = scan("savee", tmp_path / "corpus", tmp_path / "m.csv", skip_unknown=True)
    assert [row.path for row in found.rows] == ["corpus/DC_a01.wav"]
    assert sorted(Path(str(err.path)).name for err in found.skipped) == ["DC_x02.wav", "intro.wav"]


def test_format_manifest_is_sorted_with_fixed_bytes() -> None:
    rows = [Row("b.wav", "sad", "s2"), Row("a, b.wav", "angry", "s1", "male")]
    assert format_manifest(rows) == 'path,emotion,speaker,gender\n"a, b.wav",angry,s1,male\nb.wav,sad,s2,\n'


def test_corpus_manifest_command(tmp_path: Path) -> None:
    """The command's file: sorted rows, exact bytes; a stray name is one line naming it and nothing is
    written, unless --skip-unknown lists it and goes on."""
    files, _ = LAYOUT_CASES["emodb"]
    for name in files:
        tiny_wav(tmp_path / "emodb" / name)
    out = tmp_path / "out" / "emodb.csv"
    runs = run_stages({
        "ok": (tmp_path, "corpus_manifest", ["emodb", "emodb", "--out", out]),
        "again": (tmp_path, "corpus_manifest", ["emodb", "emodb", "--out", tmp_path / "again" / "emodb.csv"]),
    })
    assert_ok(runs["ok"])
    assert out.read_text() == (tmp_path / "again" / "emodb.csv").read_text() == manifest_text(
        "../emodb/wav/03a01Wa.wav,angry,03,male", "../emodb/wav/09a04Nc.wav,neutral,09,female",
        "../emodb/wav/11b03Fb.wav,happy,11,male", "../emodb/wav/12a02Ad.wav,fearful,12,male",
        "../emodb/wav/13b01Ea.wav,disgust,13,female", "../emodb/wav/16a05Tc.wav,sad,16,female",
    )
    assert "6 clips" in runs["ok"].stderr and "1 labelled L" in runs["ok"].stderr

    tiny_wav(tmp_path / "emodb" / "wav" / "README.wav")
    stray = tmp_path / "stray"
    runs = run_stages({
        "refused": (tmp_path, "corpus_manifest", ["emodb", "emodb", "--out", stray / "m.csv"]),
        "skipped": (tmp_path, "corpus_manifest", ["emodb", "emodb", "--out", "skipped.csv", "--skip-unknown"]),
        "no_folder": (tmp_path, "corpus_manifest", ["tess", "absent", "--out", stray / "m.csv"]),
    })
    assert_one_line_error(runs["refused"], "README.wav", "not named as EmoDB", "--skip-unknown")
    assert_one_line_error(runs["no_folder"], "absent", "not found")
    assert_no_files(stray)
    assert_ok(runs["skipped"])
    assert "skipped: emodb/wav/README.wav: not named as EmoDB" in runs["skipped"].stderr
    assert (tmp_path / "skipped.csv").read_text().count("\n") == 7


def test_only_classless_files_is_no_usable_row(tmp_path: Path) -> None:
    tiny_wav(tmp_path / "emodb" / "03a01Lb.wav")
    proc = run_stage(tmp_path, "corpus_manifest", "emodb", "emodb", "--out", tmp_path / "out" / "m.csv")
    assert_one_line_error(proc, "emodb", "no usable row")
    assert_no_files(tmp_path / "out")


# ---- the manifest's checks ---------------------------------------------------------------------------


def test_class_of_folds_as_the_schemes_do() -> None:
    assert [class_of(name, "ravdess8") for name in RAVDESS8] == list(range(8))
    frontend = {name: FRONTEND6[class_of(name, "frontend6")] for name in RAVDESS8}
    assert frontend == {**{n: n for n in FRONTEND6}, "calm": "neutral", "disgust": "angry"}


def test_read_corpus(tmp_path: Path) -> None:
    tiny_wav(tmp_path / "clips" / "a.wav")
    tiny_wav(tmp_path / "clips" / "b.flac")
    # a BOM, columns in another order, one more column, spaces around a value
    (tmp_path / "m.csv").write_text("\ufeffspeaker,path,emotion,notes\n s1 ,clips/a.wav,angry,x\ns2,clips/b.flac,calm,\n")
    corpus = read_corpus(tmp_path / "m.csv")
    assert corpus.rows == [Row("clips/a.wav", "angry", "s1"), Row("clips/b.flac", "calm", "s2")]
    assert corpus.audio_path(corpus.rows[1]) == tmp_path / "clips" / "b.flac"


# name -> (manifest text, words the one error line must contain); every clip path is under clips/
BAD_MANIFESTS = {
    "missing_file": (manifest_text("clips/ok.wav,sad,s1,", "clips/gone.wav,sad,s1,"),
                     ["row 2 (clips/gone.wav)", "file not found"]),
    "not_audio": (manifest_text("clips/text.wav,sad,s1,"), ["row 1 (clips/text.wav)", "cannot decode audio"]),
    "silent": (manifest_text("clips/silent.wav,sad,s1,"), ["row 1 (clips/silent.wav)", "silent throughout"]),
    "folder": (manifest_text("clips,sad,s1,"), ["row 1 (clips)", "is a directory"]),
    "unknown_label": (manifest_text("clips/ok.wav,boredom,s1,"),
                      ["row 1 (clips/ok.wav)", "unknown emotion 'boredom'"]),
    "duplicate": (manifest_text("clips/ok.wav,sad,s1,", "./clips/ok.wav,sad,s1,"),
                  ["row 2 (./clips/ok.wav)", "duplicate path (also row 1)"]),
    "empty_speaker": (manifest_text("clips/ok.wav,sad,,male"), ["row 1 (clips/ok.wav)", "empty speaker"]),
    "bad_gender": (manifest_text("clips/ok.wav,sad,s1,m"), ["row 1", "unknown gender 'm'"]),
    "extra_field": (manifest_text("clips/ok.wav,sad,s1,male,x"), ["row 1", "more fields than the header's 4"]),
    "missing_column": (manifest_text("clips/ok.wav,s1", header="path,speaker"), ["missing columns ['emotion']"]),
    "no_rows": (manifest_text(), ["no usable row"]),
    "empty_file": ("", ["missing columns"]),
}


@pytest.fixture(scope="module")
def bad_runs(project: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Runs]:
    """evaluate --corpus on each bad manifest, and with flags that do not go with it: all at once."""
    base = tmp_path_factory.mktemp("bad_corpus")
    tiny_wav(base / "clips" / "ok.wav")
    write_wav(base / "clips" / "silent.wav", np.zeros(8000, np.float32))
    not_audio(base / "clips" / "text.wav")
    model = ["--model", project / "models/model.pth"]
    jobs = {}
    for name, (text, _) in BAD_MANIFESTS.items():
        (base / f"{name}.csv").write_text(text)
        jobs[name] = (base, "evaluate", ["--corpus", f"{name}.csv", "--out", f"out/{name}.json", *model])
    good = base / "good.csv"
    good.write_text(manifest_text("clips/ok.wav,sad,s1,"))
    jobs |= {
        "stage_flags": (base, "evaluate", ["--corpus", good, "--out", "out/x.json", "--metrics-dir", "m", "--store", "s"]),
        "no_out": (base, "evaluate", ["--corpus", good, *model]),
        "out_alone": (base, "evaluate", ["--out", "out/x.json", *model]),
        "no_model": (base, "evaluate", ["--corpus", good, "--out", "out/x.json", "--model", base / "none.pth"]),
    }
    return base, run_stages(jobs)


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_bad_manifest_is_one_line_naming_it(case: str, bad_runs: tuple[Path, Runs]) -> None:
    base, runs = bad_runs
    assert_one_line_error(runs[case], f"{case}.csv", *BAD_MANIFESTS[case][1])
    assert_no_files(base / "out")


def test_flags_that_do_not_go_with_corpus(bad_runs: tuple[Path, Runs]) -> None:
    base, runs = bad_runs
    assert_one_line_error(runs["stage_flags"], "--store, --metrics-dir", "not of --corpus")
    assert_one_line_error(runs["no_out"], "--corpus needs --out")
    assert_one_line_error(runs["out_alone"], "--out is only for --corpus")
    assert_one_line_error(runs["no_model"], "none.pth", "not found")
    assert_no_files(base / "out")
    assert not (base / "m").exists()


# ---- scoring over the corpus's classes ---------------------------------------------------------------


def one_hot_frames(predicted: list[int], n: int = 8) -> list[np.ndarray]:
    """Two frames per clip: the first says class 0, the last the given class (the last-frame rule's)."""
    frames = []
    for c in predicted:
        probs = np.full((2, n), 0.01)
        probs[0, 0] = probs[1, c] = 0.9
        frames.append(probs)
    return frames


def test_score_corpus_equals_scoring_where_every_class_is_present() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), 3)
    frame_probs = [rng.dirichlet(np.ones(8), size=int(rng.integers(1, 6))) for _ in labels]
    got, expected = score_corpus(frame_probs, labels, RAVDESS8), score(frame_probs, labels, RAVDESS8)
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "mean_prob", "per_class"):
        assert got[key] == expected[key], key
    assert got["confusion"]["counts"] == expected["confusion"]
    assert got["classes"] == got["confusion"]["predicted"] == RAVDESS8 and not got["calm_counts_as_neutral"]


def test_score_corpus_counts_calm_as_neutral_and_other_classes_as_wrong() -> None:
    # neutral x2, happy, sad; predicted calm, neutral, surprised, sad
    labels = np.array([0, 0, 2, 3])
    result = score_corpus(one_hot_frames([1, 0, 7, 3]), labels, RAVDESS8)
    assert result["classes"] == ["neutral", "happy", "sad"] and result["calm_counts_as_neutral"]
    assert result["balanced_accuracy"] == pytest.approx((1 + 0 + 1) / 3)
    assert result["accuracy"] == 0.75
    assert result["confusion"]["predicted"] == ["neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    assert result["confusion"]["counts"] == [[2, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 1, 0, 0, 0, 0]]
    assert {k: v["recall"] for k, v in result["per_class"].items()} == {"neutral": 1.0, "happy": 0.0, "sad": 1.0}
    # with calm in the corpus, a calm answer to neutral is wrong
    with_calm = score_corpus(one_hot_frames([1, 0, 7, 3, 1]), np.array([0, 0, 2, 3, 1]), RAVDESS8)
    assert not with_calm["calm_counts_as_neutral"]
    assert with_calm["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0 + 1) / 4)


def test_model_classes(tmp_path: Path) -> None:
    """labels.json beside the model names the classes; without it, the output size does; a list that
    disagrees with the model or with every scheme is refused, naming labels.json."""
    model = tmp_path / "model.pth"
    assert model_classes(model, 8).scheme == "ravdess8" and model_classes(model, 6).scheme == "frontend6"
    assert model_classes(model, 6).names == SCHEMES["frontend6"]
    with pytest.raises(InputError, match="predicts 5 classes"):
        model_classes(model, 5)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(labels_document("frontend6")))
    assert model_classes(model, 6) == ModelClasses("frontend6", SCHEMES["frontend6"])
    with pytest.raises(InputError, match=r"labels.json: lists 6 classes, the model predicts 8"):
        model_classes(model, 8)
    labels.write_text(json.dumps({"classes": [{"name": n} for n in SCHEMES["ravdess8"]]}))  # no scheme: by its names
    assert model_classes(model, 8).scheme == "ravdess8"
    labels.write_text(json.dumps({"scheme": "ravdess8", "classes": [{"name": n} for n in "abcdefgh"]}))
    with pytest.raises(InputError, match=r"labels.json: its classes a, b, .* are not a known class scheme"):
        model_classes(model, 8)
    for broken in ("[]", "{", '{"classes": [1, 2]}'):
        labels.write_text(broken)
        with pytest.raises(InputError, match=r"labels.json: cannot read the class list"):
            model_classes(model, 6)


# ---- evaluate --corpus on the synthetic project ------------------------------------------------------


@pytest.fixture(scope="module")
def held_out(project: Path) -> SplitData:
    return load_splits(project / "features/mfcc.h5", project / "features/split.csv", "ravdess8", False)["test"]


@pytest.fixture(scope="module")
def corpus_runs(
    project: Path, synth_corpus: Path, held_out: SplitData, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Runs]:
    """The test actors' clips as a manifest (the RAVDESS layout's rows for them), whole and without
    calm; and a 6-class model without labels.json on the whole one."""
    base = tmp_path_factory.mktemp("corpus_eval")
    actors = set(held_out.clips["actor"])
    rows = [r for r in scan("ravdess", synth_corpus, base / "m.csv").rows if int(r.speaker) in actors]
    (base / "all.csv").write_text(format_manifest(rows))
    (base / "no_calm.csv").write_text(format_manifest(r for r in rows if r.emotion != "calm"))
    (base / "six").mkdir()
    six = EmotionLSTM(13, hidden_size=4, num_layers=1, num_classes=6, dropout=0.0).requires_grad_(False)
    torch.save(six, base / "six" / "model.pth")
    model = ["--model", project / "models/model.pth"]
    return base, run_stages({
        "all": (base, "evaluate", ["--corpus", "all.csv", "--out", "all.json", *model]),
        "no_calm": (base, "evaluate", ["--corpus", "no_calm.csv", "--out", "no_calm.json", *model]),
        "six": (base, "evaluate", ["--corpus", "all.csv", "--out", "six.json", "--model", base / "six" / "model.pth"]),
    })


def test_evaluate_corpus_equals_scoring_the_store(
    project: Path, held_out: SplitData, corpus_runs: tuple[Path, Runs]
) -> None:
    """From the audio, through the manifest: the figures of replaying the store's sequences of the same clips."""
    base, runs = corpus_runs
    assert_ok(runs["all"])
    report = json.loads((base / "all.json").read_text())
    frame_probs = replay(load_model(project / "models/model.pth"), held_out.sequences)
    expected = score(frame_probs, held_out.labels.numpy(), RAVDESS8)
    assert report["clips"] == len(held_out) == 32 and report["speakers"] == 2
    assert report["classes"] == RAVDESS8 and report["scheme"] == "ravdess8" and not report["calm_counts_as_neutral"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert report[key] == pytest.approx(expected[key], abs=1e-6), key
        assert report["mean_prob"][key] == pytest.approx(expected["mean_prob"][key], abs=1e-6), key
    assert report["confusion"]["counts"] == expected["confusion"]
    assert {k: v["recall"] for k, v in report["per_class"].items()} == pytest.approx(
        {k: v["recall"] for k, v in expected["per_class"].items()}, abs=1e-6
    )
    assert "balanced accuracy" in runs["all"].stderr


def test_evaluate_corpus_without_calm(project: Path, held_out: SplitData, corpus_runs: tuple[Path, Runs]) -> None:
    """Scored over its 7 classes; a calm answer counts as neutral, any other absent class is wrong."""
    base, runs = corpus_runs
    assert_ok(runs["no_calm"])
    report = json.loads((base / "no_calm.json").read_text())
    keep = held_out.labels.numpy() != RAVDESS8.index("calm")
    frame_probs = replay(load_model(project / "models/model.pth"), held_out.sequences)
    labels = held_out.labels.numpy()[keep]
    predicted = np.array([decide(p).argmax() for p in frame_probs])[keep]
    predicted[predicted == RAVDESS8.index("calm")] = RAVDESS8.index("neutral")
    recalls = [np.mean(predicted[labels == c] == c) for c in np.unique(labels)]
    assert report["classes"] == [n for n in RAVDESS8 if n != "calm"] and report["calm_counts_as_neutral"]
    assert report["clips"] == int(keep.sum()) == 28
    assert report["balanced_accuracy"] == pytest.approx(np.mean(recalls), abs=1e-6)
    assert report["accuracy"] == pytest.approx(np.mean(predicted == labels), abs=1e-6)
    assert "calm" not in report["confusion"]["predicted"] and "calm" not in report["per_class"]


def test_evaluate_corpus_with_a_frontend6_model(corpus_runs: tuple[Path, Runs]) -> None:
    """No labels.json: six outputs are frontend6, whose neutral takes calm and angry takes disgust."""
    base, runs = corpus_runs
    assert_ok(runs["six"])
    report = json.loads((base / "six.json").read_text())
    assert report["scheme"] == "frontend6" and report["classes"] == FRONTEND6
    assert report["per_class"]["neutral"]["support"] == 8 and report["per_class"]["angry"]["support"] == 8
    assert sum(map(sum, report["confusion"]["counts"])) == 32
