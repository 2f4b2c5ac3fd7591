"""The outcome of training on a stream: the accuracy matrix, costs and the metrics derived from them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from lifelong.metrics import accuracy as m


@dataclass
class Result:
    """Everything measured while a learner went through a stream.

    ``accuracy_matrix[i][j]`` is the accuracy on experience j's test set after training
    experience i; ``untrained_accuracy[j]`` is the model's before any training (for FWT);
    ``flips[i]`` the negative flip rate of update i+1 on experiences before it.
    ``train_seconds`` includes ``boundary_seconds``, the work strategies do at boundaries
    (importances, exemplar selection, retraining). A ``diverged`` run (a non-finite training
    loss) is not a result: its accuracy metrics are NaN and its table says "diverged".
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
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        r = self.accuracy_matrix
        out: dict[str, float] = {
            "diverged": float(self.diverged),
            "acc": m.acc(r),
            "bwt": m.bwt(r),
            "fwt": m.fwt(r, self.untrained_accuracy) if self.untrained_accuracy else 0.0,
            "forgetting": m.forgetting(r),
            "plasticity": m.plasticity(r),
            "negative_flip_rate": m.negative_flip_rate(self.flips),
            "train_seconds_per_epoch": self.train_seconds / self.epochs if self.epochs else 0.0,
            "boundary_seconds": self.boundary_seconds,
            "samples_per_second": self.samples / self.train_seconds if self.train_seconds else 0.0,
            "extra_parameters": self.extra_parameters,
            "buffer_bytes": self.buffer_bytes,
            "peak_rss_mb": self.peak_rss_mb,
        }
        if self.reference_accuracy is not None:
            out["intransigence"] = m.intransigence(r, self.reference_accuracy)
        if self.diverged:  # never let a diverged run be ranked by its (chance-level) accuracy
            for k in ("acc", "bwt", "fwt", "forgetting", "plasticity", "negative_flip_rate", "intransigence"):
                if k in out:
                    out[k] = float("nan")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "metrics": self.metrics}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def table(self) -> str:
        """The accuracy matrix and the headline metrics as plain text."""
        n = len(self.accuracy_matrix[0]) if self.accuracy_matrix else 0
        lines = ["after \\ on " + " ".join(f"{j:>6}" for j in range(n))]
        if self.diverged:
            lines.insert(0, "diverged: a training loss was not finite; these numbers are not a result")
        for i, row in enumerate(self.accuracy_matrix):
            lines.append(f"{i:>10} " + " ".join(f"{a:6.3f}" for a in row))
        lines.append("")
        for k, v in self.metrics.items():
            if k == "diverged":  # said in the first line when it is the case
                continue
            lines.append(f"{k:>24}: {v:.4g}" if isinstance(v, float) else f"{k:>24}: {v}")
        return "\n".join(lines)
