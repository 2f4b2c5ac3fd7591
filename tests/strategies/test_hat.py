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


def test_attention_penalty_makes_a_task_take_fewer_units() -> None:
    used = []
    for c in (0.0, 5.0):
        strategy = HAT(c=c)
        Learner(toy_model(), [strategy], lr=0.1, batch_size=8).learn(toy_scenario("task").experiences[0])
        used.append(float(strategy.used_[0].float().mean()))
    assert used[1] < used[0]
