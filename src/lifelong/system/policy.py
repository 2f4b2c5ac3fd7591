"""Every decision of the production loop, as pure functions of measured state: when to train
(:meth:`Policy.decide`), whether a candidate may be registered (:func:`judge` with a :class:`Gate`) and
what to do with a canary (:class:`CanaryRule`). The worker measures; these only read.

When to train: the four stages practitioners climb, as configuration.

- ``manual``: never train unless asked (``requested``); the trainer then continues the champion with
  its own strategies.
- ``scheduled-retrain``: every ``every_samples`` labelled samples (or ``every_seconds``), train a fresh
  model from scratch on the most recent ``window`` labelled samples.
- ``scheduled-finetune``: on the same schedule, fine-tune the champion on the new samples (stateful).
- ``continual``: when a monitor reports data drift or a performance drop, fine-tune the champion with
  ``strategy`` (e.g. replay), whose memory and importances travel from version to version inside
  the checkpoint. Three defaults keep it from stalling after a drift: the detectors re-arm against
  each new champion (the worker), a live-accuracy floor trains when the champion's accuracy on the
  last ``floor_window`` labelled predictions falls ``max_accuracy_drop`` below what its gate measured
  (or below ``accuracy_floor``), and a safety-net schedule (``every_samples``) trains anyway. When
  the floor stays out of reach (a harder concept), each further floor-triggered training waits for
  twice as many new labels as the one before, until a monitor fires or accuracy recovers.
  A champion with no measured accuracy (``--bootstrap none``, or ``System.bootstrap`` without
  figures) has no floor: continual trains once ``min_samples`` labels exist, and the gate of that
  training measures the champion on them, which is its figure from then on.
  After a detected change the window starts at the change point, and training waits for
  ``min_samples`` labels after it, so a drift-triggered version learns the new concept, not the old.
  The floor dates its change too (the worker locates where the champion's errors rose and reports
  a performance drift from there). A drift that cost accuracy (a performance drop, or live accuracy
  under the floor) also empties the replay memory the candidate inherits, once per drift
  (``forget_on_concept_drift``): under a real concept drift the memory's labels are the old rule's,
  and replaying them holds the new one back (measured on the Agrawal stream); a drift that leaves
  accuracy alone (covariate shift) keeps the memory, which still protects what it knows.

Every stage honours ``min_samples`` (enough new labels), ``cooldown_seconds`` (time between
trainings) and ``cpu_budget_per_day`` (training compute). :meth:`Policy.decide` is pure: the worker
measures the world into a :class:`PolicyState` and the policy only reads it, so it is tested alone.

>>> policy = Policy("scheduled-retrain", every_samples=500, min_samples=100)
>>> policy.decide(PolicyState(new_samples=600, seconds_since_training=30.0))
Decision(train=True, reason='schedule: 600 new labelled samples >= 500', mode='scratch', forget=False)
"""

from __future__ import annotations

import json
import math
import types
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, get_args, get_origin, get_type_hints

from lifelong.errors import ConfigError, SettingError
from lifelong.monitor.data_drift import DRIFT_TESTS, KSDrift, TokenDrift
from lifelong.monitor.performance import PerformanceMonitor

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
    live_accuracy: float | None = None  # champion, last ``floor_window`` labelled predictions
    expected_accuracy: float | None = None  # what the champion's gate (or bootstrap) measured
    floor_trainings: int = 0  # trainings in a row the floor triggered (each doubles the next wait)
    unmeasured: bool = False  # no accuracy was ever measured for the champion (untrained, or registered bare)
    # labels in the last attempt's window when the gate refused its candidate and the champion is unchanged:
    # the next attempt trains on that window again, so continual waits for as many new labels
    refused_window: int = 0


