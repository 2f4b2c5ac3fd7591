import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from lifelong.checks import toy_data, toy_model, toy_scenario
from lifelong.data.scenarios import class_incremental, task_incremental
from lifelong.errors import CheckpointError
from lifelong.learn import Learner
from lifelong.learn.models import MLP
from lifelong.strategies import EWC, LwF, Replay


def _three_experiences():
    data = toy_data(n_classes=6, per_class=40)
    return class_incremental(data, n_experiences=3)


def _learner(dtype: torch.dtype = torch.float32, ewc: bool = True) -> Learner:
    torch.manual_seed(0)
    model = MLP(in_features=8, hidden=(16,), n_classes=6).to(dtype)
    strategies = [Replay(30), *([EWC(lam=5.0)] if ewc else []), LwF()]
    return Learner(model, strategies, lr=0.05, momentum=0.9, batch_size=8, seed=7)


def _resumed_beside_straight(make: Callable[[], Learner], tmp_path: Path) -> tuple[Learner, Learner, Learner]:
    """Three experiences straight through, and the same saved after two and loaded: (straight, first
    two, loaded); the loaded one has not learned the third yet."""
    stream = _three_experiences()
    straight = make()
    for e in stream:
        straight.learn(e)
    first = make()
    first.learn(stream[0])
    first.learn(stream[1])
    first.save(tmp_path / "ckpt")
    return straight, first, Learner.load(tmp_path / "ckpt")  # the MLP is rebuilt from its spec


def test_resume_is_bit_for_bit(tmp_path: Path) -> None:
    straight, _, resumed = _resumed_beside_straight(_learner, tmp_path)
    resumed.learn(_three_experiences()[2])
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert resumed.step == straight.step and resumed.classes_seen == straight.classes_seen
    assert torch.equal(resumed.strategies[0].buffer_.y, straight.strategies[0].buffer_.y)


def test_load_restores_torchs_global_cpu_generator(tmp_path: Path) -> None:
    """As the README says: the caller's global RNG state is overwritten by the saved one."""
    learner = _learner()
    learner.learn(_three_experiences().experiences[0])
    learner.save(tmp_path / "ckpt")
    saved = torch.get_rng_state()
    torch.manual_seed(123)
    Learner.load(tmp_path / "ckpt")
    assert torch.equal(torch.get_rng_state(), saved)


def test_custom_model_must_be_passed(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 4))
    Learner(model).save(tmp_path / "c")
    with pytest.raises(CheckpointError, match="pass model="):
        Learner.load(tmp_path / "c")
    loaded = Learner.load(tmp_path / "c", model=torch.nn.Sequential(torch.nn.Linear(8, 4)))
    assert torch.equal(loaded.model[0].weight, model[0].weight)
    with pytest.raises(CheckpointError, match="does not fit"):
        Learner.load(tmp_path / "c", model=torch.nn.Sequential(torch.nn.Linear(8, 5)))


def test_truncated_or_tampered_checkpoints_are_refused(tmp_path: Path) -> None:
    Learner(toy_model(), [Replay(10)]).save(tmp_path / "c")
    (tensors,) = (tmp_path / "c").glob("tensors-*.safetensors")
    blob = tensors.read_bytes()
    tensors.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="SHA-256"):
        Learner.load(tmp_path / "c")
    tensors.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(CheckpointError, match="SHA-256"):
        Learner.load(tmp_path / "c")
    tensors.write_bytes(blob)
    manifest = tmp_path / "c" / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text[:100])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        Learner.load(tmp_path / "c")
    doc = json.loads(text)
    doc["strategies"][0]["name"] = "nonexistent"
    manifest.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="unknown strategy 'nonexistent'.*--plugin.*LIFELONG_PLUGINS"):
        Learner.load(tmp_path / "c")
    with pytest.raises(CheckpointError, match="no manifest"):
        Learner.load(tmp_path / "missing")


