"""Cumulative training: retrain on everything seen so far at every experience.

The strong, expensive baseline practitioners fall back on when old data can be kept; its
memory grows with the stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from lifelong.data.dataset import Dataset, concat
from lifelong.learn.strategy import Strategy

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class Cumulative(Strategy):
    """Train on the concatenation of the current and all earlier experiences."""

    name = "cumulative"
    supports = frozenset({"class", "task", "domain"})

    def __init__(self) -> None:
        self.x_: Tensor | None = None
        self.y_: Tensor | None = None
        self.t_: Tensor | None = None
        self.scale_ = 1.0

    def train_data(self, learner: Learner, experience: Experience, data: Dataset) -> Dataset:
        if self.x_ is not None and self.y_ is not None:
            data = concat([Dataset(self.x_, self.y_, self.t_, self.scale_), data], "cumulative")
        self.x_, self.y_, self.t_, self.scale_ = data.x, data.y, data.t, data.scale
        return data

    def memory_bytes(self) -> int:
        arrays = [a for a in (self.x_, self.y_, self.t_) if a is not None]
        return sum(a.numel() * a.element_size() for a in arrays)
