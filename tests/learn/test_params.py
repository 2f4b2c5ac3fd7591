"""One rule and one message for every numeric option: strategies, Learner, models, benchmark settings."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from lifelong.bench.runner import Settings
from lifelong.errors import ConfigError
from lifelong.learn import Learner
from lifelong.learn.models import MLP
from lifelong.learn.params import check_choice, check_param


@pytest.mark.parametrize("value", [3, np.int64(3), torch.tensor(3)])
def test_a_whole_number_may_come_from_python_numpy_or_torch(value: object) -> None:
    check_param("Owner", "steps", value, int, low=1)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "Owner: steps=True (a bool) is invalid; steps must be a whole number >= 1"),
        (2.0, "Owner: steps=2.0 (a float) is invalid"),
        (torch.tensor(0), "Owner: steps=0 is invalid; steps must be a whole number >= 1"),
        ("3", "Owner: steps='3' (a str) is invalid"),
    ],
)
def test_a_whole_number_option_refuses_the_rest(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        check_param("Owner", "steps", value, int, low=1)


def test_ranges_read_as_written_and_none_says_what_it_means() -> None:
    check_param("O", "share", 1.0, low=0, low_open=True, high=1)
    check_param("O", "share", None, none="no share")
    for bad in (0.0, 1.5, math.nan, math.inf):
        with pytest.raises(
            ConfigError, match=r"share must be a finite number in \(0, 1\] \(or None: no share\)"
        ):
            check_param("O", "share", bad, low=0, low_open=True, high=1, none="no share")
    with pytest.raises(ConfigError, match="^O: mode='x' is invalid; mode must be one of 'a', 'b'$"):
        check_choice("O", "mode", "x", ("a", "b"))


def test_learner_models_and_benchmark_settings_share_the_wording() -> None:
    """The three used to word the same mistake three ways ("lr: must be ...", "lr must be ...")."""
    messages = []
    for build in (lambda: Learner(MLP(4, n_classes=2), lr=math.nan), lambda: Settings(lr=math.nan)):
        with pytest.raises(ConfigError) as e:
            build()
        messages.append(str(e.value).split(": ", 1)[1])
    assert messages[0] == "lr=nan is invalid; lr must be a finite number > 0"
    assert messages[1] == "lr=nan is invalid; lr must be a finite number > 0 (or None: the tuned value)"
    with pytest.raises(ConfigError, match="^Settings: train_fraction=0 is invalid"):
        Settings(train_fraction=0)
    with pytest.raises(ConfigError, match="^MLP: n_classes=0 is invalid"):
        MLP(4, n_classes=0)


def test_a_typod_strategy_hyper_parameter_is_a_config_error_naming_the_nearest_one():
    from lifelong.errors import ConfigError
    from lifelong.strategies import EWC, Replay

    with pytest.raises(ConfigError, match=r"EWC: unknown parameter 'lamda' \(did you mean 'lam'\?\)"):
        EWC(lamda=1.0)
    with pytest.raises(ConfigError, match="valid parameters: buffer_size"):
        Replay(buffer_sise=10)
    assert EWC(lam=2.0).lam == 2.0  # valid calls are unchanged


def test_a_typod_learner_option_is_a_config_error_naming_the_nearest_one():
    from torch import nn

    from lifelong.errors import ConfigError
    from lifelong.learn import Learner

    with pytest.raises(
        ConfigError, match=r"Learner: unknown parameter 'momentun' \(did you mean 'momentum'\?\)"
    ):
        Learner(nn.Linear(4, 2), [], lr=0.03, momentun=0.9)


def test_a_user_strategy_gets_the_same_refusal():
    from lifelong.errors import ConfigError
    from lifelong.learn import Strategy

    class Anchor(Strategy):
        def __init__(self, lam: float = 1.0) -> None:
            self.lam = lam

    with pytest.raises(ConfigError, match=r"Anchor: unknown parameter 'lamb' \(did you mean 'lam'\?\)"):
        Anchor(lamb=1.0)
