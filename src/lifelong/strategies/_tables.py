"""Per-sample gradients of embedding tables, as the rows each sample looked up.

A sample's gradient of a ``[V, D]`` table is zero outside the rows of its ids, yet
``vmap(grad(...))`` writes all ``V`` rows for every sample: EWC's Fisher of a text model with a
vocabulary of 30,000 took 48 s against 1 s of training. In eval mode a sample's loss depends on
its own lookups only, so one batched backward pass to the lookups' outputs gives every sample's
gradient of them; scattered to the rows looked up, that is the same per-sample gradient.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


class Unsupported(Exception):
    """A table was called in a way the row-wise gradient does not cover (offsets, weights)."""


@dataclass
class RowGradients:
    """``grad[k]`` is sample ``sample[k]``'s gradient of row ``row[k]``, summed over its lookups."""

    sample: Tensor
    row: Tensor
    grad: Tensor


Table = nn.Embedding | nn.EmbeddingBag


def embedding_tables(model: nn.Module, names: Collection[str]) -> dict[str, Table]:
    """Parameter name -> table, for the trainable tables among ``names`` handled row-wise.

    Left to the dense path: ``max_norm`` (the forward rewrites rows), ``scale_grad_by_freq``
    (the gradient depends on the whole batch's counts), an ``EmbeddingBag`` in ``max`` mode, and a
    weight shared with another module (a tied output layer's gradient is dense).
    """
    uses = Counter(id(p) for m in model.modules() for p in m.parameters(recurse=False))
    tables: dict[str, Table] = {}
    for prefix, m in model.named_modules():
        name = f"{prefix}.weight" if prefix else "weight"
        row_wise = isinstance(m, nn.Embedding) or (
            isinstance(m, nn.EmbeddingBag) and m.mode in ("sum", "mean")
        )
        if (row_wise and name in names and uses[id(m.weight)] == 1
                and m.max_norm is None and not m.scale_grad_by_freq):  # fmt: skip
            tables[name] = m
    return tables


class TableLookups:
    """Records the lookups of ``tables`` in the forward passes run inside ``with``.

    ``rows(losses)`` then gives, per table, each sample's gradient of the rows it touched, for a
    vector of per-sample losses computed from those forward passes.
    """

    def __init__(self, tables: dict[str, Table], n: int) -> None:
        self.tables, self.n = tables, n
        self.calls: list[tuple[str, Tensor, Tensor]] = []  # (table, ids, output)
        self._handles: list[Any] = []

    def __enter__(self) -> TableLookups:
        for name, module in self.tables.items():
            self._handles.append(module.register_forward_hook(self._hook(name), with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()

    def _hook(self, name: str) -> Any:
        def record(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Tensor) -> None:
            ids = args[0] if args else kwargs.get("input")
            extra = [a for a in args[1:]] + [v for k, v in kwargs.items() if k != "input"]
            bag = isinstance(module, nn.EmbeddingBag)
            if (not isinstance(ids, Tensor) or ids.shape[0] != self.n or any(a is not None for a in extra)
                    or (bag and ids.dim() != 2) or not output.requires_grad):  # fmt: skip
                raise Unsupported(name)
            self.calls.append((name, ids, output))

        return record

    def rows(self, losses: Tensor) -> dict[str, RowGradients]:
        """Each sample's gradient of ``losses[sample]`` with respect to the rows it looked up."""
        outputs = [out for _, _, out in self.calls]
        grads = torch.autograd.grad(losses.sum(), outputs, retain_graph=True, allow_unused=True)
        parts: dict[str, list[tuple[Tensor, Tensor, Tensor]]] = {}
        for (name, ids, _), g in zip(self.calls, grads):
            if g is not None:
                parts.setdefault(name, []).append(self._scatter(self.tables[name], ids, g))
        found = {}
        for name, pieces in parts.items():
            sample, row, grad = (torch.cat(p) for p in zip(*pieces))
            n_rows = int(self.tables[name].num_embeddings)
            keys, where = torch.unique(sample * n_rows + row, return_inverse=True)
            summed = grad.new_zeros(len(keys), grad.shape[1]).index_add_(0, where, grad)
            found[name] = RowGradients(keys // n_rows, keys % n_rows, summed)
        return found

    def _scatter(self, table: Table, ids: Tensor, g: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(sample, row, gradient) of every lookup in one call; the padding row gets none."""
        pad = table.padding_idx
        sample = torch.arange(self.n, device=ids.device).view(-1, *([1] * (ids.dim() - 1))).expand_as(ids)
        keep = torch.ones_like(ids, dtype=torch.bool) if pad is None else ids != pad
        if isinstance(table, nn.EmbeddingBag):  # g: [n, D], one output per bag (row of ids)
            if table.mode == "mean":  # padding is not counted in the mean
                g = g / keep.sum(1, keepdim=True).clamp_min(1)
            g = g.unsqueeze(1).expand(*ids.shape, g.shape[-1])
        return sample[keep], ids[keep], g[keep]
