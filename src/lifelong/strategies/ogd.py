"""Orthogonal Gradient Descent: step only orthogonal to the gradients of earlier tasks' outputs.

Farajtabar, Azizan, Mott & Li (2020), "Orthogonal Gradient Descent for Continual Learning"
(AISTATS); this is the paper's GTL variant (gradient of the ground-truth logit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lifelong.errors import ConfigError
from lifelong.learn.distributed import all_gather_rows, share
from lifelong.learn.heads import head_name
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy
from lifelong.strategies._importance import per_sample_gradients, sample_index, trainable
from lifelong.strategies._projection import extend_rows, warn_unless_plain_sgd

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


def _true_logit(logits: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    return logits.gather(1, y[:, None]).sum()


class OGD(Strategy):
    """Project every step's gradient onto the orthogonal complement of stored output gradients.

    At a boundary, ``memory_per_experience`` samples of the experience give the gradients of
    their ground-truth logit w.r.t. all trainable weights (flattened, [P]); their part outside the
    stored span is orthonormalised into ``basis_`` [K, P]. Each step then sets
    ``g <- g - basis^T (basis g)``, so to first order the model's outputs on those samples
    do not move. Designed for plain SGD (momentum mixes in unprojected past steps).

    In task-incremental scenarios the output layer is left out of both the stored gradients and the
    projection, as in the authors' multi-head runs (one head per task, never projected; the stored
    directions span the shared layers only): each task's rows of the shared head then train freely,
    and other tasks' rows get no gradient through the task mask, so they do not move either.

    Parameters
    ----------
    memory_per_experience : samples whose gradients are stored at each boundary.
    """

    name = "ogd"
    float32_only = True
    follows_growth = False
    supports = frozenset({"class", "task", "domain"})

    def __init__(self, memory_per_experience: int = 100) -> None:
        check_param(self, "memory_per_experience", memory_per_experience, int, low=1)
        self.memory_per_experience = memory_per_experience
        self.basis_: Tensor | None = None
        self.shared_only_ = False  # task-incremental: the head is neither stored nor projected

    def attach(self, learner: Learner) -> None:
        warn_unless_plain_sgd(learner, "OGD")

    def _projected(self, learner: Learner) -> dict[str, Tensor]:
        params = trainable(learner)
        if self.shared_only_:
            head = f"{head_name(learner.model)}."
            params = {n: p for n, p in params.items() if not n.startswith(head)}
        return params

    def after_backward(self, learner: Learner) -> None:
        if self.basis_ is None or len(self.basis_) == 0:
            return
        params = list(self._projected(learner).values())
        g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        self._check_size(len(g))
        if self.basis_.device != g.device:  # loaded from a checkpoint (on the CPU): once to the device
            self.basis_ = self.basis_.to(g.device)
        g = g - self.basis_.T @ (self.basis_ @ g)
        for p, part in zip(params, g.split([p.numel() for p in params])):
            p.grad = part.reshape(p.shape).clone()

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        data = experience.train
        if len(data) == 0:
            return
        # under torch.distributed each rank draws its share and every rank stores all ranks' rows
        if self.basis_ is None:
            self.shared_only_ = experience.kind == "task" or data.t is not None
        b = data.batch(sample_index(learner, len(data), share(learner, self.memory_per_experience)))
        kept = self._projected(learner)
        grads = per_sample_gradients(learner, b.x, b.t, b.y, _true_logit, only=kept)  # name -> [n, *shape]
        flat = torch.cat([g.reshape(len(b.y), -1) for n, g in grads.items()], 1)  # [n, P] this rank's
        flat = all_gather_rows(learner, flat)  # [N, P] every rank's
        if self.basis_ is not None:
            self._check_size(flat.shape[1])
        self.basis_ = extend_rows(self.basis_, flat)

    def _check_size(self, n: int) -> None:
        if self.basis_ is not None and self.basis_.shape[1] != n:
            raise ConfigError(
                f"OGD stored directions of {self.basis_.shape[1]} weights but the model now has {n}; "
                "OGD cannot follow a model that grows: use it without growing strategies"
            )

    def extra_parameters(self) -> int:
        return 0 if self.basis_ is None else self.basis_.numel()
