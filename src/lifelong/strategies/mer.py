"""Meta-Experience Replay: reservoir replay with Reptile meta-updates that favour gradient alignment.

Riemer et al. (2019), "Learning to Learn without Forgetting by Maximizing Transfer and
Minimizing Interference" (Algorithm 1, MER). Sequential SGD steps on small groups of a batch
mixing incoming and replayed samples, followed by a Reptile interpolation, maximise the dot
product between the gradients of different samples: transfer up, interference down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.errors import StrategyMismatchError
from lifelong.learn.buffers import make_buffer
from lifelong.learn.models import has_batch_norm
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner


class MER(Strategy):
    """Own each step: ``n_batches`` Reptile inner loops over incoming + replayed samples.

    For each of ``n_batches`` batches (the incoming samples, then ``replay_size`` drawn from a
    reservoir memory, as the authors order them), take one optimizer step per group of ``group_size`` samples,
    then set ``theta <- theta_before + beta * (theta - theta_before)`` (within-batch Reptile).
    After all of them, ``theta <- theta_start + gamma * (theta - theta_start)`` (across batches).
    MER owns the step, so other strategies' ``batch``, ``loss`` and ``penalty`` hooks do not run
    in it (``forward`` hooks do: logits come from ``learner.forward``). The memory is drawn without
    replacement (the authors' ``getBatch`` reshuffles before each draw: with replacement).

    Parameters
    ----------
    buffer_size : samples kept in the reservoir memory.
    replay_size : replayed samples per inner batch; None uses the learner's batch size.
    n_batches : inner batches per incoming batch (the paper's "batches per example").
    group_size : samples per sequential SGD step (1 in the paper).
    beta : within-batch meta learning rate.
    gamma : across-batch meta learning rate (1 disables the outer interpolation).
    """

    name = "mer"
    owns = frozenset({"step"})

    def __init__(self, buffer_size: int = 500, replay_size: int | None = None, n_batches: int = 1,
                 group_size: int = 1, beta: float = 0.03, gamma: float = 1.0) -> None:  # fmt: skip
        check_param(self, "buffer_size", buffer_size, int, low=1)
        check_param(self, "replay_size", replay_size, int, low=1, none="the learner's batch size")
        check_param(self, "n_batches", n_batches, int, low=1)
        check_param(self, "group_size", group_size, int, low=1)
        check_param(self, "beta", beta, low=0, high=1, low_open=True)
        check_param(self, "gamma", gamma, low=0, high=1, low_open=True)
        self.buffer_size, self.replay_size, self.n_batches = buffer_size, replay_size, n_batches
        self.group_size, self.beta, self.gamma = group_size, beta, gamma
        self.buffer_ = make_buffer("reservoir", buffer_size)

    def attach(self, learner: Learner) -> None:
        if self.group_size == 1 and has_batch_norm(learner.model):
            raise StrategyMismatchError(
                "MER takes one SGD step per sample (group_size=1, as the paper), which batch norm cannot "
                "train on: use a model without batch norm (LayerNorm or GroupNorm instead) or group_size >= 2"
            )

    def _mixed(self, learner: Learner, batch: Batch) -> Batch:
        """The incoming samples, then replayed ones (the authors' ``getBatch``: the current example
        first, then the memory's), so the first sequential steps are on the new data."""
        x, y, t = batch
        if len(self.buffer_):
            _, old, _ = self.buffer_.sample(self.replay_size or learner.batch_size, learner.generator)
            x, y = torch.cat([x, old.x]), torch.cat([y, old.y])
            t = None if t is None or old.t is None else torch.cat([t, old.t])
        return Batch(x, y, t)

    def train_step(self, learner: Learner, batch: Batch) -> Tensor:
        params = [p for p in learner.model.parameters() if p.requires_grad]
        start = [p.detach().clone() for p in params]  # theta_A0, before the incoming batch
        total, count = torch.zeros((), device=learner.device), 0
        for _ in range(self.n_batches):
            mixed = self._mixed(learner, batch)
            x, y = mixed.x.to(learner.device), mixed.y.to(learner.device)
            t = None if mixed.t is None else mixed.t.to(learner.device)
            before = [p.detach().clone() for p in params]
            for i in range(0, len(y), self.group_size):
                g = slice(i, i + self.group_size)
                loss = F.cross_entropy(learner.forward(x[g], None if t is None else t[g]), y[g])
                learner.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                learner.optimizer.step()
                total, count = total + loss.detach() * len(y[g]), count + len(y[g])
            with torch.no_grad():  # within-batch Reptile: keep a beta fraction of the inner steps
                for p, b in zip(params, before):
                    p.copy_(torch.lerp(b, p, self.beta))
        if self.gamma != 1.0:
            with torch.no_grad():  # across-batch Reptile
                for p, s in zip(params, start):
                    p.copy_(torch.lerp(s, p, self.gamma))
        self.buffer_.remember(learner, batch)
        return total / max(count, 1)

    def memory_bytes(self) -> int:
        return self.buffer_.nbytes()
