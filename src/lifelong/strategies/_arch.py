"""Helpers for architectural strategies: MLP structure, growth, gating, routing samples by task id.

Architectural methods (PNN, HAT, CPG, DEN, heads, adapters) change or wrap the model. They
keep their structure as plain state (sizes, task lists) and rebuild modules from it in
``attach``, so checkpoints hold tensors only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.errors import StrategyMismatchError

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner

M = TypeVar("M", bound=nn.Module)


def part(model: nn.Module, name: str, kind: type[M]) -> M:
    """``model.<name>`` checked to be a ``kind``.

    Strategies keep the submodules they add (heads, embeddings, columns) on the user's model, so
    they move with ``.to()`` and are saved with its ``state_dict``; PyTorch types such attributes
    as ``Tensor | Module``, and this narrows one to what the strategy put there.
    """
    m = getattr(model, name, None)
    if not isinstance(m, kind):
        raise StrategyMismatchError(
            f"model.{name} should be a {kind.__name__}, got {type(m).__name__}; was the model changed "
            "after the strategy attached?"
        )
    return m


#: submodules the architectural strategies put on the model themselves (HAT, PNN, CPG)
ADDED = frozenset({"hat_embeddings", "pnn_columns", "cpg_picks"})


def layers_outside(
    model: nn.Module, added: Iterable[str], harmless: tuple[type[nn.Module], ...] = ()
) -> list[str]:
    """The model's top-level submodules besides ``features``, ``classifier`` and the ``added`` ones a
    strategy put there: layers that a method computing ``classifier(features(x))`` itself would skip.

    Weightless ones count too (a ``Flatten`` or a scaling before ``features`` changes what the features
    see), except the ``harmless`` kinds the method applies itself; so do weights held directly by the
    model (``nn.Parameter`` attributes)."""
    keep = {"features", "classifier", *added}
    names = {n for n, m in model.named_children() if n not in keep and not isinstance(m, harmless)}
    names |= {n for n, _ in model.named_parameters(recurse=False)}
    return sorted(names)


def mlp_linears(model: nn.Module, who: str, bias: bool = True) -> list[nn.Linear]:
    """The Linear layers of an MLP in order: hidden layers, then the classifier.

    These strategies compute ``classifier(features(x))`` themselves on the flattened input, so a layer
    outside the two (an embedding or a norm before ``features``) would be skipped: such a model is
    refused; a ``Flatten`` outside them is what they do anyway. Their per-unit masks and growth read a
    hidden unit as one Linear row with its bias and its ReLU: features are Linear-ReLU pairs (after
    any Flatten) and, unless ``bias=False`` (a method that never reads biases), every Linear has a bias.
    """
    feats, clf = getattr(model, "features", None), getattr(model, "classifier", None)
    outside = layers_outside(model, ADDED, harmless=(nn.Flatten,))
    body = [m for m in feats if not isinstance(m, nn.Flatten)] if isinstance(feats, nn.Sequential) else []
    pairs = len(body) % 2 == 0 and all(
        isinstance(m, nn.Linear if i % 2 == 0 else nn.ReLU) for i, m in enumerate(body)
    )
    if not isinstance(feats, nn.Sequential) or not isinstance(clf, nn.Linear) or not pairs or outside:
        extra = (
            f" (it has layers outside them: {', '.join(outside)}; move them into .features)"
            if outside
            else ""
        )
        raise StrategyMismatchError(
            f"{who} needs an MLP (features of Linear-ReLU pairs after any Flatten, and a Linear classifier)"
            f"{extra}, got {type(model).__name__}; build the model with lifelong.learn.models.MLP"
        )
    lins = [m for m in body if isinstance(m, nn.Linear)] + [clf]
    if bias and any(m.bias is None for m in lins):
        raise StrategyMismatchError(
            f"{who} needs every Linear layer of the MLP to have a bias (it masks or grows a unit's weights "
            "and bias together); build them with bias=True, as lifelong.learn.models.MLP does"
        )
    return lins


def set_linear(model: nn.Module, i: int, layer: nn.Linear) -> None:
    """Replace the ``i``-th Linear of an MLP (the last one is the classifier)."""
    features = part(model, "features", nn.Sequential)
    slots = [k for k, m in enumerate(features) if isinstance(m, nn.Linear)]
    if i == len(slots):
        model.classifier = layer
    else:
        features[slots[i]] = layer


def resized(layer: nn.Linear, n_out: int, n_in: int, zero_new_inputs: bool = False) -> nn.Linear:
    """A copy of ``layer`` with more outputs/inputs; old weights kept, new ones freshly initialised."""
    new = nn.Linear(n_in, n_out, bias=layer.bias is not None).to(layer.weight.device)
    with torch.no_grad():
        if zero_new_inputs:  # new input units start disconnected: the function is unchanged
            new.weight[:, layer.in_features :] = 0
        new.weight[: layer.out_features, : layer.in_features] = layer.weight
        if layer.bias is not None:
            new.bias[: layer.out_features] = layer.bias
    for p, old in zip(new.parameters(), layer.parameters()):
        p.requires_grad_(old.requires_grad)
    return new


def grow_hidden(model: nn.Module, who: str, sizes: Sequence[int], zero_new_inputs: bool = False) -> bool:
    """Grow the MLP's hidden layers to ``sizes`` units (never shrinks); True if anything changed."""
    changed = False
    for i, n in enumerate(sizes):
        lins = mlp_linears(model, who)
        extra = n - lins[i].out_features
        if extra <= 0:
            continue
        set_linear(model, i, resized(lins[i], n, lins[i].in_features))
        nxt = lins[i + 1]
        set_linear(model, i + 1, resized(nxt, nxt.out_features, nxt.in_features + extra, zero_new_inputs))
        changed = True
    return changed


