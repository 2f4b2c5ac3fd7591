"""GDumb: a greedy class-balanced memory, and a model retrained from scratch on it alone.

Prabhu, Torr & Dokania (2020), "GDumb: A Simple Approach that Questions Our Progress in
Continual Learning". The sampler keeps the memory class-balanced; at each boundary the
model is re-initialised and trained only on the memory, so nothing learned on the stream
survives except the samples kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from lifelong.learn.buffers import make_buffer
from lifelong.learn.strategy import Strategy

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class GDumb(Strategy):
    """Fill a class-balanced memory from the stream; at each boundary retrain from scratch on it.

    Parameters
    ----------
    buffer_size : samples kept in memory.
    epochs : passes over the memory when retraining at a boundary.
    batch_size : mini-batch size of the retraining; None uses the learner's.

    The retraining uses ``learner.forward`` (task masks, forward hooks) and the learner's fresh
    optimizer with plain cross-entropy; the stream is still trained on as usual in between, but
    only the memory shapes the model left at a boundary.
    """

    name = "gdumb"
    supports = frozenset({"class", "task", "domain"})

    def __init__(self, buffer_size: int = 500, epochs: int = 10, batch_size: int | None = None) -> None:
        self.buffer_size, self.epochs, self.batch_size = buffer_size, epochs, batch_size
        self.buffer_ = make_buffer("class-balanced", buffer_size)

    def after_step(self, learner: Learner) -> None:
        self.buffer_.remember(learner)

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        self.reinitialise(learner)
        if len(self.buffer_) == 0:
            return
        buf, model, opt = self.buffer_, learner.model, learner.optimizer
        n, bs = len(buf), self.batch_size or learner.batch_size
        task_ids = experience.train.t is not None
        model.train()
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=learner.generator)
            for i in range(0, n, bs):
                idx = order[i : i + bs]
                x = buf.x[idx].float().mul_(buf.scale).to(learner.device)
                y = buf.y[idx].to(learner.device)
                t = buf.t[idx].to(learner.device) if task_ids else None
                loss = F.cross_entropy(learner.forward(x, t), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    def reinitialise(self, learner: Learner) -> None:
        """Reset every module's parameters (seeded from the learner's generator) and the optimizer."""
        seed = int(torch.randint(2**62, (1,), generator=learner.generator))
        cuda = [learner.device.index or 0] if learner.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # reset_parameters draws from the global RNG
            torch.manual_seed(seed)
            for module in learner.model.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        learner.reset_optimizer()

    def memory_bytes(self) -> int:
        return self.buffer_.nbytes()
