"""lifelong: models that keep learning after deployment without forgetting what they knew.

``import lifelong`` is deliberately light: it defines the error types only. Import the
sub-packages you use (``lifelong.data``, ``lifelong.learn``, ``lifelong.strategies``...).
"""

from lifelong.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    LifelongError,
    ScenarioError,
    StrategyMismatchError,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "LifelongError",
    "ScenarioError",
    "StrategyMismatchError",
    "__version__",
]