@dataclass(frozen=True)
class Decision:
    """Train or not, why, how; ``forget`` drops the replay memory from before the change (see
    :attr:`Policy.forget_on_concept_drift`)."""

    train: bool
    reason: str
    mode: Mode = "finetune"
    forget: bool = False


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
    # "auto": "tokens" for a champion that takes token ids (text), "ks" for features; or a name, or None
    drift_test: str | None = "auto"
    drift_params: dict[str, Any] = field(default_factory=dict)  # the test's own, e.g. {"alpha": 0.01}
    drift_window: int = 200
    drift_persistence: int = 2  # consecutive drifting windows before data drift is reported
    accuracy_floor: float | None = None  # absolute live-accuracy floor
    max_accuracy_drop: float | None = None  # floor relative to the champion's expected accuracy
    floor_window: int = 200
    forget_on_concept_drift: bool = True  # a drift that costs accuracy empties the replay memory
    # with allow_new_classes: a class the head lacks is trained on once this many of its labels are
    # stored, so one stray label (a typo in a name) does not add an output for ever
    min_new_class_labels: int = 5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"policy: unknown kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        scheduled = self.kind.startswith("scheduled")
        if scheduled and self.every_samples is None and self.every_seconds is None:
            raise ConfigError(f"policy {self.kind}: give every_samples=K or every_seconds=S")
        if self.kind == "manual" and (self.every_samples is not None or self.every_seconds is not None):
            raise ConfigError(
                "policy manual trains only when asked, so a schedule (every_samples, every_seconds, --every) "
                "would never run; choose scheduled-retrain, scheduled-finetune or continual, or drop it"
            )
        for name in ("every_samples", "every_seconds", "cpu_budget_per_day"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"policy: {name} must be > 0 or None, got {value}")
        if scheduled and self.every_samples is not None and self.every_samples < self.min_samples:
            raise ConfigError(
                f"policy: every_samples={self.every_samples} is below min_samples={self.min_samples}, so the "
                f"schedule would wait for {self.min_samples} labels; lower min_samples, or raise every_samples"
            )
        if self.min_new_class_labels < 1:
            raise ConfigError(
                f"policy: min_new_class_labels must be at least 1, got {self.min_new_class_labels}"
            )
        if self.min_samples < 1 or self.cooldown_seconds < 0 or self.epochs < 1 or self.window < 1:
            raise ConfigError(
                "policy: need min_samples >= 1, cooldown_seconds >= 0, epochs >= 1, window >= 1"
            )
        if self.drift_persistence < 1 or self.floor_window < 1 or self.drift_window < 2:
            raise ConfigError("policy: need drift_persistence >= 1, floor_window >= 1, drift_window >= 2")
        for name in ("accuracy_floor", "max_accuracy_drop"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ConfigError(f"policy: {name} is an accuracy, between 0 and 1 (or null), got {value}")
        # the monitors are built by the worker, after start-up: a wrong name would fail each poll there
        if self.drift_test is not None and self.drift_test not in ("auto", *DRIFT_TESTS):
            raise ConfigError(
                f"policy: unknown drift_test {self.drift_test!r}; choose auto, {', '.join(DRIFT_TESTS)}, or null"
            )
        tests = (
            []
            if self.drift_test is None
            else [KSDrift, TokenDrift]
            if self.drift_test == "auto"
            else [DRIFT_TESTS[self.drift_test]]
        )
        for test in tests:  # built by the worker after start-up: a wrong value would fail every poll there
            try:
                test(**self.drift_params)
            except (ConfigError, TypeError) as e:
                both = (
                    " (with drift_test auto they go to KS and to the token test: name the test to pass "
                    "one test's own)"
                    if self.drift_test == "auto" and isinstance(e, TypeError)
                    else ""
                )
                raise ConfigError(
                    f"policy: drift_params {self.drift_params} for {test.__name__}: {e}{both}"
                ) from e
        try:
            PerformanceMonitor(self.detector, **self.detector_params)
        except ConfigError as e:
            raise ConfigError(f"policy: detector {self.detector!r} with detector_params: {e}") from e

    @classmethod
    def from_json(cls, kind: str, overrides: dict[str, Any]) -> Policy:
        """A preset with JSON overrides; an unknown field or a value of the wrong type is a
        ConfigError naming it (and the valid fields, or the type wanted)."""
        return preset(kind, **_checked_fields(cls, overrides, "policy"))

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
        if state.requested:  # answered even without new labels: the attempt says what it lacked
            return Decision(True, "requested by hand", self.mode)
        # a drift waiting for labels is said apart (its own log line), none arrived yet too: it is pending
        pending = self.kind == "continual" and (state.drift or state.performance_drop)
        if state.new_samples < 1 and not pending:
            return Decision(False, "no new labelled samples", self.mode)
        if self.kind == "manual":
            return Decision(False, "manual policy: train only when asked", self.mode)
        if state.new_samples < self.min_samples:
            what = "drift detected, waiting for labelled data" if pending else "waiting for data"
            return Decision(False, f"{what}: {state.new_samples} < {self.min_samples}", self.mode)
        since = state.seconds_since_training
        if since is not None and since < self.cooldown_seconds:
            return Decision(False, f"cooldown: {since:.0f}s < {self.cooldown_seconds:.0f}s", self.mode)
        if self.cpu_budget_per_day is not None and state.cpu_seconds_today >= self.cpu_budget_per_day:
            spent, budget = state.cpu_seconds_today, self.cpu_budget_per_day
            return Decision(False, f"budget: {spent:.3g} of {budget:.3g} CPU s spent today", self.mode)
        if self.kind == "continual":
            # a refused window is trained on again with the labels since; retried every min_samples it
            # cost one full window per retry (11 of 19 candidates refused on Fashion-MNIST, 91% of
            # retraining's compute): a retry waits until the window has doubled, so retries cost at
            # most twice the last window
            if state.refused_window and state.new_samples < min(state.refused_window, self.window):
                return Decision(
                    False,
                    f"last candidate refused: waiting for {state.new_samples} of "
                    f"{min(state.refused_window, self.window)} new labels (a retry trains on its window again, "
                    "once as many new labels have come)",
                    self.mode,
                )
            floor = self.floor(state.expected_accuracy)
            below = state.live_accuracy is not None and floor is not None and state.live_accuracy < floor
            # accuracy fell with the change: the concept moved, old memories now teach wrong labels;
            # once per drift: a later attempt of the floor's streak keeps what the memory gathered since,
            # while a new detection (the detectors re-arm) is a new drift whatever the streak before it
            fresh = state.drift or state.performance_drop
            forget = (
                self.forget_on_concept_drift
                and (state.performance_drop or below)
                and (fresh or not state.floor_trainings)
            )
            if state.drift:
                return Decision(True, "data drift detected", self.mode, forget)
            if state.performance_drop:
                return Decision(True, "performance drop detected", self.mode, forget)
            if state.unmeasured and self.accuracy_floor is None:  # no floor without a figure to hold it to
                return Decision(
                    True,
                    "the champion has no measured accuracy (untrained, or registered without figures): "
                    "training measures one",
                    self.mode,
                )
            wait = self.min_samples * 2**state.floor_trainings  # back off while the floor stays out of reach
            if below and state.live_accuracy is not None and floor is not None and state.new_samples >= wait:
                return Decision(
                    True,
                    "live accuracy {} below the floor {}".format(*_apart(state.live_accuracy, floor)),
                    self.mode,
                    forget,
                )
        if self.every_samples is not None and state.new_samples >= self.every_samples:
            return Decision(
                True, f"schedule: {state.new_samples} new labelled samples >= {self.every_samples}", self.mode
            )
        if self.every_seconds is not None and (since is None or since >= self.every_seconds):
            return Decision(
                True, f"schedule: {since or 0:.0f}s since training >= {self.every_seconds}s", self.mode
            )
        return Decision(False, "nothing triggered", self.mode)

    def floor(self, expected_accuracy: float | None) -> float | None:
        """The live accuracy under which the continual policy trains (None: no floor), to 6 decimals:
        a gate's float32 0.9350000024 less 0.1 put a live 0.835 "below the floor 0.835000002" and trained."""
        floors = []
        if self.accuracy_floor is not None:
            floors.append(self.accuracy_floor)
        if self.max_accuracy_drop is not None and expected_accuracy is not None:
            floors.append(expected_accuracy - self.max_accuracy_drop)
        return round(max(floors), 6) if floors else None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, recorded with every version and gate event."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


PRESETS: dict[str, Policy] = {
    "manual": Policy("manual"),
    "scheduled-retrain": Policy("scheduled-retrain", every_samples=1000, epochs=3),
    "scheduled-finetune": Policy("scheduled-finetune", every_samples=1000),
    # Safety net every 5000 labels and a floor 0.1 under the champion's measured accuracy: a drift the
    # monitors miss, or a version trained too early, is corrected within one schedule period.
    "continual": Policy(
        "continual",
        strategy="replay",
        strategy_params={"buffer_size": 1000},
        every_samples=5000,
        max_accuracy_drop=0.1,
    ),
}


def preset(kind: str, **overrides: Any) -> Policy:
    """A named stage with sensible defaults, overridden field by field."""
    if kind not in PRESETS:
        raise ConfigError(f"policy: unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    base = PRESETS[kind].to_dict()
    every = overrides.get("every_samples")
    if isinstance(every, int) and "min_samples" not in overrides:  # "every 50" means 50, not the default 100
        base["min_samples"] = max(1, min(base["min_samples"], every))
    if overrides.get("strategy", base["strategy"]) != base["strategy"] and "strategy_params" not in overrides:
        base["strategy_params"] = {}  # the preset's parameters are its own strategy's (replay's buffer_size)
    return Policy(**{**base, **overrides})


# --- the gate -------------------------------------------------------------------------------------
PROMOTE = ("champion", "canary", "none")


@dataclass(frozen=True)
class Gate:
    """What a candidate must show before it is registered. ``None`` disables a budget."""

    holdout_fraction: float = 0.2
    # The holdout is never smaller: a window of at most this many labelled samples is not trained on
    # (the gate event says "window too small"), so accuracy is never compared on a handful of samples.
    min_holdout: int = 20
    max_new_accuracy_drop: float = 0.02  # candidate may trail the champion on new data by this much
    min_new_accuracy: float = 0.0
    max_old_accuracy_drop: float = 0.15
    max_negative_flip_rate: float = 0.2
    old_size: int = 500
    max_latency_ms: float | None = 50.0
    max_size_mb: float | None = 200.0
    promote_to: str = "champion"
    canary_share: float = 0.1
    # A candidate this much better than the champion on new data is judged on new data alone: after
    # a concept change the old data (e.g. a replay memory) carries labels of the old rule, on which
    # learning the new rule must "regress" (None: always judge old data too). The gain must also be
    # significant at ``concept_change_alpha`` (exact one-sided McNemar test on the holdout's paired
    # answers), so two lucky samples of a small holdout cannot waive the forgetting budgets.
    concept_change_gain: float | None = 0.1
    concept_change_alpha: float = 0.05
    # A returning concept: the last version of each of the ``recall_versions`` latest earlier concepts
    # (those before a change point, with the same inputs) is scored on the holdout too, and one
    # significantly better than the trained candidate (one-sided exact McNemar at ``recall_alpha``) that
    # passes this gate serves again instead (0: never). On Agrawal 0 -> 2 -> 0 the untouched first
    # champion scored 0.935 on the returning concept against continual's 0.837 (a trial).
    recall_versions: int = 5
    recall_alpha: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigError(f"gate: holdout_fraction must lie in (0, 1), got {self.holdout_fraction}")
        if self.min_holdout < 1:  # 0 held out nothing and trained on nothing (an IndexError at the gate)
            raise ConfigError(f"gate: min_holdout must be at least 1, got {self.min_holdout}")
        for name in ("concept_change_alpha", "recall_alpha"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"gate: {name} must lie in (0, 1), got {getattr(self, name)}")
        if self.recall_versions < 0:
            raise ConfigError(
                f"gate: recall_versions is a number of former champions >= 0, got {self.recall_versions}"
            )
        ranges = {  # a budget out of its range passed every candidate, or none (min_new_accuracy=2)
            "min_new_accuracy": (self.min_new_accuracy, 1.0), "max_new_accuracy_drop": (self.max_new_accuracy_drop, 1.0),
            "max_old_accuracy_drop": (self.max_old_accuracy_drop, 1.0),
            "max_negative_flip_rate": (self.max_negative_flip_rate, 1.0),
            "max_latency_ms": (self.max_latency_ms, math.inf), "max_size_mb": (self.max_size_mb, math.inf),
            "concept_change_gain": (self.concept_change_gain, 1.0),
        }  # fmt: skip
        for name, (value, high) in ranges.items():
            if value is not None and not 0.0 <= value <= high:
                kind = "an accuracy or rate in [0, 1]" if high == 1.0 else "a budget >= 0"
                raise ConfigError(f"gate: {name} is {kind}, got {value}")
        if self.old_size < 0:
            raise ConfigError(f"gate: old_size is a number of samples >= 0, got {self.old_size}")
        if self.promote_to not in PROMOTE:
            raise ConfigError(f"gate: promote_to must be one of {PROMOTE}, got {self.promote_to!r}")
        if not 0.0 < self.canary_share <= 1.0:  # else each passed candidate was published, then refused
            raise ConfigError(f"gate: canary_share is a traffic share in (0, 1], got {self.canary_share}")

    @classmethod
    def from_json(cls, fields: dict[str, Any]) -> Gate:
        """A gate from JSON; an unknown field or a value of the wrong type is a ConfigError naming it."""
        return cls(**_checked_fields(cls, fields, "gate"))


def _checked_fields(cls: type, values: dict[str, Any], what: str) -> dict[str, Any]:
    """``values`` if every key is a field of the dataclass ``cls`` holding a value of its type (JSON
    kinds: an int counts as a float, a bool as nothing but a bool); else a ConfigError naming it."""
    fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{what}: unknown field {unknown[0]!r}; valid: {', '.join(fields)}")
    hints = get_type_hints(cls)
    for name, value in values.items():
        allowed = get_args(hints[name]) if isinstance(hints[name], types.UnionType) else (hints[name],)
        if not any(_is_a(value, t) for t in allowed):
            wanted = " or ".join(
                "null" if t is type(None) else getattr(t, "__name__", str(t)) for t in allowed
            )
            raise ConfigError(f"{what}: {name} must be {wanted}, got {json.dumps(value)}")
    return values


def _is_a(value: Any, t: Any) -> bool:
    if t is Any:
        return True
    if t is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = get_origin(t) or t
    return isinstance(value, origin)


def judge(gate: Gate, f: dict[str, Any]) -> list[str]:
    """Every budget the candidate's figures break, in words; empty means it passes."""
    reasons = []
    if f["new_accuracy"] < f["champion_new_accuracy"] - gate.max_new_accuracy_drop:
        reasons.append(
            f"new-data accuracy {f['new_accuracy']:.3f} < champion {f['champion_new_accuracy']:.3f} "
            f"- {gate.max_new_accuracy_drop}"
        )
    if f["new_accuracy"] < gate.min_new_accuracy:
        reasons.append(f"new-data accuracy {f['new_accuracy']:.3f} < floor {gate.min_new_accuracy}")
    concept_changed = concept_change(gate, f)
    if f.get("old_accuracy") is not None and not concept_changed:
        if f["old_accuracy"] < f["champion_old_accuracy"] - gate.max_old_accuracy_drop:
            reasons.append(
                f"old-data accuracy {f['old_accuracy']:.3f} < champion {f['champion_old_accuracy']:.3f} "
                f"- {gate.max_old_accuracy_drop}"
            )
        if f["negative_flip_rate"] > gate.max_negative_flip_rate:
            reasons.append(
                f"negative flip rate {f['negative_flip_rate']:.3f} > {gate.max_negative_flip_rate}"
            )
    if gate.max_latency_ms is not None and f["latency_ms"] > gate.max_latency_ms:
        reasons.append(f"latency {f['latency_ms']:.1f} ms > {gate.max_latency_ms} ms")
    if gate.max_size_mb is not None and f["size_mb"] > gate.max_size_mb:
        reasons.append(f"size {f['size_mb']:.3g} MB > {gate.max_size_mb:g} MB")
    return reasons


def concept_change(gate: Gate, f: dict[str, Any]) -> bool:
    """Whether the candidate's gain on new data is large (``concept_change_gain``) and significant.

    ``new_wins`` / ``new_losses`` count the holdout samples only the candidate / only the champion
    answers right; the exact one-sided McNemar test asks how likely that many wins are by chance.
    Figures recorded before the counts existed are judged on the gain alone."""
    gain = f["new_accuracy"] - f["champion_new_accuracy"]
    if gate.concept_change_gain is None or gain < gate.concept_change_gain:
        return False
    wins, losses = f.get("new_wins"), f.get("new_losses")
    if wins is None or losses is None:
        return True
    return mcnemar_p(wins, losses) < gate.concept_change_alpha


def mcnemar_p(wins: int, losses: int) -> float:
    """One-sided exact McNemar p-value: P(at least ``wins`` of the ``wins + losses`` discordant pairs
    go to the candidate) when both models are equally good.

    >>> round(mcnemar_p(2, 0), 3), round(mcnemar_p(10, 1), 4)
    (0.25, 0.0059)
    """
    if not wins + losses:
        return 1.0
    from scipy.stats import binomtest  # imported here: the policy module stays light for the CLI

    return float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)


# --- the canary rule --------------------------------------------------------------------------------
class VariantStats(NamedTuple):
    """A live variant's accuracy on the feedback it received since its deployment."""

    version: int
    labelled: int
    accuracy: float | None


class CanaryVerdict(NamedTuple):
    """What the rule decided, and for an A/B test at its horizon the p-value it decided on."""

    decision: Literal["wait", "promote", "rollback"]
    p_value: float | None = None


@dataclass(frozen=True)
class CanaryRule:
    """What to do with a canary once each variant has ``min_labelled`` judged predictions.

    ``test="threshold"`` (the canary's safety check): promote a canary at least as good as the
    champion; roll back one worse by more than ``margin``; otherwise keep watching.
    ``test="ab"`` (an A/B test with a fixed horizon): ``min_labelled`` is the planned sample size of
    each arm, decided once, so looking at the data every poll does not inflate false promotions:
    promote if the canary is better at significance ``alpha`` (one-sided two-proportion z-test, see
    :func:`ab_p_value`), else roll it back: the test ended without evidence for the challenger.
    """

    min_labelled: int = 50
    margin: float = 0.05
    test: Literal["threshold", "ab"] = "threshold"
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.min_labelled < 1:
            raise SettingError(
                "min_labelled", f"canary min_labelled must be at least 1, got {self.min_labelled}"
            )
        if not 0.0 <= self.margin <= 1.0:
            raise SettingError(
                "margin", f"canary margin is an accuracy difference in [0, 1], got {self.margin}"
            )
        if self.test not in ("threshold", "ab"):
            raise SettingError("test", f"canary test {self.test!r} is not one of threshold, ab")
        if not 0.0 < self.alpha < 1.0:
            raise SettingError("alpha", f"canary alpha is a significance level in (0, 1), got {self.alpha}")

    def check_share(self, share: float, what: str = "a canary", fix: str | None = None) -> None:
        """Refuse a canary share this rule can never judge: an A/B test compares the arms over the same
        period, so a canary serving all traffic (share 1) leaves the champion's arm empty and the
        test would wait for ever. ``what`` names the share in the message (an option, a field, a live
        canary) and ``fix`` says what to do instead (default: a share below 1, or a champion)."""
        if self.test == "ab" and share >= 1.0:
            raise ConfigError(
                f"{what} at share {share:g} takes all traffic, so the A/B canary test (canary test 'ab') "
                "gets no champion predictions to compare it with and never reaches its horizon: "
                + (
                    fix
                    or "give a share below 1 (0.5 splits traffic evenly), or make the version the champion directly"
                )
            )

    def check_gate(self, gate: Gate) -> None:
        """Refuse a gate that deploys its candidates as canaries this rule could never judge: each one
        that passed would wait, unjudged, for ever."""
        if gate.promote_to == "canary":
            self.check_share(gate.canary_share, "the gate's canary (promote_to canary)")

    def decide(self, canary: VariantStats, champion: VariantStats) -> CanaryVerdict:
        if canary.labelled < self.min_labelled or champion.labelled < self.min_labelled:
            return CanaryVerdict("wait")
        assert canary.accuracy is not None and champion.accuracy is not None
        if self.test == "ab":
            p = ab_p_value(canary, champion)
            return CanaryVerdict("promote" if p < self.alpha else "rollback", p)
        if canary.accuracy >= champion.accuracy:
            return CanaryVerdict("promote")
        if canary.accuracy < champion.accuracy - self.margin:
            return CanaryVerdict("rollback")
        return CanaryVerdict("wait")


def ab_p_value(canary: VariantStats, champion: VariantStats) -> float:
    """One-sided p-value that the canary's accuracy exceeds the champion's (pooled two-proportion z-test).

    >>> round(ab_p_value(VariantStats(2, 1000, 0.93), VariantStats(1, 1000, 0.90)), 4)
    0.0081
    """
    n1, n2 = canary.labelled, champion.labelled
    if not n1 or not n2 or canary.accuracy is None or champion.accuracy is None:
        return 1.0
    pooled = (canary.accuracy * n1 + champion.accuracy * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0.0:  # both arms all right (or all wrong): no evidence either way
        return 1.0
    z = (canary.accuracy - champion.accuracy) / se
    return 0.5 * math.erfc(z / math.sqrt(2))


def _apart(low: float, high: float) -> tuple[str, str]:
    """Both figures to three decimals, or more where three would print them equal ("0.880 below 0.880")."""
    for digits in range(3, 10):
        a, b = f"{low:.{digits}f}", f"{high:.{digits}f}"
        if a != b:
            break
    return a, b
