"""The architectural limits the README lists: which models each method refuses, when, and with what."""

import pytest
import torch
from torch import nn

from lifelong.errors import ConfigError, StrategyMismatchError
from lifelong.learn import Learner
from lifelong.learn.models import CNN, MLP
from lifelong.strategies import CPG, DEN, GPM, HAT, MER, PNN


class NormedMLP(nn.Module):
    """toy_model's sizes (8 inputs, 4 classes) with batch norm after the hidden layer."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.classifier = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@pytest.mark.parametrize("strategy", [HAT, PNN, CPG, DEN])
@pytest.mark.parametrize("model", [lambda: CNN(image_size=8, width=4), NormedMLP])
def test_hat_pnn_cpg_and_den_refuse_anything_but_an_mlp_when_the_learner_is_built(strategy, model) -> None:
    with pytest.raises(StrategyMismatchError, match=f"{strategy.__name__} needs an MLP"):
        Learner(model(), [strategy()])


def test_gpm_refuses_trainable_layers_other_than_linear_and_conv() -> None:
    with pytest.raises(ConfigError, match=r"GPM projects Linear and Conv2d gradients only.*BatchNorm1d"):
        Learner(NormedMLP(), [GPM()])
    Learner(CNN(image_size=8, width=4), [GPM()])  # conv layers are projected
    frozen = NormedMLP()
    frozen.features[1].requires_grad_(False)
    Learner(frozen, [GPM()])  # a batch norm without trainable weights is not refused


def test_mer_refuses_batch_norm_only_at_group_size_one() -> None:
    with pytest.raises(StrategyMismatchError, match="batch norm"):
        Learner(NormedMLP(), [MER()])
    Learner(NormedMLP(), [MER(group_size=2)])
    Learner(MLP(8, (16,), 4), [MER()])
