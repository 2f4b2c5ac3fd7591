"""GDumb: a greedy class-balanced memory, and a model retrained from scratch on it alone.

Prabhu, Torr & Dokania (2020), "GDumb: A Simple Approach that Questions Our Progress in
Continual Learning". The sampler keeps the memory class-balanced; the stream itself is never
trained on; at each boundary the model is re-initialised and trained only on the memory.

The retraining follows the authors' code (drimpossible/GDumb, ``src/main.py``, ``opts.py``):
SGD with momentum 0.9 and weight decay 1e-6, batches of 16, a first pass at a tenth of the
learning rate, then cosine annealing with warm restarts (SGDR, ``T_0 = 1``, ``T_mult = 2``) from
0.05 down to 0.0005, gradient norms clipped at 10, 128 passes for MNIST (their ``num_passes``).
Differences: the model is retrained at every boundary (the paper trains once, when asked to
predict) so that the accuracy matrix can be filled; float32 instead of half precision; no cutmix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.learn.buffers import make_buffer
from lifelong.learn.params import check_param
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
    batch_size : mini-batch size of the retraining.
    lr, min_lr : the SGDR schedule's peak and floor.
    momentum, weight_decay, clip : the retraining's SGD and gradient-norm clipping.

    Each sample of the stream is offered to the memory once (whole experiences when they begin,
    ``partial_fit`` batches as they arrive); GDumb owns the training step so that nothing is
    learned from the stream. The retraining uses ``learner.forward`` (task masks, forward hooks).
    """

    name = "gdumb"
    owns = frozenset({"step"})
    supports = frozenset({"class", "task", "domain"})

    def __init__(self, buffer_size: int = 500, epochs: int = 128, batch_size: int = 16, lr: float = 0.05,
                 min_lr: float = 0.0005, momentum: float = 0.9, weight_decay: float = 1e-6,
                 clip: float = 10.0) -> None:  # fmt: skip
        check_param(self, "buffer_size", buffer_size, int, low=1)
        check_param(self, "epochs", epochs, int, low=1)  # 0: the model is reset and never trained
        check_param(self, "batch_size", batch_size, int, low=1)
        check_param(self, "lr", lr, low=0, low_open=True)
        check_param(self, "min_lr", min_lr, low=0, high=lr)
        check_param(self, "momentum", momentum, low=0, high=1, high_open=True)
        check_param(self, "weight_decay", weight_decay, low=0)
        check_param(self, "clip", clip, low=0, low_open=True)
        self.buffer_size, self.epochs, self.batch_size = buffer_size, epochs, batch_size
        self.lr, self.min_lr, self.momentum, self.weight_decay, self.clip = (
            lr,
            min_lr,
            momentum,
            weight_decay,
            clip,
        )
        self.buffer_ = make_buffer("class-balanced", buffer_size)

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        data = experience.train  # raw storage form; offered in a random order, as a shuffled loader would
        if len(data):
            order = torch.randperm(len(data), generator=learner.generator)
            t = None if data.t is None else data.t[order]
            self.buffer_.add(data.x[order], data.y[order], t, generator=learner.generator, scale=data.scale,
                             dtype=data.x.dtype)  # fmt: skip

    def train_step(self, learner: Learner, batch: Batch) -> Tensor | None:
        experience = learner.experience
        if experience is None or len(experience.train) == 0:  # partial_fit: the batches are the stream
            self.buffer_.remember(learner, batch)
        return batch.x.new_zeros(())  # no update from the stream

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        self.reinitialise(learner)
        if len(self.buffer_) == 0:
            return
        buf, model = self.buffer_, learner.model
        assert buf.x is not None  # allocated by the first sample it kept
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            opt, T_0=1, T_mult=2, eta_min=self.min_lr
        )
        n, task_ids = len(buf), experience.train.t is not None
        model.train()
        for epoch in range(self.epochs):
            if epoch <= 1:  # one warm-up pass at a tenth of the rate, then the full rate
                for group in opt.param_groups:
                    group["lr"] = self.lr * (0.1 if epoch == 0 else 1.0)
            else:
                sched.step()
            order = torch.randperm(n, generator=learner.generator)
            for i in range(0, n, self.batch_size):
                idx = order[i : i + self.batch_size]
                x = buf.x[idx].float().mul_(buf.scale).to(learner.device)
                t = buf.t[idx].to(learner.device) if task_ids else None
                loss = F.cross_entropy(learner.forward(x, t), buf.y[idx].to(learner.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, self.clip)
                opt.step()

    def reinitialise(self, learner: Learner) -> None:
        """Reset every module's parameters (seeded from the learner's generator) and the optimizer; a module
        with a frozen parameter (a pretrained backbone the user set ``requires_grad_(False)`` on) keeps its
        weights, since the retraining could never learn them back."""
        seed = int(torch.randint(2**62, (1,), generator=learner.generator))
        cuda = [learner.device.index or 0] if learner.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # reset_parameters draws from the global RNG
            torch.manual_seed(seed)
            for module in learner.model.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset) and all(p.requires_grad for p in module.parameters(recurse=False)):
                    reset()
        learner.reset_optimizer()

    def memory_bytes(self) -> int:
        return self.buffer_.nbytes()
