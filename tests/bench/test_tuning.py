"""Tuning per scenario family on validation data: the split and the lookup of tuned values."""

import json

import torch

from lifelong.bench import runner
from lifelong.checks import toy_scenario


def test_validation_split_holds_out_training_data_and_never_uses_the_test_set() -> None:
    scenario = toy_scenario()
    originals = [(e.train.x.clone(), e.test.x.clone()) for e in scenario.experiences]
    runner.validation_split(scenario, 0.25, seed=0)
    for e, (train, test) in zip(scenario.experiences, originals):
        assert len(e.test) == len(train) // 4 and len(e.train) == len(train) - len(train) // 4
        rows = {tuple(r) for r in train.tolist()}
        assert all(
            tuple(r) in rows for r in torch.cat([e.train.x, e.test.x]).tolist()
        )  # all from training data
        assert not {tuple(r) for r in e.test.x.tolist()} & {tuple(r) for r in test.tolist()}
        assert not {tuple(r) for r in e.test.x.tolist()} & {tuple(r) for r in e.train.x.tolist()}


def test_tuned_values_are_looked_up_by_family(tmp_path, monkeypatch) -> None:
    table = {
        "default": {"lam": 1.0, "samples": 5},
        "families": {"domain": {"lam": 100.0}, "task": {"lam": 10.0}},
    }
    (tmp_path / "x.json").write_text(json.dumps(table))
    monkeypatch.setattr(runner, "HPARAMS_DIR", tmp_path)
    assert runner.tuned_params("x", "permuted-fmnist") == {"lam": 100.0, "samples": 5}
    assert runner.tuned_params("x", "split-fmnist-task") == {"lam": 10.0, "samples": 5}
    assert runner.tuned_params("x", "split-fmnist") == {"lam": 1.0, "samples": 5}
