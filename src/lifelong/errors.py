"""Errors a user can cause. Each message says what was wrong and what to do about it."""


class LifelongError(Exception):
    """Base class of every error caused by bad input, configuration or missing resources."""


class DataError(LifelongError):
    """A dataset is missing, corrupted or malformed."""


class ScenarioError(LifelongError):
    """A scenario was asked for with arguments that cannot describe a valid stream."""


class ConfigError(LifelongError):
    """A component got an invalid option (unknown name, out-of-range value)."""


class SettingError(ConfigError):
    """A ConfigError about one named option, so that a caller can say where its value came from."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


class StrategyMismatchError(LifelongError):
    """A strategy was combined with a scenario or model it does not support."""


class CheckpointError(LifelongError):
    """A checkpoint is missing, truncated, tampered with or from an incompatible version."""


class NotFoundError(LifelongError):
    """A record asked for by id or name (a prediction, a model version, an alias) does not exist."""


class StoreError(LifelongError):
    """The store was given invalid data, or holds data that cannot be read back as asked."""


class RegistryError(LifelongError):
    """A model version could not be published, moved to an alias, rolled back or verified."""


class TrainingError(LifelongError):
    """A training job could not finish (a process of a torch.distributed job exited with an error)."""


def quoted(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error message echoes client input, bounded."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text)} characters)"
