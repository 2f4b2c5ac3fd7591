"""``tuned``: Python users get the strategy and learning rate the benchmarks run."""

import re

import pytest

from lifelong.bench import runner
from lifelong.errors import ConfigError
from lifelong.strategies import DERPP, ERACE, tuned


def test_tuned_gives_what_the_benchmarks_run_for_the_family() -> None:
    strategy, lr = tuned("er-ace", "class")
    assert isinstance(strategy, ERACE)
    assert strategy.get_params() == runner.make_strategy("er-ace", "split-fmnist").get_params()
    assert lr == runner.tuned_params("er-ace", "split-fmnist")["lr"]
    assert (
        tuned("derpp", "class").strategy.get_params() != DERPP().get_params()
    )  # the paper's defaults differ


def test_overrides_win_and_a_strategy_without_tuned_values_gets_its_defaults() -> None:
    assert tuned("derpp", "class", buffer_size=200, alpha=0.1).strategy.get_params()["alpha"] == 0.1
    naive = tuned("naive", "domain")  # its rate searched for the family (tune16)
    assert type(naive.strategy).__name__ == "Naive"
    assert naive.lr == runner.tuned_params("naive", "permuted-fmnist")["lr"]
    gdumb = tuned("gdumb", "domain")  # no hparams file: the class's defaults and the default rate
    assert gdumb.strategy.get_params() == type(gdumb.strategy)().get_params() and gdumb.lr == 0.03


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: tuned("derpp", "online"), "unknown scenario family 'online'; valid: class, task, domain"),
        (lambda: tuned("der++", "class"), "unknown strategy 'der++'; valid:"),
        (
            lambda: tuned("derpp", "class", lam=1.0),
            "derpp takes no lam; its hyper-parameters are: buffer_size",
        ),
    ],
)
def test_bad_names_are_config_errors_that_list_the_valid_ones(call, words) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        call()
