"""Callbacks: non-essential work around the loop (progress, timing, early stopping, tracking).

A callback reads a :class:`LoopState` and acts only through a :class:`Control`; it never
touches the model or the strategies, so it cannot change what is learned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class LoopState:
    """What the loop is doing now. ``loss`` is the last step's loss as a tensor (read lazily)."""

    experience: int = -1
    epoch: int = 0
    step: int = 0
    steps_in_epoch: int = 0
    epochs: int = 1
    classes_seen: tuple[int, ...] = ()
    loss_tensor: Tensor | None = None
    params: dict[str, Any] = field(
        default_factory=dict
    )  # the learner's configuration, set when ``fit`` starts
    fitting: bool = False  # inside ``Learner.fit``: an evaluation follows each experience
    evaluation: int = -1  # row of the accuracy matrix measured last (``fit`` evaluates after each experience)
    accuracy: tuple[float, ...] = ()  # that row: test accuracy on every experience of the stream
    result: Any = None  # the finished ``Result``, set just before ``on_fit_end``
    rank: int = 0  # this process's rank in a torch.distributed group (0 alone)

    @property
    def loss(self) -> float:
        return float(self.loss_tensor) if self.loss_tensor is not None else float("nan")


@dataclass
class Control:
    """What a callback may ask of the loop: stop the current experience (early stopping).

    Checkpoints and evaluations are taken at boundaries by whoever drives the learner
    (``Learner.save``, ``Learner.evaluate``): a checkpoint taken mid-experience could not resume
    bit-for-bit, and the learner does not hold the stream to evaluate on. ``fit`` reads
    ``stop_experience`` between steps; ``partial_fit`` and task-free streams (one pass the caller
    drives) do not, and a request made there does not carry over into the next ``fit``.
    """

    stop_experience: bool = False


class Callback:
    """Base class; override the moments you need. They run in list order."""

    def on_experience_start(self, state: LoopState, control: Control) -> None: ...
    def on_step_end(self, state: LoopState, control: Control) -> None: ...
    def on_epoch_end(self, state: LoopState, control: Control) -> None: ...
    def on_experience_end(self, state: LoopState, control: Control) -> None: ...
    def on_evaluate(self, state: LoopState, control: Control) -> None: ...
    def on_fit_end(self, state: LoopState, control: Control) -> None: ...


@dataclass
class Timer(Callback):
    """Wall-clock seconds of every epoch, in order."""

    epoch_seconds: list[float] = field(default_factory=list)
    _start: float = 0.0

    def on_experience_start(self, state: LoopState, control: Control) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, state: LoopState, control: Control) -> None:
        now = time.perf_counter()
        self.epoch_seconds.append(now - self._start)
        self._start = now


@dataclass
class EarlyStopping(Callback):
    """Stop an experience once the mean epoch loss has not improved by ``min_delta`` for ``patience`` epochs."""

    patience: int = 1
    min_delta: float = 0.0
    best_: float = float("inf")
    bad_epochs_: int = 0
    _sum: float = 0.0
    _n: int = 0

    def on_experience_start(self, state: LoopState, control: Control) -> None:
        # steps of partial_fit calls before this (no epoch ends there) would join its first epoch's mean
        self.best_, self.bad_epochs_, self._sum, self._n = float("inf"), 0, 0.0, 0

    def on_step_end(self, state: LoopState, control: Control) -> None:
        self._sum += state.loss
        self._n += 1

    def on_epoch_end(self, state: LoopState, control: Control) -> None:
        mean = self._sum / max(self._n, 1)
        self._sum, self._n = 0.0, 0
        if mean < self.best_ - self.min_delta:
            self.best_, self.bad_epochs_ = mean, 0
        else:
            self.bad_epochs_ += 1
            control.stop_experience = self.bad_epochs_ >= self.patience


class ProgressBar(Callback):
    """A rich progress bar per experience, refreshed every ``every`` steps to keep the loop fast."""

    def __init__(self, description: str = "train", every: int = 50, console: Any = None) -> None:
        self.description, self.every, self.console = description, every, console
        self._progress: Any = None
        self._task: Any = None

    def on_experience_start(self, state: LoopState, control: Control) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(), console=self.console, transient=True,
        )  # fmt: skip
        self._progress.start()
        total = state.steps_in_epoch * state.epochs
        self._task = self._progress.add_task(
            f"{self.description} exp {state.experience}", total=total, loss="-"
        )

    def on_step_end(self, state: LoopState, control: Control) -> None:
        if state.step % self.every == 0 and self._progress is not None:
            self._progress.update(self._task, advance=self.every, loss=f"{state.loss:.3f}")

    def on_experience_end(self, state: LoopState, control: Control) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
