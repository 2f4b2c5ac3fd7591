"""Averaged GEM: one constraint, on the average gradient of a random batch of past experiences.

Chaudhry, Ranzato, Rohrbach & Elhoseiny (2019), "Efficient Lifelong Learning with A-GEM".
Instead of GEM's quadratic program over every past experience, the update only must not
increase the loss on a random memory batch, which has a closed-form projection.

As in the authors' code (facebookresearch/agem, ``conv_split_cifar.py``): the reference batch
comes from previous experiences only (their ring buffer is written during a task but sampled
only below ``episodic_filled_counter``, advanced at the task's end), it holds up to 256 samples
(``EPS_MEM_BATCH_SIZE``), and nothing is projected during the first experience. Differences:
the memory is one reservoir over all past experiences (the authors keep ``mem_size`` samples per
class, so their memory grows with the classes), offered each experience's data at its boundary
(which also serves ``partial_fit`` + ``consolidate``); the reference loss is the learner's
forward (task masks in task-incremental scenarios, every output otherwise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from lifelong.learn.buffers import make_buffer
from lifelong.learn.distributed import all_reduce_mean
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy
from lifelong.strategies.gem import flat_grad, loss_grad, trainable, write_grad

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class AGEM(Strategy):
    """If ``g . g_ref < 0``, replace ``g`` by ``g - (g . g_ref / g_ref . g_ref) g_ref``.

    Parameters
    ----------
    buffer_size : samples kept from past experiences (reservoir over their training data).
    batch_size : memory samples for the reference gradient (256 in the authors' code); None uses
        the learner's batch size.
    """

    name = "agem"
    supports = frozenset({"class", "task", "domain"})
    needs = frozenset({"boundaries"})

    def __init__(self, buffer_size: int = 500, batch_size: int | None = 256) -> None:
        check_param(self, "buffer_size", buffer_size, int, low=1)
        check_param(self, "batch_size", batch_size, int, low=1, none="the learner's batch size")
        self.buffer_size, self.batch_size = buffer_size, batch_size
        self.buffer_ = make_buffer("reservoir", buffer_size)

    def after_backward(self, learner: Learner) -> None:
        if len(self.buffer_) == 0:  # the first experience: no past, no constraint
            return
        _, ref, _ = self.buffer_.sample(self.batch_size or learner.batch_size, learner.generator)
        params = trainable(learner.model)
        d = learner.device
        t = None if ref.t is None else ref.t.to(d)  # memories always hold task ids
        g_ref = loss_grad(learner, params, ref.x.to(d), ref.y.to(d), t)  # [P], .grad untouched
        # under torch.distributed: the reference over every rank's memory batch, so all project alike
        if learner.process_group is not None:
            g_ref = all_reduce_mean(learner, {"ref": g_ref})["ref"]
        projected = project(flat_grad(params), g_ref, branch=learner.device.type == "cpu")
        if projected is not None:
            write_grad(params, projected)

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        data = experience.train  # raw, in its storage dtype: the memory keeps uint8 images as uint8
        self.buffer_.add(
            data.x, data.y, data.t, generator=learner.generator, scale=data.scale, dtype=data.x.dtype
        )

    def memory_bytes(self) -> int:
        return self.buffer_.nbytes()


def project(g: Tensor, g_ref: Tensor, branch: bool = True) -> Tensor | None:
    """``g`` projected onto the half-space ``g . g_ref >= 0``; None when ``branch`` and it is already there.

    ``branch=False`` never reads the sign on the host: on an accelerator the ``if`` would wait for
    the device every step, so the coefficient is clamped instead (the gradients that agree are
    rewritten unchanged).
    """
    dot = g @ g_ref
    if branch:
        if dot >= 0:
            return None
    else:
        dot = dot.clamp(max=0)
    return g - (dot / (g_ref @ g_ref).clamp_min(1e-12)) * g_ref
