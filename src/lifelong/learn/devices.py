"""Which device to compute on, checked before any work starts.

``torch.device("cuda")`` succeeds on a machine without CUDA and fails only at the first tensor
copy, deep inside training or a request; every ``--device`` flag (``bench``, ``serve``,
``worker``, ``up``) goes through :func:`resolve_device` so a wrong choice is a clear
:class:`~lifelong.errors.ConfigError` at start-up instead.
"""

from __future__ import annotations

import torch

from lifelong.errors import ConfigError

CHOICES = "cpu, cuda, cuda:N or mps"


def resolve_device(name: str | torch.device, what: str = "--device") -> torch.device:
    """``name`` as a device this machine has, or a ConfigError saying what is missing and what to use."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"{what}: {e}; use {CHOICES}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{what} {name}: no CUDA device here (torch {torch.__version__}); use cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"{what} {name}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{what} {name}: MPS (Apple GPU) is not available here; use cpu")
    elif device.type != "cpu":
        raise ConfigError(f"{what} {name}: lifelong runs on {CHOICES}")
    return device
