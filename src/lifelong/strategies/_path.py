"""The path integral shared by SI and RWalk: how much each weight's movement lowered the task loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from lifelong.learn.strategy import Strategy
from lifelong.strategies._importance import trainable

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class PathIntegral(Strategy):
    """Accumulates ``path_[i] = -sum_t g_t,i * (theta_t+1,i - theta_t,i)`` over the current experience.

    ``g`` is the gradient of the task loss alone: the subclass's own quadratic penalty
    ``strength * importance * (theta - anchor)^2`` is removed from it, as in the authors' code.
    Subclasses set ``start_``/``path_`` to ``{}`` in ``__init__`` and implement :meth:`_penalty_terms`.
    """

    start_: dict[str, Tensor]
    path_: dict[str, Tensor]

    def _penalty_terms(self) -> tuple[float, dict[str, Tensor], dict[str, Tensor]]:
        """``(strength, importance, anchor)`` of the subclass's current penalty."""
        raise NotImplementedError

    def _observe(self, name: str, grad: Tensor) -> None:
        """Called with each parameter's task-loss gradient (RWalk keeps a running Fisher)."""

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        self.start_ = {n: p.detach().clone() for n, p in trainable(learner).items()}
        self.path_ = {n: p.detach().new_zeros(p.shape) for n, p in trainable(learner).items()}

    def after_backward(self, learner: Learner) -> None:
        strength, importance, anchor = self._penalty_terms()
        self._grad, self._before = {}, {}
        for n, p in trainable(learner).items():
            if p.grad is None:
                continue
            g = p.grad.detach().clone()
            if n in importance:  # d/dtheta of our own penalty: the path integral measures the task loss
                g -= 2 * strength * importance[n] * (p.detach() - anchor[n])
            self._observe(n, g)
            self._grad[n], self._before[n] = g, p.detach().clone()

    def after_step(self, learner: Learner) -> None:
        for n, p in trainable(learner).items():
            if n in self._grad and n in self.path_:
                self.path_[n] -= self._grad[n] * (p.detach() - self._before[n])
        self._grad, self._before = {}, {}