def test_a_save_killed_before_its_manifest_leaves_the_old_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tensors were rewritten in place before the manifest's rename: a kill in between (6 of 30
    random kills in a user's trial) left the old manifest over new tensors, and nothing loaded."""
    from lifelong.learn import checkpoint

    learner = Learner(toy_model(), [Replay(10)])
    learner.save(tmp_path / "c")
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    learner.partial_fit(toy_data().train.x[:40], toy_data().train.y[:40])
    replace = os.replace

    def killed(src: Any, dst: Any) -> None:
        if Path(dst).name == "manifest.json":
            raise KeyboardInterrupt  # the process dies here
        replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        learner.save(tmp_path / "c")
    monkeypatch.undo()
    old = Learner.load(tmp_path / "c")
    assert all(torch.equal(old.model.state_dict()[k], v) for k, v in before.items())
    learner.save(tmp_path / "c")  # the next save completes and clears what the killed one left
    assert len(list((tmp_path / "c").iterdir())) == 2
    new = Learner.load(tmp_path / "c")
    assert all(torch.equal(new.model.state_dict()[k], v) for k, v in learner.model.state_dict().items())


def test_checkpoint_holds_no_pickle(tmp_path: Path) -> None:
    Learner(toy_model(), [Replay(10), EWC()]).save(tmp_path / "c")
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names[0] == "manifest.json" and re.fullmatch(r"tensors-[0-9a-f]{16}\.safetensors", names[1])
    assert len(names) == 2
    assert b"\x80\x04" not in (tmp_path / "c" / "manifest.json").read_bytes()


PLUGIN = """
from torch import nn
from lifelong.learn.models import register_model


@register_model("llck-tab")
class Tab(nn.Module):
    def __init__(self, in_features: int, n_classes: int, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, width), nn.Tanh())
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, x):
        return self.classifier(self.body(x))
"""

FRESH = """
import json, sys
import torch
from lifelong.errors import CheckpointError
from lifelong.learn import Learner
from lifelong.learn.plugins import load_plugins

root, names = sys.argv[1], sys.argv[2].split(",")
out = {"imported_before": "lifelong.strategies" in sys.modules}
try:
    Learner.load(root + "/plugin")
except CheckpointError as e:
    out["before_plugin"] = str(e)
out["loaded"] = [Learner.load(f"{root}/{n}").strategies[0].name for n in names]
load_plugins(["llck_plugin"], env=False, entry_points=False)
learner = Learner.load(root + "/plugin")
x = torch.load(root + "/x.pt")
out["plugin_predictions"] = learner.predict(x).tolist()
out["plugin_class"] = type(learner.model).__name__
print(json.dumps(out))
"""


