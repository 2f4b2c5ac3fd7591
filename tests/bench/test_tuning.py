"""Tuning per scenario family on validation data: the split and the lookup of tuned values."""

import argparse
import json

import pytest
import torch

from lifelong.bench import runner
from lifelong.checks import toy_scenario
from lifelong.errors import ConfigError
from lifelong.strategies import tuning


def test_validation_split_holds_out_training_data_and_never_uses_the_test_set() -> None:
    scenario = toy_scenario()
    originals = [(e.train.x.clone(), e.test.x.clone()) for e in scenario.experiences]
    runner.validation_split(scenario, 0.25, seed=0)
    for e, (train, test) in zip(scenario.experiences, originals):
        assert len(e.test) == len(train) // 4 and len(e.train) == len(train) - len(train) // 4
        rows = {tuple(r) for r in train.tolist()}
        assert all(
            tuple(r) in rows for r in torch.cat([e.train.x, e.test.x]).tolist()
        )  # all from training data
        assert not {tuple(r) for r in e.test.x.tolist()} & {tuple(r) for r in test.tolist()}
        assert not {tuple(r) for r in e.test.x.tolist()} & {tuple(r) for r in e.train.x.tolist()}


def test_tuned_values_are_looked_up_by_family(tmp_path, monkeypatch) -> None:
    table = {
        "default": {"lam": 1.0, "samples": 5},
        "families": {"domain": {"lam": 100.0}, "task": {"lam": 10.0}},
    }
    (tmp_path / "x.json").write_text(json.dumps(table))
    monkeypatch.setattr(tuning, "HPARAMS_DIR", tmp_path)
    assert runner.tuned_params("x", "permuted-fmnist") == {"lam": 100.0, "samples": 5}
    assert runner.tuned_params("x", "split-fmnist-task") == {"lam": 10.0, "samples": 5}
    assert runner.tuned_params("x", "split-fmnist") == {"lam": 1.0, "samples": 5}


def test_memory_methods_get_the_values_searched_at_the_nearest_memory_size(tmp_path, monkeypatch) -> None:
    table = {
        "default": {"alpha": 0.3, "beta": 1.0},
        "families": {"class": {"alpha": 2.0, "lr": 0.05}},  # searched at tuning.SEARCH_MEMORY (500)
        "memory": {"split-fmnist": {"200": {"alpha": 1.0, "lr": 0.03}, "2000": {"lr": 0.1}}},
    }
    (tmp_path / "x.json").write_text(json.dumps(table))
    monkeypatch.setattr(tuning, "HPARAMS_DIR", tmp_path)
    at = lambda buffer: runner.tuned_params("x", "split-fmnist", buffer)  # noqa: E731
    assert at(None) == at(500) == at(400) == {"alpha": 2.0, "beta": 1.0, "lr": 0.05}
    assert at(200) == at(100) == at(250) == {"alpha": 1.0, "beta": 1.0, "lr": 0.03}
    assert at(320) == at(500) and at(310) == at(200)  # nearest by ratio (the geometric mean is 316)
    assert at(5000) == {"alpha": 2.0, "beta": 1.0, "lr": 0.1}  # a size's values override the family's
    # searched on split-fmnist only: the family's other benchmarks keep the family's values at every size
    assert runner.tuned_params("x", "split-digits", 200) == at(500)
    assert runner.tuned_params("x", "permuted-fmnist", 200) == {"alpha": 0.3, "beta": 1.0}  # another family
    (tmp_path / "derpp.json").write_text(json.dumps(table))
    small = runner.make_strategy("derpp", "split-fmnist", 200)
    assert (small.buffer_size, small.alpha) == (200, 1.0)
    strategy, lr = tuning.tuned("derpp", "class", "split-fmnist", buffer_size=200)
    assert (strategy.buffer_size, strategy.alpha, lr) == (200, 1.0, 0.03)
    assert tuning.tuned("derpp", "class", buffer_size=200).lr == tuning.tuned("derpp", "class").lr == 0.05
    with pytest.raises(ConfigError, match="unknown benchmark 'split-fmnsit'; valid: .*split-fmnist"):
        tuning.tuned("derpp", "class", "split-fmnsit", buffer_size=200)  # not a silent fall-back


