"""Result: boundary work is timed into train_seconds; a diverged run is marked, never scored."""

import math
import time

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn import Learner, Strategy
from lifelong.strategies import EWC, Naive


class SlowBoundary(Strategy):
    name = ""

    def after_experience(self, learner, experience) -> None:
        time.sleep(0.05)


def test_boundary_work_counts_as_training_time() -> None:
    learner = Learner(toy_model(), [SlowBoundary()], lr=0.1, batch_size=8)
    result = learner.fit(toy_scenario())
    assert result.boundary_seconds >= 0.1  # two boundaries
    assert result.train_seconds >= result.boundary_seconds + 0.001  # epochs plus boundaries
    assert result.metrics["train_seconds_per_epoch"] >= 0.05
    assert result.metrics["boundary_seconds"] == result.boundary_seconds


def test_a_diverged_run_is_marked_and_not_scored() -> None:
    result = Learner(toy_model(), [EWC(lam=1e12)], lr=10.0, batch_size=8).fit(toy_scenario())
    assert result.diverged and result.metrics["diverged"] == 1.0
    assert math.isnan(result.metrics["acc"]) and "diverged" in result.table()
    healthy = Learner(toy_model(), [Naive()], lr=0.1, batch_size=8).fit(toy_scenario())
    assert not healthy.diverged and healthy.metrics["acc"] > 0.4 and "diverged" not in healthy.table()


def test_report_tables_print_diverged_instead_of_a_score() -> None:
    from lifelong.bench.report import markdown_table, pivot_table
    from lifelong.bench.runner import summarize

    diverged = Learner(toy_model(), [Naive()], lr=1e3, batch_size=8).fit(toy_scenario())
    run = {"benchmark": "toy", "strategy": "naive", "metrics": diverged.metrics}
    rows = summarize([run])
    assert "diverged" in markdown_table(rows) and "nan" not in markdown_table(rows)
    assert "| naive | diverged |" in pivot_table(rows, ["toy"])
