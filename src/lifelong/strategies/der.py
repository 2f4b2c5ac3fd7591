"""Dark Experience Replay (DER) and DER++: replay past logits, not only past labels.

Buzzega, Boschini, Porrello, Abati & Calderara (2020), "Dark Experience for General Continual
Learning: a Strong, Simple Baseline". A reservoir memory keeps each sample with the logits the
network gave it when it was trained on; matching them again (MSE) distils the past network
along its whole trajectory. DER++ adds cross-entropy on the labels of a second memory batch.
Defaults are the paper's best values for a 500-sample buffer on Seq-CIFAR-10 (its Table of
hyper-parameters: DER alpha 0.3; DER++ alpha 0.2, beta 0.5). Checked against mammoth's
``models/derpp.py``: two independent memory batches, MSE averaged over every logit, logits stored
from the training forward (before the update), reservoir memory sampled without replacement. Its
seq-mnist values for a 500-sample memory (``utils/best_args.py``: alpha 1.0, beta 0.5, memory
batch 10 at batch 10, lr 0.03) are what the class-incremental validation search chose
(``hparams/derpp.json``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.learn.buffers import make_buffer
from lifelong.learn.strategy import Strategy

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner


class DER(Strategy):
    """Add ``alpha * MSE(model(x_mem), logits_mem)`` on a memory batch.

    Parameters
    ----------
    buffer_size : samples (with their logits) kept by reservoir sampling.
    batch_size : memory samples per step; None uses the learner's batch size.
    alpha : weight of the logit-matching term.
    """

    name = "der"

    def __init__(self, buffer_size: int = 500, batch_size: int | None = None, alpha: float = 0.3) -> None:
        self.buffer_size, self.batch_size, self.alpha = buffer_size, batch_size, alpha
        self.buffer_ = make_buffer("reservoir", buffer_size)
        self._logits: Tensor | None = None  # the incoming samples' logits of this step, stored after it

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        # the paper stores z = h(x) from the training forward, i.e. before the update (its Algorithm 1)
        assert learner.incoming is not None  # the learner sets it before each step
        self._logits = logits[: learner.incoming.y.shape[0]].detach().cpu()
        if len(self.buffer_) == 0:
            return None
        return self.alpha * self._distil(learner)

    def _replay(self, learner: Learner, logits: bool = True) -> tuple[Batch, Tensor | None, Tensor]:
        """A memory batch, its stored logits (if asked) and the current logits on it, on the learner's device."""
        _, old, z = self.buffer_.sample(self.batch_size or learner.batch_size, learner.generator, logits)
        if learner.device.type != "cpu":  # on CPU every ``.to`` would be a no-op call per tensor
            d = learner.device
            old = Batch(old.x.to(d, non_blocking=True), old.y.to(d, non_blocking=True),
                        None if old.t is None else old.t.to(d, non_blocking=True))  # fmt: skip
            z = None if z is None else z.to(d)
        return old, z, learner.forward(old.x, old.t)

    def _distil(self, learner: Learner) -> Tensor:
        _, z, out = self._replay(learner)
        assert z is not None  # a DER memory stores logits with every sample
        if z.shape[1] == out.shape[1] and self.buffer_.finite_logits and not learner.task_classes:
            return F.mse_loss(out, z)  # the common case: every stored and current logit is finite
        if z.shape[1] < out.shape[1]:  # the head grew after these logits were stored: no target there
            z = F.pad(z, (0, out.shape[1] - z.shape[1]), value=float("nan"))
        # with task ids the forward masks other tasks' outputs to -inf, both when stored and now;
        # torch.where instead of boolean indexing: no nonzero(), so no host sync on CUDA
        seen = torch.isfinite(z) & torch.isfinite(out)
        diff = torch.where(seen, out - torch.where(seen, z, 0.0), 0.0)
        return diff.pow(2).sum() / seen.sum()

    def after_step(self, learner: Learner) -> None:
        if self._logits is None:  # a step some other strategy owned: no logits to store
            return
        self.buffer_.remember(learner, logits=self._logits)
        self._logits = None

    def memory_bytes(self) -> int:
        return self.buffer_.nbytes()


class DERPP(DER):
    """DER++: DER plus ``beta * CE(model(x_mem2), y_mem2)`` on a second, independent memory batch.

    Parameters
    ----------
    buffer_size, batch_size, alpha : as for :class:`DER`.
    beta : weight of the cross-entropy on replayed labels.
    """

    name = "derpp"

    def __init__(
        self, buffer_size: int = 500, batch_size: int | None = None, alpha: float = 0.2, beta: float = 0.5
    ) -> None:
        super().__init__(buffer_size, batch_size, alpha)
        self.beta = beta

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        distil = super().penalty(learner, batch, logits)
        if distil is None:
            return None
        old, _, out = self._replay(learner, logits=False)  # labels only: no logits gathered
        return distil + self.beta * F.cross_entropy(out, old.y)
