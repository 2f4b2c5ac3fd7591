"""The kinds of event the loop logs: one enum, so a kind is written and read under the same name."""

from __future__ import annotations

from enum import Enum


class EventKind(str, Enum):
    """Every ``events.kind`` value; the store refuses any other."""

    BOOTSTRAP = "bootstrap"  # a first champion was trained
    REGISTRATION = "registration"  # a version was published (registry)
    PROMOTION = "promotion"  # the champion alias moved (registry)
    DEPLOYMENT = "deployment"  # a canary or shadow alias moved or ended (registry)
    ROLLBACK = "rollback"  # an alias moved back (registry)
    CANARY_PROMOTION = "canary_promotion"  # the canary rule promoted the canary (worker)
    CANARY_ROLLBACK = "canary_rollback"  # the canary rule removed the canary (worker)
    DATA_DRIFT = "data_drift"  # a data-drift test fired (worker)
    PERFORMANCE_DRIFT = "performance_drift"  # the error-stream detector fired (worker)
    TRAIN_REQUEST = "train_request"  # someone asked to train now (HTTP, CLI)
    TRAINING = "training"  # a training attempt started or failed (worker)
    GATE = "gate"  # a candidate was judged (worker)
    WORKER = "worker"  # a worker started, stopped, took or lost the lease
    RETENTION = "retention"  # samples or artifacts were deleted (worker)
    SERVER = "server"  # a server started degraded (e.g. fell back from a corrupted champion)

    def __str__(self) -> str:
        return self.value
