"""Experience replay: a fixed-size memory of past samples mixed into every mini-batch.

Chaudhry et al. (2019), "On Tiny Episodic Memories in Continual Learning"; the memory is
filled by reservoir sampling (every sample seen so far kept with equal probability) or
class-balanced. Each sample is offered once per experience, in its first epoch (as Avalanche's
storage policies take an experience's data once; Mammoth's ER offers every epoch's batches, which
holds copies of one sample once the memory is near the data's size); at one epoch, the field's
online protocol, the two are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lifelong.data.dataset import Batch
from lifelong.learn.buffers import BUFFERS, make_buffer
from lifelong.learn.params import check_choice, check_param
from lifelong.learn.strategy import Strategy

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner


class Replay(Strategy):
    """Append ``batch_size`` replayed samples (default: the learner's batch size) to each batch.

    Parameters
    ----------
    buffer_size : samples kept in memory.
    batch_size : replayed samples per step; None uses the learner's batch size.
    policy : ``reservoir`` or ``class-balanced``.
    """

    name = "replay"

    def __init__(
        self, buffer_size: int = 500, batch_size: int | None = None, policy: str = "reservoir"
    ) -> None:
        check_param(self, "buffer_size", buffer_size, int, low=1)
        check_param(self, "batch_size", batch_size, int, low=1, none="the learner's batch size")
        check_choice(self, "policy", policy, BUFFERS)
        self.buffer_size, self.batch_size, self.policy = buffer_size, batch_size, policy
        self.buffer_ = make_buffer(policy, buffer_size)

    def batch(self, learner: Learner, batch: Batch) -> Batch:
        if len(self.buffer_) == 0:
            return batch
        _, old, _ = self.buffer_.sample(self.batch_size or learner.batch_size, learner.generator)
        t = None if batch.t is None or old.t is None else torch.cat([batch.t, old.t])
        return Batch(torch.cat([batch.x, old.x]), torch.cat([batch.y, old.y]), t)

    def after_step(self, learner: Learner) -> None:
        if learner.state.epoch == 0:  # each sample offered once per experience: a later epoch's batches
            # are the same samples, and a memory as large as the data filled with copies (1,000 slots held
            # 143 distinct samples after a 10-epoch bootstrap, and the gate measured "old accuracy" on them)
            self.buffer_.remember(learner)

    def memory_bytes(self) -> int:
        return self.buffer_.nbytes()
