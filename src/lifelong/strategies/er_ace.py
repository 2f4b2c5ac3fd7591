"""ER-ACE: experience replay with an asymmetric cross-entropy.

Caccia, Aljundi, Asadi, Tuytelaars, Pineau & Belilovsky (2022), "New Insights on Reducing
Abrupt Representation Change in Online Continual Learning". When new classes arrive, plain
replay's cross-entropy on the incoming batch pushes the old classes' logits down and tears
their representation apart. ER-ACE computes the incoming loss only over the classes present in
the incoming batch, and the replayed batch's loss over all classes seen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.learn.buffers import make_buffer, storage_form
from lifelong.learn.strategy import Strategy

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner


class ERACE(Strategy):
    """Replay with loss ``CE_present(incoming) + CE_seen(replayed)``.

    Parameters
    ----------
    buffer_size : samples kept in memory (reservoir sampling, as in the paper).
    batch_size : replayed samples per step; None uses the learner's batch size.
    """

    name = "er-ace"

    def __init__(self, buffer_size: int = 500, batch_size: int | None = None) -> None:
        self.buffer_size, self.batch_size = buffer_size, batch_size
        self.buffer_ = make_buffer("reservoir", buffer_size)

    def batch(self, learner: Learner, batch: Batch) -> Batch:
        if len(self.buffer_) == 0:
            return batch
        _, old, _ = self.buffer_.sample(self.batch_size or learner.batch_size, learner.generator)
        t = None if batch.t is None else torch.cat([batch.t, old.t])
        return Batch(torch.cat([batch.x, old.x]), torch.cat([batch.y, old.y]), t)

    def loss(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor:
        n = len(learner.incoming.y)  # the incoming samples come first in the batch
        new, old = logits[:n], logits[n:]  # [n, C], [m, C]
        present = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        present[batch.y[:n]] = True
        loss = F.cross_entropy(new.masked_fill(~present, float("-inf")), batch.y[:n])
        if len(old):
            seen = torch.zeros_like(present)
            seen[[c for c in learner.classes_seen if c < len(seen)]] = True
            seen[batch.y[n:]] = True  # a stored class always counts as seen
            loss = loss + F.cross_entropy(old.masked_fill(~seen, float("-inf")), batch.y[n:])
        return loss

    def after_step(self, learner: Learner) -> None:
        x, y, t = learner.incoming
        raw, scale = storage_form(learner, x)
        self.buffer_.add(raw, y, t, generator=learner.generator, scale=scale)

    def memory_bytes(self) -> int:
        return self.buffer_.nbytes()
