import json

import numpy as np
import pytest
import torch

from lifelong.errors import ConfigError, DataError, LifelongError
from lifelong.monitor import DriftReport, KSDrift, MMDDrift, PSIDrift, TokenDrift


def windows(seed: int = 0, n: int = 500, d: int = 5, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(n, d))
    current = rng.normal(size=(n, d))
    current[:, 0] += shift
    return reference, current


@pytest.mark.parametrize(
    "monitor", [KSDrift(), KSDrift(correction="bonferroni"), PSIDrift(), MMDDrift(n_permutations=100)]
)
def test_same_distribution_no_drift_shifted_drift(monitor):
    reference, same = windows(seed=1)
    _, shifted = windows(seed=1, shift=1.0)
    monitor.fit(reference)
    calm, alarm = monitor.test(same), monitor.test(shifted)
    assert not calm.drift and alarm.drift
    assert alarm.score > calm.score
    if calm.p_value is not None:
        assert calm.p_value >= monitor.alpha > alarm.p_value


def test_ks_names_the_drifted_feature():
    reference, current = windows(seed=2, d=10, shift=1.0)
    report = KSDrift().fit(reference).test(current)
    assert report.details["drifted_features"] == [0]
    assert report.details["n_drifted"] == 1


@pytest.mark.parametrize("correction", ["bh", "bonferroni"])
def test_correction_controls_false_positives_over_many_features(correction):
    # 200 features, no drift: uncorrected, ~5% of them would reject at alpha=0.05 in every trial.
    alarms, raw_rejections = 0, 0
    for seed in range(20):
        reference, current = windows(seed=seed, n=200, d=200)
        alarms += KSDrift(alpha=0.05, correction=correction).fit(reference).test(current).drift
        raw_rejections += (
            KSDrift(alpha=0.05, correction="none").fit(reference).test(current).details["n_drifted"]
        )
    assert alarms <= 3  # expected ~1 of 20 at a 5% family-wise / FDR level
    assert raw_rejections > 20 * 200 * 0.02  # the uncorrected tests do reject many features


def test_psi_matches_hand_computation_and_tolerates_ties():
    reference = np.repeat(np.arange(4.0), 25)[:, None]  # 4 values, heavy ties in the quantiles
    current = np.repeat([0.0, 1.0, 2.0, 3.0], [10, 20, 30, 40])[:, None]
    report = PSIDrift(n_bins=4).fit(reference).test(current)
    p, q = np.full(4, 0.25), np.array([0.1, 0.2, 0.3, 0.4])
    assert report.score == pytest.approx(np.sum((q - p) * np.log(q / p)))
    assert PSIDrift(n_bins=4).fit(reference).test(reference).score == pytest.approx(0.0)


def test_mmd_on_embeddings_accepts_torch_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    reference, current = torch.randn(800, 32, generator=g), torch.randn(800, 32, generator=g) * 1.3
    monitor = MMDDrift(max_samples=300, n_permutations=100, seed=3).fit(reference)
    first, second = monitor.test(current), monitor.test(current)
    assert first == second and first.drift
    assert first.details["n_used"] == [300, 300]
    assert first.p_value == pytest.approx(1 / 101)


def test_report_to_event_is_json():
    reference, current = windows(shift=1.0)
    for monitor in (KSDrift(), PSIDrift(), MMDDrift(n_permutations=20)):
        event = monitor.fit(reference).test(current).to_event()
        assert json.loads(json.dumps(event, allow_nan=False)) == event
        assert event["type"] == "drift" and event["drift"] is True
    report = DriftReport("x", score=float("nan"), threshold=0.1, drift=False, details={"a": np.float32(1.5)})
    assert report.to_event()["score"] is None and report.to_event()["details"] == {"a": 1.5}


@pytest.mark.parametrize(
    "reference, current, match",
    [
        (np.zeros(50), None, "2-D"),
        (np.zeros((3, 2)), None, "at least"),
        (np.full((50, 2), np.nan), None, "NaN"),
        ([["a", "b"]] * 50, None, "numeric"),
        (np.zeros((50, 2)), np.zeros((50, 3)), "features"),
        (np.zeros((50, 2)), np.zeros((50, 2, 2)), "2-D"),
        (np.zeros((50, 2)), np.r_[np.zeros((49, 2)), [[np.inf, 0]]], "infinite"),
    ],
)
def test_bad_windows_raise(reference, current, match):
    for monitor in (KSDrift(), PSIDrift(), MMDDrift()):
        with pytest.raises(DataError, match=match):
            monitor.fit(reference).test(np.zeros((50, 2)) if current is None else current)


def test_bad_config_and_unfitted_raise():
    with pytest.raises(ConfigError, match="correction"):
        KSDrift(correction="holm").fit(np.zeros((20, 2)))
    with pytest.raises(ConfigError, match="alpha"):
        MMDDrift(alpha=1.5).fit(np.zeros((20, 2)))
    with pytest.raises(ConfigError, match="n_bins"):
        PSIDrift(n_bins=1).fit(np.zeros((20, 2)))
    with pytest.raises(LifelongError, match="fit"):
        KSDrift().test(np.zeros((20, 2)))


def test_hyper_parameters_stored_verbatim():
    monitor = MMDDrift(alpha=0.01, n_permutations=50, bandwidth=2.0, max_samples=100, seed=7)
    assert (monitor.alpha, monitor.n_permutations, monitor.bandwidth, monitor.max_samples, monitor.seed) == (
        0.01,
        50,
        2.0,
        100,
        7,
    )


