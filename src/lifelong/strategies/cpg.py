"""CPG: Compacting, Picking and Growing for unforgetting continual learning.

Hung et al. (2019), "Compacting, Picking and Growing for Unforgetting Continual Learning".
A task trains the free weights of an MLP and, through a real-valued mask thresholded to
binary (straight-through gradient), *picks* which frozen weights of earlier tasks help it.
Then its weights are *compacted*: the smallest ``prune`` fraction is released (as in PackNet)
and the rest frozen. The hidden layers *grow* by ``grow_units`` when the free fraction of
weights falls under ``min_free`` before a task, or when the task's training accuracy stays
under ``target_accuracy`` after compaction (then the new units are trained and compacted).
Simplified: one-shot instead of gradual pruning; one mask per task over weights (not biases).
As the authors' code, biases are not pruned nor frozen: each task trains them and keeps its own
copy (``biases_``), and each task's classifier is its own: with one shared head, the rows of a
task's own classes belong whole to it and other classes' rows stay free (rows several tasks share
are compacted as shared weights). Against their code, also: the picking masks are trained by the
learner's optimizer (their own Adam at 5e-4 without weight decay there), growth adds
``grow_units`` after compaction (theirs widens by half and retrains the task), and the pruning
ratio is fixed (theirs the largest keeping the task's accuracy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from lifelong.data.dataset import Dataset
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy
from lifelong.strategies._arch import grow_hidden, linear_forward, mlp_linears, part, route
from lifelong.strategies._masks import FrozenEntries, accuracy, compact, padded, retrain, task_rows

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class CPG(Strategy):
    """Prune-and-freeze with picking masks (``model.cpg_picks``) and hidden-layer growth; MLP only.

    State: ``owner_[name]`` (0 free, ``k`` kept by the ``k``-th task; biases stay 0), ``picks_[k - 1][name]``
    (bool: old weights task ``k`` uses), ``biases_[k - 1][name]`` (task ``k``'s biases), ``sizes_``
    (hidden sizes now) and ``task_sizes_`` (hidden sizes each task was learned with: its inference
    uses exactly those slices).
    """

    name = "cpg"
    owns = frozenset({"parameters"})
    grows_layers = True
    supports = frozenset({"task"})
    needs = frozenset({"task_labels"})

    def __init__(self, prune: float = 0.5, finetune_epochs: int = 1, threshold: float = 5e-3,
                 init_pick: float = 1e-2, target_accuracy: float = 0.9, min_free: float = 0.1,
                 grow_units: int = 8, max_grow: int = 1) -> None:  # fmt: skip
        check_param(self, "prune", prune, low=0, high=1, high_open=True)
        check_param(self, "finetune_epochs", finetune_epochs, int, low=0)
        check_param(self, "threshold", threshold, low=0)
        check_param(self, "init_pick", init_pick)
        check_param(self, "target_accuracy", target_accuracy, low=0)
        check_param(self, "min_free", min_free, low=0, high=1)
        check_param(self, "grow_units", grow_units, int, low=1)
        check_param(self, "max_grow", max_grow, int, low=0)
        self.prune, self.finetune_epochs, self.threshold = prune, finetune_epochs, threshold
        self.init_pick, self.target_accuracy, self.min_free = init_pick, target_accuracy, min_free
        self.grow_units, self.max_grow = grow_units, max_grow
        self.owner_: dict[str, Tensor] = {}
        self.picks_: list[dict[str, Tensor]] = []
        self.biases_: list[dict[str, Tensor]] = []  # per task, every layer's bias as the task left it
        self.tasks_: list[int] = []
        self.sizes_: list[int] = []
        self.task_sizes_: list[list[int]] = []
        self._frozen = FrozenEntries()

    def _layers(self, learner: Learner) -> list[tuple[str, nn.Linear]]:
        names = {id(m): n for n, m in learner.model.named_modules()}
        return [(names[id(m)], m) for m in mlp_linears(learner.model, "CPG")]

    def attach(self, learner: Learner) -> None:
        grow_hidden(learner.model, "CPG", self.sizes_, zero_new_inputs=True)
        old = getattr(learner.model, "cpg_picks", {})
        picks = nn.ParameterDict()  # real-valued masks of the task being learned, [out, in] per layer
        for name, lin in self._layers(learner):  # owner maps and masks padded after growth
            for n, p in ((f"{name}.weight", lin.weight), (f"{name}.bias", lin.bias)):
                self.owner_[n] = padded(self.owner_.get(n), p.shape, torch.int16)
            m = old[_key(name)].detach().cpu() if _key(name) in old else None
            w = lin.weight
            picks[_key(name)] = padded(m, w.shape, w.dtype, self.init_pick).to(w.device)
        learner.model.cpg_picks = picks
        self._frozen.set({n: o != 0 for n, o in self.owner_.items()})
        learner.reset_optimizer()

    def _grow(self, learner: Learner) -> None:
        self.sizes_ = [lin.out_features + self.grow_units for _, lin in self._layers(learner)[:-1]]
        self.attach(learner)

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        free = sum(int((o == 0).sum()) for n, o in self.owner_.items() if n.endswith("weight"))
        total = sum(o.numel() for n, o in self.owner_.items() if n.endswith("weight"))
        if self.tasks_ and free < self.min_free * total:
            self._grow(learner)  # not enough free capacity left for a new task
        learner.model.cpg_picks = nn.ParameterDict()  # a fresh picking mask for the new task
        self.attach(learner)

    def after_backward(self, learner: Learner) -> None:
        self._frozen.after_backward(learner)

    def after_step(self, learner: Learner) -> None:
        self._frozen.after_step(learner)

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        k, data = len(self.tasks_) + 1, experience.train
        for round_ in range(self.max_grow + 1):
            self._compact(learner, k, data, experience)
            if round_ == self.max_grow or not len(data) or accuracy(learner, data) >= self.target_accuracy:
                break
            self._grow(learner)  # the goal is not met: new units, trained with the task's weights
            self._frozen.set({n: (o != 0) & (o != k) for n, o in self.owner_.items()})
            learner.reset_optimizer()
            retrain(learner, data, max(self.finetune_epochs, 1))
        picks = {
            f"{n}.weight": _picks(learner.model)[_key(n)].detach().cpu() > self.threshold
            for n, _ in self._layers(learner)
        }
        self.picks_.append({n: m & (self.owner_[n] > 0) & (self.owner_[n] < k) for n, m in picks.items()})
        self.biases_.append(
            {f"{n}.bias": lin.bias.detach().cpu().clone() for n, lin in self._layers(learner)}
        )
        self.task_sizes_.append([lin.out_features for _, lin in self._layers(learner)[:-1]])
        self.tasks_.append(experience.task_id)

    def _compact(self, learner: Learner, k: int, data: Dataset, experience: Experience) -> None:
        """Keep the largest free weights for task ``k``, release the rest (zero), fine-tune the kept;
        the head only in the task's rows (its own kept whole); biases are the task's own copy."""
        params = dict(learner.model.named_parameters())
        head = f"{self._layers(learner)[-1][0]}.weight"
        rows = task_rows(learner, experience, self.owner_[head])
        for n, owner in self.owner_.items():
            if not n.endswith(".bias"):
                compact(params[n], owner, self.prune, k, rows if n == head else None)
        self._frozen.set(
            {n: (o != k) & (o != 0) if n.endswith(".bias") else o != k for n, o in self.owner_.items()}
        )
        learner.reset_optimizer()
        retrain(learner, data, self.finetune_epochs)

    def forward(self, learner: Learner, x: Tensor, t: Tensor | None) -> Tensor | None:
        if learner.experience is None and not self.tasks_:
            return None
        experience = learner.experience
        training = experience is not None and learner.model.training
        current = experience.task_id if experience is not None and training else None

        def run(xs: Tensor, task: int | None) -> Tensor:
            if training and task == current:
                return linear_forward(xs, self._training_weights(learner))
            if task not in self.tasks_:
                return learner.model(xs)
            return linear_forward(
                xs, self._task_weights(learner, len(self.tasks_) - self.tasks_[::-1].index(task))
            )

        return route(x, t, run)  # the learner masks a forward hook's logits to the task

    def _training_weights(self, learner: Learner) -> list[tuple[Tensor, Tensor]]:
        """Free weights and the task's own as they are; older ones times the picked binary mask."""
        k = len(self.tasks_) + 1
        out: list[tuple[Tensor, Tensor]] = []
        for name, lin in self._layers(learner):
            m = _picks(learner.model)[_key(name)]
            pick = (m > self.threshold).to(m.dtype) + (m - m.detach())  # binary forward, identity gradient
            o = self.owner_[f"{name}.weight"].to(m.device)
            out.append((lin.weight * torch.where((o == 0) | (o == k), torch.ones_like(m), pick), lin.bias))
        return out

    def _task_weights(self, learner: Learner, k: int) -> list[tuple[Tensor, Tensor]]:
        """Task ``k``'s network: its own weights plus its picks, sliced to the sizes it was learned with."""
        layers, sizes = self._layers(learner), self.task_sizes_[k - 1]
        out = []
        for i, (name, lin) in enumerate(layers):
            rows = sizes[i] if i < len(sizes) else lin.out_features
            cols = sizes[i - 1] if i > 0 else lin.in_features
            o = self.owner_[f"{name}.weight"][:rows, :cols]
            keep = (o == k) | self.picks_[k - 1][f"{name}.weight"]
            w = lin.weight[:rows, :cols] * keep.to(lin.weight.device)
            out.append((w, self.biases_[k - 1][f"{name}.bias"][:rows].to(lin.bias.device)))
        return out

    def memory_bytes(self) -> int:
        tensors = [*self.owner_.values(), *(p for d in (*self.picks_, *self.biases_) for p in d.values())]
        return sum(t.numel() * t.element_size() for t in tensors)


def _key(name: str) -> str:
    """A module path as a ParameterDict key (no dots)."""
    return name.replace(".", "_")


def _picks(model: nn.Module) -> nn.ParameterDict:
    """The current task's picking masks that ``CPG`` put on the model, one per layer's weight."""
    return part(model, "cpg_picks", nn.ParameterDict)
