"""The outcome of training on a stream: the accuracy matrix, costs and the metrics derived from them."""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lifelong.errors import DataError
from lifelong.metrics import accuracy as m

#: Result fields holding floats (or lists of them) that may be NaN: JSON null is read back as NaN there
_FLOAT_FIELDS = ("accuracy_matrix", "untrained_accuracy", "flips", "train_seconds", "boundary_seconds",
                 "peak_rss_mb", "reference_accuracy")  # fmt: skip


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN or infinite number, in nested dicts, lists and tuples, replaced by None."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, numbers.Real) and not math.isfinite(value):
        return None
    return value


def strict_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that writes strict JSON: NaN and infinities become null.

    Python writes them as the bare words NaN and Infinity, which are not JSON: jq, JavaScript,
    browsers and most other parsers refuse the whole file (a diverged run's metrics are NaN).
    """
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)


def _check_shapes(d: dict[str, Any]) -> None:
    """A DataError naming the first field read from JSON whose value is not of its kind."""

    def number_list(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(a, int | float) and not isinstance(a, bool) for a in v)

    matrix = d.get("accuracy_matrix")
    if not (isinstance(matrix, list) and matrix and all(number_list(row) and row for row in matrix)):
        raise DataError("not a Result: accuracy_matrix must be a non-empty list of rows of numbers")
    if len({len(row) for row in matrix}) > 1:
        raise DataError("not a Result: the rows of accuracy_matrix differ in length")
    for k in ("untrained_accuracy", "flips", "reference_accuracy"):
        if d.get(k) is not None and not number_list(d[k]):
            raise DataError(f"not a Result: {k} must be a list of numbers")
    for k in ("untrained_accuracy", "reference_accuracy"):  # one per experience, or none
        if d.get(k) and len(d[k]) != len(matrix[0]):
            raise DataError(f"not a Result: {k} has {len(d[k])} values for {len(matrix[0])} experiences")
    for k in ("train_seconds", "boundary_seconds", "peak_rss_mb", "epochs", "samples", "extra_parameters",
              "buffer_bytes"):  # fmt: skip
        if k in d and (isinstance(d[k], bool) or not isinstance(d[k], int | float)):
            raise DataError(f"not a Result: {k} must be a number, got {d[k]!r}")
    if not isinstance(d.get("diverged", False), bool) or not isinstance(d.get("info", {}), dict):
        raise DataError("not a Result: diverged must be true or false and info an object")


def _require_matrix(matrix: list[list[float]]) -> None:
    if not matrix or not matrix[0]:
        raise DataError(
            "this Result has no accuracy matrix yet: Learner.fit fills one (or read one: Result.from_json)"
        )


def _nan_for_null(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, list):
        return [_nan_for_null(v) for v in value]
    return value


@dataclass
class Result:
    """Everything measured while a learner went through a stream.

    ``accuracy_matrix[i][j]`` is the accuracy on experience j's test set after training
    experience i; ``untrained_accuracy[j]`` is the model's before this fit trained it (for FWT: the
    random initialisation in a first fit, the model it continues from in a later one);
    ``flips[i]`` the negative flip rate of update i+1 on experiences before it.
    ``train_seconds`` includes ``boundary_seconds``, the work strategies do at boundaries
    (importances, exemplar selection, retraining). A ``diverged`` run (a non-finite training
    loss) is not a result: its accuracy metrics are NaN, its table says "diverged", and
    ``info["divergence_hint"]`` says what to change (a smaller lr, EWC's proximal step). A run whose
    model answers one class for a whole test set of several has ``info["one_class"]``, said first
    in its table: scored, but learned nothing.
    """

    accuracy_matrix: list[list[float]] = field(default_factory=list)
    untrained_accuracy: list[float] = field(default_factory=list)
    flips: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    boundary_seconds: float = 0.0
    diverged: bool = False
    epochs: int = 0
    samples: int = 0
    extra_parameters: int = 0
    buffer_bytes: int = 0
    peak_rss_mb: float = 0.0
    reference_accuracy: list[float] | None = None
    # task-free fits: accuracy on each incoming batch before its step (the online accuracy of online
    # continual learning, e.g. Cai et al., 2021), from the training forward; None elsewhere
    online_accuracy: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def just_learned(self) -> list[float]:
        """Accuracy on each experience right after training on it (the matrix's diagonal).

        A run of :class:`~lifelong.strategies.Cumulative` (all data so far) on the same scenario gives
        the ``reference_accuracy`` that intransigence needs: ``learner.fit(scenario,
        reference_accuracy=cumulative_result.just_learned)``.
        """
        r = self.accuracy_matrix
        return [float(r[j][j]) for j in range(min(len(r), len(r[0]) if r else 0))]

    @property
    def metrics(self) -> dict[str, float]:
        r = self.accuracy_matrix
        _require_matrix(r)
        out: dict[str, float] = {
            "diverged": float(self.diverged),
            "acc": m.acc(r),
            "bwt": m.bwt(r),
            "fwt": m.fwt(r, self.untrained_accuracy),  # NaN when no untrained accuracy was measured
            "forgetting": m.forgetting(r),
            "plasticity": m.plasticity(r),
            "average_incremental_accuracy": m.average_incremental_accuracy(r),
            "negative_flip_rate": m.negative_flip_rate(self.flips),
            "train_seconds_per_epoch": self.train_seconds / self.epochs if self.epochs else 0.0,
            "boundary_seconds": self.boundary_seconds,
            "samples_per_second": self.samples / self.train_seconds if self.train_seconds else 0.0,
            "extra_parameters": self.extra_parameters,
            "buffer_bytes": self.buffer_bytes,
            "peak_rss_mb": self.peak_rss_mb,
        }
        if self.reference_accuracy:  # None or [] (as untrained_accuracy): not measured
            out["intransigence"] = m.intransigence(r, self.reference_accuracy)
        if self.online_accuracy is not None:
            out["online_accuracy"] = self.online_accuracy
        if self.diverged:  # never let a diverged run be ranked by its (chance-level) accuracy
            for k in ("acc", "bwt", "fwt", "forgetting", "plasticity", "average_incremental_accuracy",
                      "negative_flip_rate", "intransigence", "online_accuracy"):  # fmt: skip
                if k in out:
                    out[k] = float("nan")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "metrics": self.metrics}

    def to_json(self, **kwargs: Any) -> str:
        """Strict JSON (NaN and infinities as null); ``kwargs`` go to ``json.dumps`` (``indent``)."""
        return strict_json(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        """The inverse of :meth:`to_dict` (``metrics`` is derived, so recomputed); a null where a float
        belongs (written for NaN, say an unmeasured cell of the accuracy matrix) is NaN again."""
        if not isinstance(d, dict):
            raise DataError(f"not a Result: expected a JSON object, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names - {"metrics"})
        if unknown:
            raise DataError(f"not a Result: unknown fields {unknown}; expected some of {sorted(names)}")
        kwargs = {k: v for k, v in d.items() if k in names}
        for k in _FLOAT_FIELDS:
            if k in kwargs and not (k == "reference_accuracy" and kwargs[k] is None):  # None: not given
                kwargs[k] = _nan_for_null(kwargs[k])
        _check_shapes(kwargs)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> Result:
        """Read what :meth:`to_json` wrote."""
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"not a Result: invalid JSON ({err})") from err
        return cls.from_dict(d)

    def table(self) -> str:
        """The accuracy matrix and the headline metrics as plain text."""
        _require_matrix(self.accuracy_matrix)
        n = len(self.accuracy_matrix[0]) if self.accuracy_matrix else 0
        lines = ["after \\ on " + " ".join(f"{j:>6}" for j in range(n))]
        if self.diverged:
            hint = self.info.get("divergence_hint")  # what to change, set by Learner.fit
            advice = f" ({hint})" if hint else ""
            lines.insert(
                0, f"diverged: a training loss was not finite; these numbers are not a result{advice}"
            )
        elif "one_class" in self.info:  # finite, and one class answered for everything (Learner.fit)
            lines.insert(0, self.info["one_class"])
        for i, row in enumerate(self.accuracy_matrix):
            lines.append(f"{i:>10} " + " ".join(f"{a:6.3f}" for a in row))
        lines.append("")
        width = max(map(len, self.metrics))  # the longest key (average_incremental_accuracy) aligned too
        for k, v in self.metrics.items():
            if k == "diverged":  # said in the first line when it is the case
                continue
            lines.append(f"{k:>{width}}: {v:.4g}" if isinstance(v, float) else f"{k:>{width}}: {v}")
        return "\n".join(lines)
