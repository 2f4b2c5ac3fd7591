import json
from pathlib import Path

import pytest
import torch

from lifelong.checks import toy_data, toy_model
from lifelong.data.scenarios import class_incremental
from lifelong.errors import CheckpointError
from lifelong.learn import Learner
from lifelong.learn.models import MLP
from lifelong.strategies import EWC, LwF, Replay


def _three_experiences():
    data = toy_data(n_classes=6, per_class=40)
    return class_incremental(data, n_experiences=3)


def _learner() -> Learner:
    torch.manual_seed(0)
    model = MLP(in_features=8, hidden=(16,), n_classes=6)
    return Learner(model, [Replay(30), EWC(lam=5.0), LwF()], lr=0.05, momentum=0.9, batch_size=8, seed=7)


def test_resume_is_bit_for_bit(tmp_path: Path) -> None:
    stream = _three_experiences()
    straight = _learner()
    for e in stream:
        straight.learn(e)

    first = _learner()
    first.learn(stream[0])
    first.learn(stream[1])
    first.save(tmp_path / "ckpt")
    resumed = Learner.load(tmp_path / "ckpt")  # the MLP is rebuilt from its spec
    resumed.learn(stream[2])
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert resumed.step == straight.step and resumed.classes_seen == straight.classes_seen
    assert torch.equal(resumed.strategies[0].buffer_.y, straight.strategies[0].buffer_.y)


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
    tensors = tmp_path / "c" / "tensors.safetensors"
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
    with pytest.raises(CheckpointError, match="unknown strategy"):
        Learner.load(tmp_path / "c")
    with pytest.raises(CheckpointError, match="no manifest"):
        Learner.load(tmp_path / "missing")


def test_checkpoint_holds_no_pickle(tmp_path: Path) -> None:
    Learner(toy_model(), [Replay(10), EWC()]).save(tmp_path / "c")
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["manifest.json", "tensors.safetensors"]
    assert b"\x80\x04" not in (tmp_path / "c" / "manifest.json").read_bytes()
