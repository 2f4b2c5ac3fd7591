"""Naive fine-tuning: train on each experience in turn and nothing else.

The lower bound of every continual-learning table: it shows catastrophic forgetting
(McCloskey & Cohen, 1989) in its plainest form.
"""

from lifelong.learn.strategy import Strategy


class Naive(Strategy):
    """Fine-tune on the current experience only."""

    name = "naive"
