"""Shared probe for the quadratic-penalty tests (L2, SI, MAS, RWalk, SCP)."""

import torch

from lifelong.learn.learner import Learner
from lifelong.learn.strategy import Strategy

W = "features.1.weight"


def penalty_moved(learner: Learner, strategy: Strategy, index: tuple[int, int], delta: float) -> float:
    """The strategy's penalty with weight ``W[index]`` displaced by ``delta`` (restored afterwards)."""
    p = dict(learner.model.named_parameters())[W]
    with torch.no_grad():
        p[index] += delta
    value = float(strategy.penalty(learner, None, None).detach())
    with torch.no_grad():
        p[index] -= delta
    return value