def test_psi_sees_shifts_of_tied_values_and_checks_its_settings_when_built() -> None:
    """With ">=" binning every value at or over tied edges shared the last bin: a flag going from 5%
    to 90% ones, or a constant 0 becoming 1, was no drift (a user trial); PSIDrift(threshold=-1) always
    reported drift and KSDrift(alpha=5) was refused only at its first fit."""
    rng = np.random.default_rng(0)
    ref = np.c_[rng.random(800) < 0.05, np.zeros(800), rng.normal(size=800)]
    same = np.c_[rng.random(200) < 0.05, np.zeros(200), rng.normal(size=200)]
    assert not PSIDrift().fit(ref).test(same).drift
    for column, values in ((0, rng.random(200) < 0.9), (1, np.ones(200)), (1, -np.ones(200))):
        shifted = same.copy()
        shifted[:, column] = values
        report = PSIDrift().fit(ref).test(shifted)
        assert report.drift and report.details["drifted_features"] == [column]
    for make, bad in ((PSIDrift, {"threshold": -1}), (PSIDrift, {"eps": 0}), (KSDrift, {"alpha": 5})):
        with pytest.raises(ConfigError):
            make(**bad)


def test_categorical_features_get_a_chi_square_test_that_holds_alpha() -> None:
    """KS on a flag is conservative (a user trial: 30% -> 40% ones in windows of 250 found 28% of the
    time, false alarms at 0.5%); a chi-square test of homogeneity finds more and holds alpha."""
    rng = np.random.default_rng(0)
    found = {0: 0, 10: 0}
    false_alarms = 0
    for _ in range(200):
        ref, same, moved = (np.c_[rng.random(250) < p, rng.normal(size=250)] for p in (0.3, 0.3, 0.4))
        for max_categories in found:
            found[max_categories] += KSDrift(max_categories=max_categories).fit(ref).test(moved).drift
        false_alarms += KSDrift().fit(ref).test(same).drift
    assert found[10] > 2 * found[0], found
    assert false_alarms <= 18, false_alarms  # alpha 0.05 of 200 runs is 10
    # a value the reference never had is a category of its own; the report counts categorical features
    zeros, some_ones = np.zeros((250, 1)), np.zeros((250, 1))
    some_ones[:20] = 1
    report = KSDrift().fit(zeros).test(some_ones)
    assert report.drift and report.details["n_categorical"] == 1 and report.score == pytest.approx(0.08)
    assert not KSDrift(max_categories=0).fit(zeros).test(some_ones).drift  # KS: p = 0.40
    assert not KSDrift().fit(zeros).test(zeros).drift
    # only integer values are categories: a sparse scaled pixel (new intensities each window) is numeric
    sparse = np.zeros((250, 1))
    sparse[:5, 0] = rng.random(5)
    assert KSDrift().fit(sparse).categories_ == {}
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="max_categories"):
            KSDrift(max_categories=bad)


def documents(
    seed: int, n: int, mix: float, length: tuple[int, int] = (5, 20), width: int = 24
) -> np.ndarray:
    """Rows of token ids padded with 0: each document draws Zipf-distributed words of one of two
    topics (topic 1 with probability ``mix``), which rank the vocabulary 1..499 differently."""
    topics = [np.random.default_rng(99 + t).permutation(np.arange(1, 500)) for t in (0, 1)]
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, width))
    for i in range(n):
        k = rng.integers(*length, endpoint=True)
        rows[i, :k] = topics[int(rng.random() < mix)][np.minimum(rng.zipf(1.3, size=k), 499) - 1]
    return rows


def test_token_drift_holds_alpha_on_one_corpus_and_sees_a_change_of_topic() -> None:
    """Per-position KS read ids as quantities: on rows of one corpus it reported drift in 14.5% of
    200 window pairs at alpha 0.05, and saw a topic mix moving from 20% to 35% in 19% of them (the
    token test: 2.0% and 85%, benchmarks/token_drift.py)."""
    monitor = TokenDrift(pad_id=0, n_permutations=100)
    calm = [monitor.fit(documents(s, 150, 0.2)).test(documents(s + 50, 150, 0.2)) for s in range(20)]
    assert sum(r.drift for r in calm) <= 3  # 1 expected at alpha 0.05
    moved = monitor.fit(documents(0, 150, 0.2)).test(documents(1, 150, 0.8))
    assert moved.drift and moved.score > max(r.score for r in calm)
    assert moved.details["p_tokens"] == pytest.approx(1 / 101)  # no relabelling of rows came near it
    details = moved.details
    assert 0 not in details["tokens"] and len(details["tokens"]) == 20  # the pad is no word
    top = details["tokens"][0]  # the word whose share moved most: among either topic's commonest
    commonest = {np.random.default_rng(99 + t).permutation(np.arange(1, 500))[0] for t in (0, 1)}
    assert top in commonest and details["reference_shares"][0] != details["current_shares"][0]


def test_token_drift_leaves_the_pad_out_and_refuses_what_is_not_an_id() -> None:
    long, short = documents(0, 150, 0.2, (15, 20)), documents(1, 150, 0.2, (5, 8))
    report = TokenDrift(pad_id=0).fit(long).test(short)  # the same words, fewer of them:
    assert report.details["p_tokens"] > 0.05 and report.details["p_length"] < 1e-6 and report.drift
    assert report.details["tokens_per_row"][0] > 2 * report.details["tokens_per_row"][1]
    assert TokenDrift().fit(long).test(short).details["p_tokens"] < 0.05  # counted, the pad's share moved
    with pytest.raises(
        DataError, match=r"current window holds \d+.5, which is not a token id.*KSDrift or MMDDrift"
    ):
        TokenDrift().fit(long).test(short + 0.5)
    for bad in ({"pad_id": -1}, {"n_permutations": 0}, {"alpha": 2}):
        with pytest.raises(ConfigError):
            TokenDrift(**bad)
