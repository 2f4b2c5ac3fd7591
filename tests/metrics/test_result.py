"""Result: boundary work is timed into train_seconds; a diverged run is marked, never scored."""

import json
import math
import time

import numpy as np
import pytest

from lifelong.checks import toy_model, toy_scenario
from lifelong.errors import DataError
from lifelong.learn import Learner, Strategy
from lifelong.metrics.result import Result, strict_json
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


def test_fwt_of_a_task_incremental_run_compares_scores_among_each_tasks_classes() -> None:
    result = Learner(toy_model(), [Naive()], lr=0.1, batch_size=8).fit(toy_scenario("task"))
    r, b = result.accuracy_matrix, result.untrained_accuracy
    # two classes per task: the untrained model is chance-ish on each, not 0 on one it leans away from
    assert all(0.25 <= v <= 0.75 for v in [*b, r[0][1]])
    assert result.metrics["fwt"] == pytest.approx(r[0][1] - b[1])


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


def _strict_loads(text: str) -> object:
    """json.loads refusing NaN / Infinity, as jq or JavaScript do."""

    def refuse(word: str) -> None:
        raise ValueError(f"not JSON: {word}")

    return json.loads(text, parse_constant=refuse)


def test_to_json_writes_strict_json_and_from_json_reads_it_back() -> None:
    nan = float("nan")
    result = Result(accuracy_matrix=[[0.9, nan], [0.5, 0.8]], untrained_accuracy=[0.1, nan], flips=[0.2],
                    train_seconds=1.5, diverged=True, epochs=2, info={"note": "x"})  # fmt: skip
    text = result.to_json(indent=1)
    doc = _strict_loads(text)
    assert doc["accuracy_matrix"][0][1] is None and doc["metrics"]["acc"] is None  # diverged: NaN metrics
    back = Result.from_json(text)
    assert math.isnan(back.accuracy_matrix[0][1]) and math.isnan(back.untrained_accuracy[1])
    assert back.reference_accuracy is None and back.info == {"note": "x"}
    assert back.to_json(indent=1) == text  # the same fields and metrics, NaN for NaN


def test_from_dict_refuses_what_is_not_a_result() -> None:
    with pytest.raises(DataError, match=r"unknown fields \['benchmark'\]"):
        Result.from_dict({"benchmark": "split-fmnist", "accuracy_matrix": []})
    for text, message in [
        ("[]", "expected a JSON object, got list"),
        ("{not json", "invalid JSON"),
        ('{"accuracy_matrix": "x"}', "accuracy_matrix must be a non-empty list"),
        ('{"accuracy_matrix": [[0.5], [0.5, 0.6]]}', "rows of accuracy_matrix differ in length"),
        ('{"accuracy_matrix": [[1]], "flips": [true]}', "flips must be a list of numbers"),
        ('{"accuracy_matrix": [[1]], "epochs": "3"}', "epochs must be a number"),
    ]:
        with pytest.raises(DataError, match=message):
            Result.from_json(text)
    with pytest.raises(DataError, match="accuracy_matrix must be a non-empty list"):
        Result.from_json("{}")
    assert Result.from_json('{"accuracy_matrix": [[0.5]]}').metrics["acc"] == 0.5  # the rest has defaults


def test_strict_json_nulls_every_non_finite_number() -> None:
    doc = {"a": [float("inf"), np.float32("nan"), 1.5, True], "b": (float("-inf"),), "c": np.float64(2.0)}
    assert _strict_loads(strict_json(doc)) == {"a": [None, None, 1.5, True], "b": [None], "c": 2.0}


def test_just_learned_is_the_diagonal_and_feeds_intransigence() -> None:
    r = Result(accuracy_matrix=[[0.9, 0.1, 0.0], [0.5, 0.8, 0.2], [0.4, 0.6, 0.7]])
    assert r.just_learned == [0.9, 0.8, 0.7]
    assert Result(accuracy_matrix=[[0.9, 0.1, 0.0]]).just_learned == [0.9]  # a run stopped early
    worse = Result(accuracy_matrix=r.accuracy_matrix, reference_accuracy=[1.0, 1.0, 1.0])
    assert worse.metrics["intransigence"] == pytest.approx((0.1 + 0.2 + 0.3) / 3)
    assert Result(accuracy_matrix=r.accuracy_matrix, reference_accuracy=r.just_learned).metrics[
        "intransigence"
    ] == pytest.approx(0.0)


def test_a_result_with_lists_shorter_than_its_matrix_or_no_matrix_is_refused_by_name() -> None:
    """``.metrics`` raised a raw IndexError (a short untrained or reference list) or ValueError (empty)."""
    good = Result(accuracy_matrix=[[0.9, 0.1], [0.8, 0.7]], untrained_accuracy=[0.1, 0.1]).to_dict()
    for key in ("untrained_accuracy", "reference_accuracy"):
        with pytest.raises(DataError, match=f"{key} has 1 values for 2 experiences"):
            Result.from_dict({**good, key: [0.5]})
    with pytest.raises(DataError, match="no accuracy matrix yet"):
        _ = Result().metrics
    with pytest.raises(DataError, match="no accuracy matrix yet"):
        Result().table()


def test_an_empty_reference_accuracy_is_none_given() -> None:
    """As an empty untrained_accuracy: no intransigence, not an IndexError from the metrics."""
    r = Result.from_json('{"accuracy_matrix": [[0.5]], "reference_accuracy": []}')
    assert "intransigence" not in r.metrics and "0.5" in r.table()