def test_a_fresh_interpreter_rebuilds_every_builtin_strategy_and_a_plugin_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import subprocess
    import sys

    from lifelong.learn import models
    from lifelong.learn.models import create_model
    from lifelong.learn.plugins import load_plugins
    from lifelong.learn.strategy import get_strategy, strategy_names

    data = toy_data(n_classes=4, per_class=20).train
    names = strategy_names()
    for name in names:
        cls = get_strategy(name)
        learner = Learner(MLP(in_features=8, hidden=(8,), n_classes=4), [cls()], batch_size=16)
        scenario = task_incremental if "task_labels" in cls.needs else class_incremental
        learner.learn(scenario(toy_data(n_classes=4, per_class=20), n_experiences=1)[0])
        learner.save(tmp_path / name)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "llck_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    load_plugins(["llck_plugin"], env=False, entry_points=False)
    torch.manual_seed(0)
    learner = Learner(create_model("llck-tab", in_features=8, n_classes=4), [Replay(20)], lr=0.1)
    learner.partial_fit(data.x, data.y)
    learner.save(tmp_path / "plugin")
    torch.save(data.x, tmp_path / "x.pt")
    sys.modules.pop("llck_plugin", None)

    src = str(Path(__import__("lifelong").__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, str(plugins)])}
    env.pop("LIFELONG_PLUGINS", None)
    proc = subprocess.run([sys.executable, "-c", FRESH, str(tmp_path), ",".join(names)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert not out["imported_before"]  # the built-ins were found without importing them first
    assert out["loaded"] == names
    # nothing was imported because the checkpoint named a model: it said how to register it
    assert "'llck-tab'" in out["before_plugin"] and "--plugin" in out["before_plugin"]
    assert "LIFELONG_PLUGINS" in out["before_plugin"] and "lifelong.models" in out["before_plugin"]
    assert out["plugin_class"] == "Tab"
    assert out["plugin_predictions"] == learner.predict(data.x).tolist()


def test_an_unspecced_module_saves_but_needs_registering_to_load(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 4))
    learner = Learner(model)
    learner.partial_fit(torch.randn(10, 8), torch.randint(0, 4, (10,)))
    learner.save(tmp_path / "c")
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["model"]["spec"] is None
    with pytest.raises(CheckpointError, match="register_model.*--plugin"):
        Learner.load(tmp_path / "c")


def test_a_registered_class_built_directly_records_its_arguments_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``RegNet(hidden=24)`` saved with no spec; loading then told the user to register the class,
    which they had."""
    from torch import nn

    from lifelong.learn import models

    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))

    @models.register_model("test-regnet")
    class RegNet(nn.Module):
        def __init__(
            self, in_features: int = 8, n_classes: int = 3, hidden: int = 16, **extra: float
        ) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
            self.classifier = nn.Linear(hidden, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.features(x))

    class Wider(RegNet):  # not the registered factory: rebuilding it as RegNet would be wrong
        pass

    net = RegNet(8, hidden=24, dropout=0.1)
    assert net.lifelong_spec == {
        "name": "test-regnet",
        "kwargs": {"in_features": 8, "hidden": 24, "dropout": 0.1},
    }
    assert getattr(Wider(), "lifelong_spec", None) is None
    assert getattr(RegNet(hidden=torch.tensor(4)), "lifelong_spec", None) is None  # not JSON: unrecorded
    learner = Learner(net)
    x = torch.randn(12, 8)
    learner.partial_fit(x, torch.arange(12) % 3)
    learner.save(tmp_path / "c")
    assert torch.equal(Learner.load(tmp_path / "c").predict(x), learner.predict(x))


@pytest.mark.parametrize("mutation", ["deep", "unknown-kwarg", "not-an-object", "state"])
def test_crafted_manifests_are_refused_with_a_checkpoint_error(tmp_path, mutation) -> None:
    """A hand-edited or hostile manifest never escapes as TypeError/RecursionError (a 500 in a server)."""
    import json

    from lifelong.errors import CheckpointError
    from lifelong.learn.models import create_model

    Learner(create_model("mlp", in_features=4, hidden=[4], n_classes=2)).save(tmp_path)
    doc = json.loads((tmp_path / "manifest.json").read_text())
    text = {
        "deep": "[" * 200_000 + "]" * 200_000,
        "unknown-kwarg": json.dumps({**doc, "learner": {**doc["learner"], "evil": 1}}),
        "not-an-object": "[1]",
        "state": json.dumps({**doc, "state": {"model": 5}}),
    }[mutation]
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(CheckpointError):
        Learner.load(tmp_path)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("step", "x", "field 'step'"),
        ("train_seconds", "abc", "field 'train_seconds'"),
        ("experience_count", -5, "field 'experience_count'"),
        ("classes_seen", [0, 99], "past the model's 4 outputs"),
        ("feature_names", ["a"], "names 1 features for samples of shape [8]"),
        ("strategies", [], "lists 1 strategies and the state holds 0"),
    ],
)
def test_edited_bookkeeping_is_refused_at_load_and_leaves_the_rng_alone(
    tmp_path, field: str, value: object, words: str
) -> None:
    """It loaded, and the next step failed with a raw TypeError after the optimizer had moved; a
    refused load also changed the caller's torch RNG (building the model draws from it)."""
    import json

    from lifelong.errors import CheckpointError
    from lifelong.strategies import Replay

    learner = Learner(toy_model(), [Replay(20)], lr=0.1)
    learner.learn(toy_scenario().experiences[0])
    learner.save(tmp_path)
    doc = json.loads((tmp_path / "manifest.json").read_text())
    state = doc["state"]
    if field == "strategies":
        state["strategies"] = value
    else:
        state["bookkeeping"][field] = value
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    rng = torch.get_rng_state()
    with pytest.raises(CheckpointError, match=re.escape(words)):
        Learner.load(tmp_path)
    assert torch.equal(rng, torch.get_rng_state())


def test_per_parameter_state_follows_the_model_to_its_device() -> None:
    """Anchors and importances keyed by parameter name go to the training device; memories stay on the host."""
    from lifelong.learn.checkpoint import per_parameter_to

    names = {"0.weight", "0.bias"}
    meta = torch.device("meta")  # stands in for an accelerator: tensors move, nothing computes
    anchors = {"0.weight": torch.ones(2, 2), "0.bias": torch.zeros(2)}
    moved = per_parameter_to([anchors, anchors], names, meta)  # EWC's one-dict-per-experience lists too
    assert all(v.device == meta for d in moved for v in d.values())
    memory = {"x": torch.zeros(3, 2), "y": torch.zeros(3, dtype=torch.long)}
    assert per_parameter_to(memory, names, meta) is memory
    assert per_parameter_to(torch.ones(1), names, meta).device.type == "cpu"


@pytest.mark.parametrize("name", ["replay", "ewc", "si", "mas", "l2", "rwalk", "scp", "lwf", "gpm", "ogd"])
def test_a_checkpoint_loaded_onto_another_device_trains_there(name: str, tmp_path: Path) -> None:
    """Strategy state saved from the CPU meets the parameters on the load device (the worker's --device).

    The meta device stands in for a GPU: it computes shapes only, but refuses to mix with CPU
    tensors exactly as CUDA does, so a per-step penalty or projection on host state fails here.
    """
    from lifelong.learn.strategy import get_strategy

    stream = toy_scenario()
    learner = Learner(toy_model(), [get_strategy(name)()], lr=0.1, batch_size=16)
    learner.learn(stream.experiences[0])
    learner.save(tmp_path)
    moved = Learner.load(tmp_path, device="meta")
    moved.model.train()
    batch = stream.experiences[1].train.batch(slice(0, 16))
    assert moved.train_step(batch).device.type == "meta"  # penalties and projections ran on the device


class _OwnNet(torch.nn.Module):
    """A user's own model, defined in the script and never registered: it has no spec to rebuild."""

    def __init__(self, n_classes: int = 2) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(8, 12), torch.nn.LayerNorm(12), torch.nn.ReLU())
        self.classifier = torch.nn.Linear(12, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


def test_a_custom_model_built_as_it_first_was_loads_a_grown_head(tmp_path: Path) -> None:
    data = toy_data(n_classes=4, per_class=20).train
    learner = Learner(_OwnNet(n_classes=2), [Replay(20), EWC(lam=1.0)], lr=0.05, allow_new_classes=True)
    learner.partial_fit(data.x, data.y)  # labels 0..3: the head grows from 2 to 4 outputs
    learner.consolidate()
    learner.save(tmp_path / "ckpt")
    loaded = Learner.load(
        tmp_path / "ckpt", model=_OwnNet(n_classes=2)
    )  # was a size-mismatch CheckpointError
    assert loaded.n_outputs == 4
    torch.testing.assert_close(loaded.predict_proba(data.x), learner.predict_proba(data.x))
    with pytest.raises(CheckpointError, match="does not fit this model"):  # other layers must still agree
        Learner.load(tmp_path / "ckpt", model=MLP(in_features=8, hidden=(12,), n_classes=2))


def test_a_learner_saved_between_partial_fit_batches_closes_that_experience_on_its_samples(
    tmp_path: Path,
) -> None:
    data = toy_data(n_classes=4, per_class=20).train
    x, y = data.x, data.y

    def fresh() -> Learner:
        torch.manual_seed(0)
        return Learner(_OwnNet(n_classes=4), [EWC(lam=1.0), Replay(20)], lr=0.05, seed=3)

    straight = fresh()
    straight.partial_fit(x[:40], y[:40])
    straight.partial_fit(x[40:], y[40:])
    straight.consolidate()

    first = fresh()
    first.partial_fit(x[:40], y[:40])
    first.save(tmp_path / "ckpt")  # mid-experience: no consolidate() yet
    resumed = Learner.load(tmp_path / "ckpt", model=_OwnNet(n_classes=4))
    assert resumed.experience is not None and resumed.experience_index == 0
    resumed.partial_fit(x[40:], y[40:])
    resumed.consolidate()  # EWC's Fisher over both halves, as without the save (it was none before)
    ewc, expected = resumed.strategies[0], straight.strategies[0]
    assert len(ewc.fishers_) == len(expected.fishers_) == 1
    for k, f in expected.fishers_[0].items():
        torch.testing.assert_close(ewc.fishers_[0][k], f)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_a_model_in_another_dtype_loads_in_it_and_resumes_bit_for_bit(
    dtype: torch.dtype, tmp_path: Path
) -> None:
    """Was: the model was rebuilt from its spec in float32 and the saved weights cast into it, so a
    ``model.to(torch.bfloat16)`` learner came back float32: other predictions, other training (and a
    served version computed in another precision than the one trained and gated)."""

    straight, first, resumed = _resumed_beside_straight(lambda: _learner(dtype, ewc=False), tmp_path)
    stream = _three_experiences()
    assert {p.dtype for p in resumed.model.parameters()} == {dtype}
    x = stream[1].test.features()
    assert torch.equal(resumed.predict_logits(x), first.predict_logits(x))
    resumed.learn(stream[2])
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_saving_onto_a_file_or_under_one_is_a_checkpoint_error_naming_the_path(tmp_path: Path) -> None:
    """Was a raw FileExistsError / NotADirectoryError from mkdir."""
    learner = Learner(toy_model())
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(CheckpointError, match=r"notes.txt: it is a file; a checkpoint is a directory"):
        learner.save(notes)
    with pytest.raises(
        CheckpointError, match=r"cannot save a checkpoint to .*notes.txt/ckpt: .*choose a directory"
    ):
        learner.save(notes / "ckpt")
    assert notes.read_text() == "mine"


def test_sets_of_tuples_and_of_mixed_types_round_trip() -> None:
    """A set of tuples saved, then failed to load ("the manifest's state is malformed"); a set of
    ints and strings failed to save with a bare TypeError from sorting."""
    from lifelong.learn.checkpoint import Encoder, decode

    encode = Encoder()
    for state in ({(0, 1), (2, 3)}, {1, "a", (2, "b")}, frozenset({3, 1})):
        data = json.loads(json.dumps(encode(state, "s")))
        assert decode(data, encode.tensors) == set(state)


def test_a_model_kept_in_strategy_state_is_refused_when_saving(tmp_path: Path) -> None:
    """It was saved as its state_dict and came back a dict: the next learn() failed with
    "'dict' object is not callable"."""
    import copy

    from lifelong.learn.strategy import Strategy

    class Teacher(Strategy):
        def __init__(self) -> None:
            self.teacher_ = None

        def after_experience(self, learner, experience):
            self.teacher_ = copy.deepcopy(learner.model)

    learner = Learner(toy_model(), [Teacher()], lr=0.1)
    learner.learn(toy_scenario().experiences[0])
    with pytest.raises(CheckpointError, match=r"Teacher.teacher_ holds a model \(.*\); a checkpoint keeps"):
        learner.save(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt" / "manifest.json").exists()  # nothing half-written


def test_a_compiled_models_checkpoint_loads_into_the_plain_model_and_a_class_change_is_said(
    tmp_path: Path,
) -> None:
    """A torch.compile'd model saved keys prefixed "_orig_mod." that only another compiled model took
    (a misleading "does not fit"); a checkpoint of one class loaded silently into another of the same keys."""
    import warnings

    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Linear(8, 4))
    Learner(torch.compile(plain)).save(tmp_path / "c")  # never called: nothing is compiled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = Learner.load(tmp_path / "c", model=torch.nn.Sequential(torch.nn.Linear(8, 4)))
        Learner.load(tmp_path / "c", model=torch.compile(torch.nn.Sequential(torch.nn.Linear(8, 4))))
    assert torch.equal(loaded.model[0].weight, plain[0].weight)

    class Twin(torch.nn.Sequential):
        pass

    with pytest.warns(
        UserWarning, match="saved from a Sequential and is loaded into the .*Twin given as model="
    ):
        Learner.load(tmp_path / "c", model=Twin(torch.nn.Linear(8, 4)))


def test_a_save_before_an_experiences_boundary_work_is_refused_and_one_after_it_loads(tmp_path: Path) -> None:
    """A callback saving at on_experience_end (before EWC's importances) wrote the experience open with no
    data: loaded, its boundary ran on nothing. on_evaluate comes after the boundary: that save loads."""
    from lifelong.learn.callbacks import Callback, Control, LoopState

    class SaveAt(Callback):
        def __init__(self) -> None:
            self.learner: Learner | None = None
            self.saved: list[int] = []

        def save(self) -> None:
            assert self.learner is not None
            self.learner.save(tmp_path / f"after-{len(self.saved)}")
            self.saved.append(len(self.saved))

    class Early(SaveAt):
        def on_experience_end(self, state: LoopState, control: Control) -> None:
            self.save()

    class Late(SaveAt):
        def on_evaluate(self, state: LoopState, control: Control) -> None:
            self.save()

    early = Early()
    learner = Learner(toy_model(), [EWC(lam=10.0)], lr=0.1, callbacks=[early])
    early.learner = learner
    with pytest.raises(CheckpointError, match=r"save\(\) during experience 0, before its boundary work"):
        learner.fit(toy_scenario())
    assert not list(tmp_path.iterdir())
    late = Late()
    learner = Learner(toy_model(), [EWC(lam=10.0)], lr=0.1, callbacks=[late])
    late.learner = learner
    learner.fit(toy_scenario())
    loaded = Learner.load(tmp_path / f"after-{len(late.saved) - 1}")
    ewc = loaded.strategies[0]
    assert isinstance(ewc, EWC) and ewc.fisher and loaded._experience is None


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda s: s.pop("anchors_"), r"EWC: the checkpoint's state lacks \['anchors_'\]"),
        (lambda s: s.update(bogus_=1), r"has unknown \['bogus_'\]"),
        (
            lambda s: s.update(anchors_="text"),
            r"EWC.anchors_: the checkpoint holds str where list is expected",
        ),
    ],
)
def test_a_strategy_state_of_other_names_or_kinds_is_refused_at_load(
    tmp_path: Path, edit: Callable[[dict[str, Any]], Any], words: str
) -> None:
    """Such a state loaded "fine": an EWC without its anchors protected nothing, a wrong kind failed mid-training."""
    learner = Learner(toy_model(), [EWC(lam=10.0)], lr=0.1)
    learner.fit(toy_scenario())
    learner.save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    edit(manifest["state"]["strategies"][0])
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=words):
        Learner.load(tmp_path)


