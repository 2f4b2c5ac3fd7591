"""Multi-head output: one linear head per task on top of shared features (task-incremental).

The standard task-incremental baseline (e.g. Li & Hoiem, 2017; Zenke et al., 2017): the
feature extractor ``model.features`` is shared and trained by every task; each task id owns a
separate head, and each sample is routed to its task's head at training and at inference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from lifelong.errors import StrategyMismatchError
from lifelong.learn.models import reading_features
from lifelong.learn.strategy import Strategy
from lifelong.strategies._arch import part, route, widened

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class MultiHead(Strategy):
    """A fresh ``Linear`` head per task id, held in ``model.task_heads``; samples go to their task's head.

    Heads have the classifier's shape (one output per class) and the outputs outside the task's
    classes are masked, so labels stay global. Tasks without a head yet use ``model.classifier``.

    Examples
    --------
    >>> from lifelong.checks import toy_model, toy_scenario
    >>> from lifelong.learn.learner import Learner
    >>> learner = Learner(toy_model(), [MultiHead()], lr=0.1)
    >>> _ = learner.fit(toy_scenario("task"))
    >>> sorted(learner.model.task_heads)
    ['0', '1']
    """

    name = "multihead"
    float32_only = True
    supports = frozenset({"task"})
    needs = frozenset({"task_labels"})

    def __init__(self) -> None:
        self.tasks_: list[int] = []

    def attach(self, learner: Learner) -> None:
        model = learner.model
        if not isinstance(getattr(model, "features", None), nn.Module) or not isinstance(
            getattr(model, "classifier", None), nn.Linear
        ):
            raise StrategyMismatchError(
                f"MultiHead needs a model with .features and a Linear .classifier, got {type(model).__name__}"
            )
        if not hasattr(model, "task_heads"):
            model.task_heads = nn.ModuleDict()
        if self._add_heads(learner, self.tasks_):
            learner.reset_optimizer()

    def _add_heads(self, learner: Learner, tasks: list[int]) -> bool:
        clf = part(learner.model, "classifier", nn.Linear)
        heads = part(learner.model, "task_heads", nn.ModuleDict)
        missing = [t for t in tasks if str(t) not in heads]
        for t in missing:
            heads[str(t)] = nn.Linear(clf.in_features, clf.out_features).to(clf.weight.device)
        return bool(missing)

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        if experience.task_id not in self.tasks_:
            self.tasks_.append(experience.task_id)
        if self._add_heads(learner, self.tasks_):
            learner.reset_optimizer()

    def forward(self, learner: Learner, x: Tensor, t: Tensor | None) -> Tensor | None:
        model = learner.model
        features, heads = part(model, "features", nn.Module), part(model, "task_heads", nn.ModuleDict)
        classifier = part(model, "classifier", nn.Linear)

        def head(xs: Tensor, task: int | None) -> Tensor:
            feats = features(xs)  # [B, hidden]
            key = str(task)
            return widened(heads[key](feats) if key in heads else classifier(feats), learner)

        with reading_features(model, "MultiHead"):
            return route(x, t, head)  # the learner masks a forward hook's logits to the task
