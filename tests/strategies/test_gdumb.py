"""GDumb: a class-balanced memory, and a model retrained from scratch on it at each boundary."""

import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.data.dataset import Dataset, Split
from lifelong.data.scenarios import class_incremental
from lifelong.learn.learner import Learner
from lifelong.strategies import GDumb


def imbalanced() -> Split:
    g = torch.Generator().manual_seed(0)
    counts = [100, 20, 60, 5]  # the last class has fewer samples than its share
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    x = torch.randn(len(y), 8, generator=g) + 3 * torch.eye(8)[y]
    return Split(Dataset(x, y), Dataset(x, y))


def test_memory_stays_class_balanced() -> None:
    gdumb = GDumb(buffer_size=30, epochs=1)
    learner = Learner(toy_model(), [gdumb], lr=0.1, batch_size=8)
    scenario = class_incremental(imbalanced(), n_experiences=2)
    learner.learn(scenario[0])
    counts = torch.bincount(gdumb.buffer_.y[: len(gdumb.buffer_)], minlength=4)
    assert counts.tolist() == [15, 15, 0, 0]
    learner.learn(scenario[1])
    counts = torch.bincount(gdumb.buffer_.y[: len(gdumb.buffer_)], minlength=4)
    assert len(gdumb.buffer_) == 30 and counts[3] == 5  # the small class keeps every sample
    assert counts[:3].max() - counts[:3].min() <= 1  # the others share the rest equally


def test_the_model_is_retrained_from_scratch_on_the_memory() -> None:
    # different initial weights and different stream training, same memory: identical models
    stream = toy_scenario("class")
    weights = []
    for init in (0, 1):
        learner = Learner(
            toy_model(seed=init), [GDumb(buffer_size=40, epochs=2)], lr=0.1, batch_size=8, seed=5
        )
        learner.learn(stream[0])
        weights.append(learner.model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # and it still learned: the retrained model classifies the first experience
    assert sum(learner.evaluate(stream)[:1]) > 0.9


def test_batch_hook_adds_nothing() -> None:
    gdumb = GDumb(buffer_size=40)
    learner = Learner(toy_model(), [gdumb], lr=0.1, batch_size=8)
    learner.learn(toy_scenario("class")[0])
    batch = toy_scenario("class")[1].train.batch(slice(0, 8))
    assert gdumb.batch(learner, batch) is batch