def test_a_fit_checkpointed_after_an_experience_resumes_there_bit_for_bit(tmp_path: Path) -> None:
    """fit() on a learner loaded from a mid-fit checkpoint started the scenario over (and its matrix with it)."""
    from lifelong.learn.callbacks import Callback, Control, LoopState

    class Crash(Exception):
        pass

    class SaveThenCrash(Callback):
        learner: Learner

        def on_evaluate(self, state: LoopState, control: Control) -> None:
            self.learner.save(tmp_path / f"exp{state.evaluation}")
            if state.evaluation == 1:
                raise Crash  # the process dies while experience 2 would start

    def build(callbacks: list[Callback] = []) -> Learner:  # noqa: B006 - read only
        torch.manual_seed(0)  # the same initial weights
        return Learner(
            MLP(in_features=8, n_classes=6), [EWC(lam=10.0), Replay(40)], lr=0.1, seed=3, callbacks=callbacks
        )

    whole = build().fit(_three_experiences())
    saver = SaveThenCrash()
    saver.learner = build([saver])
    with pytest.raises(Crash):
        saver.learner.fit(_three_experiences())
    resumed = Learner.load(tmp_path / "exp1").fit(_three_experiences())
    assert resumed.accuracy_matrix == whole.accuracy_matrix and len(whole.accuracy_matrix) > 2
    assert resumed.flips == whole.flips and resumed.untrained_accuracy == whole.untrained_accuracy
    assert resumed.epochs == whole.epochs and resumed.samples == whole.samples
    assert resumed.boundary_seconds > 0  # the saved boundary time counts (it restarted at 0: -0.15 s seen)
    assert resumed.train_seconds >= resumed.boundary_seconds
    # another split of the same classes and sizes is another stream (it was resumed as this one)
    other_split = class_incremental(toy_data(n_classes=6, per_class=40, seed=5), n_experiences=3)
    with pytest.warns(UserWarning, match="of a fit of another stream"):
        Learner.load(tmp_path / "exp1").fit(other_split)

    # the checkpoint of a finished fit returns its result, saying so, and trains nothing
    class SaveLast(Callback):
        learner: Learner

        def on_evaluate(self, state: LoopState, control: Control) -> None:
            self.learner.save(tmp_path / "last")

    saver_all = SaveLast()
    saver_all.learner = build([saver_all])
    saver_all.learner.fit(_three_experiences())
    finished = Learner.load(tmp_path / "last")
    steps = finished._step
    with pytest.warns(UserWarning, match="fit finished after its last experience"):
        again = finished.fit(_three_experiences())
    assert again.accuracy_matrix == whole.accuracy_matrix and finished._step == steps
    # another stream is fitted from its start, with a warning; a later fit (progress consumed) too
    with pytest.warns(UserWarning, match="saved after experience 1 of a fit of another stream"):
        other = Learner.load(tmp_path / "exp1").fit(
            class_incremental(toy_data(n_classes=6, per_class=30), n_experiences=3)
        )
    assert len(other.accuracy_matrix) == 3


