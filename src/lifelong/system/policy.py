"""When to train a new version: the four stages practitioners climb, as configuration.

- ``manual``: never train unless asked (``requested``).
- ``scheduled-retrain``: every ``every_samples`` labelled samples (or ``every_seconds``), train a fresh
  model from scratch on the most recent ``window`` labelled samples.
- ``scheduled-finetune``: on the same schedule, fine-tune the champion on the new samples (stateful).
- ``continual``: when a monitor reports data drift or a performance drop, fine-tune the champion with
  ``strategy`` (e.g. replay), whose memory and importances travel from version to version inside
  the checkpoint. ``every_samples`` may be set as a safety net.

Every stage honours ``min_samples`` (enough new labels), ``cooldown_seconds`` (time between
trainings) and ``cpu_budget_per_day`` (training compute). :meth:`Policy.decide` is pure: the worker
measures the world into a :class:`PolicyState` and the policy only reads it, so it is tested alone.

>>> policy = Policy("scheduled-retrain", every_samples=500, min_samples=100)
>>> policy.decide(PolicyState(new_samples=600, seconds_since_training=30.0))
Decision(train=True, reason='schedule: 600 new labelled samples >= 500', mode='scratch')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lifelong.errors import ConfigError

KINDS = ("manual", "scheduled-retrain", "scheduled-finetune", "continual")
Mode = Literal["scratch", "finetune"]


@dataclass(frozen=True)
class PolicyState:
    """What the worker measured since the last training attempt; the policy's only input.

    ``seconds_since_training`` is None before any training; ``drift`` and ``performance_drop`` say
    whether a monitor fired since then; ``requested`` is a manual request (``lifelong train``).
    """

    new_samples: int
    seconds_since_training: float | None = None
    cpu_seconds_today: float = 0.0
    drift: bool = False
    performance_drop: bool = False
    requested: bool = False


@dataclass(frozen=True)
class Decision:
    train: bool
    reason: str
    mode: Mode = "finetune"


@dataclass(frozen=True)
class Policy:
    """One stage of the ladder and its knobs; the fields are the whole configuration.

    Training knobs (``strategy``, ``strategy_params``, ``epochs``, ``window``) are read by the trainer;
    ``detector`` and ``drift_test`` by the worker's monitors.
    """

    kind: str = "continual"
    every_samples: int | None = None
    every_seconds: float | None = None
    min_samples: int = 100
    cooldown_seconds: float = 0.0
    cpu_budget_per_day: float | None = None
    strategy: str = "replay"
    strategy_params: dict[str, Any] = field(default_factory=dict)
    epochs: int = 2
    window: int = 2000
    detector: str = "page-hinkley"
    detector_params: dict[str, Any] = field(default_factory=dict)
    drift_test: str | None = "ks"
    drift_window: int = 200

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"policy: unknown kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        scheduled = self.kind.startswith("scheduled")
        if scheduled and self.every_samples is None and self.every_seconds is None:
            raise ConfigError(f"policy {self.kind}: give every_samples=K or every_seconds=S")
        for name in ("every_samples", "every_seconds", "cpu_budget_per_day"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"policy: {name} must be > 0 or None, got {value}")
        if self.min_samples < 1 or self.cooldown_seconds < 0 or self.epochs < 1 or self.window < 1:
            raise ConfigError(
                "policy: need min_samples >= 1, cooldown_seconds >= 0, epochs >= 1, window >= 1"
            )

    @property
    def mode(self) -> Mode:
        """Retraining starts from a fresh model; every other stage continues the champion."""
        return "scratch" if self.kind == "scheduled-retrain" else "finetune"

    @property
    def strategies(self) -> list[str]:
        """Strategy names the trainer attaches: plain fine-tuning has none, continual its ``strategy``."""
        return [self.strategy] if self.kind == "continual" and self.strategy != "naive" else []

    def decide(self, state: PolicyState) -> Decision:
        """Train now or not, and why. Pure: same state, same decision."""
        if state.new_samples < 1:
            return Decision(False, "no new labelled samples", self.mode)
        if state.requested:
            return Decision(True, "requested by hand", self.mode)
        if self.kind == "manual":
            return Decision(False, "manual policy: train only when asked", self.mode)
        if state.new_samples < self.min_samples:
            return Decision(False, f"waiting for data: {state.new_samples} < {self.min_samples}", self.mode)
        since = state.seconds_since_training
        if since is not None and since < self.cooldown_seconds:
            return Decision(False, f"cooldown: {since:.0f}s < {self.cooldown_seconds:.0f}s", self.mode)
        if self.cpu_budget_per_day is not None and state.cpu_seconds_today >= self.cpu_budget_per_day:
            spent, budget = state.cpu_seconds_today, self.cpu_budget_per_day
            return Decision(False, f"budget: {spent:.0f} of {budget:.0f} CPU s spent today", self.mode)
        if self.kind == "continual":
            if state.drift:
                return Decision(True, "data drift detected", self.mode)
            if state.performance_drop:
                return Decision(True, "performance drop detected", self.mode)
        if self.every_samples is not None and state.new_samples >= self.every_samples:
            return Decision(
                True, f"schedule: {state.new_samples} new labelled samples >= {self.every_samples}", self.mode
            )
        if self.every_seconds is not None and (since is None or since >= self.every_seconds):
            return Decision(
                True, f"schedule: {since or 0:.0f}s since training >= {self.every_seconds}s", self.mode
            )
        return Decision(False, "nothing triggered", self.mode)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, recorded with every version and gate event."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


PRESETS: dict[str, Policy] = {
    "manual": Policy("manual"),
    "scheduled-retrain": Policy("scheduled-retrain", every_samples=1000, epochs=3),
    "scheduled-finetune": Policy("scheduled-finetune", every_samples=1000),
    "continual": Policy("continual", strategy="replay", strategy_params={"buffer_size": 1000}),
}


def preset(kind: str, **overrides: Any) -> Policy:
    """A named stage with sensible defaults, overridden field by field."""
    if kind not in PRESETS:
        raise ConfigError(f"policy: unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    return Policy(**{**PRESETS[kind].to_dict(), **overrides})
