"""Continual-learning strategies, one file each; ``REGISTRY`` maps CLI names to classes."""

from lifelong.learn.strategy import REGISTRY, Strategy
from lifelong.strategies.cumulative import Cumulative
from lifelong.strategies.ewc import EWC, OnlineEWC
from lifelong.strategies.joint import Joint
from lifelong.strategies.lwf import LwF
from lifelong.strategies.naive import Naive
from lifelong.strategies.replay import Replay

__all__ = ["EWC", "REGISTRY", "Cumulative", "Joint", "LwF", "Naive", "OnlineEWC", "Replay", "Strategy"]
