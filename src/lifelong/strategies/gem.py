"""Gradient Episodic Memory: never let the loss on a past experience's memory go up.

Lopez-Paz & Ranzato (2017), "Gradient Episodic Memory for Continual Learning". Each past
experience keeps an episodic memory; when the current gradient conflicts with the gradient on
one of them (negative dot product), it is projected onto the closest gradient that conflicts
with none, by solving the dual quadratic program with quadprog as the original code does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.errors import ConfigError
from lifelong.learn.distributed import all_reduce_mean
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class GEM(Strategy):
    """Project the gradient so its dot product with every past experience's memory gradient is >= 0.

    Parameters
    ----------
    buffer_size : samples kept over all past experiences, split equally among them (each
        experience keeps a random subset of its training data, shrunk as experiences arrive):
        a fixed budget, comparable with the other memory methods'.
    margin : the dual variables are bounded below by ``margin`` (``memory_strength`` in the
        original code; 0.5 as in the paper), which biases the update towards helping the past.
    per_experience : keep this many samples of every experience instead, never shrunk, as the
        authors' code does (``n_memories`` per task; Avalanche's ``patterns_per_exp``): the
        memory grows by ``per_experience`` with each experience and ``buffer_size`` is unused.
    """

    name = "gem"
    # per-experience lists: neither split among ranks nor gathered on save
    single_process = (
        "GEM keeps its per-experience memories whole in every process: under torch.distributed each rank "
        "would keep the full budget and the checkpoint only rank 0's; train GEM in one process (A-GEM "
        "pools its memory across ranks)"
    )
    supports = frozenset({"class", "task", "domain"})
    needs = frozenset({"boundaries"})

    def __init__(
        self, buffer_size: int = 500, margin: float = 0.5, per_experience: int | None = None
    ) -> None:
        check_param(self, "buffer_size", buffer_size, int, low=1)
        check_param(self, "margin", margin, low=0)
        check_param(self, "per_experience", per_experience, int, low=1, none="buffer_size shared by all")
        self.buffer_size, self.margin, self.per_experience = buffer_size, margin, per_experience
        # one entry per past experience: raw inputs (storage dtype), labels, task ids
        self.x_: list[Tensor] = []
        self.y_: list[Tensor] = []
        self.t_: list[Tensor] = []
        self.scale_: list[float] = []
        # the memory as the forward takes it; rebuilt when the memory or the device changes
        self._ready: tuple[tuple[object, ...], list[tuple[Tensor, Tensor, Tensor]]] | None = None

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        n = len(self.x_) + 1  # experiences the shared budget is split among once this one ends
        if self.per_experience is None and self.buffer_size < n:  # every share would be 0 rows: naive
            raise ConfigError(
                f"GEM(buffer_size={self.buffer_size}) cannot keep a sample of each of {n} experiences (the "
                f"budget is split equally among them); give buffer_size >= the number of experiences, or "
                "per_experience=N"
            )

    def after_backward(self, learner: Learner) -> None:
        params = trainable(learner.model)
        g = flat_grad(params)  # [P] the current gradient
        past = [e for e in range(len(self.x_)) if len(self.y_[e])]
        if not past:
            return
        mem = torch.stack([self._memory_grad(learner, params, e) for e in past])  # [E, P]
        # under torch.distributed: each past experience's gradient over every rank's memory, so the
        # ranks solve the same QP and their replicas stay identical
        if learner.process_group is not None:
            mem = all_reduce_mean(learner, {"mem": mem})["mem"]
        if bool((mem @ g < 0).any()):
            g = project(g, mem, self.margin)
        write_grad(params, g)

    def _memory_grad(self, learner: Learner, params: list[nn.Parameter], e: int) -> Tensor:
        x, y, t = self._memory(learner)[e]
        return loss_grad(learner, params, x, y, t)

    def _memory(self, learner: Learner) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Each experience's memory as float inputs on the learner's device, converted once per memory."""
        key = (learner.device, len(self.x_))
        if self._ready is None or self._ready[0] != key:
            d = learner.device
            rows = [
                (x.float().mul_(s).to(d), y.to(d), t.to(d))
                for x, y, t, s in zip(self.x_, self.y_, self.t_, self.scale_)
            ]
            self._ready = (key, rows)
        return self._ready[1]

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        self._ready = None
        data = experience.train
        per = self.per_experience
        if per is None:
            per = self.buffer_size // (len(self.x_) + 1)
            # shrink the older memories (each already in random order; clone frees the dropped rows)
            self.x_, self.y_, self.t_ = [[a[:per].clone() for a in m] for m in (self.x_, self.y_, self.t_)]
        idx = torch.randperm(len(data), generator=learner.generator)[:per]  # a random subset of this one
        self.x_.append(data.x[idx])
        self.y_.append(data.y[idx])
        self.t_.append(data.t[idx] if data.t is not None else torch.zeros(len(idx), dtype=torch.long))
        self.scale_.append(float(data.scale))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._ready = None

    def memory_bytes(self) -> int:
        return sum(a.numel() * a.element_size() for a in (*self.x_, *self.y_, *self.t_))


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def flat_grad(params: list[nn.Parameter]) -> Tensor:
    """All gradients as one vector [P] (zeros where a parameter got none)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


def write_grad(params: list[nn.Parameter], g: Tensor) -> None:
    """Write ``g`` [P] into ``.grad`` (a parameter with no gradient keeps none if its part is 0)."""
    i = 0
    for p in params:
        part = g[i : i + p.numel()].view_as(p)
        i += p.numel()
        if p.grad is not None or bool(part.any()):
            p.grad = part.clone()


def loss_grad(learner: Learner, params: list[nn.Parameter], x: Tensor, y: Tensor, t: Tensor | None) -> Tensor:
    """Gradient [P] of the cross-entropy on (x, y), leaving ``.grad`` as it was."""
    loss = F.cross_entropy(learner.forward(x, t), y)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat(
        [(torch.zeros_like(p) if gr is None else gr).reshape(-1) for gr, p in zip(grads, params)]
    )


def project(g: Tensor, mem: Tensor, margin: float) -> Tensor:
    """Solve GEM's dual QP: min_v 1/2 v'(GG')v + g'G'v s.t. v >= margin; return G'v + g.

    ``g`` is [P] and ``mem`` (G) is [E, P]. The ridge that keeps GG' positive definite is
    relative to its scale and tiny, so the returned gradient meets every constraint up to
    rounding (the original code's fixed 1e-3 ridge leaves dot products of about -1e-3 * v).
    """
    import quadprog  # imported here: only GEM needs it

    # the [E, P] products in float64 on torch; only the E x E program goes to quadprog. numpy's
    # G @ G.T ran on OpenBLAS's own thread pool, whose threads kept spinning after it and took the
    # cores from torch's: every op of the step ran 3x slower (MLP 400-400, batch 128)
    G, gv = mem.detach().double(), g.detach().double()  # [E, P], [P]
    P = (G @ G.T).cpu().numpy()
    P = 0.5 * (P + P.T)
    q = (G @ gv).cpu().numpy()
    E = len(P)
    scale = max(float(np.trace(P)) / E, 1e-12)
    for ridge in (1e-10, 1e-7, 1e-4, 1e-1):  # grow only when GG' is too close to singular
        try:
            v = quadprog.solve_qp(P + np.eye(E) * ridge * scale, -q, np.eye(E), np.full(E, margin))[0]
            break
        except ValueError:
            continue
    else:
        return g
    return torch.addmv(gv, G.T, torch.from_numpy(v).to(G.device)).to(g.dtype)
