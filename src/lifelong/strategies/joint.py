"""Joint training: the offline upper bound that sees every experience's data at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lifelong.data.dataset import Dataset, concat
from lifelong.learn.strategy import Strategy

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class Joint(Strategy):
    """Train once on the union of the experiences ``fit`` is given; later experiences add nothing.

    Not a continual method: it needs the whole stream up front. Every row of its accuracy
    matrix is the same model, so its forgetting is zero by construction.
    """

    name = "joint"
    supports = frozenset({"class", "task", "domain"})

    def __init__(self) -> None:
        self.trained_ = False

    def train_data(self, learner: Learner, experience: Experience, data: Dataset) -> Dataset:
        if self.trained_:
            return data.subset(torch.arange(0))
        self.trained_ = True
        if not learner.stream:  # learn(experience) outside fit: only what it is given
            return data
        # what fit was given, not the whole scenario its experiences come from
        return concat([e.train for e in learner.stream], "joint")
