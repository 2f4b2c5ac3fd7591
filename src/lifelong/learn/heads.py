"""The classifier head: how many classes a model scores, and growing it for new classes.

The head is the model's ``classifier`` attribute when it is an ``nn.Linear`` (every built-in
model and the convention for plugins), else the last ``nn.Linear`` registered in the model.
Growing keeps the old rows, so the logits of the classes already known are unchanged and
only the new classes start from a fresh initialisation. :func:`pad_rows` extends state kept
per parameter name (anchors, importances, old weights) to the grown head with zero rows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lifelong.errors import ConfigError


def head_name(model: nn.Module) -> str:
    """Dotted name of the output layer in ``model`` (its parameters are ``<name>.weight`` / ``.bias``)."""
    parent, attr, _ = classifier(model)
    if parent is model:
        return attr
    prefix = next(n for n, m in model.named_modules() if m is parent)
    return f"{prefix}.{attr}"


def classifier(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """``(parent, attribute, layer)`` of the output layer, so it can be read or replaced."""
    head = getattr(model, "classifier", None)
    if isinstance(head, nn.Linear):
        return model, "classifier", head
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise ConfigError(
            f"{type(model).__name__} has no nn.Linear output layer; name the last layer 'classifier'"
        )
    if last == "":  # the model is one bare Linear: nothing holds it, so it cannot be replaced
        raise ConfigError(
            "the model is a single nn.Linear; wrap it in a module whose last layer is 'classifier'"
        )
    parent_name, _, attr = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attr, getattr(parent, attr)


def n_outputs(model: nn.Module) -> int:
    """Number of output units (classes) of the model's classifier head."""
    if isinstance(model, nn.Linear):
        return model.out_features
    return classifier(model)[2].out_features


def grow_classifier(model: nn.Module, n_classes: int) -> bool:
    """Grow the head to ``n_classes`` outputs, keeping the old rows; False when already that large.

    The caller must rebuild its optimizer: the head is a new parameter.
    """
    parent, attr, old = classifier(model)
    if n_classes <= old.out_features:
        return False
    new = nn.Linear(old.in_features, n_classes, bias=old.bias is not None,
                    device=old.weight.device, dtype=old.weight.dtype)  # fmt: skip
    with torch.no_grad():
        new.weight[: old.out_features] = old.weight
        if old.bias is not None:
            new.bias[: old.out_features] = old.bias
    new.requires_grad_(old.weight.requires_grad)
    setattr(parent, attr, new)
    return True


def pad_rows(state: Any, shapes: dict[str, tuple[torch.Size, torch.Size]]) -> Any:
    """``state`` with every tensor stored under a grown parameter's name padded with zero rows.

    ``shapes`` maps parameter names to ``(old shape, new shape)``. Strategies keep per-parameter
    state in dicts keyed by parameter name; zero rows mean no importance, so no anchor pull for
    classes never trained (L2, which weighs every row alike, keeps its anchored row counts).
    """
    if isinstance(state, dict):
        out = {}
        for k, v in state.items():
            if k in shapes and isinstance(v, Tensor) and v.shape == shapes[k][0]:
                grown = v.new_zeros(shapes[k][1])
                grown[: v.shape[0]] = v
                out[k] = grown
            else:
                out[k] = pad_rows(v, shapes)
        return out
    if isinstance(state, list):
        return [pad_rows(v, shapes) for v in state]
    return state
