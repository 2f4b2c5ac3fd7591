"""Nearest class mean: classify by the closest class mean of L2-normalised features.

Mensink et al. (2013), "Distance-Based Image Classification: Generalizing to New Classes
at Near-Zero Cost"; used over frozen (pretrained) features as a continual-learning baseline,
e.g. Janson et al. (2022), "A Simple Baseline that Questions the Use of Pretrained-Models in
Continual Learning". The means are running sums, so learning is online and task-free. The class
means are L2-normalised again (a cosine classifier, as iCaRL's); Janson et al.'s code compares with
the plain means of normalised features (Split Fashion-MNIST 0.677 against 0.678, split digits 0.838
against 0.839, 3 seeds: no difference beyond noise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.errors import StrategyMismatchError
from lifelong.learn.distributed import all_reduce_class_sums
from lifelong.learn.models import reading_features
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy
from lifelong.learn.tokens import EMBEDDINGS
from lifelong.strategies._arch import part

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


def require_features(model: nn.Module) -> None:
    """Refuse, when the method is attached, a model the nearest-mean methods cannot embed with."""
    if not hasattr(model, "features"):
        raise StrategyMismatchError(
            f"{type(model).__name__} has no .features module; nearest-mean methods need a model split into "
            "features and classifier (lifelong.learn.models.MLP or CNN)"
        )
    features = part(model, "features", nn.Module)
    outside = [
        name
        for name, m in model.named_modules()
        if isinstance(m, EMBEDDINGS) and not any(m is f for f in features.modules())
    ]
    if outside:  # embed() feeds the raw ids to .features: a model ending in 32 ids scored chance, silently
        raise StrategyMismatchError(
            f"{type(model).__name__}'s embedding {', '.join(outside)} lies outside .features, which nearest-mean "
            "methods (NCM, iCaRL) call on the inputs themselves, so the ids would skip it: move the embedding "
            "into .features (e.g. nn.Sequential(embedding, pooling, ...))"
        )


def embed(model: nn.Module, x: Tensor) -> Tensor:
    """L2-normalised ``model.features(x)``, flattened to [B, D]."""
    require_features(model)
    with reading_features(model, "a nearest-mean method (NCM, iCaRL)"):
        return F.normalize(part(model, "features", nn.Module)(x).flatten(1), dim=1)


def nearest_mean_logits(
    learner: Learner, x: Tensor, t: Tensor | None, means: Tensor, known: Tensor
) -> Tensor:
    """Scores ``-||f - mu_c||^2`` [B, max(n_outputs, C)] of ``f = embed(model, x)``; arg-max is the nearest mean.

    ``means`` [C, D] are L2-normalised; classes not ``known`` [C] (no mean yet) and, with task
    ids, classes outside the sample's task get ``-inf``. A sample none of whose classes has a mean
    yet (a task not trained) is scored by the network's own outputs, as before any mean existed:
    its all ``-inf`` row answered class 0 (accuracy 0 on every untrained task, a meaningless FWT).
    """
    scores = -torch.cdist(embed(learner.model, x), means.to(x.device)).square()  # [B, C]
    scores = scores.masked_fill(~known.to(x.device), float("-inf"))
    n_outputs = int(getattr(getattr(learner.model, "classifier", None), "out_features", 0))
    if n_outputs > scores.shape[1]:
        scores = F.pad(scores, (0, n_outputs - scores.shape[1]), value=float("-inf"))
    mask = learner.task_mask(t, scores.shape[1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    unanswered = torch.isneginf(scores).all(dim=1)
    if bool(unanswered.any()):
        own = learner.model(x[unanswered])[:, : scores.shape[1]]
        own = F.pad(own, (0, scores.shape[1] - own.shape[1]), value=float("-inf"))
        if mask is not None:
            own = own.masked_fill(~mask[unanswered], float("-inf"))
        scores[unanswered] = own.to(scores.dtype)
    return scores


class NCM(Strategy):
    """Predict the class whose running mean of normalised features is nearest.

    Parameters
    ----------
    freeze : freeze ``model.features`` (``requires_grad=False``) so the means never go stale
        and only they are learned; with ``freeze=False`` the extractor keeps training and the
        means mix features of different ages.

    Examples
    --------
    >>> from lifelong.checks import toy_scenario, toy_model
    >>> from lifelong.learn.learner import Learner
    >>> learner = Learner(toy_model(), [NCM()], lr=0.1, batch_size=16)
    >>> learner.fit(toy_scenario()).metrics["acc"] > 0.8
    True
    """

    name = "ncm"
    float32_only = True
    reads_window = False  # the boundary only pools the running sums across ranks

    def __init__(self, freeze: bool = True) -> None:
        check_param(self, "freeze", freeze, bool)
        self.freeze = freeze
        self.sums_: Tensor | None = None  # [C, D] sum of normalised features per class
        self.counts_: Tensor | None = None  # [C]
        # under torch.distributed: the sums all ranks agreed on at the last boundary
        self._pooled: tuple[Tensor, Tensor] | None = None

    def attach(self, learner: Learner) -> None:
        require_features(learner.model)
        if self.freeze:
            learner.model.features.requires_grad_(False)
            learner.reset_optimizer()

    @torch.no_grad()
    def after_step(self, learner: Learner) -> None:
        assert learner.incoming is not None  # the learner sets it before each step
        x, y, _ = learner.incoming
        model = learner.model
        was_training = model.training
        model.eval()  # deterministic features (batch norm, dropout) for the means
        f = embed(model, x.to(learner.device)).cpu()  # [B, D]
        model.train(was_training)
        n = int(y.max()) + 1
        if self.sums_ is None or self.counts_ is None:
            self.sums_, self.counts_ = torch.zeros(n, f.shape[1]), torch.zeros(n)
        elif n > len(self.sums_):
            grow = n - len(self.sums_)
            self.sums_ = torch.cat([self.sums_, torch.zeros(grow, f.shape[1])])
            self.counts_ = torch.cat([self.counts_, torch.zeros(grow)])
        self.sums_.index_add_(0, y, f)
        self.counts_.index_add_(0, y, torch.ones(len(y)))

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        """Under torch.distributed, add up what every rank accumulated since the last boundary."""
        if learner.process_group is None:
            return
        sums, counts = self.sums_, self.counts_
        if self._pooled is not None and sums is not None and counts is not None:
            base_sums, base_counts = self._pooled  # this rank's own additions since then: sums - base
            sums, counts = sums.clone(), counts.clone()
            sums[: len(base_sums)] -= base_sums
            counts[: len(base_counts)] -= base_counts
        sums, counts = all_reduce_class_sums(learner, sums, counts)
        if sums is None or counts is None:
            return
        if self._pooled is not None:
            base_sums, base_counts = self._pooled
            sums[: len(base_sums)] += base_sums
            counts[: len(base_counts)] += base_counts
        self.sums_, self.counts_ = sums, counts
        self._pooled = (sums.clone(), counts.clone())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._pooled = None  # a checkpoint holds sums every rank agreed on
        if self.sums_ is not None and self.counts_ is not None:
            self._pooled = (self.sums_.clone(), self.counts_.clone())

    def predict(self, learner: Learner, x: Tensor, t: Tensor | None) -> Tensor | None:
        if self.sums_ is None or self.counts_ is None:
            return None
        means = F.normalize(self.sums_ / self.counts_.clamp(min=1).unsqueeze(1), dim=1)
        return nearest_mean_logits(learner, x, t, means, self.counts_ > 0)

    def extra_parameters(self) -> int:
        if self.sums_ is None or self.counts_ is None:
            return 0
        return self.sums_.numel() + self.counts_.numel()
