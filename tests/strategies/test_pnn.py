"""PNN: a frozen column per earlier task, so its outputs stay bit-identical; MLP only."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.errors import StrategyMismatchError
from lifelong.learn.learner import Learner
from lifelong.learn.models import CNN, n_parameters
from lifelong.strategies import PNN


def test_earlier_task_logits_are_bit_identical_and_columns_are_counted() -> None:
    stream = toy_scenario("task")
    first, second = stream.experiences
    learner = Learner(toy_model(), [PNN()], lr=0.1, batch_size=8, momentum=0.9, weight_decay=1e-3)
    learner.learn(first)
    before = learner.predict_logits(first.test.features(), first.test.t)
    learner.learn(second)
    assert torch.equal(before, learner.predict_logits(first.test.features(), first.test.t))
    column = learner.model.pnn_columns[0]
    assert learner.extra_parameters() == n_parameters(column) > n_parameters(toy_model())  # laterals too
    assert not any(p.requires_grad for p in learner.model.features.parameters())
    assert learner.evaluate(stream)[1] > 0.6


def test_non_mlp_models_are_refused_clearly() -> None:
    with pytest.raises(StrategyMismatchError, match="MLP"):
        Learner(CNN(image_size=8, width=4, n_classes=4), [PNN()])
