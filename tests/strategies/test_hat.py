"""HAT: hard binary gates at inference keep earlier tasks' outputs bit-identical."""

import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.strategies import HAT


def test_earlier_task_logits_are_bit_identical_after_later_tasks() -> None:
    stream = toy_scenario("task")
    first, second = stream.experiences
    strategy = HAT()
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8, momentum=0.9, weight_decay=1e-3)
    learner.learn(first)
    before = learner.predict_logits(first.test.features(), first.test.t)
    embedding = learner.model.hat_embeddings[0][0].detach().clone()
    learner.learn(second)
    assert torch.equal(before, learner.predict_logits(first.test.features(), first.test.t))
    assert torch.equal(embedding, learner.model.hat_embeddings[0][0])
    assert len(strategy.used_) == 1 and strategy.used_[0].dtype == torch.bool
    assert learner.evaluate(stream)[1] > 0.6


def test_attention_penalty_counts_the_free_units_the_task_takes() -> None:
    strategy = HAT(c=1.0)
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8)
    learner._begin(toy_scenario("task").experiences[0])
    b = toy_scenario("task").experiences[0].train.batch(slice(0, 8))
    logits = learner.forward(b.x, b.t)
    penalty = strategy.penalty(learner, b, logits)
    assert 0 < float(penalty) <= 1.0
