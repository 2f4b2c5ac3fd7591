"""What goes into a version's artifact (lifelong.system.versions): the contract a learner implies,
and the proofs run before anything is registered or served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lifelong.errors import ConfigError
from lifelong.learn.learner import Learner
from lifelong.learn.models import create_model
from lifelong.system.contract import Contract
from lifelong.system.versions import (
    check_artifacts_known,
    check_servable,
    contract_of,
    model_name,
    publish_learner,
)


def _learner() -> Learner:
    torch.manual_seed(0)
    return Learner(create_model("mlp", in_features=8, hidden=[16], n_classes=4), lr=0.1)


def test_the_contract_a_learner_implies_and_its_artifact_round_trip(tmp_path: Path) -> None:
    learner = _learner()
    contract = contract_of(learner)
    assert contract.classes == (0, 1, 2, 3) and contract.input_shape == (8,)
    publish_learner(learner, contract, tmp_path / "v1")
    assert Contract.load(tmp_path / "v1") == contract
    assert model_name(tmp_path / "v1") == "mlp"
    check_artifacts_known([("champion", 1, tmp_path / "v1")])  # a built-in model: known everywhere


def test_a_model_whose_shape_cannot_be_told_needs_a_contract() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 4))  # built by hand: no recorded input shape
    with pytest.raises(ConfigError, match="pass contract=Contract"):
        contract_of(Learner(model, lr=0.1))


@pytest.mark.parametrize(
    ("contract", "words"),
    [
        (Contract(tuple(range(5)), (8,)), "classes up to 4 but the model has 4 outputs"),
        (Contract((0, 1, 2, 3), (9,)), r"input shape \(9,\) does not fit the model"),
    ],
)
def test_an_artifact_that_does_not_fit_its_contract_is_refused(
    tmp_path: Path, contract: Contract, words: str
) -> None:
    learner = _learner()
    learner.save(tmp_path)
    with pytest.raises(ConfigError, match=words):
        check_servable(tmp_path, contract)


def test_a_version_needing_a_model_this_process_lacks_is_named_with_the_fix(tmp_path: Path) -> None:
    publish_learner(_learner(), contract_of(_learner()), tmp_path / "v3")
    manifest = tmp_path / "v3" / "manifest.json"
    spec = json.loads(manifest.read_text())
    spec["model"]["spec"]["name"] = "my-cnn"  # as a plugin's model would be named
    manifest.write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match=r"the canary \(v3\) needs the model 'my-cnn'.*--plugin MODULE"):
        check_artifacts_known([("canary", 3, tmp_path / "v3")])


def test_a_damaged_artifact_has_no_model_name_and_is_left_to_loading_to_report(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    assert model_name(tmp_path) is None and model_name(tmp_path / "missing") is None
    check_artifacts_known([("champion", 1, tmp_path)])  # loading it names the damage, not this check
