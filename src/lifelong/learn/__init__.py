"""The learner, the strategy hook interface, callbacks, buffers and reference models."""

from lifelong.learn.callbacks import Callback, Control, EarlyStopping, LoopState, ProgressBar, Timer
from lifelong.learn.learner import Learner
from lifelong.learn.models import create_model, register_model
from lifelong.learn.params import check_choice, check_param
from lifelong.learn.plugins import load_plugins
from lifelong.learn.strategy import REGISTRY, Strategy, get_strategy

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
    "check_choice",
    "check_param",
    "create_model",
    "get_strategy",
    "load_plugins",
    "register_model",
]
