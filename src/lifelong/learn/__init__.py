"""The learner, the strategy hook interface, callbacks, buffers and reference models."""

from lifelong.learn.callbacks import Callback, Control, EarlyStopping, LoopState, ProgressBar, Timer
from lifelong.learn.learner import Learner
from lifelong.learn.strategy import REGISTRY, Strategy

__all__ = [
    "REGISTRY",
    "Callback",
    "Control",
    "EarlyStopping",
    "Learner",
    "LoopState",
    "ProgressBar",
    "Strategy",
    "Timer",
]
