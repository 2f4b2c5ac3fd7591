"""GDumb: a class-balanced memory, and a model retrained from scratch on it at each boundary."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.data.dataset import Dataset, Split
from lifelong.data.scenarios import class_incremental
from lifelong.learn.learner import Learner
from lifelong.learn.strategy import Strategy
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


def test_the_stream_is_never_trained_on_and_each_sample_offered_once() -> None:
    class Watch(Strategy):
        name = ""

        def after_step(self, learner):
            steps.append({k: v.clone() for k, v in learner.model.state_dict().items()})

    steps: list[dict] = []
    gdumb = GDumb(buffer_size=1000, epochs=1)
    learner = Learner(toy_model(), [gdumb, Watch()], lr=0.1, batch_size=8, epochs=3)
    start = {k: v.clone() for k, v in learner.model.state_dict().items()}
    learner.learn(toy_scenario("class")[0])
    assert len(steps) == 3 * 15 and all(torch.equal(s[k], start[k]) for s in steps for k in start)
    assert len(gdumb.buffer_) == 120  # offered once, not once per epoch
    data = toy_scenario("class")[1].train
    for i in range(0, len(data), 16):  # the production path: batches arrive once
        learner.partial_fit(data.x[i : i + 16], data.y[i : i + 16])
    learner.consolidate()
    assert len(gdumb.buffer_) == 240


def test_retraining_follows_the_references_sgdr_schedule() -> None:
    lrs: list[float] = []
    original = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    torch.optim.SGD.step = spy  # type: ignore[method-assign]
    try:  # 40 samples in batches of 16: three steps per pass
        Learner(toy_model(), [GDumb(buffer_size=40, epochs=5)], lr=0.1).learn(toy_scenario("class")[0])
    finally:
        torch.optim.SGD.step = original  # type: ignore[method-assign]
    per_pass = [lrs[i] for i in range(0, 15, 3)]
    assert per_pass[:2] == pytest.approx([0.005, 0.05])  # warm-up pass, then the peak
    # stepped once per pass from the third on, as the authors do: cycles of 1, 2, 4... passes restart at the peak
    assert per_pass[2:] == pytest.approx([0.05, (0.05 + 0.0005) / 2, 0.05])


def test_a_frozen_backbone_keeps_its_weights() -> None:
    """Reset, a frozen pretrained layer could never be learned back: the retraining updates only
    trainable parameters."""
    model = toy_model()
    model.features[1].requires_grad_(False)
    frozen = model.features[1].weight.detach().clone()
    learner = Learner(model, [GDumb(buffer_size=40, epochs=2)], lr=0.1, batch_size=8)
    learner.learn(toy_scenario("class")[0])
    assert torch.equal(model.features[1].weight, frozen)
