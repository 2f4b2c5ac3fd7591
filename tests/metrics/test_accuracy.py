import json
import math

import pytest

from lifelong.metrics import (
    Result,
    acc,
    average_incremental_accuracy,
    bwt,
    forgetting,
    fwt,
    intransigence,
    negative_flip_rate,
    plasticity,
)

R = [
    [0.9, 0.1, 0.0],
    [0.6, 0.8, 0.2],
    [0.5, 0.7, 0.9],
]


def test_acc_is_the_mean_of_the_last_row() -> None:
    assert acc(R) == pytest.approx((0.5 + 0.7 + 0.9) / 3)


def test_acc_of_a_run_stopped_early_averages_the_experiences_it_trained() -> None:
    """It averaged the untrained experience's column in, where BWT and forgetting leave it out."""
    assert acc(R[:2]) == pytest.approx((0.6 + 0.8) / 2)
    assert forgetting([[0.5, 0.5], [0.6, 0.6]]) == pytest.approx(-0.1)  # improved at the end: negative


def test_bwt_compares_final_with_just_learned() -> None:
    assert bwt(R) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)


def test_fwt_compares_before_training_with_untrained_model() -> None:
    assert fwt(R, [0.1, 0.05, 0.1]) == pytest.approx(((0.1 - 0.05) + (0.2 - 0.1)) / 2)


def test_forgetting_uses_the_best_earlier_accuracy() -> None:
    # experience 0: best 0.9, final 0.5; experience 1: best 0.8, final 0.7
    assert forgetting(R) == pytest.approx((0.4 + 0.1) / 2)


def test_forgetting_skips_unmeasured_cells() -> None:
    """A null read from JSON (an unmeasured cell above the diagonal) is no candidate for the best."""
    nan = float("nan")
    assert forgetting([[0.9, nan, nan], [0.6, 0.8, nan], [0.5, 0.7, 0.9]]) == pytest.approx((0.4 + 0.1) / 2)
    assert math.isnan(forgetting([[nan, 0.1], [0.6, 0.8]]))  # nothing measured on experience 0 before the end


def test_intransigence_and_plasticity() -> None:
    assert intransigence(R, [1.0, 1.0, 1.0]) == pytest.approx(((0.1) + (0.2) + (0.1)) / 3)
    assert plasticity(R) == pytest.approx((0.9 + 0.8 + 0.9) / 3)


def test_what_needs_two_experiences_is_undefined_for_one_not_zero() -> None:
    """BWT, FWT, forgetting and the flip rate averaged over nothing read 0 (a trial: undefined in GEM and
    RWalk); so did FWT without the untrained accuracies it is measured against."""
    assert math.isnan(bwt([[0.7]])) and math.isnan(forgetting([[0.7]])) and math.isnan(fwt([[0.7]], [0.1]))
    assert math.isnan(negative_flip_rate([]))
    assert math.isnan(fwt(R, [])) and math.isnan(Result(accuracy_matrix=R).metrics["fwt"])
    one = Result(accuracy_matrix=[[0.7]]).metrics
    assert one["acc"] == one["plasticity"] == one["average_incremental_accuracy"] == 0.7 and math.isnan(
        one["bwt"]
    )


def test_average_incremental_accuracy_is_the_mean_acc_after_each_experience() -> None:
    """Rebuffi et al. (2017): the accuracy on the experiences seen so far, averaged over the steps."""
    expected = (0.9 + (0.6 + 0.8) / 2 + (0.5 + 0.7 + 0.9) / 3) / 3
    assert average_incremental_accuracy(R) == pytest.approx(expected)
    assert Result(accuracy_matrix=R).metrics["average_incremental_accuracy"] == pytest.approx(expected)
    assert average_incremental_accuracy([[0.9, 0.0, 0.0], [0.6, 0.8, 0.0]]) == pytest.approx((0.9 + 0.7) / 2)


def test_intransigence_refuses_a_reference_shorter_than_the_experiences_trained() -> None:
    """It raised a bare IndexError (a trial)."""
    with pytest.raises(ValueError, match="reference accuracy has 2 values for 3 experiences"):
        intransigence(R, [0.9, 0.9])


def test_result_serialises_with_every_metric() -> None:
    r = Result(accuracy_matrix=R, untrained_accuracy=[0.1] * 3, flips=[0.2, 0.1], train_seconds=2.0, epochs=3,
               samples=100, reference_accuracy=[1.0] * 3)  # fmt: skip
    doc = json.loads(r.to_json())
    for key in ("acc", "bwt", "fwt", "forgetting", "negative_flip_rate", "train_seconds_per_epoch",
                "samples_per_second", "extra_parameters", "buffer_bytes", "peak_rss_mb", "intransigence"):  # fmt: skip
        assert key in doc["metrics"]
    assert doc["metrics"]["negative_flip_rate"] == pytest.approx(0.15)
    assert doc["metrics"]["samples_per_second"] == pytest.approx(50.0)
    table = r.table()
    assert "0.900" in table and "negative_flip_rate" in table


def test_forgetting_counts_from_when_an_experience_was_learned() -> None:
    """A zero-shot accuracy above the learned one (GDumb on a coming domain) counted as forgetting."""
    matrix = [
        [0.8, 0.9, 0.1],
        [0.7, 0.7, 0.2],
        [0.6, 0.6, 0.9],
    ]  # experience 1 scored 0.9 before it was learned
    assert forgetting(matrix) == pytest.approx(((0.8 - 0.6) + (0.7 - 0.6)) / 2)  # not (0.9 - 0.6) for it