def test_a_checkpoint_saved_midway_through_a_task_free_pass_says_the_pass_starts_over(tmp_path: Path) -> None:
    """It loaded and trained the whole stream again, silently, scoring the partly trained model as the
    untrained one (ACC 0.465 against 0.263 for the run never stopped)."""
    from lifelong.data.scenarios import task_free
    from lifelong.learn.callbacks import Callback, Control, LoopState

    class SaveAt(Callback):
        learner: Learner

        def on_evaluate(self, state: LoopState, control: Control) -> None:
            self.learner.save(tmp_path / f"eval{state.evaluation}")

    saver = SaveAt()
    saver.learner = Learner(
        MLP(in_features=8, n_classes=6), [Replay(40)], lr=0.1, callbacks=[saver], task_free=True
    )
    stream = task_free(_three_experiences(), batch_size=10)
    saver.learner.fit(stream)
    with pytest.warns(
        UserWarning, match=r"saved midway through a task-free pass \(after evaluation 0 of 3\)"
    ):
        again = Learner.load(tmp_path / "eval0").fit(stream)
    assert len(again.accuracy_matrix) == 3
    with pytest.warns(
        UserWarning, match="fit finished after its last experience"
    ):  # the whole pass: its result
        Learner.load(tmp_path / "eval2").fit(stream)


