"""Bottleneck adapters (and input prompts) on a frozen backbone.

Houlsby et al. (2019), "Parameter-Efficient Transfer Learning for NLP": after each hidden
activation a residual ``h + up(relu(down(h)))``. A new adapter starts as the identity: ``up``
is initialised to zero (as adapter-hub's ``mam_adapter`` and LoRA do; Houlsby's code draws both
projections from a normal of std 1e-3, a near-identity start, and uses GELU where this uses the
ReLU of the MLP and CNN it is inserted into). The backbone (``model.features``, optionally the
classifier) is frozen, its batch-norm statistics included (they are used, not updated, while
adapters train); with ``per_experience=True`` each experience trains its own adapters and task
ids choose them at inference (without task ids the newest set is used). Optional prompts are
learnable vectors added to the backbone's input (a minimal form of prompt tuning).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from lifelong.errors import StrategyMismatchError
from lifelong.learn.models import reading_features
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy
from lifelong.strategies._arch import layers_outside, part, route
from lifelong.strategies._masks import FrozenEntries

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


#: the layers whose output channels an adapter reads (dim 1), and whose input a prompt is added to
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class Bottleneck(nn.Module):
    """``h + up(relu(down(h)))`` over the channel dimension (dim 1) of ``h``."""

    def __init__(self, dim: int, bottleneck: int) -> None:
        super().__init__()
        self.down, self.up = nn.Linear(dim, bottleneck), nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        z = h.movedim(1, -1)  # [B, ..., C]: channels last
        return h + self.up(torch.relu(self.down(z))).movedim(-1, 1)


class Adapters(Strategy):
    """Adapters after every hidden ReLU of ``model.features``; ``remove()`` restores the backbone.

    Parameters
    ----------
    bottleneck : width of each adapter.
    per_experience : a new adapter set per experience (earlier sets frozen) or one shared set.
    prompt : also learn a vector added to the input of the first Linear/Conv layer.
    freeze_classifier : freeze ``model.classifier`` too; otherwise it trains, with the rows of
        earlier tasks' classes held fixed when task ids are given.
    tune_first : train the backbone during the first experience (when it is not pretrained).
    enabled : False leaves the model exactly as it is.
    """

    name = "adapters"
    float32_only = True
    owns = frozenset({"parameters"})

    def __init__(self, bottleneck: int = 16, per_experience: bool = True, prompt: bool = False,
                 freeze_classifier: bool = False, tune_first: bool = False, enabled: bool = True) -> None:  # fmt: skip
        check_param(self, "bottleneck", bottleneck, int, low=1)
        flags = {"per_experience": per_experience, "prompt": prompt, "freeze_classifier": freeze_classifier,
                 "tune_first": tune_first, "enabled": enabled}  # fmt: skip
        for flag, value in flags.items():
            check_param(self, flag, value, bool)
        self.bottleneck, self.per_experience, self.prompt = bottleneck, per_experience, prompt
        self.freeze_classifier, self.tune_first, self.enabled = freeze_classifier, tune_first, enabled
        self.sets_: list[int] = []  # task id of each adapter set, in order
        self._frozen = FrozenEntries()

    def _slots(self, model: nn.Module) -> tuple[list[tuple[int, int]], tuple[int, tuple[int, ...]]]:
        """(features index, width) after each ReLU, and (index, shape) of the prompt."""
        slots: list[tuple[int, int]] = []
        width = 0
        prompt_at: tuple[int, tuple[int, ...]] | None = None
        for i, m in enumerate(part(model, "features", nn.Sequential)):
            if isinstance(m, nn.Linear):
                prompt_at = prompt_at or (i, (m.in_features,))
                width = m.out_features
            elif isinstance(m, CONVS):  # a signal's Conv1d as an image's Conv2d: channels on dim 1
                prompt_at = prompt_at or (i, (m.in_channels,) + (1,) * (m.weight.dim() - 2))
                width = m.out_channels
            elif isinstance(m, nn.ReLU):
                if width == 0:  # an adapter of width 0 failed at the first step, blaming the layout
                    raise StrategyMismatchError(
                        f"Adapters: the ReLU at features[{i}] follows no Linear or Conv1d/2d/3d layer, so the "
                        "width of an adapter there is unknown; give the backbone one before it"
                    )
                slots.append((i, width))
        return slots, prompt_at or (0, ())

    def attach(self, learner: Learner) -> None:
        if not self.enabled:
            return
        model = learner.model
        # checked when the learner is built, not "was the model changed?" at the first experience
        _check_backbone(model)
        self._slots(model)  # its layers too (bench --dry-run builds every learner)
        if not self.sets_:  # the backbone is frozen once the first set exists
            return
        slots, (_, shape) = self._slots(model)
        if not hasattr(model, "adapters"):
            model.adapters = nn.ModuleList()
            model.prompts = nn.ParameterList()
        adapters, prompts = _adapters(model), _prompts(model)
        device = next(model.parameters()).device
        while len(adapters) < len(self.sets_):
            adapters.append(nn.ModuleList(Bottleneck(w, self.bottleneck) for _, w in slots).to(device))
            if self.prompt:
                prompts.append(torch.zeros(shape, device=device))
        part(model, "features", nn.Sequential).requires_grad_(self._tunes_backbone(learner))
        part(model, "classifier", nn.Linear).requires_grad_(not self.freeze_classifier)
        per_set: list[Tensor | None] = [*prompts] or [None] * len(adapters)
        for i, (a, p) in enumerate(zip(adapters, per_set)):
            a.requires_grad_(i == len(adapters) - 1)
            if p is not None:
                p.requires_grad_(i == len(adapters) - 1)
        learner.reset_optimizer()

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        if self.enabled and (
            not self.sets_ or (self.per_experience and self.sets_[-1] != experience.task_id)
        ):
            self.sets_.append(experience.task_id)
        self.attach(learner)
        classifier = part(learner.model, "classifier", nn.Linear)
        old = torch.zeros(classifier.out_features, dtype=torch.bool)
        for task, cls in learner.task_classes.items():
            if task != experience.task_id and self.per_experience:
                old[list(cls)] = True  # rows only earlier tasks use: their outputs must not move
        w, b = classifier.weight, classifier.bias
        names = {id(p): n for n, p in learner.model.named_parameters()}
        masks = {names[id(w)]: old[:, None].expand_as(w).clone()}
        if b is not None:  # a classifier built with bias=False has only its weights to hold
            masks[names[id(b)]] = old
        self._frozen.set(masks)

    def after_backward(self, learner: Learner) -> None:
        self._frozen.after_backward(learner)

    def after_step(self, learner: Learner) -> None:
        self._frozen.after_step(learner)

    def forward(self, learner: Learner, x: Tensor, t: Tensor | None) -> Tensor | None:
        if not self.enabled or not self.sets_:
            return None
        model = learner.model
        slots, (prompt_at, _) = self._slots(model)
        after = {i: k for k, (i, _) in enumerate(slots)}
        features, classifier = part(model, "features", nn.Sequential), part(model, "classifier", nn.Linear)
        adapters, prompts = _adapters(model), _prompts(model)

        # a frozen backbone's normalisation statistics stay frozen too: in train mode a BatchNorm
        # would keep updating them, changing the backbone under every earlier adapter set
        frozen_norms = [] if self._tunes_backbone(learner) else _training_norms(features)

        def adapted(xs: Tensor, task: int | None) -> Tensor:
            s = (
                len(self.sets_) - 1 - self.sets_[::-1].index(task)
                if task in self.sets_
                else len(self.sets_) - 1
            )
            h = xs
            for i, m in enumerate(features):
                if i == prompt_at and self.prompt:
                    h = h + prompts[s]
                h = m(h)
                if i in after:
                    h = part(adapters[s], str(after[i]), Bottleneck)(h)
            return classifier(h)

        with reading_features(model, "Adapters"):
            for norm in frozen_norms:
                norm.eval()
            try:
                return route(x, t, adapted)  # the learner masks a forward hook's logits to the task
            finally:
                for norm in frozen_norms:
                    norm.train()

    def _tunes_backbone(self, learner: Learner) -> bool:
        return self.tune_first and learner.experience_index <= 0

    def remove(self, learner: Learner) -> None:
        """Delete every adapter and prompt; the backbone is back exactly as it was, and trainable."""
        for attr in ("adapters", "prompts"):
            if hasattr(learner.model, attr):
                delattr(learner.model, attr)
        self.sets_, self.enabled = [], False
        self._frozen.set({})
        learner.model.requires_grad_(True)
        learner.reset_optimizer()


def _check_backbone(model: nn.Module) -> None:
    """Adapters compute ``classifier(features(x))`` layer by layer: refuse a model they cannot."""
    feats, clf = getattr(model, "features", None), getattr(model, "classifier", None)
    outside = layers_outside(model, ("adapters", "prompts"))
    if not isinstance(feats, nn.Sequential) or not isinstance(clf, nn.Linear) or outside:
        extra = (
            f"; it has layers outside them: {', '.join(outside)} (move them into .features)"
            if outside
            else ""
        )
        raise StrategyMismatchError(
            f"Adapters inserts bottlenecks between the layers of model.features and computes "
            f"classifier(features(x)) itself, so it needs an nn.Sequential .features and a Linear .classifier "
            f"holding every layer (lifelong.learn.models.MLP or CNN); got {type(model).__name__}{extra}"
        )


def _training_norms(features: nn.Module) -> list[nn.Module]:
    """The batch-norm layers of ``features`` in train mode (they would update running statistics)."""
    return [m for m in features.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]


def _adapters(model: nn.Module) -> nn.ModuleList:
    """The adapter sets ``Adapters.attach`` put on the model: per set, a ``ModuleList`` of Bottlenecks."""
    return part(model, "adapters", nn.ModuleList)


def _prompts(model: nn.Module) -> nn.ParameterList:
    """The input prompts ``Adapters.attach`` put on the model, one per adapter set (when ``prompt``)."""
    return part(model, "prompts", nn.ParameterList)
