"""Small reference models with a spec, so a checkpoint can rebuild them without pickling code.

A model built here carries ``lifelong_spec`` (its name and keyword arguments); the learner
writes it to the checkpoint manifest and :func:`build` rebuilds the module on load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from lifelong.errors import ConfigError


class MLP(nn.Module):
    """Flatten, then ``Linear-ReLU`` blocks and a linear classifier (``classifier`` is the head)."""

    def __init__(
        self, in_features: int = 784, hidden: Sequence[int] = (100, 100), n_classes: int = 10
    ) -> None:
        super().__init__()
        dims = [in_features, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(dims[-1], n_classes)
        self.lifelong_spec = {"name": "mlp", "kwargs": {"in_features": in_features, "hidden": list(hidden),
                                                        "n_classes": n_classes}}  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class CNN(nn.Module):
    """Two conv blocks and a linear head: small enough for CPU, strong enough for Fashion-MNIST."""

    def __init__(
        self, in_channels: int = 1, image_size: int = 28, width: int = 32, n_classes: int = 10
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )  # fmt: skip
        side = image_size // 4
        self.classifier = nn.Linear(2 * width * side * side, n_classes)
        self.lifelong_spec = {"name": "cnn", "kwargs": {"in_channels": in_channels, "image_size": image_size,
                                                        "width": width, "n_classes": n_classes}}  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": CNN}


def build(spec: dict[str, Any]) -> nn.Module:
    """Rebuild a model from its ``lifelong_spec``."""
    name = spec.get("name")
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    return MODELS[name](**spec.get("kwargs", {}))


def for_input(name: str, input_shape: Sequence[int], n_classes: int, **kwargs: Any) -> nn.Module:
    """Build model ``name`` sized for ``input_shape`` ([C, H, W] or [D]) and ``n_classes``."""
    if name == "mlp":
        return MLP(in_features=math.prod(input_shape), n_classes=n_classes, **kwargs)
    if name == "cnn":
        if len(input_shape) != 3:
            raise ConfigError(f"model cnn needs image inputs [C, H, W], got {tuple(input_shape)}; use mlp")
        return CNN(in_channels=input_shape[0], image_size=input_shape[-1], n_classes=n_classes, **kwargs)
    raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
