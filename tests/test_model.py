"""The stateful LSTM as the backend runs it, the batched replay that stands in for that loop, and
loading a saved model the two ways the backend may (weights_only=False, or the SAFE_GLOBALS allow-list)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import InputError
from pipeline.features import backend_mfcc
from pipeline.inference import backend_replay, decide, replay
from pipeline.model import SAFE_GLOBALS, EmotionLSTM, ensemble_of, load_model
from tests.helpers import REPO, TIMEOUT, cli_env, synth_clip

# Feature statistics on the backend's raw MFCC scale (c0 of a near-silent frame is -1131.4).
MEAN = torch.tensor([-600.0, 80, -10, 20, -5, 10, -8, 4, -6, 2, -3, 1, -2])
STD = torch.tensor([250.0, 40, 25, 20, 15, 12, 10, 9, 8, 7, 6, 6, 5])
TOL = 1e-5


def make_model(num_layers: int = 2, hidden: int = 16, classes: int = 8, seed: int = 0) -> EmotionLSTM:
    torch.manual_seed(seed)
    model = EmotionLSTM(13, hidden, num_layers, classes, dropout=0.3)
    model.set_normalisation(MEAN, STD)
    return model.eval()


def raw_sequence(n: int, seed: int) -> torch.Tensor:
    """(n, 13) float32 MFCC-like frames on the raw scale the backend feeds."""
    g = torch.Generator().manual_seed(seed)
    return (MEAN + STD * torch.randn(n, 13, generator=g)).float()


# ---- frame by frame with the returned hidden state ----------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 2])
def test_frame_by_frame_with_hidden_equals_the_whole_sequence(num_layers: int) -> None:
    model = make_model(num_layers)
    x = raw_sequence(60, seed=num_layers).unsqueeze(0)  # (1, 60, 13)
    with torch.no_grad():
        whole = torch.softmax(model.frame_logits(x)[0][0], dim=-1)  # (60, 8)
        last, _ = model(x)
        steps, hidden = [], None
        for t in range(x.shape[1]):
            output, hidden = model(x[:, t : t + 1, :], hidden)  # the backend's call
            assert output.shape == (1, 8)
            h, c = hidden
            assert h.shape == c.shape == (num_layers, 1, 16)
            steps.append(torch.softmax(output, dim=1)[0])
        fresh = [torch.softmax(model(x[:, t : t + 1, :], None)[0], dim=1)[0] for t in range(x.shape[1])]
    stepped = torch.stack(steps)
    assert float((stepped - whole).abs().max()) <= TOL
    assert float((torch.softmax(last, dim=1)[0] - whole[-1]).abs().max()) <= TOL
    np.testing.assert_allclose(backend_replay(model, x[0]), whole.numpy(), atol=TOL, rtol=0)
    # the hidden state really carries the past: restarting it every frame gives other answers
    assert float((torch.stack(fresh) - whole).abs().max()) > 1e-3


@pytest.mark.parametrize("members", [1, 2])
def test_the_single_frame_path_equals_the_sequence_path_to_1e6(members: int) -> None:
    """forward on one frame runs torch.lstm_cell per layer (the lean path); it must give nn.LSTM's
    logits and state, for a batch too, and build no autograd graph once parameters are frozen."""
    model = make_model(2) if members == 1 else ensemble_of([make_model(2, seed=s) for s in range(1, members + 1)])
    x = torch.stack([raw_sequence(40, seed=3), raw_sequence(40, seed=4)])  # a batch of 2
    with torch.no_grad():
        whole, (h_whole, c_whole) = model.frame_logits(x)
        hidden, steps = None, []
        for t in range(x.shape[1]):
            output, hidden = model(x[:, t : t + 1], hidden)
            steps.append(output)
    assert float((torch.stack(steps, 1) - whole).abs().max()) <= 1e-6 * float(whole.abs().max())
    for got, want in zip(hidden, (h_whole, c_whole)):
        assert float((got - want).abs().max()) <= 1e-6 * max(1.0, float(want.abs().max()))
    model.requires_grad_(False)
    output, hidden = model(x[:, :1], None)  # the backend's loop, without torch.no_grad()
    assert not output.requires_grad and not hidden[0].requires_grad
    model.train()  # training keeps nn.LSTM (dropout between layers): the lean path is for inference
    assert model(x[:, :1])[0].shape == (2, 8)


def test_normalisation_lives_in_the_state_dict_and_is_applied() -> None:
    # Raw MFCCs of a tone followed by near-silence: the backend feeds c0 down at -1131.
    rng = np.random.default_rng(0)
    audio = np.concatenate([synth_clip(3, 1, 0, seconds=0.3), 1e-7 * rng.standard_normal(4000)]).astype(np.float32)
    audio[:1600] = 0  # leading all-zero frames are skipped, as the backend does
    mfcc = torch.from_numpy(backend_mfcc(audio))
    assert float(mfcc[:, 0].min()) == pytest.approx(-1131.37, abs=0.5)
    assert float(mfcc[:, 0].max()) > -600

    model = make_model()
    model.set_normalisation(mfcc.mean(0), mfcc.std(0))
    state = model.state_dict()
    assert {"feature_mean", "feature_std"} <= set(state)
    torch.testing.assert_close(state["feature_mean"], mfcc.mean(0))
    # The same weights with identity normalisation, fed pre-normalised frames, answer the same ...
    twin = make_model()
    twin.load_state_dict({**state, "feature_mean": torch.zeros(13), "feature_std": torch.ones(13)})
    normalised = (mfcc - mfcc.mean(0)) / mfcc.std(0)
    np.testing.assert_allclose(backend_replay(model, mfcc), backend_replay(twin, normalised), atol=TOL, rtol=0)
    # ... and differently when fed the raw frames: the model normalises, the caller does not have to.
    assert np.abs(backend_replay(model, mfcc) - backend_replay(twin, mfcc)).max() > 1e-3
    # The buffers travel with the weights.
    copy = EmotionLSTM(13, 16, 2, 8, 0.3)
    copy.load_state_dict(state)
    np.testing.assert_array_equal(backend_replay(copy.eval(), mfcc), backend_replay(model, mfcc))


def test_constant_feature_does_not_divide_by_zero() -> None:
    model = make_model()
    model.set_normalisation(MEAN, torch.zeros(13))
    assert float(model.feature_std.min()) > 0
    assert np.isfinite(backend_replay(model, raw_sequence(5, 0))).all()


# ---- ensembles as one LSTM ------------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers, members", [(1, 2), (2, 2), (2, 3)])
def test_ensemble_of_averages_the_members_logits_frame_by_frame(num_layers: int, members: int) -> None:
    parts = [make_model(num_layers, hidden=16, seed=s) for s in range(members)]
    merged = ensemble_of(parts)
    assert merged.lstm.hidden_size == 16 * members and merged.lstm.num_layers == num_layers
    sequence = raw_sequence(60, seed=3)[None]
    with torch.no_grad():
        expected = torch.stack([m.frame_logits(sequence)[0] for m in parts]).mean(0)
        got, (h, c) = merged.frame_logits(sequence)
    assert (got - expected).abs().max() <= TOL
    assert h.shape == c.shape == (num_layers, 1, 16 * members)  # the backend's (h, c), just wider
    # and the backend's own loop, one frame at a time with the returned state, gives the same
    probs = torch.softmax(expected[0], dim=-1).numpy()
    assert np.abs(backend_replay(merged, sequence[0]) - probs).max() <= TOL


def test_ensemble_of_one_is_the_member_and_mismatched_members_are_refused() -> None:
    single = make_model(seed=4)
    sequence = raw_sequence(30, seed=5)
    assert np.abs(backend_replay(ensemble_of([single]), sequence) - backend_replay(single, sequence)).max() <= TOL
    with pytest.raises(ValueError, match="width"):
        ensemble_of([make_model(hidden=16), make_model(hidden=8)])
    other_statistics = make_model(seed=5)
    other_statistics.set_normalisation(MEAN + 1, STD)
    with pytest.raises(ValueError, match="statistics"):
        ensemble_of([single, other_statistics])


# ---- batched replay and the padding trap -------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [2, 64])
def test_replay_of_a_padded_batch_equals_the_backend_loop(batch_size: int) -> None:
    model = make_model()
    lengths = [3, 150, 17, 1, 64, 150, 40]
    sequences = [raw_sequence(n, seed=i) for i, n in enumerate(lengths)]
    batched = replay(model, sequences, batch_size=batch_size)
    assert [len(p) for p in batched] == lengths  # each clip's own frames, in the caller's order
    for seq, probs in zip(sequences, batched):
        expected = backend_replay(model, seq)
        assert probs.shape == expected.shape == (len(seq), 8)
        assert np.abs(probs - expected).max() <= TOL
        for rule in ("last", "mean"):
            assert np.abs(decide(probs, rule) - decide(expected, rule)).max() <= TOL


def test_naive_last_output_of_a_padded_batch_is_wrong_for_shorter_clips() -> None:
    """The trap replay avoids: out[:, -1] of a right-padded batch has run the shorter clips
    through their padding, so it is not what the backend answers for them."""
    model = make_model()
    lengths = [5, 120, 30]
    sequences = [raw_sequence(n, seed=10 + i) for i, n in enumerate(lengths)]
    padded = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True)
    with torch.no_grad():
        naive = torch.softmax(model(padded)[0], dim=1).numpy()
    for i, seq in enumerate(sequences):
        backend = backend_replay(model, seq)[-1]
        diff = np.abs(naive[i] - backend).max()
        if len(seq) == max(lengths):
            assert diff <= TOL
        else:
            assert diff > 1e-3, (len(seq), diff)
        assert np.abs(replay(model, sequences)[i][-1] - backend).max() <= TOL


def test_replay_handles_no_sequences_and_unknown_rules() -> None:
    assert replay(make_model(), []) == []
    with pytest.raises(ValueError, match="unknown decision rule"):
        decide(np.ones((2, 8)) / 8, "vote")


# ---- loading what torch.save(model) wrote ---------------------------------------------------------------------


LOADER = textwrap.dedent(
    """
    import json, pickle, sys
    import numpy as np, torch

    def run(model, x):
        hidden, probs = None, []
        for i in range(x.shape[1]):
            output, hidden = model(x[:, i : i + 1, :], hidden)
            probs.append(torch.softmax(output, dim=1)[0])
        return torch.stack(probs).detach().numpy()

    x = torch.from_numpy(np.load(sys.argv[1])).unsqueeze(0)
    report = {}
    for path in sys.argv[2:]:
        entry = report[path] = {}
        try:  # the backend's plain call, weights_only=True by default since torch 2.6
            torch.load(path)
            entry["plain"] = "loaded"
        except pickle.UnpicklingError as err:
            entry["plain"] = "refused: " + str(err).replace(chr(10), " ")[:2000]
        trusted = torch.load(path, weights_only=False)  # imports pipeline.model by itself
        entry["module"] = sys.modules[type(trusted).__module__].__file__
        import pipeline.model
        with torch.serialization.safe_globals(pipeline.model.SAFE_GLOBALS):
            allowed = torch.load(path)
        entry["types"] = [type(trusted).__name__, type(allowed).__name__]
        entry["training"] = [trusted.training, allowed.training]
        a, b = run(trusted.eval(), x), run(allowed.eval(), x)
        entry["same"] = bool(np.array_equal(a, b))
        np.save(path + ".probs.npy", a)
    print(json.dumps(report))
    """
)


def test_saved_model_loads_in_a_fresh_process_both_ways(tmp_path: Path) -> None:
    """A backend process that imports nothing of ours, run from another folder: only the
    installed package `pipeline` can resolve the pickled class."""
    saved, elsewhere = tmp_path / "saved", tmp_path / "elsewhere"
    saved.mkdir()
    elsewhere.mkdir()
    x = raw_sequence(40, seed=3)
    np.save(saved / "x.npy", x.numpy())
    models = {}
    candidates = {"model_1": make_model(1, seed=1), "model_2": make_model(2, seed=2),
                  "ensemble": ensemble_of([make_model(2, seed=3), make_model(2, seed=4)])}
    for name, model in candidates.items():
        path = saved / f"{name}.pth"
        torch.save(model, path)
        models[str(path)] = model
    (saved / "loader.py").write_text(LOADER)
    proc = subprocess.run(
        [sys.executable, str(saved / "loader.py"), str(saved / "x.npy"), *models],
        cwd=elsewhere, env=cli_env(pythonpath=False), capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    for path, model in models.items():
        entry = report[path]
        kind = type(model).__name__
        assert entry["plain"].startswith("refused") and kind in entry["plain"], entry["plain"]
        module = Path(entry["module"]).resolve()  # the installed package (editable: this checkout)
        assert module.parts[-2:] == ("pipeline", "model.py") and elsewhere.resolve() not in module.parents
        assert entry["types"] == [kind, kind]
        assert entry["same"], "weights_only=False and the allow-list load different models"
        np.testing.assert_allclose(np.load(path + ".probs.npy"), backend_replay(model, x), atol=1e-6, rtol=0)
    # nothing was written where the backend ran
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("num_layers", [1, 2])
def test_load_model_uses_the_allow_list_and_returns_eval_mode(tmp_path: Path, num_layers: int) -> None:
    model = make_model(num_layers).train()  # saved in training mode: load_model must still give eval
    torch.save(model, tmp_path / "m.pth")
    with pytest.raises(Exception):
        torch.load(tmp_path / "m.pth")  # without SAFE_GLOBALS, torch refuses the full model
    loaded = load_model(tmp_path / "m.pth")
    assert isinstance(loaded, EmotionLSTM) and not loaded.training
    x = raw_sequence(20, 5)
    np.testing.assert_array_equal(backend_replay(loaded, x), backend_replay(model.eval(), x))
    assert EmotionLSTM in SAFE_GLOBALS


class _Exploit:
    """A pickle that runs a command when loaded by a trusting torch.load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_load_model_refuses_anything_else(tmp_path: Path) -> None:
    marker = tmp_path / "exploited"
    cases = {
        "state_dict.pth": (lambda p: torch.save(make_model().state_dict(), p), "expected an EmotionLSTM"),
        "sequential.pth": (lambda p: torch.save(torch.nn.Sequential(torch.nn.Linear(13, 8)), p), "refused"),
        "exploit.pth": (lambda p: torch.save(_Exploit(marker), p), "refused"),
        "text.pth": (lambda p: p.write_text("not a model\n"), "cannot load"),
        "empty.pth": (lambda p: p.write_bytes(b""), "cannot load"),
        "missing.pth": (lambda p: None, "not found"),
    }
    for name, (write, reason) in cases.items():
        path = tmp_path / name
        write(path)
        with pytest.raises(InputError) as caught:
            load_model(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and reason in message and "\n" not in message, message
    assert not marker.exists(), "load_model ran code from a pickle"


def test_bench_times_the_backend_loop_of_saved_models(tmp_path: Path, synth_corpus: Path) -> None:
    single, merged = tmp_path / "single.pth", tmp_path / "merged.pth"
    torch.save(make_model(2, hidden=16), single)
    torch.save(ensemble_of([make_model(2, hidden=16, seed=s) for s in (1, 2)]), merged)
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/bench.py"), "--data", str(synth_corpus), "--clips", "2", "--repeat", "1",
         "--model", str(single), str(merged)],
        env=cli_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("model")]
    assert any(line.startswith("bare lstm") for line in proc.stdout.splitlines()), proc.stdout
    assert all(" x bare" in line for line in lines), proc.stdout
    assert len(lines) == 2
    assert "2 x 16 units" in lines[0] and "2 x 32 units" in lines[1]
    assert all(float(line.split()[1]) > 0 for line in lines)


def bench_epochs(project: Path, *settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts/bench.py"), "--epoch-train", *settings, "--sequences", "16", "--repeat", "1"],
        cwd=project, env=cli_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )


def test_bench_times_a_training_epoch_per_setting(project: Path) -> None:
    """--epoch-train trains one epoch per setting of train keys in the project's params and prints one
    row each, in the order given, with its ratio to the first (1.00 for the first itself)."""
    settings = ["-", "crop_seconds=0.2", "crop_seconds=0.5,batch_size=8"]
    proc = bench_epochs(project, *settings)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("train ")]
    assert [row[1] for row in rows] == settings, proc.stdout
    assert all(float(row[2]) > 0 for row in rows) and rows[0][4] == "1.00", proc.stdout


@pytest.mark.parametrize(("setting", "reason"), [
    ("crop_seconds", "not KEY=VALUE"), ("optimizer=sgd", "--epoch-train optimizer=sgd: train.optimizer must be one of"),
    ("crops=1", "--epoch-train crops=1: unknown parameter train.crops"),
])
def test_bench_refuses_a_bad_train_setting_in_one_line(project: Path, setting: str, reason: str) -> None:
    proc = bench_epochs(project, setting)
    assert proc.returncode != 0 and reason in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
