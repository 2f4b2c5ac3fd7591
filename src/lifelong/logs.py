"""How commands report what they do: a live bar in a terminal, plain lines in a pipe, JSON for machines.

A rich progress bar redraws itself; written to a file it leaves a blank line per redraw. So the
mode follows the output: ``rich`` when stdout is a terminal, ``lines`` (one line per experience,
and per epoch when epochs are long) when it is not, ``json`` (one object per line) on request,
``quiet`` to print only the final result. ``bench``, ``demo`` and ``advise`` use it; ``simulate``
and the worker can too (:meth:`Reporter.emit`).

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> Reporter("json", stream=out).emit("run", "done", acc=0.5)
>>> out.getvalue().startswith('{"event": "run"')
True
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import IO, Any

from lifelong.errors import ConfigError
from lifelong.learn.callbacks import Callback, Control, LoopState, ProgressBar
from lifelong.metrics.result import finite_or_none, strict_json

MODES = ("rich", "lines", "json", "quiet")


class Reporter:
    """Writes events to ``stream`` (default stdout) in one of :data:`MODES`, or ``auto`` to pick by TTY."""

    def __init__(self, mode: str = "auto", stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        if mode == "auto":
            mode = "rich" if _isatty(self.stream) else "lines"
        if mode not in MODES:
            raise ConfigError(f"log mode must be one of {', '.join(MODES)} or auto, got {mode!r}")
        self.mode = mode
        self._console: Any = None

    @classmethod
    def from_flags(
        cls, quiet: bool = False, log_json: bool = False, stream: IO[str] | None = None
    ) -> Reporter:
        """The reporter for ``--quiet`` / ``--log-json`` (JSON wins if both are given)."""
        return cls("json" if log_json else "quiet" if quiet else "auto", stream)

    @property
    def console(self) -> Any:
        """A rich console on the stream; no terminal codes and a fixed width when it is not a TTY."""
        if self._console is None:
            from rich.console import Console

            tty = _isatty(self.stream)
            self._console = Console(file=self.stream, width=None if tty else 150, soft_wrap=not tty)
        return self._console

    def emit(self, event: str, message: str, *, final: bool = False, **fields: Any) -> None:
        """Report one event: ``message`` as a line, or ``{"event", "ts", **fields}`` as JSON.

        ``final`` events (where the results are) are printed even in quiet mode.
        """
        try:
            if self.mode == "json":
                doc = {"event": event, "ts": round(time.time(), 3), **fields}
                self.stream.write(strict_json(doc, default=_plain) + "\n")  # a diverged run's NaN: null
                self.stream.flush()
            elif self.mode != "quiet" or final:
                if self.mode == "rich":
                    self.console.print(message, highlight=False)
                else:
                    self.stream.write(message + "\n")
                    self.stream.flush()
        except BrokenPipeError:  # `lifelong bench | head`: the reader left; finish the work silently
            self._silence()

    def _silence(self) -> None:
        self.mode = "quiet"
        with contextlib.suppress(AttributeError, OSError, ValueError):  # so the exit flush cannot fail
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def table(self, renderable: Any, *, final: bool = False) -> None:
        """A rich table in the text modes (JSON callers emit the rows themselves); ``final`` ones even when quiet."""
        if self.mode in ("rich", "lines") or (final and self.mode == "quiet"):
            self.console.print(renderable)

    def progress(self, description: str, **fields: Any) -> Callback | None:
        """The training callback for this mode: a bar, a line per experience, or nothing."""
        if self.mode == "rich":
            return ProgressBar(description, console=self.console)
        if self.mode in ("lines", "json"):
            return LineProgress(self, description, **fields)
        return None


class LineProgress(Callback):
    """One line per experience (with its accuracy when ``fit`` evaluates it), and one per epoch that
    takes longer than ``long_epoch_seconds``; nothing is redrawn, so a log file has no blank lines."""

    def __init__(self, reporter: Reporter, description: str, long_epoch_seconds: float = 10.0, **fields: Any) -> None:  # fmt: skip
        self.reporter, self.description, self.long_epoch_seconds = reporter, description, long_epoch_seconds
        self.fields = fields
        self._loss: Any = 0.0
        self._steps = 0
        self._start = self._epoch_start = 0.0
        self._pending: dict[str, Any] | None = None

    def on_experience_start(self, state: LoopState, control: Control) -> None:
        self._start = self._epoch_start = time.perf_counter()
        self._loss, self._steps = 0.0, 0

    def on_step_end(self, state: LoopState, control: Control) -> None:
        if state.loss_tensor is not None:  # a tensor sum: no device sync per step
            self._loss = self._loss + state.loss_tensor
            self._steps += 1

    def on_epoch_end(self, state: LoopState, control: Control) -> None:
        now = time.perf_counter()
        if state.epochs > 1 and now - self._epoch_start >= self.long_epoch_seconds:
            loss = float(self._loss) / max(self._steps, 1)
            self.reporter.emit(
                "epoch", f"{self.description} exp {state.experience} epoch {state.epoch + 1}/{state.epochs}: "
                f"loss {loss:.4f}, {now - self._epoch_start:.1f} s",
                **self.fields, experience=state.experience, epoch=state.epoch, loss=loss,
                seconds=now - self._epoch_start,
            )  # fmt: skip
        self._epoch_start = now

    def on_experience_end(self, state: LoopState, control: Control) -> None:
        loss = float(self._loss) / self._steps if self._steps else float("nan")
        self._pending = {
            "experience": state.experience,
            "loss": loss,
            "steps": self._steps,
            "seconds": time.perf_counter() - self._start,
        }
        if not state.fitting:  # nobody evaluates after this experience: report it now
            self._flush(None)

    def on_evaluate(self, state: LoopState, control: Control) -> None:
        self._flush(state)

    def _flush(self, state: LoopState | None) -> None:
        p = self._pending or {
            "experience": state.evaluation if state else -1,
            "loss": float("nan"),
            "seconds": 0.0,
            "steps": 0,  # no epoch ran (joint training after its first experience): no loss to show
        }
        self._pending = None
        # joint training, for one, takes no step until the last experience
        trained = f"loss {p['loss']:.4f}" if p.get("steps", 1) else "no training steps"
        text = f"{self.description} exp {p['experience']}: {p['seconds']:.1f} s, {trained}"
        fields = {**self.fields, **p}
        if state is not None:
            seen = state.accuracy[: state.evaluation + 1]
            fields.update(acc_seen=sum(seen) / len(seen), accuracy=list(state.accuracy))
            text += f", acc on seen {fields['acc_seen']:.3f}"
        self.reporter.emit("experience", text, **fields)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """JSON fallback for numpy / torch scalars and paths."""
    if hasattr(value, "item"):
        return finite_or_none(value.item())
    return str(value)