def _strategies_script():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "strategies.py"
    spec = importlib.util.spec_from_file_location("strategies_bench", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["strategies_bench"] = module
    spec.loader.exec_module(module)
    return module


def test_choice_averages_seeds_and_never_picks_a_diverged_setting() -> None:
    choose = _strategies_script().choose

    def run(lam: float, acc: float, diverged: bool = False) -> dict:
        return {"params": {"lam": lam, "other": 1}, "metrics": {"acc": acc, "diverged": float(diverged)}}

    runs = [
        run(1.0, 0.70),
        run(1.0, 0.74),
        run(10.0, 0.90),
        run(10.0, 0.10, diverged=True),
        run(3.0, 0.71),
        run(3.0, 0.71),
    ]
    scores, best = choose(runs, ["lam"])
    assert scores == {'{"lam": 1.0}': 0.72, '{"lam": 10.0}': "diverged", '{"lam": 3.0}': 0.71}
    assert best == {"lam": 1.0}
    assert choose([run(1.0, 0.5, diverged=True)], ["lam"]) == ({'{"lam": 1.0}': "diverged"}, None)


def test_family_grids_replace_the_default_grid() -> None:
    script = _strategies_script()
    derpp = script.search_space("derpp", "class")
    assert (
        derpp == script.FAMILY_SEARCH["class"]["derpp"] and derpp["alpha"] != script.SEARCH["derpp"]["alpha"]
    )
    assert "batch_size" in derpp and "batch_size" not in script.SEARCH["derpp"]
    assert script.search_space("ewc", "domain")["penalty_step"] == ["proximal"]
    assert script.search_space("ewc", "task")["penalty_step"] == ["proximal"]
    assert script.search_space("l2", "task") == script.SEARCH["l2"]  # no grid of its own there
    assert script.search_space("derpp", "class", 200) == script.MEMORY_SEARCH[200]["class"]["derpp"]
    assert script.search_space("derpp", "class", 300) == derpp  # no grid of that size: the family's


def test_a_search_at_another_memory_size_is_stored_beside_the_familys_values(tmp_path, monkeypatch) -> None:
    script = _strategies_script()
    monkeypatch.setattr(tuning, "HPARAMS_DIR", tmp_path)
    (tmp_path / "derpp.json").write_text(json.dumps({"families": {"class": {"alpha": 2.0, "lr": 0.05}}}))
    monkeypatch.setitem(script.MEMORY_SEARCH, 20, {"class": {"derpp": {"alpha": [0.1, 1.0]}}})
    trained = []

    def grid(jobs, log, workers):  # validation ACC rises with alpha; one seed of 1.0 at another size
        trained.extend(jobs)
        return [{**j, "params": {**j["params"], "beta": 1.0}, "settings": {"train_fraction": 1.0},
                 "metrics": {"acc": 0.5 + j["params"]["alpha"] / 10, "diverged": 0.0}}
                for j in jobs] + [{**jobs[0], "buffer": 500, "params": {"alpha": 0.1}, "metrics": {"acc": 1.0}}]  # fmt: skip

    monkeypatch.setattr(script, "_grid", grid)
    args = argparse.Namespace(families="class", benchmark="", seeds="10,11", strategies="derpp", buffer=20, validation=0.1, rate=False, lr=[],
                              domain_fraction=0.2, train_fraction=1.0, out=str(tmp_path / "runs"), workers=1)  # fmt: skip
    script.tune(args)
    assert {(j["buffer"], j["params"]["alpha"], j["seed"]) for j in trained} == {
        (20, a, s) for a in (0.1, 1.0) for s in (10, 11)
    }
    table = json.loads((tmp_path / "derpp.json").read_text())
    assert table["families"] == {"class": {"alpha": 2.0, "lr": 0.05}}  # the memory-500 values stay
    assert table["memory"] == {"split-fmnist": {"20": {"alpha": 1.0}}}  # where it was searched
    assert table["_tuning"]["class, memory 20"]["validation_acc"] == {
        '{"alpha": 0.1}': 0.51,
        '{"alpha": 1.0}': 0.6,
    }
    assert runner.tuned_params("derpp", "split-fmnist", 20) == {"alpha": 1.0, "lr": 0.05}


def test_a_rate_searched_on_another_benchmark_of_the_family_stays_with_that_benchmark(
    tmp_path, monkeypatch
) -> None:
    script = _strategies_script()
    monkeypatch.setattr(tuning, "HPARAMS_DIR", tmp_path)
    (tmp_path / "derpp.json").write_text(json.dumps({"families": {"class": {"alpha": 2.0, "lr": 0.05}}}))
    monkeypatch.setitem(script.BENCHMARK_SEARCH, "split-digits", {"lr": [0.01, 0.1]})
    trained = []

    def grid(jobs, log, workers):  # validation ACC rises with the rate
        trained.extend(jobs)
        return [{**j, "params": {**j["params"], "alpha": 2.0}, "settings": {"train_fraction": 1.0},
                 "metrics": {"acc": 0.5 + j["params"]["lr"], "diverged": 0.0}} for j in jobs]  # fmt: skip

    monkeypatch.setattr(script, "_grid", grid)
    args = argparse.Namespace(families="task,domain", benchmark="split-digits", seeds="10,11", strategies="",
                              buffer=500, validation=0.1, rate=False, lr=[], domain_fraction=0.2, train_fraction=1.0,
                              out=str(tmp_path / "runs"), workers=1)  # fmt: skip
    script.tune(args)
    assert {j["benchmark"] for j in trained} == {
        "split-digits"
    }  # --benchmark replaces the families' searches
    names = {j["strategy"] for j in trained}
    assert {"derpp", "replay", "joint", "naive"} <= names and not names & {"gdumb", "ncm"}  # no learner rate
    table = json.loads((tmp_path / "derpp.json").read_text())
    assert table["families"] == {"class": {"alpha": 2.0, "lr": 0.05}}
    assert table["memory"] == {"split-digits": {"500": {"lr": 0.1}}}
    assert table["_tuning"]["class, split-digits"]["validation_acc"] == {
        '{"lr": 0.01}': 0.51,
        '{"lr": 0.1}': 0.6,
    }
    assert runner.tuned_params("derpp", "split-digits", 500) == {"alpha": 2.0, "lr": 0.1}
    assert runner.tuned_params("derpp", "split-digits", 200) == {"alpha": 2.0, "lr": 0.1}  # the nearest size
    assert tuning.tuned_params("derpp", "class", "split-digits") == {
        "alpha": 2.0,
        "lr": 0.1,
    }  # no memory given
    assert runner.tuned_params("derpp", "split-fmnist", 500) == {"alpha": 2.0, "lr": 0.05}  # the family's
    args.benchmark = "permuted-fmnist"
    with pytest.raises(SystemExit, match="no grid for permuted-fmnist; searchable: split-digits"):
        script.tune(args)


def test_a_rate_search_covers_every_method_of_a_family_and_joins_the_values_searched_before(
    tmp_path, monkeypatch
) -> None:
    script = _strategies_script()
    monkeypatch.setattr(tuning, "HPARAMS_DIR", tmp_path)
    (tmp_path / "ewc.json").write_text(
        json.dumps({"families": {"task": {"lam": 1000.0}, "class": {"lam": 1.0}}})
    )
    trained = []

    def grid(jobs, log, workers):  # validation ACC peaks at the lowest rate
        trained.extend(jobs)
        return [{**j, "params": {**j["params"], "lam": 1000.0}, "settings": {"train_fraction": 1.0},
                 "metrics": {"acc": 0.9 - abs(j["params"]["lr"] - 0.01), "diverged": 0.0}}
                for j in jobs]  # fmt: skip

    monkeypatch.setattr(script, "_grid", grid)
    args = argparse.Namespace(families="task", benchmark="", seeds="10,11", strategies="", buffer=500,
                              validation=0.1, rate=True, lr=[0.01, 0.03, 0.1], domain_fraction=0.2,
                              train_fraction=1.0, out=str(tmp_path / "runs"), workers=1)  # fmt: skip
    script.tune(args)
    assert {j["benchmark"] for j in trained} == {"split-fmnist-task"}
    names = {j["strategy"] for j in trained}
    # memory methods, regularizers, architectures and the baselines alike; never a method without a learner rate
    assert {"naive", "ewc", "replay", "derpp", "packnet", "joint"} <= names and not names & {"gdumb", "ncm"}
    assert {j["params"]["lr"] for j in trained} == {0.01, 0.03, 0.1}
    table = json.loads((tmp_path / "ewc.json").read_text())
    assert table["families"] == {"task": {"lam": 1000.0, "lr": 0.01}, "class": {"lam": 1.0}}
    assert table["_tuning"]["task, lr"]["search"] == {"lr": [0.01, 0.03, 0.1]}
    assert json.loads((tmp_path / "naive.json").read_text())["families"] == {"task": {"lr": 0.01}}
    assert tuning.tuned("ewc", "task")[1] == 0.01 and tuning.tuned("ewc", "class")[1] != 0.01
    record = tmp_path / "runs" / "choices.txt"
    assert "ewc [task, lr]: chose {'lr': 0.01} (validation ACC 0.900)" in record.read_text().splitlines()
    record.write_text("ewc [task, lr]: chose {'lr': 0.3} (validation ACC 0.1)\nsi [domain, lr]: kept\n")
    script.tune(args)  # a later round replaces its own lines and keeps the others
    lines = record.read_text().splitlines()
    assert lines[:2] == ["ewc [task, lr]: chose {'lr': 0.01} (validation ACC 0.900)", "si [domain, lr]: kept"]
    args.benchmark = "split-digits"  # both say where the rate is searched
    with pytest.raises(SystemExit, match="give one"):
        script.tune(args)


def test_a_grid_grown_by_a_key_reuses_the_runs_of_that_keys_default() -> None:
    same = _strategies_script()._same_setting
    run = {"benchmark": "b", "strategy": "ewc", "seed": 10, "buffer": 500, "metrics": {"acc": 0.7},
           "overrides": {"lam": 3.0}, "params": {"lam": 3.0, "online": False}}  # fmt: skip
    job = {
        "benchmark": "b",
        "strategy": "ewc",
        "seed": 10,
        "buffer": 500,
        "params": {"lam": 3.0, "online": False},
    }
    assert same(job, run)
    assert not same({**job, "params": {"lam": 3.0, "online": True}}, run)
    assert not same({**job, "seed": 11}, run)
    assert not same(
        {**job, "params": {"online": False}}, run
    )  # the run overrode a key the job leaves at default


def test_the_learning_rate_is_the_familys_tuned_one_unless_set(tmp_path, monkeypatch) -> None:
    (tmp_path / "replay.json").write_text(json.dumps({"families": {"class": {"lr": 0.07, "batch_size": 4}}}))
    monkeypatch.setattr(tuning, "HPARAMS_DIR", tmp_path)
    tuned = runner.run_one("split-digits", "replay", 0, runner.Settings(), scenario=toy_scenario())
    assert (
        tuned["settings"]["lr"] == 0.07 and tuned["params"]["batch_size"] == 4
    )  # lr is not a Replay argument
    chosen = runner.run_one("split-digits", "replay", 0, runner.Settings(lr=0.01), scenario=toy_scenario())
    assert chosen["settings"]["lr"] == 0.01
    untuned = runner.run_one("permuted-fmnist", "replay", 0, runner.Settings(), scenario=toy_scenario())
    assert untuned["settings"]["lr"] == runner.DEFAULT_LR


def test_a_searched_learning_rate_reaches_the_learner_not_the_strategy(monkeypatch) -> None:
    script = _strategies_script()
    seen = {}
    real = runner.run_one

    def spy(benchmark, strategy, seed, settings, **kw):
        seen["lr"], seen["params"] = settings.lr, kw["params"]
        return real(benchmark, strategy, seed, settings, **kw)

    monkeypatch.setattr(runner, "run_one", spy)
    monkeypatch.setattr(script, "_scenario", lambda *a: toy_scenario())
    job = {"benchmark": "split-digits", "strategy": "replay", "seed": 0, "buffer": 20, "epochs": 1,
           "train_fraction": 1.0, "params": {"lr": 0.02, "batch_size": 4}}  # fmt: skip
    run = script._run(job)
    assert seen == {"lr": 0.02, "params": {"batch_size": 4}}
    assert run["params"]["lr"] == 0.02 and run["settings"]["lr"] == 0.02
