"""The one-line descriptions `lifelong events` prints, and the command itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lifelong.checks import toy_data
from lifelong.cli import main
from lifelong.system.events import EventKind, describe
from lifelong.system.policy import Policy
from lifelong.system.registry import Registry
from lifelong.system.store import Store
from lifelong.system.trainer import Gate, bootstrap, train_once


def test_each_decision_reads_as_what_happened_and_why() -> None:
    gate = {"passed": False, "trained": True, "parent": 3, "window": [10, 90], "reasons": ["flip rate 0.2 > 0.1"],
            "figures": {"new_accuracy": 0.91, "champion_new_accuracy": 0.8}}  # fmt: skip
    assert (
        describe("gate", gate)
        == "failed from v3 trained on samples 10-90, new acc 0.910 (champion 0.800): flip rate 0.2 > 0.1"
    )
    # where it was judged, too: "on samples" read as the holdout, which held an operator's bad rows
    assert describe("gate", {**gate, "holdout": [91, 110]}).startswith(
        "failed from v3 trained on samples 10-90, judged on 91-110, new acc"
    )
    assert (
        describe("gate", {"trained": False, "reasons": ["window too small"]})
        == "nothing trained: window too small"
    )
    tokens = {"monitor": "tokens", "score": 0.302, "p_value": 2.2e-138, "first": 3201,
              "details": {"tokens": [3, 2550], "p_tokens": 0.005, "p_length": 1.1e-138,
                          "tokens_per_row": [39.6, 7.2]}}  # fmt: skip
    # was: "token shares moved by 0.302 ... p 2.2e-138": the length test's p under the token test's name
    assert describe("data_drift", tokens) == (
        "tokens: words per row 39.6 -> 7.2 (p 1.1e-138); token shares moved by 0.302 (total variation, "
        "p 0.005), most moved ids: 3, 2550, from sample 3201"
    )
    drift = {"monitor": "ks", "p_value": 1e-9, "first": 201,
             "details": {"n_drifted": 2, "n_features": 13, "drifted_features": [1, 4],
                         "drifted_feature_names": ["malic_acid", "magnesium"]}}  # fmt: skip
    assert (
        describe(EventKind.DATA_DRIFT, drift)
        == "ks: 2 of 13 features drifted (malic_acid, magnesium), p 1e-09, from sample 201"
    )
    mmd = {"monitor": "mmd", "score": 0.031, "threshold": 0.01, "first": 5, "details": {"n_reference": 200}}
    assert describe("data_drift", mmd) == "mmd: score 0.031 (threshold 0.010), from sample 5"
    floor = {"detector": "floor", "error_before": 0.018, "error_after": 0.988, "first": 4001}
    assert describe("performance_drift", floor) == "floor: error 0.018 -> 0.988 from sample 4001"
    alarm = {
        "monitor": "performance/page-hinkley",
        "score": 0.0,  # the error since the last detection, which an alarm restarts
        "at": 4061,
        "version": 1,
        "details": {"recent_error_rate": 0.98, "recent_n": 50},
    }  # was "None: error - -> -", then "error rate 0.000 since the last one" right after an alarm
    assert (
        describe("performance_drift", alarm)
        == "performance/page-hinkley: alarm at sample 4061, error rate 0.980 over the last 50 judged predictions"
    )
    assert (
        describe("promotion", {"alias": "champion", "version": 4, "previous": 3}) == "champion -> v4 (was v3)"
    )
    assert describe("deployment", {"alias": "canary", "version": 5, "share": 0.1}) == "canary -> v5 at 10%"
    ramp = {"alias": "canary", "version": 5, "share": 0.5, "previous": 5, "previous_share": 0.1}
    assert describe("deployment", ramp) == "canary -> v5 at 50% (was v5 at 10%)"
    ab = {"decision": "promote", "test": "ab", "canary": 7, "champion": 6, "canary_accuracy": 0.93,
          "champion_accuracy": 0.9, "canary_labelled": 1000, "champion_labelled": 1000, "p_value": 0.0081}  # fmt: skip
    assert (
        describe("canary_promotion", ab)
        == "canary v7 0.930 on 1000 against champion v6 0.900 on 1000, p 0.0081 (ab)"
    )
    assert describe("rollback", {"alias": "champion", "from": 4, "to": 3}) == "champion: v4 -> v3"
    started = {"state": "started", "reason": "data drift detected", "mode": "finetune", "since": 99}
    assert describe("training", started) == "started: data drift detected (finetune, window from sample 100)"
    assert describe("training", {**started, "device": "cpu", "nproc": 1}) == describe("training", started)
    assert describe("training", {**started, "device": "cuda", "nproc": 2}).endswith(
        "(finetune, window from sample 100, 2 processes on cuda)"
    )  # a job under torchrun: its CPU is spent in two processes
    assert describe("retention", {"samples_deleted": 7, "artifacts_deleted": ["a"]}) == "samples_deleted 7"


def test_events_command_prints_the_loop_and_refuses_an_unknown_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split = toy_data(per_class=60)
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        bootstrap(store, registry, split.train, n_classes=4, epochs=1)
        store.add_samples(split.train.x, split.train.y)
        train_once(
            store, registry, Policy("continual", epochs=1), Gate(max_old_accuracy_drop=1.0), reason="test"
        )
    data = ["--data-dir", str(tmp_path)]
    assert main(["events", *data, "--json", "--kind", "gate"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    event = json.loads(line)
    assert event["kind"] == "gate" and event["payload"]["parent"] == 1
    assert main(["events", *data, "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "champion -> v2 (was v1)" in out or "failed from v1" in out  # the gate's verdict, either way
    assert main(["events", *data, "--kind", "gates"]) == 2
    assert "not an event kind; choose one of bootstrap" in capsys.readouterr().err


def test_an_interrupted_training_says_nothing_was_published_once() -> None:
    """It read "asked to stop during the training; nothing was published; nothing was published"."""
    stopped = describe(
        EventKind.TRAINING,
        {"state": "interrupted", "by": "asked to stop during the training; nothing was published"},
    )
    assert stopped.count("nothing was published") == 1
    moved = describe(EventKind.TRAINING, {"state": "interrupted", "by": "the champion moved from v2 to v3"})
    assert moved == "interrupted: the champion moved from v2 to v3; nothing was published"


def test_a_training_says_where_a_detected_change_starts_its_window() -> None:
    """`since` read as an unexplained null, 569 or 30704 in the events."""
    started = {"state": "started", "reason": "data drift detected", "mode": "finetune", "since": 568}
    assert (
        describe(EventKind.TRAINING, started)
        == "started: data drift detected (finetune, window from sample 569)"
    )
    assert describe(EventKind.TRAINING, {**started, "since": None}).endswith("(finetune)")


def test_worker_events_read_as_sentences() -> None:
    """They read as a key dump: "state acquired, holder vm:1:a, policy continual, took_over_from ..."."""
    took = {"state": "acquired", "holder": "vm:1:a", "policy": "continual", "took_over_from": "vm:2:b"}
    assert (
        describe(EventKind.WORKER, took)
        == "vm:1:a took the worker lease (policy continual), taking over from vm:2:b"
    )
    assert describe(EventKind.WORKER, {"state": "lost", "holder": "vm:1:a", "to": "vm:3:c"}).endswith(
        "lease to vm:3:c"
    )
