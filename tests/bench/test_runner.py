import math

import pytest

from lifelong.bench.report import pivot_table
from lifelong.bench.runner import Settings, summarize
from lifelong.errors import ConfigError


def _run(seed: int, acc: float, diverged: bool) -> dict:
    return {"benchmark": "b", "strategy": "scp", "seed": seed,
            "metrics": {"acc": acc, "diverged": float(diverged)}}  # fmt: skip


def test_a_diverged_seed_summarizes_to_diverged_not_a_crash() -> None:
    """Its NaN accuracy used to make statistics.stdev raise and sink the whole table."""
    rows = summarize([_run(0, 0.2, False), _run(1, math.nan, True), _run(2, 0.3, False)])
    assert math.isnan(rows[0]["acc_std"]) and rows[0]["diverged"] > 0
    assert "diverged" in pivot_table(rows, ["b"])


def test_finite_seeds_get_mean_and_sample_std() -> None:
    row = summarize([_run(0, 0.2, False), _run(1, 0.4, False)])[0]
    assert math.isclose(row["acc"], 0.3) and math.isclose(row["acc_std"], math.sqrt(0.02))


def test_a_null_metric_read_from_strict_json_is_nan() -> None:
    """results.json writes NaN as null; summarize reads it back as NaN, not a TypeError."""
    rows = summarize([_run(0, 0.2, False), {**_run(1, 0.0, True), "metrics": {"acc": None, "diverged": 1.0}}])
    assert math.isnan(rows[0]["acc"]) and rows[0]["diverged"] > 0


def test_settings_refuse_values_no_run_means() -> None:
    """A train_fraction of 0 trained on one sample per experience and reported an accuracy."""
    for bad in ({"train_fraction": 0.0}, {"train_fraction": 1.5}, {"train_fraction": math.nan}, {"lr": math.nan},
                {"lr": -0.1}, {"batch_size": 0}, {"buffer": -1}, {"epochs": -1}):  # fmt: skip
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Settings(**bad)
    assert Settings(epochs=0, lr=None, buffer=None).train_fraction == 1.0  # 0 and None mean "the default"


def test_a_model_with_fewer_outputs_than_the_datas_classes_is_refused_naming_the_flag() -> None:
    """`bench --data FILE --model-kwargs '{"n_classes": 2}'` on four classes trained the first experience,
    then stopped with advice to pass allow_new_classes=True, which `bench` has no flag for."""
    from lifelong.bench.runner import run_one
    from lifelong.checks import toy_scenario

    scenario = toy_scenario()
    n = scenario.n_classes
    settings = Settings(epochs=1, model_kwargs={"n_classes": n - 1})
    with pytest.raises(
        ConfigError, match=f"has {n - 1} outputs, but the data has labels up to {n - 1} .*n_classes"
    ):
        run_one("split-digits", "naive", 0, settings, scenario=scenario)
    wider = run_one(
        "split-digits", "naive", 0, Settings(epochs=1, model_kwargs={"n_classes": n + 3}), scenario=scenario
    )
    assert 0.0 <= wider["metrics"]["acc"] <= 1.0  # more outputs than classes is allowed


def test_an_adaptive_optimizer_is_a_setting_with_its_own_default_rate() -> None:
    """bench had no --optimizer: a token-id model scored chance at every tuned SGD rate, and Adam at
    0.01 gave DER++ 0.960 in Python, out of bench's reach."""
    import torch

    from lifelong.bench import runner
    from lifelong.bench.benchmarks import get

    scenario = get("split-digits").build(0)
    adam = runner.build_learner("split-digits", "replay", 0, Settings(optimizer="adam"), scenario)
    assert isinstance(adam.optimizer, torch.optim.Adam) and adam.lr == 1e-3  # the tuned rates are SGD's
    assert runner.run_settings(Settings(optimizer="adam"), 1e-3)["optimizer"] == "adam"
    assert "optimizer" not in runner.run_settings(Settings(), 0.03)  # an SGD run keeps its old key
    with pytest.raises(ConfigError, match="unknown optimizer 'rmsprop'"):
        Settings(optimizer="rmsprop")
