import math

from lifelong.bench.report import pivot_table
from lifelong.bench.runner import summarize


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
