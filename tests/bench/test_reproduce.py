"""benchmarks/reproduce.py: its table helpers and the iteration cap (the protocols themselves run there)."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "reproduce.py"


@pytest.fixture(scope="module")
def rep():
    spec = importlib.util.spec_from_file_location("reproduce", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _run(method: str, seed: int, acc: float, diverged: bool = False) -> dict:
    return {"method": method, "seed": seed, "acc": acc, "diverged": diverged}


def test_summary_is_in_percent_and_a_diverged_seed_voids_the_mean(rep) -> None:
    runs = [_run("A", 0, 0.5), _run("A", 1, 0.7), _run("B", 0, 0.9), _run("B", 1, math.nan, diverged=True)]
    s = rep.summarize(runs)
    assert s["A"]["mean"] == pytest.approx(60.0) and s["A"]["std"] == pytest.approx(math.sqrt(200))
    assert s["B"]["mean"] is None and s["B"]["diverged"] == 1 and s["B"]["seeds"] == 2


def test_skipped_runs_are_not_counted(rep) -> None:
    assert rep.summarize([{"method": "A", "seed": 0, "skipped": "needs task labels"}]) == {}


def test_ordering_is_best_first_and_leaves_out_methods_without_a_number(rep) -> None:
    assert rep.ordering({"SGD": 19.0, "ER": 80.0, "X": None, "A-GEM": 40.0}) == "ER > A-GEM > SGD"
    assert rep.ordering({"SGD": 20.0, "oEWC": 19.6, "ER": 80.0}) == "ER > SGD ~ oEWC"
    assert rep.ordering({}) == ""


def test_markdown_puts_published_beside_ours_and_says_diverged(rep) -> None:
    p = rep.PROTOCOLS["gpm"]
    summary = rep.summarize([_run("Finetune", 0, 0.5), _run("EWC", 0, math.nan, diverged=True)])
    table = rep.markdown(p, summary)
    assert "| Finetune | 50.0 | 78.2 |" in table
    assert "| EWC | diverged (1 of 1 seeds) | 92.0 |" in table
    assert "| GPM | not run | 95.0 |" in table
    assert "Ordering, ours: Finetune" in table and p.ordering in table


def test_stop_after_caps_the_optimiser_steps_of_every_experience(rep) -> None:
    scenario = toy_scenario()  # each experience holds far more than 3 batches of 4
    learner = Learner(toy_model(), batch_size=4, epochs=3, callbacks=[rep._as_callback(rep.StopAfter(3))])
    learner.fit(scenario)
    assert learner.step == 3 * len(scenario)


def test_combined_table_joins_files_and_a_later_run_replaces_an_earlier_one(rep, tmp_path) -> None:
    import json

    first = {"protocol": "gpm", "runs": [_run("Finetune", 0, 0.5), _run("EWC", 0, 0.4)]}
    second = {"protocol": "gpm", "runs": [_run("EWC", 0, 0.6), _run("GPM", 0, 0.7)]}
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, doc in zip(paths, (first, second)):
        path.write_text(json.dumps(doc))
    table = rep.combined_table([str(p) for p in paths])
    assert "| Finetune | 50.0 | 78.2 |" in table and "| EWC | 60.0 | 92.0 |" in table
    assert "Ordering, ours: GPM > EWC > Finetune" in table


def test_a_variant_gets_its_own_row_beside_the_published_figure(rep) -> None:
    assert rep._parse_set("prune=0.8,mode=x") == {"prune": 0.8, "mode": "x"}
    table = rep.markdown(rep.PROTOCOLS["gpm"], rep.summarize([_run("PackNet [prune=0.8]", 0, 0.8)]))
    assert "| PackNet [prune=0.8] | 80.0 | 96.4 |" in table and "| PackNet | not run | 96.4 |" in table
