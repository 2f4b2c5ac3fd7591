"""Callbacks act on the loop only through ``Control``: early stopping, timing, a progress bar."""

import io

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn import Callback, Control, EarlyStopping, Learner, LoopState, ProgressBar, Timer
from lifelong.strategies import Naive


def test_early_stopping_acts_through_control() -> None:
    class Plateau(Callback):
        def on_epoch_end(self, state: LoopState, control: Control) -> None:
            control.stop_experience = state.epoch >= 1

    timer = Timer()
    learner = Learner(toy_model(), [Naive()], batch_size=8, epochs=10, callbacks=[Plateau(), timer])
    learner.learn(toy_scenario()[0])
    assert learner.epochs_trained == 2 and len(timer.epoch_seconds) == 2
    stopper = EarlyStopping(patience=1, min_delta=10.0)  # no epoch can improve by 10: stops after the second
    learner = Learner(toy_model(), [Naive()], batch_size=8, epochs=10, callbacks=[stopper])
    learner.learn(toy_scenario()[0])
    assert learner.epochs_trained == 2


def _epochs(stopper: EarlyStopping, losses: list[list[float]]) -> list[bool]:
    """Feed ``stopper`` one list of step losses per epoch; whether it asked to stop after each."""
    control, state, stops = Control(), LoopState(), []
    stopper.on_experience_start(state, control)
    for epoch in losses:
        for loss in epoch:
            state.loss_tensor = torch.tensor(loss)
            stopper.on_step_end(state, control)
        stopper.on_epoch_end(state, control)
        stops.append(control.stop_experience)
    return stops


def test_early_stopping_waits_patience_epochs_on_the_mean_epoch_loss() -> None:
    # means 1.0, 0.5, 0.6, 0.55, 0.7: the second and third epochs without improvement ask to stop
    stopper = EarlyStopping(patience=2)
    assert _epochs(stopper, [[1.0, 1.0], [0.4, 0.6], [0.6], [0.5, 0.6], [0.7]]) == [
        False, False, False, True, True,
    ]  # fmt: skip
    assert stopper.best_ == pytest.approx(0.5) and stopper.bad_epochs_ == 3
    # an improvement smaller than min_delta is no improvement
    assert _epochs(EarlyStopping(patience=1, min_delta=0.1), [[1.0], [0.95]]) == [False, True]


def test_early_stopping_starts_over_at_each_experience() -> None:
    stopper = EarlyStopping(patience=1)
    assert _epochs(stopper, [[0.1], [0.2]]) == [False, True]
    assert _epochs(stopper, [[5.0], [4.0]]) == [
        False,
        False,
    ]  # a higher loss on a new experience is no plateau


def test_the_timer_counts_every_epoch_from_the_experience_start() -> None:
    timer = Timer()
    Learner(toy_model(), [Naive()], batch_size=8, epochs=3, callbacks=[timer]).learn(toy_scenario()[0])
    assert len(timer.epoch_seconds) == 3 and all(s > 0 for s in timer.epoch_seconds)


def test_the_progress_bar_shows_each_experience_and_goes_away() -> None:
    from rich.console import Console

    out = io.StringIO()
    bar = ProgressBar("fit", every=1, console=Console(file=out, force_terminal=True, width=100))
    learner = Learner(toy_model(), [Naive()], batch_size=8, callbacks=[bar])
    learner.fit(toy_scenario())
    assert "fit exp 0" in out.getvalue() and "fit exp 1" in out.getvalue()
    assert bar._progress is None  # stopped at each experience's end: nothing left drawing


def test_early_stopping_judges_an_experience_on_its_own_steps_after_partial_fit() -> None:
    """partial_fit never ends an epoch, so its steps' losses joined the next experience's first mean."""
    stopper, seen = EarlyStopping(patience=1), []

    class Probe(Callback):  # listed first: reads what the stopper is about to judge
        def on_epoch_end(self, state: LoopState, control: Control) -> None:
            seen.append(stopper._n)

    learner = Learner(toy_model(), [], lr=0.1, batch_size=8, epochs=2, callbacks=[Probe(), stopper])
    g = torch.Generator().manual_seed(0)
    learner.partial_fit(torch.randn(400, 8, generator=g) * 5, torch.randint(0, 4, (400,), generator=g))
    learner.consolidate()
    experience = toy_scenario().experiences[0]
    learner.learn(experience)
    assert seen[0] == -(-len(experience.train) // 8)  # this experience's steps, not 50 more
