"""Averaged GEM: one constraint, on the average gradient of a random memory batch.

Chaudhry, Ranzato, Rohrbach & Elhoseiny (2019), "Efficient Lifelong Learning with A-GEM".
Instead of GEM's quadratic program over every past experience, the update only must not
increase the loss on a random batch from memory, which has a closed-form projection. The
memory here is a reservoir, so the method also works on task-free streams.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lifelong.learn.buffers import make_buffer
from lifelong.learn.strategy import Strategy
from lifelong.strategies.gem import flat_grad, loss_grad, trainable, write_grad

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner


class AGEM(Strategy):
    """If ``g . g_ref < 0``, replace ``g`` by ``g - (g . g_ref / g_ref . g_ref) g_ref``.

    Parameters
    ----------
    buffer_size : samples kept in memory (reservoir sampling over the stream).
    batch_size : memory samples for the reference gradient; None uses the learner's batch size.
    """

    name = "agem"

    def __init__(self, buffer_size: int = 500, batch_size: int | None = None) -> None:
        self.buffer_size, self.batch_size = buffer_size, batch_size
        self.buffer_ = make_buffer("reservoir", buffer_size)

    def after_backward(self, learner: Learner) -> None:
        if len(self.buffer_) == 0:
            return
        _, ref, _ = self.buffer_.sample(self.batch_size or learner.batch_size, learner.generator)
        params = trainable(learner.model)
        d = learner.device
        g_ref = loss_grad(learner, params, ref.x.to(d), ref.y.to(d), ref.t.to(d))  # [P], .grad untouched
        g = flat_grad(params)  # [P]
        dot = g @ g_ref
        if dot < 0:
            write_grad(params, g - (dot / (g_ref @ g_ref).clamp_min(1e-12)) * g_ref)

    def after_step(self, learner: Learner) -> None:
        self.buffer_.remember(learner)

    def memory_bytes(self) -> int:
        return self.buffer_.nbytes()
