"""Hyper-parameters are checked when a strategy is built: a bad value is a ConfigError naming it, never a
silently wrong run (GEM without memory is fine-tuning) or a torch error steps later."""

import re

import pytest

from lifelong.errors import ConfigError
from lifelong.learn.params import check_param
from lifelong.learn.strategy import REGISTRY
from lifelong.strategies import (
    AGEM,
    CPG,
    DEN,
    DER,
    DERPP,
    ERACE,
    EWC,
    GEM,
    GPM,
    HAT,
    L2,
    MAS,
    MER,
    MIR,
    NCM,
    OGD,
    SCP,
    SI,
    Adapters,
    GDumb,
    GenerativeReplay,
    ICaRL,
    LwF,
    OnlineEWC,
    PackNet,
    Replay,
    RWalk,
)
from lifelong.strategies.tuning import FAMILY_NAMES, build, tuned_params

NAN, INF = float("nan"), float("inf")
#: the library's own strategies (plugins a test registers are not this file's concern)
BUILT_IN = {n: c for n, c in REGISTRY.items() if c.__module__.startswith("lifelong.strategies.")}

#: (strategy, keyword arguments, the parameter the error must name)
BAD = [
    # the values a user trial found accepted
    (EWC, {"lam": -1}, "lam"),
    (EWC, {"lam": NAN}, "lam"),
    (EWC, {"lam": "10"}, "lam"),
    (EWC, {"fisher_samples": 0}, "fisher_samples"),
    (SI, {"c": -1}, "c"),
    (LwF, {"temperature": 0}, "temperature"),
    (LwF, {"alpha": -1}, "alpha"),
    (DERPP, {"alpha": -1}, "alpha"),
    (AGEM, {"buffer_size": 0}, "buffer_size"),
    (Replay, {"buffer_size": 50, "batch_size": -3}, "batch_size"),
    (Replay, {"buffer_size": 2.5}, "buffer_size"),
    (GPM, {"threshold": 2}, "threshold"),
    (GPM, {"samples": 0}, "samples"),
    (HAT, {"s_max": -1}, "s_max"),
    (HAT, {"s_max": 0}, "s_max"),
    (MAS, {"lam": -1}, "lam"),
    (L2, {"lam": -1}, "lam"),
    (RWalk, {"lam": -1}, "lam"),
    (SCP, {"lam": -1}, "lam"),
    (ICaRL, {"buffer_size": -1}, "buffer_size"),
    (GDumb, {"epochs": -1}, "epochs"),
    (GDumb, {"lr": -1}, "lr"),
    (OnlineEWC, {"decay": 2}, "decay"),
    (PackNet, {"finetune_epochs": -1}, "finetune_epochs"),
    (GEM, {"buffer_size": 0}, "buffer_size"),
    (MER, {"group_size": 0}, "group_size"),
    (MIR, {"subsample": 0}, "subsample"),
    # one more per strategy: NaN and inf, a bool or a float for a count, a choice outside its set
    (EWC, {"decay": INF}, "decay"),
    (EWC, {"fisher_batch_size": 1.0}, "fisher_batch_size"),
    (EWC, {"online": "yes"}, "online"),
    (EWC, {"penalty_step": "implicit"}, "penalty_step"),
    (SI, {"xi": 0}, "xi"),
    (MAS, {"samples": True}, "samples"),
    (L2, {"lam": INF}, "lam"),
    (RWalk, {"interval": 0}, "interval"),
    (SCP, {"decay": 1.0}, "decay"),
    (DER, {"alpha": NAN}, "alpha"),
    (DERPP, {"beta": -0.5}, "beta"),
    (ERACE, {"buffer_size": 0}, "buffer_size"),
    (ERACE, {"cosine_head": 1}, "cosine_head"),
    (Replay, {"policy": "fifo"}, "policy"),
    (GEM, {"margin": -0.1}, "margin"),
    (AGEM, {"batch_size": 0}, "batch_size"),
    (MER, {"beta": 0}, "beta"),
    (GDumb, {"min_lr": 1.0}, "min_lr"),
    (GDumb, {"momentum": 1.0}, "momentum"),
    (ICaRL, {"temperature": 0}, "temperature"),
    (ICaRL, {"distillation": "mse"}, "distillation"),
    (GenerativeReplay, {"gen_lr": 0}, "gen_lr"),
    (GenerativeReplay, {"store_generated": -1}, "store_generated"),
    (GPM, {"threshold_increment": -0.1}, "threshold_increment"),
    (OGD, {"memory_per_experience": 0}, "memory_per_experience"),
    (PackNet, {"prune": 1.0}, "prune"),
    (PackNet, {"n_tasks": 0}, "n_tasks"),
    (HAT, {"clamp": 0}, "clamp"),
    (CPG, {"prune": -0.5}, "prune"),
    (CPG, {"grow_units": 0}, "grow_units"),
    (DEN, {"grow_units": 2.5}, "grow_units"),
    (DEN, {"loss_threshold": -1}, "loss_threshold"),
    (Adapters, {"bottleneck": 0}, "bottleneck"),
    (NCM, {"freeze": "no"}, "freeze"),
]


@pytest.mark.parametrize(("cls", "kwargs", "param"), BAD, ids=[f"{c.__name__}-{k}" for c, k, _ in BAD])
def test_a_bad_value_is_refused_naming_strategy_parameter_value_and_range(
    cls: type, kwargs: dict, param: str
) -> None:
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    message = str(info.value)
    assert message.startswith(f"{cls.__name__}: {param}=")
    assert repr(kwargs[param]) in message
    assert "must be" in message  # the valid range or choices follow


def test_every_strategy_with_hyperparameters_has_a_bad_case() -> None:
    tested = {c for c, _, _ in BAD}
    untested = [n for n, c in BUILT_IN.items() if c().get_params() and c not in tested]
    assert not untested, f"add a bad value for {untested} to BAD"


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_defaults_and_tuned_values_are_valid(name: str) -> None:
    BUILT_IN[name]()
    for family in (None, *FAMILY_NAMES):
        params = tuned_params(name, family)
        params.pop("lr", None)  # the learner's, not the strategy's
        build(name, params)


def test_the_message_gives_the_valid_range_and_what_none_means() -> None:
    with pytest.raises(ConfigError, match=re.escape("in [0, 1) (or None: every task an equal share)")):
        PackNet(prune=1.5)
    with pytest.raises(
        ConfigError,
        match=re.escape("buffer_size=2.5 (a float) is invalid; buffer_size must be a whole number >= 1"),
    ):
        Replay(2.5)
    with pytest.raises(ConfigError, match=re.escape("one of 'auto', 'gradient', 'proximal'")):
        SI(penalty_step="exact")


def test_valid_edges_are_accepted() -> None:
    EWC(lam=0, decay=0, fisher_samples=1)
    PackNet(prune=0.0, finetune_epochs=0, n_tasks=1)
    GPM(threshold=1.0)
    GDumb(epochs=1, min_lr=0.05)
    DEN(loss_threshold=0.0, split_threshold=0.0)
    CPG(target_accuracy=1.01)  # above 1: always grow (up to max_grow)
    check_param("Mine", "n", None, int, low=1, none="all")


def test_a_custom_strategy_can_check_with_its_own_name() -> None:
    with pytest.raises(ConfigError, match=r"^Mine: steps=0 is invalid; steps must be a whole number >= 1$"):
        check_param("Mine", "steps", 0, int, low=1)
