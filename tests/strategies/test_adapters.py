"""Adapters: per-experience sets keep earlier tasks bit-identical; removal restores the backbone exactly."""

import copy

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.errors import StrategyMismatchError
from lifelong.learn.learner import Learner
from lifelong.learn.models import n_parameters
from lifelong.strategies import Adapters


def test_earlier_task_logits_are_bit_identical_after_later_tasks() -> None:
    stream = toy_scenario("task")
    first, second = stream.experiences
    learner = Learner(
        toy_model(), [Adapters(bottleneck=4)], lr=0.1, batch_size=8, momentum=0.9, weight_decay=1e-3
    )
    learner.learn(first)
    before = learner.predict_logits(first.test.features(), first.test.t)
    learner.learn(second)
    assert torch.equal(before, learner.predict_logits(first.test.features(), first.test.t))
    assert len(learner.model.adapters) == 2
    assert learner.extra_parameters() == sum(n_parameters(a) for a in learner.model.adapters)


def test_removal_restores_the_backbone_exactly() -> None:
    model = toy_model()
    original = copy.deepcopy(model)
    strategy = Adapters(bottleneck=4, prompt=True, freeze_classifier=True)
    learner = Learner(model, [strategy], lr=0.1, batch_size=8, momentum=0.9, weight_decay=1e-3)
    x = toy_scenario("class").experiences[0].test.features()
    learner.fit(toy_scenario("class"))
    assert not torch.equal(original(x), learner.predict_logits(x))  # the adapters changed the outputs
    strategy.remove(learner)
    assert torch.equal(original(x), learner.predict_logits(x))
    assert not hasattr(learner.model, "adapters") and learner.extra_parameters() == 0


def test_disabled_adapters_leave_the_model_alone() -> None:
    model = toy_model()
    original = copy.deepcopy(model)
    learner = Learner(model, [Adapters(enabled=False)], lr=0.1)
    x = toy_scenario("class").experiences[0].test.features()
    assert torch.equal(original(x), learner.predict_logits(x)) and learner.extra_parameters() == 0


def test_a_model_adapters_cannot_compute_is_refused_when_the_learner_is_built(normed_input) -> None:
    """A GRU model (no .features) read "was the model changed after the strategy attached?" at the
    first experience; a LayerNorm before .features would have been skipped by the adapted forward."""
    from torch import nn

    from lifelong.errors import StrategyMismatchError

    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(3, 8, batch_first=True)
            self.classifier = nn.Linear(8, 4)

        def forward(self, x):
            return self.classifier(self.rnn(x)[0][:, -1])

    with pytest.raises(StrategyMismatchError, match="Adapters .* layers outside them: norm"):
        Learner(normed_input(), [Adapters()])
    with pytest.raises(StrategyMismatchError, match=r"needs an nn.Sequential \.features.*got Recurrent"):
        Learner(Recurrent(), [Adapters()])
    Learner(Recurrent(), [Adapters(enabled=False)])  # a disabled strategy leaves any model alone


def test_a_frozen_backbones_batch_norm_statistics_stay_frozen() -> None:
    """The backbone was frozen through requires_grad only: in train mode a BatchNorm in .features kept
    updating its running statistics on every experience, changing earlier adapter sets' outputs."""
    stream = toy_scenario("task")
    first, second = stream.experiences
    learner = Learner(toy_model(batch_norm=True), [Adapters(bottleneck=4)], lr=0.1, batch_size=8)
    norm = learner.model.features[2]
    stats = norm.running_mean.clone(), norm.running_var.clone()
    learner.learn(first)
    before = learner.predict_logits(first.test.features(), first.test.t)
    learner.learn(second)
    assert torch.equal(norm.running_mean, stats[0]) and torch.equal(norm.running_var, stats[1])
    assert torch.equal(before, learner.predict_logits(first.test.features(), first.test.t))
    assert norm.training == learner.model.training  # put back in the mode the learner set

    tuned = Learner(
        toy_model(batch_norm=True), [Adapters(bottleneck=4, tune_first=True)], lr=0.1, batch_size=8
    )
    tuned.learn(first)  # the first experience trains the backbone: its statistics follow the data
    assert not torch.equal(tuned.model.features[2].running_mean, stats[0])


class _Signal(torch.nn.Module):
    """A 1-D CNN on [N, 3, 16] signals, every layer before the head inside ``.features``."""

    def __init__(self, n_classes: int = 4) -> None:
        super().__init__()
        nn = torch.nn
        self.features = nn.Sequential(nn.Conv1d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(2),
                                      nn.Flatten(), nn.Linear(16, 12), nn.ReLU())  # fmt: skip
        self.classifier = nn.Linear(12, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def test_a_conv1d_backbone_gets_adapters_and_a_prompt_per_channel() -> None:
    """A sensor trial: Adapters read only Linear and Conv2d, built a width-0 adapter after a Conv1d's
    ReLU and failed at the first step blaming the model's layout (bench --dry-run passed it)."""
    from lifelong.data import from_tensors
    from lifelong.data.scenarios import task_incremental

    g = torch.Generator().manual_seed(0)
    y = torch.arange(160) % 4
    x = torch.randn(160, 3, 16, generator=g) + 2 * y.view(-1, 1, 1).float()
    stream = task_incremental(
        (from_tensors(x[:120], y[:120]), from_tensors(x[120:], y[120:])), n_experiences=2
    )
    learner = Learner(_Signal(), [Adapters(bottleneck=4, prompt=True)], lr=0.05, batch_size=16, epochs=10)
    learner.fit(stream)
    from lifelong.strategies.adapters import Bottleneck

    widths = [
        [b.down.in_features for b in s.modules() if isinstance(b, Bottleneck)] for s in learner.model.adapters
    ]
    assert widths == [[8, 12], [8, 12]]  # after the Conv1d's 8 channels and the Linear's 12 units
    assert [tuple(p.shape) for p in learner.model.prompts] == [(3, 1), (3, 1)]
    first = stream.experiences[0].test
    assert learner.correct(first).float().mean() > 0.5

    relu_first = _Signal()
    relu_first.features.insert(0, torch.nn.ReLU())
    with pytest.raises(StrategyMismatchError, match=r"the ReLU at features\[0\] follows no Linear or Conv"):
        Learner(relu_first, [Adapters()])
