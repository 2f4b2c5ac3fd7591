"""Per-sample gradients for importance estimates (EWC's Fisher and its relatives)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, vmap

from lifelong.data.dataset import Dataset
from lifelong.strategies._tables import RowGradients, Table, TableLookups, Unsupported, embedding_tables

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner


def trainable(learner: Learner) -> dict[str, Tensor]:
    return {n: p for n, p in learner.model.named_parameters() if p.requires_grad}


FISHERS = ("true", "sampled", "empirical")


def fisher_diagonal(
    learner: Learner,
    data: Dataset,
    kind: str = "true",
    max_samples: int | None = None,
    batch_size: int = 1,
    budget_bytes: int = 1 << 24,
) -> dict[str, Tensor]:
    """Diagonal Fisher information of the model on ``data``, name -> tensor shaped like the parameter.

    ``kind`` says which labels the log-likelihood's gradient is taken at: ``true`` is the
    expectation over the model's own predictive distribution (every class, weighted by its
    probability), ``sampled`` one label drawn from it (a one-sample Monte Carlo estimate),
    ``empirical`` the data's labels. With ``batch_size == 1`` gradients are per sample
    (``torch.func.vmap``), in chunks sized so one chunk of per-sample gradients stays under
    ``budget_bytes``; with ``batch_size > 1`` the squared gradients of mini-batch mean losses are
    averaged over mini-batches (Avalanche's estimator: cheaper, biased low by averaging). Per
    sample, embedding tables are differentiated row by row (:mod:`lifelong.strategies._tables`).
    """
    index = sample_index(learner, len(data), max_samples)
    if batch_size > 1:
        return _minibatch_fisher(learner, data, index, kind, batch_size)
    try:
        return _per_sample_fisher(learner, data, index, kind, budget_bytes, row_wise=True)
    except Unsupported:  # a table called with offsets or weights: every gradient dense
        return _per_sample_fisher(learner, data, index, kind, budget_bytes, row_wise=False)


def _per_sample_fisher(
    learner: Learner, data: Dataset, index: Tensor, kind: str, budget_bytes: int, row_wise: bool
) -> dict[str, Tensor]:
    """Embedding tables row-wise (``_tables``), the other parameters by ``vmap`` over samples."""
    model = learner.model
    weights = {n: p.detach() for n, p in trainable(learner).items()}
    tables = embedding_tables(model, weights) if row_wise else {}
    params = {n: p for n, p in weights.items() if n not in tables}
    fixed = {n: p for n, p in weights.items() if n in tables}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    fisher = {k: torch.zeros_like(v) for k, v in weights.items()}
    chunk = min(4096, max(1, budget_bytes // (4 * max(1, sum(p.numel() for p in params.values())))))

    def nll(p: dict[str, Tensor], x: Tensor, y: Tensor, m: Tensor) -> Tensor:
        logits = functional_call(model, (p, fixed, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(logits.masked_fill(~m.unsqueeze(0), MASKED), y.unsqueeze(0))

    per_sample = per_sample_grad(nll)
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(index), chunk):
            b = data.batch(index[i : i + chunk])
            x, y = b.x.to(learner.device), b.y.to(learner.device)
            mask = _mask(learner, x, b.t)
            targets = _targets(learner, model, x, y, mask, kind)
            for target, weight in targets if params else []:
                for k, g in per_sample(params, x, target, mask).items():
                    # [n, P_k]; not in place: vmap may return a broadcast (expanded) gradient, one that
                    # does not depend on the sample (another task's head), which cannot be written to
                    sq = g.reshape(len(x), -1).square()
                    fisher[k] += (sq.sum(0) if weight is None else weight @ sq).view_as(fisher[k])
            if tables:
                with TableLookups(tables, len(x)) as lookups:
                    logits = model(x).masked_fill(~mask, MASKED)
                for target, weight in targets:
                    for k, r in lookups.rows(F.cross_entropy(logits, target, reduction="none")).items():
                        sq = r.grad.square() if weight is None else r.grad.square() * weight[r.sample, None]
                        fisher[k].index_add_(0, r.row, sq)
    finally:
        model.train(was_training)
    return {k: v / max(len(index), 1) for k, v in fisher.items()}


#: fill for other tasks' outputs: exp() underflows to 0 like -inf, but gradients stay finite
MASKED = -1e9


def _mask(learner: Learner, x: Tensor, t: Tensor | None) -> Tensor:
    n_out = _n_outputs(learner, x)
    mask = learner.task_mask(None if t is None else t.to(learner.device), n_out)
    return torch.ones(len(x), n_out, dtype=torch.bool, device=x.device) if mask is None else mask


def _targets(
    learner: Learner, model: torch.nn.Module, x: Tensor, y: Tensor, mask: Tensor, kind: str
) -> list[tuple[Tensor, Tensor | None]]:
    """Labels to differentiate at, each with per-sample weights (None: weight 1)."""
    if kind == "empirical":
        return [(y, None)]
    with torch.no_grad():
        probs = torch.softmax(model(x).masked_fill(~mask, MASKED), 1)  # [n, C]
    if kind == "sampled":
        drawn = torch.multinomial(probs.cpu(), 1, generator=learner.generator).squeeze(1)
        return [(drawn.to(x.device), None)]
    return [(torch.full_like(y, c), probs[:, c]) for c in range(probs.shape[1]) if bool(probs[:, c].any())]


def _minibatch_fisher(
    learner: Learner, data: Dataset, index: Tensor, kind: str, batch_size: int
) -> dict[str, Tensor]:
    params = trainable(learner)
    fisher = {k: torch.zeros_like(v) for k, v in params.items()}
    model, batches = learner.model, 0
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(index), batch_size):
            b = data.batch(index[i : i + batch_size])
            x, t = b.x.to(learner.device), None if b.t is None else b.t.to(learner.device)
            logits = learner.forward(x, t)  # through the strategies' forward hooks
            y = b.y.to(learner.device)
            if kind == "sampled":
                probs = torch.softmax(logits.detach(), 1).cpu()
                y = torch.multinomial(probs, 1, generator=learner.generator).squeeze(1).to(x.device)
            grads = torch.autograd.grad(F.cross_entropy(logits, y), list(params.values()), allow_unused=True)
            for (k, _), g in zip(params.items(), grads):
                if g is not None:
                    fisher[k] += g.square()
            batches += 1
    finally:
        model.train(was_training)
    return {k: v / max(batches, 1) for k, v in fisher.items()}


def _n_outputs(learner: Learner, x: Tensor) -> int:
    """Output units of the model on ``x``, asked in eval mode: one sample in train mode breaks batch
    norm, and a training forward would move its running statistics."""
    model = learner.model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return int(model(x[:1]).shape[1])
    finally:
        model.train(was_training)


def quadratic_penalty(learner: Learner, anchor: dict[str, Tensor], importance: dict[str, Tensor]) -> Tensor:
    """``sum_i importance_i * (theta_i - anchor_i)^2`` over the trainable parameters."""
    total = torch.zeros((), device=learner.device)
    for name, p in trainable(learner).items():
        if name in anchor:
            total = total + (importance[name] * (p - anchor[name]).pow(2)).sum()
    return total


#: how a quadratic penalty acts: through the loss's gradient, as a closed-form (proximal) step, or
#: ``auto``: proximal under torch's SGD, gradient under any other optimizer (:func:`proximal_now`)
PENALTY_STEPS = ("auto", "gradient", "proximal")


def proximal_now(strategy: Any, learner: Learner) -> bool:
    """Whether ``strategy`` applies its penalty as a proximal step now; records the step taken in
    ``strategy._step`` (for its divergence hint). ``auto`` is proximal under SGD, where that step is
    the exact implicit step of the same objective and stable for any strength (the gradient step
    diverged on split digits at lr 0.05 with EWC's defaults), and the gradient step under adaptive
    optimizers, whose rescaled steps the proximal pull, taken at the raw lr, would not match."""
    step = strategy.penalty_step
    if step == "auto":
        step = "proximal" if isinstance(learner.optimizer, torch.optim.SGD) else "gradient"
    strategy._step = step
    return bool(step == "proximal")


def gradient_step_hint(strategy: object, penalty_step: str, strength: str) -> str | None:
    """The fix for a diverged run whose quadratic penalty took plain gradient steps (EWC, SI, MAS):
    that step diverges once ``lr * strength * importance > 2`` for a single weight, the proximal one never."""
    if penalty_step != "gradient":
        return None
    return (
        f"{type(strategy).__name__} applies its penalty by gradient steps, which diverge once "
        f"lr * {strength} * importance > 2 for any weight: try penalty_step='proximal' (stable for any "
        f"{strength}), or a smaller {strength} or lr"
    )


def step_size(learner: Learner) -> float:
    """The optimizer's current learning rate (what a proximal step must match)."""
    return float(learner.optimizer.param_groups[0]["lr"])


@torch.no_grad()
def proximal_pull(learner: Learner, anchor: dict[str, Tensor], curvature: dict[str, Tensor]) -> None:
    """``theta <- a + (theta - a) / (1 + lr * k)`` for each weight: the exact (implicit) step of the
    penalty ``k/2 (theta - a)^2`` after the optimizer's step on the task loss.

    Same objective and fixed points as adding the penalty to the loss, but stable for any strength:
    a gradient step on ``k/2 (theta - a)^2`` diverges once ``lr * k > 2`` for any single weight.
    """
    lr = step_size(learner)
    for name, p in trainable(learner).items():
        if name in anchor:
            a = anchor[name]
            p.sub_(a).div_(1.0 + lr * curvature[name]).add_(a)


def per_sample_gradients(
    learner: Learner,
    x: Tensor,
    t: Tensor | None,
    y: Tensor,
    objective: Callable[[Tensor, Tensor, Tensor], Tensor],
    only: Collection[str] | None = None,
) -> dict[str, Tensor]:
    """Gradient of ``objective(logits [1, C], y [1], mask [1, C])`` for each sample: name -> [n, *shape].

    ``mask`` marks the outputs of each sample's task (all True without task ids), so an
    objective can ignore the heads of other tasks. ``only``: the parameters to differentiate (the
    others are held as constants, their per-sample gradients never computed).
    """
    model = learner.model
    weights = {n: p.detach() for n, p in trainable(learner).items()}
    params = weights if only is None else {n: p for n, p in weights.items() if n in only}
    fixed = {n: p for n, p in weights.items() if n not in params}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    x, y = x.to(learner.device), y.to(learner.device)
    n_out = _n_outputs(learner, x)
    mask = learner.task_mask(None if t is None else t.to(learner.device), n_out)
    if mask is None:
        mask = torch.ones(len(y), n_out, dtype=torch.bool, device=learner.device)

    def one(p: dict[str, Tensor], xi: Tensor, yi: Tensor, mi: Tensor) -> Tensor:
        logits = functional_call(model, (p, fixed, buffers), (xi.unsqueeze(0),))
        return objective(logits, yi.unsqueeze(0), mi.unsqueeze(0))

    was_training = model.training
    model.eval()
    try:
        return per_sample_grad(one)(params, x, y, mask)
    finally:
        model.train(was_training)


def per_sample_grad(fn: Callable[..., Tensor]) -> Callable[..., dict[str, Tensor]]:
    """``vmap(grad(fn))`` over every argument but the parameters (the first): gradients per sample.

    Some layers cannot be vmapped (a GRU builds its initial hidden state unbatched, and vmap's
    in-place update then fails with a broadcast error): for those the samples are differentiated
    one at a time, with the same result, from the first failure on. An error of the model itself
    comes back from the loop as well.
    """
    vectorised, single = vmap(grad(fn), in_dims=(None, 0, 0, 0)), grad(fn)
    looping = False

    def call(params: dict[str, Tensor], *per_sample: Tensor) -> dict[str, Tensor]:
        nonlocal looping
        if not looping:
            try:
                with warnings.catch_warnings():  # an op without a batching rule (EmbeddingBag) is looped
                    # by torch, correctly, with a warning per call: a text model's Fisher printed dozens
                    warnings.filterwarnings("ignore", "There is a performance drop", UserWarning)
                    return vectorised(params, *per_sample)
            except RuntimeError:
                looping = True
        grads = [single(params, *(a[i] for a in per_sample)) for i in range(len(per_sample[0]))]
        return {k: torch.stack([g[k] for g in grads]) for k in grads[0]}

    return call


def sample_index(learner: Learner, n_data: int, max_samples: int | None) -> Tensor:
    """Up to ``max_samples`` indices, drawn with the learner's generator (all, in order, if fewer)."""
    n = n_data if max_samples is None else min(n_data, max_samples)
    return torch.randperm(n_data, generator=learner.generator)[:n] if n < n_data else torch.arange(n)


def mean_abs_gradient(
    learner: Learner,
    data: Dataset,
    objective: Callable[[Tensor, Tensor, Tensor], Tensor],
    max_samples: int | None = None,
    chunk: int = 256,
    row_wise: bool = True,
) -> dict[str, Tensor]:
    """Mean over samples of ``|d objective / d theta|`` (MAS's importance), in vmapped chunks;
    embedding tables row-wise (``_tables``)."""
    index = sample_index(learner, len(data), max_samples)
    weights = trainable(learner)
    total = {n: torch.zeros_like(p) for n, p in weights.items()}
    tables = embedding_tables(learner.model, weights) if row_wise else {}
    dense = [n for n in weights if n not in tables]
    for i in range(0, len(index), chunk):
        b = data.batch(index[i : i + chunk])
        if tables:
            try:
                for k, r in _table_rows(learner, b.x, b.t, b.y, objective, tables).items():
                    total[k].index_add_(0, r.row, r.grad.abs())
            except Unsupported:  # a table called with offsets or weights: every gradient dense
                return mean_abs_gradient(learner, data, objective, max_samples, chunk, row_wise=False)
        for k, g in (
            per_sample_gradients(learner, b.x, b.t, b.y, objective, only=dense).items() if dense else ()
        ):
            total[k] += g.abs().sum(0)
    return {k: v / max(len(index), 1) for k, v in total.items()}


def _table_rows(
    learner: Learner,
    x: Tensor,
    t: Tensor | None,
    y: Tensor,
    objective: Callable[[Tensor, Tensor, Tensor], Tensor],
    tables: dict[str, Table],
) -> dict[str, RowGradients]:
    """Each sample's gradient of ``objective`` with respect to the table rows it looked up."""
    model = learner.model
    x, y = x.to(learner.device), y.to(learner.device)
    mask = _mask(learner, x, t)
    was_training = model.training
    model.eval()
    try:
        with TableLookups(tables, len(x)) as lookups:
            logits = model(x)
        losses = torch.stack(
            [objective(logits[i : i + 1], y[i : i + 1], mask[i : i + 1]) for i in range(len(x))]
        )
        return lookups.rows(losses)
    finally:
        model.train(was_training)