def gated_forward(model: nn.Module, x: Tensor, gates: Sequence[Tensor | None]) -> Tensor:
    """MLP forward with hidden layer ``l``'s activations multiplied by ``gates[l]`` ([B, units] or [units]).

    The input is flattened first, as :func:`linear_forward` does, so every MLP method takes images."""
    h, layer = x.flatten(1), 0
    for m in part(model, "features", nn.Sequential):
        h = m(h)
        if isinstance(m, nn.ReLU):
            gate = gates[layer]
            if gate is not None:
                h = h * gate
            layer += 1
    return part(model, "classifier", nn.Linear)(h)


def linear_forward(x: Tensor, weights: Sequence[tuple[Tensor, Tensor]]) -> Tensor:
    """An MLP's forward with explicit (weight, bias) per layer: Linear-ReLU blocks, then the classifier."""
    h = x.flatten(1)
    for i, (w, b) in enumerate(weights):
        h = F.linear(h, w, b)
        if i < len(weights) - 1:
            h = torch.relu(h)
    return h


def widened(logits: Tensor, learner: Learner) -> Tensor:
    """Logits of a head, column or model copy made before the head grew (``allow_new_classes``),
    widened to the learner's outputs with -inf: it never saw the new classes."""
    missing = (learner.n_outputs or 0) - logits.shape[1]
    if missing <= 0:
        return logits
    return torch.cat([logits, logits.new_full((len(logits), missing), float("-inf"))], 1)


def route(x: Tensor, t: Tensor | None, fn: Callable[[Tensor, int | None], Tensor]) -> Tensor:
    """Apply ``fn(x_task, task)`` to each task's samples and reassemble the outputs in input order."""
    if t is None:
        return fn(x, None)
    tasks = t.unique()
    if len(tasks) <= 1:  # the common case: one task per batch, no gather/scatter (or no samples at all)
        return fn(x, int(tasks[0]) if len(tasks) else None)
    parts = {int(u): (t == u).nonzero().squeeze(1) for u in tasks}
    outs = {u: fn(x[idx], u) for u, idx in parts.items()}
    first = next(iter(outs.values()))
    out = first.new_empty((len(x), *first.shape[1:]))
    for u, idx in parts.items():
        out[idx] = outs[u]
    return out


def task_masked(learner: Learner, logits: Tensor, t: Tensor | None) -> Tensor:
    """Logits outside each sample's task classes set to -inf (as the learner's default forward)."""
    mask = learner.task_mask(t, logits.shape[1])
    return logits if mask is None else logits.masked_fill(~mask, float("-inf"))


def fresh_copy(module: nn.Module, drop: Sequence[str] = ()) -> nn.Module:
    """A re-initialised copy of ``module`` without the submodules named in ``drop``."""
    originals = dict(module._modules)
    for k in drop:
        module._modules.pop(k, None)
    try:
        new = copy.deepcopy(module)
    finally:  # restore in the original order (parameter order is what optimizers see)
        module._modules.clear()
        module._modules.update(originals)
    for m in new.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return new.requires_grad_(True)