def test_a_state_attribute_set_outside_init_is_refused_when_saving(tmp_path: Path) -> None:
    """save() wrote it, and the checkpoint could then never be loaded ("unknown ['anchor_']")."""
    from lifelong.learn import Strategy

    class LazyAnchor(Strategy):
        supports = frozenset({"class"})

        def after_experience(self, learner: Learner, experience: Any) -> None:
            self.anchor_ = {n: p.detach().clone() for n, p in learner.model.named_parameters()}

    learner = Learner(toy_model(), [LazyAnchor()], lr=0.1)
    learner.fit(toy_scenario())
    with pytest.raises(
        CheckpointError, match=r"LazyAnchor: state attribute \['anchor_'\] is not set in __init__"
    ):
        learner.save(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


def test_a_checkpoint_from_before_the_later_bookkeeping_fields_loads(tmp_path: Path) -> None:
    """A champion saved on 2026-12-01 had no feature_names: after an upgrade the service refused it as
    "malformed" and had nothing to serve (and promote, rollback and training failed the same way)."""
    learner = Learner(toy_model(), [Replay(20)], lr=0.1)
    learner.fit(toy_scenario())
    learner.save(tmp_path / "ckpt")
    manifest = json.loads((tmp_path / "ckpt" / "manifest.json").read_text())
    for field in ("feature_names", "boundary_seconds", "open_experience", "fit_progress"):
        del manifest["state"]["bookkeeping"][field]  # what the older code did not write
    (tmp_path / "ckpt" / "manifest.json").write_text(json.dumps(manifest))
    old = Learner.load(tmp_path / "ckpt")
    assert old.feature_names is None and old.boundary_seconds == 0.0
    assert torch.equal(old.predict(toy_data().test.x), learner.predict(toy_data().test.x))
    manifest["state"]["bookkeeping"]["step"] = -1  # a field every version wrote is still checked
    (tmp_path / "ckpt" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="bookkeeping field 'step'"):
        Learner.load(tmp_path / "ckpt")
