"""Reporter modes and the line-per-experience progress used when output is not a terminal."""

from __future__ import annotations

import io
import json

import pytest

from lifelong.checks import toy_model, toy_scenario
from lifelong.errors import ConfigError
from lifelong.learn import Learner, ProgressBar
from lifelong.logs import LineProgress, Reporter


def test_auto_mode_follows_the_stream() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert Reporter(stream=io.StringIO()).mode == "lines"
    assert Reporter(stream=Tty()).mode == "rich"
    assert isinstance(Reporter(stream=Tty()).progress("x"), ProgressBar)
    assert Reporter.from_flags(quiet=True, stream=io.StringIO()).progress("x") is None
    with pytest.raises(ConfigError, match="log mode"):
        Reporter("fancy")


def test_long_epochs_get_their_own_line_and_learn_alone_still_reports() -> None:
    out = io.StringIO()
    progress = LineProgress(Reporter("json", stream=out), "toy", long_epoch_seconds=0.0, strategy="naive")
    learner = Learner(toy_model(), lr=0.1, batch_size=16, epochs=2, callbacks=[progress])
    first = toy_scenario().experiences[0]
    learner.learn(first)  # no evaluation follows: the experience line comes at its end
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["epoch", "epoch", "experience"]
    assert [e["epoch"] for e in events[:2]] == [0, 1] and events[2]["loss"] > 0
    assert "acc_seen" not in events[2] and events[2]["strategy"] == "naive"


def test_quiet_prints_only_final_events() -> None:
    out = io.StringIO()
    log = Reporter("quiet", stream=out)
    log.emit("run", "one run")
    log.emit("summary", "results: x.json", final=True)
    assert out.getvalue() == "results: x.json\n"


def test_a_closed_pipe_silences_the_reporter_instead_of_crashing_the_run() -> None:
    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    log = Reporter("lines", stream=Closed())
    log.emit("run", "first")  # `lifelong bench | head -1` after head exits
    assert log.mode == "quiet"
    log.emit("run", "second")  # nothing is written any more, nothing raises


def test_an_experience_without_training_says_so_instead_of_loss_nan() -> None:
    """Joint training learns everything at its first experience; the later lines read 'loss nan'."""
    from lifelong.strategies import Joint

    out = io.StringIO()
    progress = LineProgress(Reporter("lines", stream=out), "toy", strategy="joint")
    learner = Learner(toy_model(), [Joint()], lr=0.1, batch_size=16, callbacks=[progress])
    learner.fit(toy_scenario())
    lines = [line for line in out.getvalue().splitlines() if " exp " in line]
    assert "loss" in lines[0] and all("no training steps" in line for line in lines[1:])
    assert "nan" not in out.getvalue()
