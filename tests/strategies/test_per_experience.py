"""PerExperienceModels: one model per experience, costed as (n_experiences - 1) x model size."""

import pytest
import torch
from torch import nn

from lifelong.checks import toy_model, toy_scenario
from lifelong.errors import StrategyMismatchError
from lifelong.learn.learner import Learner
from lifelong.learn.models import n_parameters
from lifelong.strategies import PerExperienceModels


def test_one_frozen_model_per_experience_selected_by_task_id() -> None:
    stream = toy_scenario("task")
    first, second = stream.experiences
    learner = Learner(toy_model(), [PerExperienceModels()], lr=0.1, batch_size=8)
    learner.learn(first)
    before = learner.predict_logits(first.test.features(), first.test.t)
    learner.learn(second)
    assert torch.equal(before, learner.predict_logits(first.test.features(), first.test.t))
    assert learner.extra_parameters() == (len(stream.experiences) - 1) * n_parameters(toy_model())
    assert min(learner.evaluate(stream)) > 0.6


def test_without_task_ids_the_most_confident_model_answers() -> None:
    stream = toy_scenario("class")
    learner = Learner(toy_model(), [PerExperienceModels()], lr=0.1, batch_size=8, epochs=3)
    learner.fit(stream)
    x = stream.experiences[0].test.features()
    logits = learner.predict_logits(x)
    with torch.no_grad():
        outs = torch.stack([learner.model(x), learner.model.experience_models[0](x)])
    best = outs.softmax(-1).amax(-1).argmax(0)
    assert torch.equal(logits, outs[best, torch.arange(len(x))])


def test_a_sequential_model_is_refused_with_the_way_to_wrap_it() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    before = [n for n, _ in model.named_modules()]
    with pytest.raises(StrategyMismatchError, match="wrap it in an nn.Module"):
        Learner(model, [PerExperienceModels()], lr=0.1)
    assert [n for n, _ in model.named_modules()] == before  # nothing was added to the model
