"""The Learner: one model, a list of strategies, and the training loop they plug into.

The same object serves both paths of the project: ``fit`` walks a benchmark scenario,
experience by experience; ``partial_fit`` + ``consolidate`` let a production system decide
where one experience ends (the boundary at which strategies consolidate).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import math
import operator
import os
import time
import warnings
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NoReturn

import numpy as np
import torch
import torch.nn.functional as F
import torch.optim.optimizer as _optimizer_module
from torch import Tensor, nn

from lifelong.data.dataset import MAX_LABEL_GAP, Batch, Dataset, class_ids, concat, tensor_of
from lifelong.data.files import check_columns, frame_columns, in_column_order
from lifelong.data.scenarios import Experience, Scenario, TaskFreeStream
from lifelong.errors import CheckpointError, ConfigError, DataError, LifelongError, StrategyMismatchError
from lifelong.learn import checkpoint, distributed, heads, tokens
from lifelong.learn.callbacks import Callback, Control, LoopState
from lifelong.learn.devices import resolve_device
from lifelong.learn.models import (
    HOW_TO_REGISTER,
    build,
    first_line,
    has_batch_norm,
    is_shape_error,
    n_parameters,
    shape_error,
    spec_input_shape,
)
from lifelong.learn.params import check_param, refuse_unknown_params
from lifelong.learn.strategy import (
    HOOKS,
    REGISTRY,
    STEP_HOOKS,
    Strategy,
    checkpoint_entry,
    get_strategy,
    overrides,
)
from lifelong.metrics.accuracy import fraction_correct
from lifelong.metrics.costs import peak_rss_mb, reset_peak_rss
from lifelong.metrics.result import Result

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
#: the default rate of an adaptive optimizer, which steps per unit gradient and diverges at SGD's rates
ADAPTIVE_LR = 1e-3
CALLBACK_HOOKS = (
    "on_experience_start", "on_step_end", "on_epoch_end", "on_experience_end", "on_evaluate", "on_fit_end",
)  # fmt: skip


#: the strategies a learner was built with: their learned state belongs to that learner's model
_OWNERS: weakref.WeakSet[Strategy] = weakref.WeakSet()


def _refuse_lazy(model: nn.Module) -> None:
    """A lazy module's parameters do not exist until its first forward: the optimizer, the
    strategies' importances and the checkpoint would all be built on placeholders."""
    lazy = sorted({type(m).__name__ for m in model.modules() if isinstance(m, nn.modules.lazy.LazyModuleMixin)
                   and m.has_uninitialized_params()})  # fmt: skip
    if lazy:
        raise ConfigError(
            f"the model has uninitialised lazy parameters ({', '.join(lazy)}): run one forward pass on a "
            "batch of your inputs (model(x[:1])) before passing it to Learner"
        )


class Learner:
    """Train ``model`` on a stream with ``strategies`` (a list: hybrids are lists).

    Parameters
    ----------
    model : the network; its output is one logit per class.
    strategies : methods whose hooks run in list order at each moment of the loop.
    optimizer, lr, momentum, weight_decay : the optimizer (``sgd``, ``adam`` or ``adamw``).
    batch_size, epochs : mini-batch size and passes over each experience.
    device : where to train (default CPU); one this machine lacks is a ConfigError here, not at the
        first step. Every option is checked when the learner is built.
    seed : seeds the learner's generator, which drives shuffling and every strategy's sampling.
        Weights come from torch's global generator, as torch modules draw them: the model's, and
        those a strategy adds (PNN columns, HAT embeddings, heads, adapters, DEN units, GDumb's
        reset). Call ``torch.manual_seed`` before building the model for a run that repeats exactly.
    callbacks : non-essential work (progress, timing, early stopping), run in list order.
    allow_new_classes : let ``partial_fit`` and ``learn`` grow the classifier head for labels it
        has no output for (class-incremental learning in production); otherwise such a label is
        refused with a DataError.
    task_free : the data comes as a stream that announces no boundaries (``partial_fit`` and never
        ``consolidate()``, as on River's streams): strategies that act only at boundaries (EWC, LwF,
        A-GEM, GDumb ...) are refused here, and those with a task-free form use it from the first
        step (ER-ACE masks and replays at once instead of fine-tuning until the first boundary).
        ``fit`` on a task-free scenario trains this way whatever the flag.
    process_group : train data-parallel in this torch.distributed group (default: the group
        ``torchrun`` initialised, if any): DistributedDataParallel, one shard of every experience
        per rank, see :mod:`lifelong.learn.distributed`. Strategies with their own ``forward`` are
        refused there (they would bypass DDP).

    Examples
    --------
    >>> from lifelong.checks import toy_scenario, toy_model
    >>> from lifelong.strategies import Replay
    >>> learner = Learner(toy_model(), [Replay(50)], lr=0.1, batch_size=16)
    >>> round(learner.fit(toy_scenario()).metrics["acc"], 1) >= 0.5
    True
    """

    @functools.partial(refuse_unknown_params, owner="Learner")
    def __init__(
        self,
        model: nn.Module,
        strategies: Strategy | Sequence[Strategy] = (),
        *,
        optimizer: str = "sgd",
        lr: float = 0.03,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int = 10,
        epochs: int = 1,
        eval_batch_size: int = 1024,
        device: str | torch.device | None = None,
        seed: int = 0,
        callbacks: Sequence[Callback] = (),
        allow_new_classes: bool = False,
        task_free: bool = False,
        process_group: Any = None,
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: unknown {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        check_param("Learner", "lr", lr, low=0, low_open=True)
        check_param("Learner", "momentum", momentum, low=0)
        check_param("Learner", "weight_decay", weight_decay, low=0)
        for option, value, low in (("batch_size", batch_size, 1), ("epochs", epochs, 0),
                                   ("eval_batch_size", eval_batch_size, 1), ("seed", seed, 0)):  # fmt: skip
            check_param("Learner", option, value, int, low=low)
        lr, momentum, weight_decay = float(lr), float(momentum), float(weight_decay)
        if momentum and optimizer != "sgd":  # Adam's betas play that part; it was silently dropped
            raise ConfigError(
                f"momentum={momentum} applies to optimizer='sgd' only; {optimizer} keeps its own running averages "
                "(betas): drop momentum, or use optimizer='sgd'"
            )
        batch_size, epochs = operator.index(batch_size), operator.index(epochs)
        eval_batch_size, seed = operator.index(eval_batch_size), operator.index(seed)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model: expected a torch nn.Module, got {type(model).__name__}")
        if next(model.parameters(), None) is None:
            raise ConfigError(
                f"model: {type(model).__name__} has no parameters to train; give it layers with weights "
                "(e.g. lifelong.learn.create_model('mlp', in_features=..., n_classes=...))"
            )
        if isinstance(strategies, str):  # iterated, it was refused as "'e' is not a lifelong Strategy"
            strategies = [strategies]  # refused below, as a name
        if isinstance(strategies, Strategy | type):
            strategies = [strategies]  # a class is refused below, by name
        try:
            strategies = list(strategies)
        except TypeError:
            raise ConfigError(
                f"strategies: expected a Strategy or a list of them, got {type(strategies).__name__}"
            ) from None
        for i, s in enumerate(strategies):
            if isinstance(s, type) and issubclass(s, Strategy):
                raise ConfigError(f"strategies: {s.__name__} is a class; pass an instance: {s.__name__}()")
            if isinstance(s, str):
                raise ConfigError(
                    f"strategies: {s!r} is a name; pass strategy objects, e.g. "
                    f"lifelong.strategies.REGISTRY[{s!r}]() or lifelong.strategies.tuned({s!r}).strategy"
                )
            if not isinstance(s, Strategy):
                raise ConfigError(f"strategies: {s!r} is not a lifelong Strategy")
            if any(s is other for other in strategies[:i]):
                raise ConfigError(f"strategies: {s!r} is listed twice; list each method once")
            if s in _OWNERS:
                raise ConfigError(
                    f"strategies: {s!r} already belongs to another Learner, and keeps what it learned there "
                    "(anchors, memory, masks of that model); give this one its own: strategy.clone() or a new "
                    f"{type(s).__name__}(...)"
                )
        self.optimizer_name, self.lr, self.momentum, self.weight_decay = optimizer, lr, momentum, weight_decay
        self.batch_size, self.epochs, self.eval_batch_size, self.seed = (
            batch_size,
            epochs,
            eval_batch_size,
            seed,
        )
        self.allow_new_classes = allow_new_classes
        self.device = _device(device)
        self.strategies: list[Strategy] = list(strategies)
        self.callbacks: list[Callback] = list(callbacks)
        _refuse_lazy(model)
        self.model = model.to(self.device)
        if not allow_new_classes and self.n_outputs == 1:  # was refused at the first labels, after set-up
            raise ConfigError(
                "model: its head has one output, and lifelong learns classifiers (cross-entropy over one "
                "output per class): give it an output per class (two for a binary task), or "
                "allow_new_classes=True for a first class whose head grows at the next; a numeric target "
                "(regression) is not supported"
            )
        has_embedding = tokens.accept_token_ids(model)  # inputs travel as floats; embeddings take int64 ids
        self._has_embedding = has_embedding  # a model with one is not told to standardise its inputs
        self._ids_dtype = tokens.carrier_dtype(model)  # None unless the inputs are token ids
        if has_embedding and self._ids_dtype is None:
            first = next(
                (type(m).__name__ for m in model.modules() if next(m.parameters(False), None) is not None),
                "?",
            )
            warnings.warn(
                f"the model has an embedding, but the first layer it declares with parameters is a {first}, so "
                "inputs are taken as features, not token ids: if the embedding takes the inputs, declare it "
                "first in __init__ (ids are then checked against its size and carried exactly, in any dtype)",
                UserWarning,
                stacklevel=3,  # past the parameter-checking wrapper
            )
        self.process_group = distributed.resolve_group(process_group)
        self.rank, self.world_size = distributed.rank_and_size(self.process_group)
        # ranks shuffle and draw replay batches from different streams
        self.generator = torch.Generator().manual_seed(seed + self.rank)
        self.base_parameters = n_parameters(model)
        # bookkeeping, kept once here and read by strategies through properties
        self._experience: Experience | None = None
        self._learning: int | None = None  # the experience learn() is training, until its boundary work ends
        # fit's results so far, saved by a checkpoint taken from on_evaluate; a loaded one resumes the fit
        self._fit_progress: dict[str, Any] | None = None
        self._online: list[Any] | None = None  # [right (a tensor: no sync per step), seen] in a task-free fit
        self._resume_fit: dict[str, Any] | None = None
        self._experience_count = 0
        self._classes_seen: set[int] = set()
        self._task_classes: dict[int, set[int]] = {}
        self._step_checked = False  # an undeclared train_step owner beside other step hooks: checked once
        self._task_mask: tuple[Tensor, Tensor] | None = None  # (sorted task ids, their rows)
        self._warned_no_task = False  # predict without t after training with task ids: said once
        # task -> classes its scenario declares, for tasks not trained yet, while they are evaluated
        self._announced_tasks: dict[int, set[int]] = {}
        self._step = 0
        self._window: list[Batch] = []
        self._input_shape: tuple[int, ...] | None = None  # of one sample, from the first training data
        self._largest_input = 0.0  # the largest |x| trained on (after scaling): advice when training diverges
        # the columns of the first training frame (scikit-learn's feature_names_in_): later frames are
        # matched by name, and a deployment of this learner takes inputs by name
        self.feature_names: tuple[str, ...] | None = None
        self._output_checked = False  # the model's first output is checked to be logits, then never again
        self.incoming: Batch | None = None  # the batch being trained on, during a step (None between steps)
        check_param("Learner", "task_free", task_free, bool)
        self.task_free = task_free  # training a task-free stream: no boundary will be announced
        self._warned_boundaries = False  # partial_fit's note on strategies that wait for consolidate()
        self._warned_diverged = False  # partial_fit says once that training diverged (fit says it per run)
        self._warned_scale = False  # the advice to standardise inputs far from unit scale, given once
        # the experiences fit() is training through (Joint reads them); None outside fit
        self.stream: list[Experience] | None = None
        self._incoming_rows: tuple[Batch, Tensor] | None = None  # (batch, its rows of data.x)
        self.train_seconds = 0.0
        self.boundary_seconds = 0.0  # consolidation work, also counted in train_seconds
        self._loss_total = torch.zeros((), dtype=torch.float64, device=self.device)  # non-finite: diverged
        self._loss_max = torch.zeros((), dtype=torch.float64, device=self.device)  # > DIVERGED_LOSS: diverged
        self._losses: list[Tensor] = []  # detached step losses not yet summed into _loss_total
        self.epochs_trained = 0
        self.samples_trained = 0
        self.state = LoopState(rank=self.rank)
        self.control = Control()
        self._index_hooks()
        self._check_ownership()
        if task_free:
            self.check_supported("task-free")
        if self.world_size > 1:
            distributed.check_strategies(self.strategies)
        self.reset_optimizer()
        float32_only = [type(s).__name__ for s in self.strategies if s.float32_only]
        if float32_only and self._model_dtype != torch.float32:
            raise ConfigError(
                f"the model's parameters are {self._model_dtype}, and {' and '.join(float32_only)} computes in "
                "float32 (its own importances, projections or layers); convert the model with model.float()"
            )
        for s in self._hooks["attach"]:
            s.attach(self)
        # after attach: DDP registers the parameters that train (NCM freezes its feature extractor)
        self._train_net = distributed.wrap(self.model, self.process_group, self.device)  # DDP or the model
        distributed.split_memories(self)  # this rank's share of every memory's capacity
        _OWNERS.update(self.strategies)  # built: a refused learner leaves its strategies free for the next

    # -- read-only bookkeeping ----------------------------------------------------------
    @property
    def experience(self) -> Experience | None:
        """The experience being learned, or None between boundaries."""
        return self._experience

    @property
    def experience_index(self) -> int:
        """Index of the current (or last) experience; -1 before the first."""
        return self._experience_count - 1

    @property
    def classes_seen(self) -> tuple[int, ...]:
        return tuple(sorted(self._classes_seen))

    @property
    def task_classes(self) -> dict[int, tuple[int, ...]]:
        return {t: tuple(sorted(c)) for t, c in self._task_classes.items()}

    @property
    def diverged(self) -> bool:
        """Whether a training loss was non-finite (NaN or inf), or beyond ``DIVERGED_LOSS``, since the
        last ``fit`` began. The second catches a run that blew up without overflowing: a penalty's
        gradient step past its stable range grows the weights by orders of magnitude each step (EWC at
        lr * lam * F > 2: losses of 6e19 in float32, finite, and a model answering one class)."""
        self._sum_losses()
        return not bool(torch.isfinite(self._loss_total)) or float(self._loss_max) > DIVERGED_LOSS

    def divergence_hint(self) -> str:
        """What a diverged run says to change: the strategies' own advice, else a smaller lr."""
        hints = [h for s in self.strategies if (h := s.divergence_hint()) is not None]
        own = [  # a user's loss or penalty on task-masked logits: inf from the first step, whatever the lr
            type(s).__name__
            for s in self.strategies
            if not type(s).__module__.startswith("lifelong.")
            and s in {*self._hooks["loss"], *self._hooks["penalty"]}
        ]
        if own and self._task_classes:
            hints.insert(0, f"with task ids the logits given to {', '.join(own)}'s loss or penalty are -inf outside "
                            "each sample's task: keep its terms to the finite ones (logits.isfinite()), as DER does")  # fmt: skip
        if self._largest_input > LARGE_INPUT:  # no lr fixes inputs of 1e5: the first step overshoots
            hints.insert(0, f"standardise the features (inputs reach |x| = {self._largest_input:.3g}; e.g. "
                            "sklearn's StandardScaler, or --standardize in lifelong up and simulate)")  # fmt: skip
        return "; ".join(hints) if hints else f"lower lr (now {self.lr:g}) or the strategies' strengths"

    def _one_class_hint(self) -> str:
        """Why a model may answer one class: a step too large (momentum multiplies it), or too little
        training (a hard rule after one short pass)."""
        step = f"lr={self.lr:g}"
        if self.momentum:  # heavy-ball SGD moves lr / (1 - momentum) per step once up to speed
            step += (
                f" with momentum={self.momentum:g}, an effective step of {self.lr / (1 - self.momentum):.3g}"
            )
        return (
            f"the usual causes are a step too large ({step}; lower lr) or too little training (more epochs)"
        )

    def _sum_losses(self) -> None:
        """Fold the pending step losses into ``_loss_total`` and ``_loss_max``: no host sync."""
        if self._losses:
            losses = torch.stack(self._losses).to(torch.float64)
            self._loss_total.add_(losses.sum())
            torch.maximum(self._loss_max, losses.max(), out=self._loss_max)
            self._losses = []

    @property
    def incoming_raw(self) -> Tensor | None:
        """The incoming batch's inputs in storage form (uint8 images), or None when not known.

        Memories store these rows as they are instead of re-quantising the float batch.
        """
        rows = self._incoming_rows
        if (
            rows is None or rows[0] is not self.incoming
        ):  # a step driven from elsewhere (retrain, partial_fit)
            return None
        return rows[1]

    @property
    def step(self) -> int:
        """Optimizer steps taken so far, across experiences."""
        return self._step

    # -- set-up ---------------------------------------------------------------------------
    def add_callback(self, callback: Callback) -> None:
        """Run ``callback`` too, after those given at construction (e.g. a stop request of a worker)."""
        self.callbacks.append(callback)
        self._index_hooks()

    def _index_hooks(self) -> None:
        """Only overridden hooks are called, so an unused moment costs nothing per step."""
        self._hooks = {h: [s for s in self.strategies if overrides(s, h)] for h in HOOKS}
        self._keep_window = any(s.reads_window for s in self._hooks["after_experience"])
        self._cb_hooks = {
            h: [c for c in self.callbacks if getattr(type(c), h) is not getattr(Callback, h)]
            for h in CALLBACK_HOOKS
        }

    def _check_ownership(self) -> None:
        """Refuse, before any training, two strategies that take over one thing (``Strategy.owns``)."""
        for role, what in (("step", "training step"), ("parameters", "parameters per task")):
            owners = [type(s).__name__ for s in self.strategies if role in s.owns]
            if len(owners) > 1:
                raise StrategyMismatchError(
                    f"{' and '.join(owners)} each take over the model's {what}; use one of them"
                )
        grower = next((type(s).__name__ for s in self.strategies if s.grows_layers), None)
        anchored = [type(s).__name__ for s in self.strategies if s.anchors]
        if grower and anchored:
            raise StrategyMismatchError(
                f"{grower} widens the model's hidden layers, so {' and '.join(anchored)}'s per-parameter "
                f"anchors would no longer fit them; use {grower} alone (it protects old tasks' weights "
                "itself) or the regularizer with a method that keeps layer sizes (HAT, PackNet, PNN)"
            )
        teachers = [type(s).__name__ for s in self.strategies if s.keeps_teacher]
        if grower and teachers:  # was a raw size-mismatch RuntimeError after the first widening
            raise StrategyMismatchError(
                f"{grower} widens the model's hidden layers, so the copy of the model {' and '.join(teachers)} "
                f"keeps from the last boundary would no longer fit it; use {grower} alone, or "
                f"{' and '.join(teachers)} with a method that keeps layer sizes (HAT, PackNet, PNN)"
            )
        step = next((s for s in self.strategies if "step" in s.owns), None)
        if step is None:
            return
        idle: dict[str, list[str]] = {}  # strategy -> its hooks the step owner never calls
        for hook in STEP_HOOKS:
            for s in self._hooks[hook]:
                if s is not step:
                    idle.setdefault(type(s).__name__, []).append(hook)
        if idle:
            which = "; ".join(f"{name}'s {', '.join(hooks)}" for name, hooks in idle.items())
            raise StrategyMismatchError(
                f"{type(step).__name__} trains with its own step, so {which} would never run; "
                f"use {type(step).__name__} alone (or the other method without it)"
            )

    def reset_optimizer(self) -> None:
        """Build a fresh optimizer over the model's trainable parameters (after the model grew)."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        self._dtype_param = next(self.model.parameters(), None)  # model.double() converts it in place
        if not params:
            raise ConfigError(
                f"model: none of {type(self.model).__name__}'s parameters trains (every one has "
                "requires_grad=False); unfreeze the ones to learn: module.requires_grad_(True)"
            )
        kwargs: dict[str, Any] = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.optimizer_name == "sgd":
            kwargs["momentum"] = self.momentum
        self.optimizer = OPTIMIZERS[self.optimizer_name](params, **kwargs)
        if self.process_group is not None and hasattr(self, "_train_net"):
            # the model grew or was reset (every rank alike): DDP must know the new parameters, and
            # wrapping again broadcasts rank 0's, so freshly initialised ones agree across ranks
            self._train_net = distributed.wrap(self.model, self.process_group, self.device)

    def check_scenario(
        self, stream: Scenario | TaskFreeStream | Iterable[Experience]
    ) -> tuple[list[Experience], str]:
        """Refuse, before any training, a stream these strategies cannot learn (its kind, task labels,
        what each strategy checks of the whole stream); its experiences and kind. ``fit`` starts so;
        a grid of learners (``lifelong bench``) calls it for each before any trains."""
        experiences = _experiences(stream, "fit")
        kinds = {e.kind for e in experiences}
        if len(kinds) > 1:
            raise DataError(
                f"fit: the experiences come from scenarios of kinds {sorted(kinds)}; fit one kind at a time"
            )
        kind = stream.kind if isinstance(stream, TaskFreeStream) else kinds.pop()
        if untested := [e.index for e in experiences if len(e.test) == 0]:  # a NaN column, said nowhere
            raise DataError(
                f"fit: experience{'s' * (len(untested) > 1)} {', '.join(map(str, untested))} of the stream "
                f"{'have' if len(untested) > 1 else 'has'} no test samples, and fit evaluates every experience "
                "after each one (the accuracy matrix): give each a test set, or train without evaluating "
                "with learner.learn(experience)"
            )
        self.check_supported(kind, experiences[0].train.t is not None)
        for s in self.strategies:
            s.check_stream(self, experiences)
        return experiences, kind

    def check_supported(self, kind: str | None, has_task_labels: bool = False) -> None:
        """Refuse, before any training, a scenario kind a strategy does not support."""
        for s in self.strategies:
            if kind is not None and kind not in s.supports:
                why = ""
                if kind == "task-free":  # say why, and which would do
                    free = sorted(
                        n for n, c in REGISTRY.items() if "task-free" in c.supports and n != "naive"
                    )
                    why = (f": it acts at experience boundaries, which a task-free stream never announces "
                           f"(methods without boundaries: {', '.join(free)})")  # fmt: skip
                raise StrategyMismatchError(
                    f"{type(s).__name__} does not support {kind} scenarios (it supports "
                    f"{', '.join(sorted(s.supports))}){why}; pick another strategy or scenario"
                )
            if "task_labels" in s.needs and not has_task_labels:
                raise StrategyMismatchError(
                    f"{type(s).__name__} needs task labels; use a task-incremental scenario or pass t"
                )

    # -- the loop ---------------------------------------------------------------------------
    def learn(self, experience: Experience) -> None:
        """Train on one experience, then consolidate (its end is a boundary)."""
        self._learn(experience)

    def _learn(self, experience: Experience, largest: float | None = None) -> None:
        """``learn``; ``largest``: the training set's largest |x| when ``fit`` has checked its values."""
        self.check_supported(experience.kind, experience.train.t is not None)
        if len(experience.train):
            self._check_data(experience.train, "learn", largest)
            train = self._aligned(experience.train, "learn")
            if train is not experience.train:  # its columns in the order the learner knows them by
                experience = dataclasses.replace(experience, train=train)
        if self.world_size > 1:  # this rank's shard; boundary work (importances, exemplars) sees it too
            shard = distributed.shard(experience.train, self.process_group, self.seed + experience.index)
            experience = dataclasses.replace(experience, train=shard)
        with self._in_model_dtype():
            self._begin(experience)
            self._learning = experience.index
            try:
                data = experience.train
                for s in self._hooks["train_data"]:
                    data = s.train_data(self, experience, data)
                if data is not experience.train:
                    self._register(data)  # joint or cumulative data holds classes of other experiences
                self._train_epochs(data)
                self.consolidate()
            finally:
                self._learning = None

    def _batches(self, n: int) -> tuple[list[int], list[int]]:
        """Where each batch of ``n`` samples starts and ends: ``batch_size`` each, except that with batch
        norm a last batch of one sample (which it cannot train on) joins the batch before it."""
        starts = list(range(0, n, self.batch_size))
        if n % self.batch_size == 1 and has_batch_norm(self.model):
            if len(starts) == 1:  # raised before any step: the model and the strategies are unchanged
                raise DataError(
                    "a model with batch norm cannot train on a single sample (its statistics need two); "
                    "send at least 2 samples at a time"
                )
            starts.pop()
        return starts, [*starts[1:], n]

    def _train_epochs(self, data: Dataset) -> None:
        if len(data) == 0:
            return
        starts, ends = self._batches(len(data))
        self.state.steps_in_epoch = len(starts)
        self.state.epochs = self.epochs
        self._callbacks("on_experience_start")
        self.model.train()  # once here, not per step: Module.train() recurses through every submodule
        dtype = self.input_dtype
        start = time.perf_counter()
        self.control.stop_experience = False  # a request made where nothing reads it (partial_fit) is gone
        for epoch in range(self.epochs):
            self.state.epoch = epoch
            order = torch.randperm(len(data), generator=self.generator)
            for i, j in zip(starts, ends):
                index = order[i:j]
                rows = data.x[index]  # gathered once: the batch's inputs and what a memory stores
                x = rows.to(dtype)  # as Dataset.features, without scaling float rows in place
                if data.scale != 1.0:
                    x = x.mul_(data.scale) if x is not rows else x * data.scale
                batch = Batch(x, data.y[index], None if data.t is None else data.t[index])
                self._incoming_rows = (batch, rows)
                self.train_step(batch)
                # in a process group the ranks agree once per epoch (below): not a collective every step
                if self.control.stop_experience and self.world_size == 1:
                    break
            self.epochs_trained += 1
            self._callbacks("on_epoch_end")
            if self._stop_agreed():
                break
        self.train_seconds += time.perf_counter() - start
        self._callbacks("on_experience_end")
        self.control.stop_experience = False

    def _stop_agreed(self) -> bool:
        """Whether a callback asked to end the experience; in a process group, whether any rank's did, so
        all stop at the same epoch's end (ranks decide on their own shard's loss, and a rank that trained
        on alone would pair its gradient all-reduces with the others' next collectives)."""
        if self.world_size > 1:
            self.control.stop_experience = distributed.any_rank(self, self.control.stop_experience)
        return self.control.stop_experience

    def _check_undeclared_step(self, owner: Strategy) -> None:
        """A ``train_step`` that returned a loss took over the step without declaring ``owns`` "step"
        (which the learner checks before training): refuse it if another strategy's step hooks would
        now never run (a hybrid silently reduced to its step owner), once per learner."""
        if self._step_checked:
            return
        idle = [f"{type(s).__name__}'s {h}" for h in STEP_HOOKS for s in self._hooks[h] if s is not owner]
        if idle:
            raise StrategyMismatchError(
                f"{type(owner).__name__}.train_step returned a loss, so it takes over the training step and "
                f"{', '.join(idle)} would never run; declare owns = frozenset({{'step'}}) on it and use it "
                "alone, or return None from train_step so that the learner's own step runs"
            )
        self._step_checked = True

    def _judge_online(self, batch: Batch) -> None:
        """Count the incoming batch's right answers by ``predict_logits`` (a strategy's own prediction
        rule, a method that owns its step), before the step learns from it."""
        assert self._online is not None
        with torch.no_grad():
            answers = self.predict_logits(batch.x, None if batch.t is None else batch.t.to(self.device))
        self._online[0] += (answers.argmax(1) == batch.y.to(self.device)).sum()
        self._online[1] += len(batch.y)

    def train_step(self, batch: Batch) -> Tensor:
        """One optimisation step on ``batch``; strategies act at each named moment (model in train mode)."""
        self.incoming = batch
        self.samples_trained += batch.y.shape[0]
        apart = self._online is not None and bool(self._hooks["predict"] or self._hooks["train_step"])
        if apart:  # judged as it predicts: NCM's nearest means, not the head it trains (0.621 against 0.553)
            self._judge_online(batch)
        for s in self._hooks["train_step"]:  # a method that owns the step (meta-learning)
            loss = s.train_step(self, batch)
            if loss is not None:
                if "step" not in s.owns:
                    self._check_undeclared_step(s)
                return self._after_step(loss)
        for s in self._hooks["batch"]:
            batch = s.batch(self, batch)  # replay appends after the incoming samples
        if self.device.type != "cpu":
            batch = self._to_device(batch)
        logits = self.forward(batch.x, batch.t)  # [B, n_classes]
        if self._online is not None and not apart:  # a task-free fit: each batch judged before its step
            n = len(self.incoming.y)  # the incoming samples come first in the batch
            self._online[0] += (logits[:n].detach().argmax(1) == batch.y[:n]).sum()
            self._online[1] += n
        loss = None
        for s in self._hooks["loss"]:
            loss = s.loss(self, batch, logits)
            if loss is not None:
                _require_scalar(loss, s, "loss")
                break
        if loss is None:
            loss = F.cross_entropy(logits, batch.y)
        for s in self._hooks["penalty"]:
            extra = s.penalty(self, batch, logits)
            if extra is not None:
                _require_scalar(extra, s, "penalty")
                loss = loss + extra
        plain = _plain_sgd(self.optimizer)
        if plain is None:
            self.optimizer.zero_grad(set_to_none=True)
        else:
            for p in plain["params"]:
                p.grad = None
        loss.backward()
        for s in self._hooks["after_backward"]:
            s.after_backward(self)
        if plain is None:
            self.optimizer.step()
        else:
            _sgd_step(plain)
        return self._after_step(loss)

    def _to_device(self, batch: Batch) -> Batch:
        """Copy ``batch`` to the device without blocking the host: from pinned memory on CUDA."""
        pin = self.device.type == "cuda"  # pinned blocks come from torch's caching host allocator

        def move(a: Tensor) -> Tensor:
            return (a.pin_memory() if pin else a).to(self.device, non_blocking=True)

        return Batch(move(batch.x), move(batch.y), None if batch.t is None else move(batch.t))

    def _after_step(self, loss: Tensor) -> Tensor:
        # kept, not added: an append is cheaper than a tensor op per step; summed every 1024 steps
        self._losses.append(loss.detach())
        if len(self._losses) >= 1024:
            self._sum_losses()
        for s in self._hooks["after_step"]:
            s.after_step(self)
        self._step += 1
        if self._cb_hooks["on_step_end"]:
            self.state.step, self.state.loss_tensor = self._step, loss.detach()
            self._callbacks("on_step_end")
        # the step is over: let the batch go now, so the next one reuses its memory while it is warm
        self.incoming = self._incoming_rows = None
        return loss

    def forward(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        """Training-time logits; with task ids, outputs outside the task's classes are masked."""
        if x.dtype != self.input_dtype:  # samples a strategy drew from a memory, or predict_logits' own
            x = x.to(self.input_dtype)
        for s in self._hooks["forward"]:
            out = s.forward(self, x, t)
            if out is not None:  # masked here too: a hook returning model(x) would drop the task mask
                return out if t is None else self._mask_tasks(out, t)
        # training steps go through DistributedDataParallel (gradients all-reduced), inference not
        net = self._train_net if self.model.training and torch.is_grad_enabled() else self.model
        if self._output_checked:
            logits = net(x)
        else:  # the model's first forward: one that cannot be called as model(x), or returns no logits, is refused
            try:
                logits = net(x)
            except TypeError as err:
                _check_one_input(self.model, err)
                raise
            except Exception as err:  # predict on a learner that never trained: the model meets x here
                if is_shape_error(err):
                    raise _shape_refusal(err, x.shape[1:], "the model's first forward") from err
                raise
            _check_logits(self.model, logits, len(x))
            self._output_checked = True
        if t is not None:
            logits = self._mask_tasks(logits, t)
        return logits

    def task_mask(self, t: Tensor | None, n_outputs: int) -> Tensor | None:
        """Boolean [B, n_outputs]: which outputs belong to each sample's task (None without task ids).

        A task is masked to the classes trained under it or, while it is evaluated before any
        training (see :meth:`_announcing`), to the classes its scenario declares for it.
        """
        if t is None:
            return None
        cached = self._task_mask
        if cached is None or cached[1].shape[1] != n_outputs:
            tasks = {**self._announced_tasks, **self._task_classes}  # what was trained wins
            if not tasks:
                return None
            # one row per known task id (in order, found by binary search: memory grows with the number
            # of tasks, not with the largest id), plus a last row, all True, for ids never seen
            order = sorted(tasks)
            rows = torch.ones(len(order) + 1, n_outputs, dtype=torch.bool, device=self.device)
            for row, task in enumerate(order):
                rows[row] = False
                rows[row, [c for c in tasks[task] if c < n_outputs]] = True
            cached = self._task_mask = (torch.tensor(order, device=self.device), rows)
        ids, rows = cached
        t = t.to(ids.device, torch.int64)
        at = torch.searchsorted(ids, t).clamp(max=len(ids) - 1)
        return rows[torch.where(ids[at] == t, at, len(ids))]

    def _mask_tasks(self, logits: Tensor, t: Tensor) -> Tensor:
        mask = self.task_mask(t, logits.shape[1])
        return logits if mask is None else logits.masked_fill(~mask, float("-inf"))

    def _register(self, data: Dataset) -> None:
        """Record the classes (and task -> classes) present in ``data``."""
        if len(data) == 0:
            return
        self._classes_seen.update(data.classes)
        if data.t is not None:
            k = int(data.y.max()) + 1
            for code in torch.unique(data.t * k + data.y).tolist():
                self._task_classes.setdefault(code // k, set()).add(code % k)
            self._task_mask = None

    def _begin(self, experience: Experience) -> None:
        if self._experience is not None:  # partial_fit's experience, still open: its boundary comes first
            self.consolidate()  # (its window became the next experience's training set, the caller's too)
        # a strategy that refuses the experience (PackNet with no free weights) leaves the count as it was
        before = (self._experience, self._experience_count, set(self._classes_seen),
                  {k: set(v) for k, v in self._task_classes.items()}, self._task_mask)  # fmt: skip
        self._experience = experience
        self._experience_count += 1
        self._classes_seen.update(experience.classes)
        if experience.train.t is not None:
            self._task_classes.setdefault(experience.task_id, set()).update(experience.classes)
            self._task_mask = None
        self.state.experience = self.experience_index
        self.state.classes_seen = self.classes_seen
        try:
            for s in self._hooks["before_experience"]:
                s.before_experience(self, experience)
        except LifelongError:
            (self._experience, self._experience_count, self._classes_seen, self._task_classes,
             self._task_mask) = before  # fmt: skip
            self.state.experience, self.state.classes_seen = self.experience_index, self.classes_seen
            raise

    def consolidate(self) -> None:
        """Close the current experience: strategies compute importances, store exemplars, freeze."""
        experience = self._experience
        if experience is None:
            return
        if self._window:  # an experience made of partial_fit batches
            experience.train = concat([Dataset(b.x, b.y, b.t) for b in self._window], "window")
            self._window = []
        start = time.perf_counter()  # boundary work is training time too (importances, herding, retraining)
        with self._in_model_dtype():
            for s in self._hooks["after_experience"]:
                s.after_experience(self, experience)
        seconds = time.perf_counter() - start
        self.boundary_seconds += seconds
        self.train_seconds += seconds
        self._experience = None

    def partial_fit(self, x: Any, y: Any, t: Any = None, *, allow_new_classes: bool | None = None) -> None:
        """Learn from samples as they arrive (one pass); ``consolidate()`` marks a boundary.

        ``x`` may be a numpy array (any numeric dtype), a list, a tensor or a pandas frame; ``y``
        integer labels. Everything is validated first: a wrong shape or a label the model has no
        output for raises DataError and changes nothing, unless ``allow_new_classes`` (default:
        the learner's) lets the head grow. The first call after a boundary opens a new
        experience holding the classes seen in it.
        """
        columns = frame_columns(x) if self._input_shape is None else None
        x, largest = self._inputs(x, "partial_fit")
        y = class_ids(y, "partial_fit", len(x))
        if len(x) == 0:
            raise DataError("partial_fit: x is empty; pass at least one sample")
        starts, ends = self._batches(len(x))  # refused here, before anything changes
        t = self._task_ids(t, len(x), "partial_fit")
        # the caller marks boundaries with consolidate(), so any strategy works but one that rewrites an
        # experience's whole training set, which batches trained as they arrive never form
        if self._hooks["train_data"]:
            names = ", ".join(type(s).__name__ for s in self._hooks["train_data"])
            raise StrategyMismatchError(
                f"partial_fit: {names} overrides train_data, which rewrites an experience's whole training set "
                "(Cumulative adds every earlier experience, iCaRL its exemplars, Joint the stream), and partial_fit "
                "trains each batch as it arrives: train it with learn(experience) or fit, or use a replay method "
                "(Replay, DER++) with partial_fit; a strategy of your own that only looks at the data can do so in "
                "before_experience or batch instead"
            )
        self.check_supported(None, t is not None)
        self._note_boundaries()
        if t is not None:  # an experience learns one task; its classes are filed under it
            tasks = set(t.tolist()) | ({self._experience.task_id} if self._experience is not None else set())
            if len(tasks) > 1:
                raise DataError(
                    f"partial_fit: task ids {sorted(tasks)} in one experience; an experience learns one task: "
                    "call consolidate() before another task's samples, and give each call one task's samples"
                )
        grow = self.allow_new_classes if allow_new_classes is None else allow_new_classes
        self._check_labels(y, "partial_fit", grow)
        if self._input_shape is None:  # the first samples the learner takes: can the model take them?
            self._probe(x[:2], "partial_fit")
        if self._input_shape is None:
            self._input_shape = tuple(x.shape[1:])
            self.feature_names = tuple(columns) if columns is not None else None
        self._note_largest(largest, "partial_fit")
        data = Dataset(x, y, t, 1.0, "partial_fit")
        if self._experience is None:
            empty = data.subset(torch.arange(0))
            task = int(data.t[0]) if data.t is not None else 0
            self._begin(Experience(self._experience_count, tuple(data.classes), task, empty, empty))
        else:
            new = set(data.classes) - set(self._experience.classes)
            if new:
                self._experience.classes = tuple(sorted(set(self._experience.classes) | new))
                self._classes_seen.update(new)
                if t is not None:
                    self._task_classes.setdefault(self._experience.task_id, set()).update(new)
                    self._task_mask = None
        self.model.train()
        # one pass over this call's batches is the epoch (HAT anneals over one): set by the call, not
        # left from whatever ran before, so a learner loaded from a checkpoint steps alike
        self.state.steps_in_epoch, self.state.epochs, self.state.epoch = len(starts), 1, 0
        start = time.perf_counter()
        with self._in_model_dtype():
            for i, j in zip(starts, ends):
                b = data.batch(slice(i, j))
                self.train_step(b)
                if self._keep_window:
                    self._window.append(b)
        self.train_seconds += time.perf_counter() - start
        if not self._warned_diverged and self.diverged:  # its predictions were one class, silently
            self._warned_diverged = True
            warnings.warn(
                f"partial_fit: training diverged: {self.divergence_hint()}", RuntimeWarning, stacklevel=2
            )

    def _note_boundaries(self) -> None:
        """Warn, once, that a strategy acting at boundaries trains as fine-tuning until ``consolidate()``:
        on a stream fed to ``partial_fit`` without one, EWC, LwF, A-GEM and ER-ACE were silently
        bit-identical to naive, and GDumb predicted with its untrained model."""
        if self._warned_boundaries or self.task_free or self._experience_count > 0:
            return
        self._warned_boundaries = True
        waiting = [  # a method needing task ids waits anyway: a new task's samples need consolidate()
            type(s).__name__
            for s in self.strategies
            if (s.waits_for_boundary or "task-free" not in s.supports) and "task_labels" not in s.needs
        ]
        if waiting:
            warnings.warn(
                f"partial_fit: {' and '.join(waiting)} {'acts' if len(waiting) == 1 else 'act'} at boundaries, "
                "so until the first consolidate() nothing protects old knowledge (no importances, memory or "
                "retraining yet): "
                "call learner.consolidate() where a task or period ends, or, for a stream with no boundaries, "
                "build the learner with task_free=True and a method that has a task-free form (Replay, DER++, "
                "ER-ACE, MER, NCM)",
                UserWarning,
                stacklevel=3,
            )

    def _probe(self, x: Tensor, where: str) -> None:
        """The model's first forward, on a sample or two without gradients: samples it cannot take are
        refused before ``partial_fit`` changes anything (the failed first step used to leave their
        shape recorded as the learner's, so that right-shaped samples were reshaped to it and failed
        too). Errors other than torch's shape errors surface from the training step, as before."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), self._in_model_dtype():
                self.model(x.to(self.device, self.input_dtype))
        except Exception as err:
            if is_shape_error(err):
                raise _shape_refusal(err, x.shape[1:], where) from err
        finally:
            self.model.train(was_training)

    # -- inputs and labels as users hand them over ---------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Shape of one sample: the first training data's, else the model spec's ``in_features``."""
        if self._input_shape is not None:
            return self._input_shape
        return spec_input_shape(getattr(self.model, "lifelong_spec", None))

    @property
    def input_dtype(self) -> torch.dtype:
        """The model's floating dtype (float32 if it has none), which every input is cast to: data is
        stored as float32 or uint8, and a float64 or bfloat16 model cannot take float32 inputs. Token
        ids travel in a dtype that holds them exactly instead (:func:`tokens.carrier_dtype`)."""
        return self._ids_dtype or self._model_dtype

    @property
    def _model_dtype(self) -> torch.dtype:
        p = self._dtype_param  # read per step: looking a parameter up costs more than the cast check
        return p.dtype if p is not None and p.dtype.is_floating_point else torch.float32

    @property
    def n_outputs(self) -> int | None:
        """Output units of the classifier head (valid labels are ``range(n_outputs)``); None if unknown."""
        try:
            return heads.n_outputs(self.model)
        except ConfigError:
            return None

    def as_inputs(self, x: Any, where: str = "predict") -> Tensor:
        """``x`` as a float tensor ``[N, *input_shape]``, or a DataError naming what is wrong.

        Accepts numpy arrays of any numeric dtype, lists, tensors and pandas frames (matched by
        column name where the learner was trained on a frame). A flat row (or a flattened image) is
        reshaped to the recorded sample shape when the sizes agree.
        """
        return self._inputs(x, where)[0]

    def _inputs(self, x: Any, where: str) -> tuple[Tensor, float]:
        """``as_inputs``, and the largest |x| (read in the same pass as the check of the values)."""
        pixels = str(getattr(x, "dtype", "")) in ("uint8", "torch.uint8")
        x, largest = self._converted(x, where)
        if pixels and where != "partial_fit" and 0 < self._largest_input <= 1.0 < largest:
            warnings.warn(  # uint8 rows in a Dataset are scaled by 1/255 when batches are drawn; here they are not
                f"{where}: x holds uint8 pixels up to {largest:g}, and the model trained on inputs up to "
                f"{self._largest_input:g}: scale them as training did (x / 255), or predict on the "
                "Dataset's features()",
                UserWarning,
                stacklevel=3,
            )
        return x, largest

    def _converted(self, x: Any, where: str) -> tuple[Tensor, float]:
        if self.feature_names is not None and frame_columns(x) is not None:
            x = in_column_order(x, self.feature_names, f"{where}: the frame")
        if isinstance(x, dict) or (isinstance(x, (list, tuple)) and x and isinstance(x[0], dict)):
            raise DataError(  # River's samples are dicts: the order of their keys is no contract
                f"{where}: x is a dict of features (River's form), which has no column order; pass a frame "
                "instead, matched by column name: pandas.DataFrame([x]) for one sample, "
                "pandas.DataFrame(rows) for a list of them"
            )
        if not isinstance(x, Tensor):
            try:
                x = (
                    x.to_numpy(dtype=np.float32)
                    if hasattr(x, "to_numpy")
                    else np.asarray(x, dtype=np.float32)
                )
            except (TypeError, ValueError) as e:
                raise DataError(
                    f"{where}: x must hold numbers (an array, list, tensor or numeric frame): {e}"
                ) from e
            x = tensor_of(x)
        dtype = self.input_dtype
        if x.dtype != dtype:
            x = x.to(dtype)
        expected = self.input_shape
        if expected is not None and tuple(x.shape) == expected and len(expected) == 1:
            x = x.unsqueeze(0)  # one sample given as a flat row
        if x.ndim < 2:
            raise DataError(f"{where}: x must be [n_samples, features...], got shape {tuple(x.shape)}")
        got = tuple(x.shape[1:])
        if expected is not None and got != expected:
            if math.prod(got) != math.prod(expected):
                raise DataError(
                    f"{where}: expected samples of shape {expected} ({math.prod(expected)} features), "
                    f"received {got} (x of shape {tuple(x.shape)})"
                )
            _check_layout(got, expected, where)
            x = x.reshape(len(x), *expected)
        return x, self._check_values(x, f"{where}: x")

    def _check_labels(self, y: Tensor, where: str, grow: bool) -> None:
        """Refuse labels the head has no output for, or grow the head when allowed."""
        n_out = self.n_outputs
        # one output is refused with all labels 0 too: it would answer class 0 for ever, learning nothing
        if n_out == 1 and not grow and len(y):
            raise DataError(
                f"{where}: the model has one output, and lifelong learns classifiers (cross-entropy over one "
                "output per class): give it an output per class (two for a binary task); a numeric target "
                "(regression) is not supported"
            )
        if n_out is None or len(y) == 0 or int(y.max()) < n_out:
            return
        if grow:
            if int(y.max()) >= n_out + MAX_LABEL_GAP:
                raise DataError(
                    f"{where}: label {int(y.max())} is too far past the model's {n_out} outputs: the head grows "
                    f"to the largest label, so new classes take the next indices ({n_out}, {n_out + 1}, ...), "
                    f"at most {MAX_LABEL_GAP} beyond"
                )
            self.grow_classes(int(y.max()) + 1)
            return
        bad = sorted(set(y[y >= n_out].tolist()))
        valid = str(list(range(n_out))) if n_out <= 20 else f"0..{n_out - 1}"
        raise DataError(
            f"{where}: labels {bad if len(bad) <= 10 else f'{bad[:10]} ... ({len(bad)} in all)'} are outside "
            f"the model's {n_out} classes (valid labels: {valid}); "
            "pass allow_new_classes=True to grow the classifier head for new classes"
        )

    def _note_largest(self, largest: float, where: str) -> None:
        """Keep the largest |x| trained on, and say once when it is far from standardised: a network on
        raw features of thousands often answers one class without any loss diverging (a user's
        30-feature file: 991 of 1000 predictions class 0, and nothing said). Token ids are exempt, and
        so is any model with an embedding (one declared after its head was told to declare it first,
        then to standardise its ids, which would break them)."""
        if largest > LARGE_INPUT and not self._warned_scale and not self._has_embedding:
            self._warned_scale = True
            warnings.warn(
                f"{where}: inputs reach |x| = {largest:.4g}; networks learn poorly from unscaled features "
                "(a model may answer one class without its loss diverging): standardise them (e.g. "
                "sklearn's StandardScaler, fitted on the training data; bench --data does it, and "
                "--standardize in lifelong up and simulate)",
                UserWarning,
                stacklevel=3,
            )
        self._largest_input = max(self._largest_input, largest)

    def _check_data(self, data: Dataset, where: str, largest: float | None = None) -> None:
        """A training set must fit the input shape, the feature names, the values (unless ``largest``
        says ``fit`` checked them) and the label space (or grow it, when allowed); the first one's
        shape and names are the learner's from then on."""
        self._check_shape(data, where)
        self._check_names(data, where)
        if largest is None:
            largest = self._check_dataset(data, where)
        self._check_labels(data.y, where, self.allow_new_classes)
        self._note_largest(largest, where)
        if self._input_shape is None:
            self._input_shape = data.input_shape
            self.feature_names = data.feature_names

    def _check_values(self, x: Tensor, what: str, scale: float = 1.0) -> float:
        """Refuse, before anything changes, NaN or infinite inputs and token ids the model's embedding
        has no row for; the largest |x| (times ``scale``), read in the same pass: advice when training
        diverges."""
        if x.numel() == 0:
            return 0.0
        lo, hi = (float(v) for v in torch.aminmax(x))  # one pass; NaN propagates to both
        if not (math.isfinite(lo) and math.isfinite(hi)):
            _refuse_nonfinite(x, what)
        embedding = tokens.input_embedding(self.model)
        if embedding is not None:
            tokens.check_ids(embedding, x if scale == 1.0 else x.float() * scale, what)
        return max(-lo, hi) * scale

    def _check_dataset(self, data: Dataset, where: str) -> float:
        """``_check_values`` of a dataset's samples (named by the dataset)."""
        return self._check_values(data.x, f"{where}: {data.name}", data.scale)

    def _check_names(self, data: Dataset, where: str, names: tuple[str, ...] | None = None) -> None:
        """A DataError naming the columns ``data`` lacks or adds to ``names`` (default: the learner's)."""
        names = names if names is not None else self.feature_names
        if names is not None and data.feature_names is not None and data.feature_names != names:
            check_columns(list(data.feature_names), names, f"{where}: {data.name}")

    def _aligned(self, data: Dataset, where: str) -> Dataset:
        """``data`` with its columns in the learner's order, matched by name: a scenario built from a
        frame whose columns come in another order is read by name, as a frame given to predict is."""
        names, given = self.feature_names, data.feature_names
        if names is None or given is None or given == names:
            return data
        self._check_names(data, where)
        at = {c: i for i, c in enumerate(given)}
        order = torch.tensor([at[n] for n in names])
        x = data.x.reshape(len(data), -1)[:, order].reshape(data.x.shape)
        return data.replace(x=x, feature_names=names)

    def _check_shape(self, data: Dataset, where: str) -> None:
        expected = self.input_shape
        if expected is not None and math.prod(data.input_shape) != math.prod(expected):
            raise DataError(
                f"{where}: expected samples of shape {expected} ({math.prod(expected)} features), "
                f"received {data.input_shape}"
            )
        if expected is not None:
            _check_layout(tuple(data.input_shape), expected, f"{where}: {data.name}")

    def grow_classes(self, n_classes: int) -> bool:
        """Grow the classifier head to ``n_classes`` outputs; old logits are unchanged.

        The one entry point for new classes (``partial_fit``, ``learn`` and the system's
        trainer): the optimizer is rebuilt over the new head, the model spec's ``n_classes``
        updated (so the checkpoint rebuilds the grown model), and strategies' state kept per
        parameter name padded with zero rows (see :func:`lifelong.learn.heads.pad_rows`).
        Strategies that store logits (DER) or flattened gradients (OGD) cannot follow a grown
        head. Returns whether the head grew.
        """
        spec = getattr(self.model, "lifelong_spec", None)
        kwargs = spec.get("kwargs", {}) if isinstance(spec, dict) else {}
        if n_classes <= (self.n_outputs or 0):
            return False
        if isinstance(spec, dict) and "n_classes" not in kwargs:
            raise ConfigError(
                f"cannot grow model {spec.get('name')!r} to {n_classes} classes: its spec has no n_classes "
                "argument, so a checkpoint could not rebuild the grown head; give the factory an n_classes parameter"
            )
        stuck = [type(s).__name__ for s in self.strategies if not s.follows_growth]
        if stuck:
            raise ConfigError(
                f"cannot grow the head to {n_classes} classes: {' and '.join(stuck)} keeps state sized to the "
                "model's weights that new outputs cannot join; size the head for every class up front "
                "(n_classes=...) and train without allow_new_classes"
            )
        before = n_parameters(self.model)
        name = heads.head_name(self.model)
        old = {k: v.shape for k, v in self.model.named_parameters() if k.startswith(name + ".")}
        if not heads.grow_classifier(self.model, n_classes):
            return False
        new = dict(self.model.named_parameters())
        shapes = {k: (shape, new[k].shape) for k, shape in old.items()}
        for s in self.strategies:  # per-parameter state (anchors, importances, old weights) follows the head
            for attr, value in list(vars(s).items()):
                if attr.endswith("_") and not attr.startswith("_"):
                    setattr(s, attr, heads.pad_rows(value, shapes))
        if isinstance(spec, dict):
            # a plain attribute: nn.Module's stub types attributes as Tensor | Module
            self.model.lifelong_spec = {**spec, "kwargs": {**kwargs, "n_classes": n_classes}}  # type: ignore[assignment]
        self.base_parameters += n_parameters(self.model) - before  # the user's growth, not a method's
        self._task_mask = None
        self.reset_optimizer()
        return True

    # -- inference and evaluation ----------------------------------------------------------
    @torch.inference_mode()
    def predict_logits(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        """Scores ``[N, n_outputs]`` of prepared inputs (the serving path): no conversion, only the check
        that a learner whose strategies route by task was given the task ids (``predict`` checks more)."""
        if t is None and self._needing_tasks():
            self._task_ids(t, len(x), "predict_logits")  # raises, naming the strategies and t=
        was_training = self.model.training
        self.model.eval()
        try:
            x = x.to(self.device, self.input_dtype)
            with self._in_model_dtype():
                for s in self._hooks["predict"]:
                    out = s.predict(self, x, t)
                    if out is not None:
                        return out
                return self.forward(x, t)
        finally:
            self.model.train(was_training)

    def predict(self, x: Any, t: Any = None) -> Tensor:
        """Predicted class per row of ``x`` (array, list, tensor or pandas frame of scaled inputs);
        ``t``: the task id of every sample, or one for all (strategies that need task labels)."""
        x = self.as_inputs(x, "predict")
        return self.predict_logits(x, self._task_ids(t, len(x), "predict", trained=True)).argmax(1).cpu()

    def predict_proba(self, x: Any, t: Any = None) -> Tensor:
        """Class probabilities ``[N, n_outputs]`` (softmax of the scores ``predict`` takes the argmax of)."""
        x = self.as_inputs(x, "predict_proba")
        t = self._task_ids(t, len(x), "predict_proba", trained=True)
        return torch.softmax(self.predict_logits(x, t).float(), 1).cpu()

    def _task_ids(self, t: Any, n: int, where: str, trained: bool = False) -> Tensor | None:
        """``t`` as ``n`` int64 task ids (one id is every sample's), or an error saying what is wrong.

        Strategies that need task labels route each sample by its task (a head, a mask): without
        ``t``, or (``trained``) with a task they never learned, they would answer, wrongly.
        """
        needs = self._needing_tasks()
        if t is None:
            if needs:
                raise StrategyMismatchError(
                    f"{where}: {', '.join(needs)} needs the task id of the samples; pass t= (one id for all "
                    "samples, or one per sample)"
                )
            if trained and self._task_classes and not self._warned_no_task:  # once: it may be meant
                self._warned_no_task = True
                warnings.warn(
                    f"{where}: this learner was trained with task ids (tasks {sorted(self._task_classes)}, each "
                    f"masked to its own classes), but no t was given: it answers over all {self.n_outputs} "
                    "outputs, as class-incremental inference would; pass t= to answer within a task",
                    UserWarning,
                    stacklevel=3,
                )
            return None
        try:
            ids = t.detach().cpu() if isinstance(t, Tensor) else tensor_of(np.asarray(t))
        except (TypeError, ValueError) as e:  # text, None or ragged lists: numpy or torch refuses them
            raise DataError(f"{where}: t must be integer task ids, got {_first_not_whole(t)}") from e
        whole = ids.dtype != torch.bool and not ids.dtype.is_complex
        if whole and ids.dtype.is_floating_point:
            whole = bool(torch.isfinite(ids).all()) and bool((ids == ids.round()).all())
        if not whole:
            raise DataError(f"{where}: t must be integer task ids, got {_first_not_whole(t)} ({ids.dtype})")
        ids = ids.reshape(1) if ids.ndim == 0 else ids  # numpy hands a scalar over as one element
        if ids.ndim != 1 or len(ids) not in (1, n):
            raise DataError(
                f"{where}: t holds {tuple(ids.shape)} task ids for {n} samples; give one id for all samples "
                "or one per sample"
            )
        ids = ids.long().expand(n).clone()
        if n and int(ids.min()) < 0:
            raise DataError(f"{where}: task ids must be >= 0, got {int(ids.min())}")
        if trained and (needs or self._task_classes):
            unknown = sorted(set(ids.unique().tolist()) - set(self._task_classes))
            if unknown:
                who = ", ".join(needs) if needs else "the task mask (the outputs of a task's own classes)"
                raise DataError(
                    f"{where}: task ids {unknown} were never trained (trained tasks: "
                    f"{sorted(self._task_classes) or 'none'}); {who} can only answer for those"
                )
        return ids

    def _needing_tasks(self) -> list[str]:
        return [type(s).__name__ for s in self.strategies if "task_labels" in s.needs]

    def correct(self, data: Dataset) -> Tensor:
        """Boolean tensor: which samples of ``data`` the learner classifies right. A sample none of
        whose outputs is allowed (every logit -inf: NCM or iCaRL before any class mean, a task's
        classes all unseen) has no answer and counts as wrong, not as class 0 (argmax's pick)."""
        return self._answers(data)[1]

    def _answers(self, data: Dataset) -> tuple[Tensor, Tensor]:
        """The class answered for every sample of ``data`` (-1 where none is allowed), and ``correct``'s
        mask."""
        if data.t is None and self._needing_tasks():
            raise StrategyMismatchError(
                f"evaluate: {', '.join(self._needing_tasks())} needs the task id of every sample, and "
                f"{data.name} has none; evaluate on a task-incremental scenario (task_incremental(...))"
            )
        data = self._aligned(data, "evaluate")
        answers, right = [], []
        for i in range(0, len(data), self.eval_batch_size):
            b = data.batch(slice(i, i + self.eval_batch_size))
            best, pred = self.predict_logits(b.x, b.t).max(1)
            pred = torch.where(best > -math.inf, pred, -1).cpu()
            answers.append(pred)
            right.append(pred == b.y)
        if not answers:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool)
        return torch.cat(answers), torch.cat(right)

    def evaluate(self, stream: Scenario | TaskFreeStream | Iterable[Experience]) -> list[float]:
        """Accuracy on the test set of every experience of ``stream``; test samples of a shape the
        model cannot take are refused first, as ``fit`` refuses them."""
        experiences = _experiences(stream, "evaluate")
        self._check_samples([e.test for e in experiences], "evaluate", experiences[0].train.feature_names)
        return [
            fraction_correct(c) if len(c) else math.nan  # no test samples: undefined, as fit reports it
            for c in self._first_evaluation(experiences, "evaluate")
        ]

    def _correct_all(self, experiences: list[Experience]) -> list[Tensor]:
        return [right for _, right in self._answers_all(experiences)]

    def _answers_all(self, experiences: list[Experience]) -> list[tuple[Tensor, Tensor]]:
        with self._announcing(experiences):
            return [self._answers(e.test) for e in experiences]

    @contextlib.contextmanager
    def _announcing(self, experiences: list[Experience]) -> Iterator[None]:
        """Evaluate the tasks of ``experiences`` not trained yet among their own classes.

        In task-incremental evaluation the task id is given, and with it the task's classes: a task
        is scored among them whether or not it was trained, as task-aware evaluation does (GEM's
        task-incremental protocol, FACIL, Avalanche's per-task masking). So ``R[i][j]`` for
        ``i < j`` and the untrained accuracy ``b_j`` are measured alike, near chance for a task
        the model knows nothing of, and forward transfer compares like with like; unmasked, a
        model that never produced task j's classes scored 0 there whatever it had learned.
        Masking rather than NaN: every strategy can answer an untrained task (MultiHead with its
        shared ``classifier``, PNN its newest column, PackNet, HAT, CPG their whole network), so
        there is a number to report. Trained tasks keep their trained classes; outside evaluation
        (``predict``), and without task ids (class- and domain-incremental), nothing changes.
        """
        announced: dict[int, set[int]] = {}
        for e in experiences:
            if e.test.t is not None and e.task_id not in self._task_classes:
                announced.setdefault(e.task_id, set()).update(e.classes)
        if not announced:
            yield
            return
        self._announced_tasks, self._task_mask = announced, None
        try:
            yield
        finally:
            self._announced_tasks, self._task_mask = {}, None

    def _check_samples(
        self, datasets: list[Dataset], where: str, names: tuple[str, ...] | None
    ) -> list[float]:
        """Refuse, before any work, samples of another shape than the model's, columns it lacks or does
        not know (the learner's names, or ``names`` if it has none yet), and values it cannot take
        (``_check_values``); the largest |x| of each dataset."""
        names = self.feature_names if self._input_shape is not None else names
        largest = []
        for d in datasets:
            if len(d):
                self._check_shape(d, where)
                self._check_names(d, where, names)
            largest.append(self._check_dataset(d, where))
        return largest

    def _first_evaluation(self, experiences: list[Experience], where: str) -> list[Tensor]:
        """``_correct_all``, where the model first meets the data: a model that cannot take these
        samples fails here, before any training, with what to change instead of torch's error. Only
        torch's shape errors are reported so; any other error of the model's forward is its own, and
        passes on unchanged."""
        try:
            with self._in_model_dtype():
                return self._correct_all(experiences)
        except Exception as err:
            cause = shape_error(err)  # torch's, or the one forward already said
            if cause is None:
                raise
            shape = experiences[0].test.input_shape
            raise _shape_refusal(cause, shape, where, "this scenario's samples") from cause

    def fit(
        self,
        stream: Scenario | TaskFreeStream | Iterable[Experience],
        reference_accuracy: Sequence[float] | None = None,
    ) -> Result:
        """Train through ``stream`` (a scenario, a task-free stream, or experiences in order) and evaluate
        every experience after each one (the accuracy matrix).

        Everything is checked before any training: the strategies against the scenario, the samples'
        shape and columns, the labels, and ``reference_accuracy`` (one accuracy per experience).
        A learner loaded from a checkpoint saved during a fit (from a callback's ``on_evaluate``) goes
        on at the next experience of the same stream, its result continuing the saved one.

        ``reference_accuracy[j]`` is what a model trained on all data up to experience j reaches on
        it (Chaudhry et al., 2018); given it, the result reports intransigence. A Cumulative run's
        ``Result.just_learned`` is one:

        >>> from lifelong.checks import toy_model, toy_scenario
        >>> from lifelong.strategies import Cumulative
        >>> upper = Learner(toy_model(), [Cumulative()], lr=0.1).fit(toy_scenario())
        >>> result = Learner(toy_model(), lr=0.1).fit(toy_scenario(), reference_accuracy=upper.just_learned)
        >>> "intransigence" in result.metrics
        True
        """
        experiences, kind = self.check_scenario(stream)
        if isinstance(stream, TaskFreeStream) and self.epochs != 1:
            warnings.warn(
                f"fit: a task-free stream is learned in one pass, each sample as it arrives; epochs={self.epochs} "
                "is not used (replay or a memory revisits samples; a scenario with boundaries takes epochs)",
                UserWarning,
                stacklevel=2,
            )
        reference = _reference(reference_accuracy, len(experiences))
        # every sample is checked here, once: learn() is told so, and checks only the labels again
        trains = [stream.data] if isinstance(stream, TaskFreeStream) else [e.train for e in experiences]
        tests = [e.test for e in experiences]
        largest = self._check_samples([*trains, *tests], "fit", experiences[0].train.feature_names)
        labels = sorted({c for e in experiences for c in e.classes})  # refused (or grown) before any training
        self._check_labels(torch.tensor(labels, dtype=torch.long), "fit", self.allow_new_classes)
        start_seconds, start_epochs, start_samples = (
            self.train_seconds,
            self.epochs_trained,
            self.samples_trained,
        )
        start_boundary = self.boundary_seconds
        own_peak = reset_peak_rss()  # this fit's peak, not the process's largest so far
        self._loss_total.zero_()
        self._loss_max.zero_()
        self._losses = []
        self._warned_diverged = False
        result = Result(reference_accuracy=reference)
        task_free = isinstance(stream, TaskFreeStream)
        stream_id = _stream_id(experiences, kind)
        resumed, self._resume_fit = self._resume_fit, None
        if resumed is not None and resumed["stream"] != stream_id:
            warnings.warn(
                f"fit: the checkpoint was saved after experience {len(resumed['rows']) - 1} of a fit of another "
                "stream (other experiences, classes, sizes or samples); this one is fitted from its start",
                UserWarning,
                stacklevel=2,
            )
            resumed = None
        if resumed is not None and resumed.get("task_free") and len(resumed["rows"]) < len(experiences):
            warnings.warn(  # it trained the whole stream again from the saved weights, scored as untrained
                f"fit: the checkpoint was saved midway through a task-free pass (after evaluation "
                f"{len(resumed['rows']) - 1} of {len(experiences)}), which cannot go on midway: this fit passes over "
                "the whole stream again from the saved weights, and their accuracy is its untrained one; fit a "
                "fresh learner to measure the stream from its start",
                UserWarning,
                stacklevel=2,
            )
            resumed = None
        if resumed is not None and len(resumed["rows"]) >= len(experiences):
            warnings.warn(
                "fit: the checkpoint holds this stream's fit finished after its last experience; its result is "
                "returned and nothing is trained (call fit again to train through the stream once more)",
                UserWarning,
                stacklevel=2,
            )
        before = self._first_evaluation(experiences, "fit")  # resumed: the saved model's, the last row's
        if resumed is None:
            result.untrained_accuracy = [fraction_correct(c) for c in before]
        else:  # a fit checkpointed after experience k - 1 (from on_evaluate) goes on at experience k
            result.accuracy_matrix = [list(r) for r in resumed["rows"]]
            result.untrained_accuracy, result.flips = list(resumed["untrained"]), list(resumed["flips"])
            start_seconds, start_epochs, start_samples, start_boundary = resumed["start"]
        done = len(result.accuracy_matrix)
        start = [start_seconds, start_epochs, start_samples, start_boundary]

        one_class: list[str] = []

        def record(i: int) -> None:
            nonlocal before
            answers = self._answers_all(experiences)
            after = [right for _, right in answers]
            if (one := _one_answer(answers[i][0], experiences[i].test.y)) is not None:
                one_class.append(f"after experience {i} it {one}")
            result.accuracy_matrix.append([fraction_correct(c) for c in after])
            if i > 0:  # flips on experiences learned before this update
                was = torch.cat(before[:i])
                now = torch.cat(after[:i])
                result.flips.append(fraction_correct(was & ~now))
            before = after
            self._fit_progress = {"stream": stream_id, "rows": result.accuracy_matrix, "flips": result.flips,
                                  "untrained": result.untrained_accuracy, "start": start}  # fmt: skip
            if task_free:  # one pass over the stream: a fit cannot go on midway, and says so when asked to
                self._fit_progress["task_free"] = True
            self.state.evaluation, self.state.accuracy = i, tuple(result.accuracy_matrix[-1])
            self._callbacks("on_evaluate")

        self.state.params = {
            **self.hyperparameters(),
            "scenario": kind,
            "experiences": len(experiences),
        }
        self.state.fitting = True
        self.stream = experiences
        untouched = _parameter_versions(self.model)  # nothing trained (epochs=0, no boundary training)?
        try:
            if isinstance(stream, TaskFreeStream):
                result.online_accuracy = self._train_task_free(stream, record, largest[0])
            else:
                for i, experience in enumerate(experiences):
                    if i >= done:
                        self._learn(experience, largest[i])
                        record(i)
        finally:
            self.state.fitting = False
            self.stream = None
            self._fit_progress = None
        result.train_seconds = self.train_seconds - start_seconds
        result.boundary_seconds = self.boundary_seconds - start_boundary
        result.diverged = self.diverged
        if result.diverged:
            result.info["divergence_hint"] = self.divergence_hint()
            warnings.warn(
                f"training diverged: {result.info['divergence_hint']}", RuntimeWarning, stacklevel=2
            )
        elif one_class:  # a finite loss, and nothing that separates the classes: said, as a divergence is
            result.info["one_class"] = (
                f"the model answers one class: {'; '.join(one_class)}; {self._one_class_hint()}"
            )
            warnings.warn(result.info["one_class"], RuntimeWarning, stacklevel=2)
        if done < len(experiences) and _parameter_versions(self.model) == untouched:
            result.info["untrained"] = (
                f"fit trained nothing: no weight of the model changed (epochs={self.epochs}, and no strategy "
                "trained at a boundary), so the accuracy matrix is an untrained model's; give epochs >= 1"
            )
            warnings.warn(result.info["untrained"], RuntimeWarning, stacklevel=2)
        result.epochs = self.epochs_trained - start_epochs
        result.samples = self.samples_trained - start_samples
        result.extra_parameters = self.extra_parameters()
        result.buffer_bytes = self.memory_bytes()
        result.peak_rss_mb = peak_rss_mb()
        if not own_peak:
            result.info["peak_rss"] = (
                "the process's peak since it started: this system cannot reset it per fit"
            )
        distributed.pool_costs(self, result)  # in a process group: the job's costs, not this rank's
        self.state.result = result
        self._callbacks("on_fit_end")
        return result

    def _train_task_free(self, stream: TaskFreeStream, record: Any, largest: float) -> float | None:
        """Each sample once, no boundary announced: evaluation happens where the source's experiences end.
        Returns the online accuracy (each incoming batch judged before its step; None if unmeasured)."""
        self._check_data(stream.data, "fit", largest)  # records the input shape and names, as learn() does
        stream = dataclasses.replace(stream, data=self._aligned(stream.data, "fit"))
        exp = Experience(self._experience_count, tuple(range(stream.n_classes)), 0, stream.data, stream.data)
        self._begin(exp)
        ends = {b: i for i, b in enumerate(stream.boundaries)}
        self.model.train()  # evaluation restores the mode it found
        start = time.perf_counter()
        was_task_free, self.task_free = self.task_free, True
        self._online = [torch.zeros((), dtype=torch.long, device=self.device), 0]
        online = None
        try:
            with self._in_model_dtype():
                for n, batch in enumerate(stream, start=1):
                    self.train_step(batch)
                    if n in ends:
                        self.train_seconds += time.perf_counter() - start
                        record(ends[n])
                        start = time.perf_counter()
            right, seen = self._online
            if seen:
                online = int(right) / seen
        finally:
            self.task_free, self._online = was_task_free, None
        self.train_seconds += time.perf_counter() - start
        self.epochs_trained += 1
        self._experience = None
        return online

    def hyperparameters(self) -> dict[str, Any]:
        """The configuration as one flat dict (optimizer, model class, each strategy's parameters), for trackers."""
        out: dict[str, Any] = {
            "optimizer": self.optimizer_name, "lr": self.lr, "momentum": self.momentum,
            "weight_decay": self.weight_decay, "batch_size": self.batch_size, "epochs": self.epochs,
            "seed": self.seed, "model": type(self.model).__name__,
            "strategies": "+".join(s.name for s in self.strategies) or "none",
        }  # fmt: skip
        for s in self.strategies:
            out.update({f"{s.name}.{k}": v for k, v in s.get_params().items()})
        return out

    # -- costs ---------------------------------------------------------------------------
    def extra_parameters(self) -> int:
        """Parameters beyond the base model: growth of the model plus what strategies keep."""
        grown = n_parameters(self.model) - self.base_parameters
        return grown + sum(s.extra_parameters() for s in self.strategies)

    def memory_bytes(self) -> int:
        return sum(s.memory_bytes() for s in self.strategies)

    # -- checkpoints -----------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write model, optimizer, strategies and bookkeeping (safetensors + JSON manifest).

        Under torch.distributed every rank calls it (the memories are gathered): rank 0 writes.
        Inside ``learn``/``fit``, before an experience's boundary work, it is refused: the checkpoint
        would hold the experience open with none of its data, so the importances, exemplars or
        retraining its boundary owes would run on nothing after loading.
        """
        if self._learning is not None:
            raise CheckpointError(
                f"save() during experience {self._learning}, before its boundary work (importances, exemplars, "
                "retraining) ran: save from a callback's on_evaluate (after each experience) or on_fit_end, or "
                "after fit()/learn() returns"
            )
        for s in self.strategies:  # a state a fresh strategy lacks could never be loaded back
            lazy = sorted(s.state_dict().keys() - s.clone().state_dict().keys())
            if lazy:
                raise CheckpointError(
                    f"{type(s).__name__}: state attribute{'s' if len(lazy) > 1 else ''} {lazy} "
                    f"{'are' if len(lazy) > 1 else 'is'} not set in __init__, so loading could not restore "
                    f"{'them' if len(lazy) > 1 else 'it'}: declare {'each' if len(lazy) > 1 else 'it'} there "
                    f"(self.{lazy[0]} = None)"
                )
        spec = getattr(self.model, "lifelong_spec", None)
        manifest = {
            "lifelong": _version(),
            "torch": torch.__version__,
            "learner": {
                "optimizer": self.optimizer_name, "lr": self.lr, "momentum": self.momentum,
                "weight_decay": self.weight_decay, "batch_size": self.batch_size, "epochs": self.epochs,
                "eval_batch_size": self.eval_batch_size, "seed": self.seed,
                "allow_new_classes": self.allow_new_classes, "task_free": self.task_free,
            },
            "model": {"spec": spec, "class": type(_plain(self.model)).__qualname__},
            "strategies": [checkpoint_entry(s) for s in self.strategies],
        }  # fmt: skip
        state = {
            "model": _plain(self.model).state_dict(),  # a torch.compile'd model's without "_orig_mod."
            "optimizer": self.optimizer.state_dict(),
            # under torch.distributed every rank's memory, so the checkpoint holds the global one
            "strategies": distributed.gathered_memories(self, [s.state_dict() for s in self.strategies]),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "bookkeeping": {
                "experience_count": self._experience_count, "classes_seen": sorted(self._classes_seen),
                "task_classes": {t: sorted(c) for t, c in self._task_classes.items()}, "step": self._step,
                "train_seconds": self.train_seconds, "boundary_seconds": self.boundary_seconds,
                "epochs_trained": self.epochs_trained,
                "samples_trained": self.samples_trained, "base_parameters": self.base_parameters,
                "input_shape": None if self._input_shape is None else list(self._input_shape),
                "feature_names": None if self.feature_names is None else list(self.feature_names),
                "open_experience": self._open_experience(),
                "fit_progress": self._fit_progress,  # None outside fit: a later fit starts from its start
            },
        }  # fmt: skip
        if distributed.is_writer(self):  # rank 0 writes; the checkpoint loads in a single process
            checkpoint.write(directory, manifest, state)
        distributed.barrier(self)

    def _open_experience(self) -> dict[str, Any] | None:
        """The experience ``partial_fit`` opened and no ``consolidate()`` closed yet, with the samples
        its boundary will read (EWC's Fisher, iCaRL's exemplars): without them a learner saved between
        batches and loaded would close that experience on nothing."""
        e = self._experience
        if e is None:
            return None
        window = concat([Dataset(b.x, b.y, b.t) for b in self._window], "window") if self._window else None
        return {
            "index": e.index, "classes": list(e.classes), "task_id": e.task_id,
            "window": None if window is None else {"x": window.x, "y": window.y, "t": window.t},
        }  # fmt: skip

    def _reopen(self, saved: dict[str, Any] | None) -> None:
        """Reopen the experience :meth:`_open_experience` saved, its window included."""
        if saved is None:
            return
        w = saved.get("window")
        if w is not None:
            self._window = [Batch(w["x"], w["y"], w.get("t"))]
        shape = self._input_shape or (1,)
        empty = Dataset(torch.zeros(0, *shape), torch.zeros(0, dtype=torch.long), None, 1.0, "partial_fit")
        self._experience = Experience(
            int(saved["index"]), tuple(saved["classes"]), int(saved["task_id"]), empty, empty
        )

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        model: nn.Module | None = None,
        callbacks: Sequence[Callback] = (),
        device: str | torch.device | None = None,
    ) -> Learner:
        """Rebuild a learner saved by :meth:`save`; training resumes exactly where it stopped.

        A model built by a registered factory (``create_model`` or the built-ins) is rebuilt from
        the manifest's spec; for a module without one pass ``model=`` built the same way (its
        weights are then loaded). Models and strategies must be registered already (built-ins
        always are): nothing is imported because a checkpoint names it. ``device``: where the
        loaded learner trains and predicts (default CPU). Inside a torch.distributed group each rank
        keeps its share of the saved memories.
        """
        _device(device)  # checked first: a bad device is not a malformed checkpoint
        rng = torch.get_rng_state()
        try:
            return cls._rebuild(directory, model, callbacks, device)
        except BaseException as e:
            torch.set_rng_state(rng)  # building the model drew from it: a refused load changes nothing
            if isinstance(e, CheckpointError) or not isinstance(
                e, (TypeError, KeyError, ValueError, AttributeError, IndexError, RuntimeError, RecursionError)
            ):
                raise
            # a manifest edited by hand or crafted: a clear refusal, never a stack trace
            raise CheckpointError(
                f"checkpoint {directory} is malformed: {type(e).__name__}: {e}"[:500]
            ) from e

    @classmethod
    def _rebuild(cls, directory: str | os.PathLike[str], model: nn.Module | None,
                 callbacks: Sequence[Callback], device: str | torch.device | None) -> Learner:  # fmt: skip
        from lifelong.errors import CheckpointError

        manifest, state = checkpoint.read(directory)
        if model is not None:
            saved = manifest["model"].get("class")
            given = type(_plain(model)).__qualname__
            if isinstance(saved, str) and saved != given:  # loaded silently: same keys, other layers
                warnings.warn(
                    f"checkpoint {directory} was saved from a {saved} and is loaded into the {given} given as "
                    "model=: its weights fit by name and shape, but if the classes compute differently (another "
                    "activation, dropout rate) its predictions will not be the saved learner's",
                    UserWarning,
                    stacklevel=3,
                )
            _grow_to_saved_head(_plain(model), state["model"])
        if model is None:
            spec = manifest["model"].get("spec")
            if spec is None:
                raise CheckpointError(
                    f"checkpoint {directory} holds a custom model ({manifest['model'].get('class')}) with no "
                    f"spec; pass model=YourModule(...) built with the same architecture, or {HOW_TO_REGISTER} "
                    "and build it with lifelong.learn.models.create_model"
                )
            try:
                model = build(spec)
            except ConfigError as e:
                raise CheckpointError(f"checkpoint {directory} cannot rebuild its model: {e}") from e
        checkpoint.match_dtypes(
            _plain(model), state["model"]
        )  # before the learner, which reads the model's dtype
        strategies = []
        for entry in manifest["strategies"]:
            try:
                strategies.append(get_strategy(entry["name"], entry.get("class"))(**entry["params"]))
            except ConfigError as e:
                raise CheckpointError(f"checkpoint {directory} uses {e}") from e
        try:
            options = manifest["learner"]
            if (
                isinstance(options, dict) and options.get("optimizer", "sgd") != "sgd"
            ):  # saved before momentum was refused there (unused)
                options = {**options, "momentum": 0.0}
            learner = cls(model, strategies, callbacks=callbacks, device=device, **options)
        except ConfigError as e:  # an option this learner does not take, or a value it refuses
            raise CheckpointError(f"checkpoint {directory} is malformed: {e}"[:500]) from e
        book = state["bookkeeping"]
        try:
            checkpoint.check_bookkeeping(book, len(learner.strategies), len(state["strategies"]))
        except CheckpointError as e:
            raise CheckpointError(f"checkpoint {directory} is malformed: {e}") from e
        for s, st in zip(learner.strategies, state["strategies"]):
            s.load_state_dict(st)
        learner._experience_count = book["experience_count"]
        learner._classes_seen = set(book["classes_seen"])
        learner._task_classes = {int(t): set(c) for t, c in book["task_classes"].items()}
        learner._step = book["step"]
        learner.train_seconds, learner.epochs_trained = book["train_seconds"], book["epochs_trained"]
        learner.boundary_seconds = book.get("boundary_seconds", 0.0)  # absent from older checkpoints
        learner.samples_trained, learner.base_parameters = book["samples_trained"], book["base_parameters"]
        learner._input_shape = tuple(book["input_shape"]) if book.get("input_shape") else None
        learner.feature_names = tuple(book["feature_names"]) if book.get("feature_names") else None
        learner._reopen(book.get("open_experience"))
        learner._resume_fit = checkpoint.fit_progress(book.get("fit_progress"))
        for s in learner._hooks["attach"]:  # strategies that grow the model rebuild its structure
            s.attach(learner)
        checkpoint.match_dtypes(_plain(learner.model), state["model"])  # layers a strategy's attach added
        try:
            _plain(learner.model).load_state_dict(state["model"])
            learner.reset_optimizer()
            learner.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint {directory} does not fit this model: {e}") from e
        outputs = learner.n_outputs
        if outputs is not None and any(c >= outputs for c in learner._classes_seen):
            raise CheckpointError(
                f"checkpoint {directory} is malformed: classes_seen {sorted(learner._classes_seen)} name classes "
                f"past the model's {outputs} outputs"
            )
        learner._state_to_device()  # after attach: grown models have their full set of names
        learner.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if learner.process_group is not None:  # the loaded weights and memories, shared out again
            learner._train_net = distributed.wrap(learner.model, learner.process_group, learner.device)
            distributed.split_memories(learner)
            if learner.rank:  # ranks shuffle and draw from different streams, as when built in the group
                learner.generator.manual_seed(learner.seed + learner.step + learner.rank)
        return learner

    def _state_to_device(self) -> None:
        """Move strategies' per-parameter state (loaded on the CPU) to the training device."""
        if self.device.type == "cpu":
            return
        names = {n for n, _ in self.model.named_parameters()} | {n for n, _ in self.model.named_buffers()}
        names |= {n for n, _ in self.model.named_modules()}
        for s in self.strategies:
            for attr, value in list(vars(s).items()):
                if attr.endswith("_") and not attr.startswith("_"):
                    setattr(s, attr, checkpoint.per_parameter_to(value, names, self.device))

    @contextlib.contextmanager
    def _in_model_dtype(self) -> Iterator[None]:
        """Name the dtype when a float64 (or bfloat16) model meets a strategy's float32 layers or
        tensors: the learner casts every input to the model's dtype, but not every strategy follows."""
        try:
            yield
        except RuntimeError as err:
            first = str(err).splitlines()[0] if str(err) else ""
            if self._model_dtype == torch.float32 or not ("dtype" in first or "scalar type" in first):
                raise
            who = ", ".join(type(s).__name__ for s in self.strategies) or "a strategy"
            raise ConfigError(
                f"the model's parameters are {self._model_dtype}, and {who} computes in float32 ({first}); "
                "convert the model with model.float()"
            ) from err

    def _callbacks(self, hook: str) -> None:
        for c in self._cb_hooks[hook]:
            getattr(c, hook)(self.state, self.control)

    def __repr__(self) -> str:
        return f"Learner({type(self.model).__name__}, {self.strategies!r}, lr={self.lr}, batch_size={self.batch_size})"


#: a training loss above this is a diverged run, not a result (a cross-entropy of 1e10 means logits
#: of that size; no method's loss reaches it while it is still learning)
DIVERGED_LOSS = 1e10
#: inputs larger than this (in absolute value) are advised to be standardised when training diverges
LARGE_INPUT = 100.0


def _parameter_versions(model: nn.Module) -> list[tuple[int, int]]:
    """Each parameter's identity and in-place write count: unchanged by a fit that trained nothing
    (an optimizer step and a re-initialisation both write in place; a grown head is a new tensor)."""
    return [(id(p), p._version) for p in model.parameters()]


def _one_answer(answers: Tensor, y: Tensor, share: float = 0.98) -> str | None:
    """How a model answers one class for nearly every sample of a test set holding several (each at
    least a tenth of it), or None. Such a model separates nothing there with a finite loss (a step too
    large for momentum leaves the bias at the class prior, and so does too little training on a hard
    rule): no divergence check sees it.

    >>> y = torch.tensor([0, 1] * 50)
    >>> _one_answer(torch.full((100,), 3), y)
    'answered class 3 for 100.0% of its 100 test samples, which hold 2 classes'
    >>> zeros = torch.zeros(100, dtype=torch.long)
    >>> _one_answer(y, y), _one_answer(zeros, zeros)  # right answers; one class to answer
    (None, None)
    """
    # a few samples: too few to tell (50: a sensor trial's 60 per experience went unwarned at 100, eight
    # methods at ACC 0.100 answering one class of each two)
    if len(y) < 50 or len(answers) != len(y):
        return None
    held = torch.bincount(y)
    if int((held >= 0.1 * len(y)).sum()) < 2:  # one class to answer: answering it is right
        return None
    top = torch.bincount(answers + 1).argmax()  # -1, no answer allowed, counts as an answer too
    n = int((answers == top - 1).sum())
    if n < share * len(y):
        return None
    what = "no class" if top == 0 else f"class {int(top) - 1}"
    return f"answered {what} for {n / len(y):.1%} of its {len(y)} test samples, which hold {int((held > 0).sum())} classes"


def _check_logits(model: nn.Module, out: Any, batch: int) -> None:
    """Refuse a model whose output is not ``[batch, n_classes]`` logits (HuggingFace-style tuples and
    dicts, say) at its first forward, with the fix, instead of a TypeError deep inside a loss."""
    if isinstance(out, Tensor) and out.ndim == 2 and len(out) == batch:
        _check_head(model, out.shape[1])
        return
    if isinstance(out, Tensor):
        got = f"a tensor of shape {tuple(out.shape)} for a batch of {batch}"
    elif isinstance(out, dict):
        got = f"a {type(out).__name__} with keys {list(out)[:5]}"
    else:
        got = f"a {type(out).__name__}" + (f" of {len(out)}" if isinstance(out, (tuple, list)) else "")
    raise ConfigError(
        f"the model must return a logits tensor of shape (batch, n_classes); {type(model).__name__} returned "
        f"{got}. Wrap it: a small nn.Module whose forward returns self.inner(x)[0] (a tuple) or "
        'self.inner(x)["logits"] (a dict), or nn.Sequential(model, ...) with layers that make the output '
        "(batch, n_classes)"
    )


def _check_head(model: nn.Module, width: int) -> None:
    """Refuse a model whose output layer is not the Linear lifelong takes for its head.

    Without a ``classifier`` attribute the head is the last ``nn.Linear`` registered; when that is
    not the layer that makes the logits, labels would be checked (and the head grown) against the
    wrong layer, and torch's cross-entropy would fail with "Target 3 is out of bounds".
    """
    try:
        name, n = heads.head_name(model), heads.n_outputs(model)
    except ConfigError:
        return  # no Linear at all: strategies that need a head say so themselves
    if n != width:
        raise ConfigError(
            f"{type(model).__name__} returns {width} logits per sample, but its head as lifelong finds it "
            f"('{name}', the last nn.Linear registered) has {n} outputs; name the output layer 'classifier' "
            "(self.classifier = nn.Linear(..., n_classes)) so labels are checked, and the head grown, against it"
        )


def _experiences(stream: Any, where: str) -> list[Experience]:
    """The experiences of a Scenario or TaskFreeStream, or of an iterable of them (``list(scenario)``),
    or a DataError that says how to build a scenario from the data given."""
    if isinstance(stream, (Scenario, TaskFreeStream)):
        experiences = list(stream.experiences)
    else:
        experiences, got = [], type(stream).__name__
        arrays = (Tensor, np.ndarray, str, bytes, dict, Dataset)
        if (
            isinstance(stream, Iterable)
            and not isinstance(stream, arrays)
            and not hasattr(stream, "to_numpy")
        ):
            for e in stream:  # stops at the first item that is not one (a DataLoader is not read through)
                if not isinstance(e, Experience):
                    got = f"a {got} of {type(e).__name__}"
                    break
                experiences.append(e)
            else:
                got = ""
        if got:
            arrays_instead = (
                "learn from arrays with partial_fit(x, y)"
                if where == "fit"
                else "score arrays with predict(x)"
            )
            raise DataError(
                f"{where}: expected a Scenario (or its Experiences), got {got}; cut the data into experiences "
                "first, e.g. lifelong.data.scenarios.class_incremental(dataset, n_experiences=5) (or "
                "task_incremental, domain_incremental; dataset: a (train, test) pair, a Dataset, a Table or a "
                f"torch dataset), or {arrays_instead}"
            )
    if not experiences:
        raise DataError(f"{where}: the stream has no experiences")
    return experiences


def _refuse_nonfinite(x: Tensor, what: str) -> NoReturn:
    """A DataError naming how many samples of ``x`` hold a NaN or infinite input, and the first.

    ``from_tensors`` refuses them, but a ``Dataset`` built directly (or a torch dataset) is not
    checked: its NaN would make the run diverge, with advice about the learning rate, and NaN test
    inputs would be scored as wrong answers."""
    bad = ~torch.isfinite(x.reshape(len(x), -1)).all(1)
    raise DataError(
        f"{what} has NaN or infinite values in {int(bad.sum())} of its {len(x)} samples, the first at "
        f"index {int(bad.nonzero()[0])}; clean or impute them first"
    )


def _plain(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile`` wrapper holds (its state dict's keys carry ``_orig_mod.``, and a
    checkpoint of it would fit only another compiled model), or ``model`` itself."""
    inner = getattr(model, "_orig_mod", model)
    return inner if isinstance(inner, nn.Module) else model


def _grow_to_saved_head(model: nn.Module, saved: dict[str, Any]) -> None:
    """Grow the head of a model given to ``load`` to the saved one's outputs.

    A learner with ``allow_new_classes`` grows its head while it trains; a custom model has no spec
    to say so, and the caller builds it as it first was (``MyNet(n_classes=2)``), so the saved
    weights, one row per class seen, would not fit it.
    """
    try:
        name = heads.head_name(model)
        layer = heads.classifier(model)[2]
    except ConfigError:
        return  # no Linear head to grow: load_state_dict names whatever does not fit
    weight = saved.get(f"{name}.weight")
    if isinstance(weight, Tensor) and weight.ndim == 2 and weight.shape[1] == layer.in_features:
        heads.grow_classifier(model, int(weight.shape[0]))


def _reference(values: Sequence[float] | None, n: int) -> list[float] | None:
    """``reference_accuracy`` as one accuracy in [0, 1] per experience, or a ConfigError saying so."""
    if values is None:
        return None
    try:
        ref = [float(v) for v in values]
    except (TypeError, ValueError):
        ref = []
    if len(ref) != n or not all(0 <= v <= 1 for v in ref):
        raise ConfigError(
            f"reference_accuracy: give one accuracy in [0, 1] per experience ({n} for this stream), "
            f"got {values!r:.100}"
        )
    return ref


def _device(device: str | torch.device | None) -> torch.device:
    """``device`` checked up front, as the CLI's ``--device`` is (CPU when None); ``meta`` (shapes only)
    also passes: tests stand it in for a GPU."""
    if device is None:
        return torch.device("cpu")
    return torch.device("meta") if str(device) == "meta" else resolve_device(device, "device")


def _check_layout(got: tuple[int, ...], expected: tuple[int, ...], where: str) -> None:
    """Samples with the model's number of values are reshaped to its shape only from (or to) flat
    rows, or across dimensions of size 1: [N, H, W, C] images given to a [C, H, W] model hold the
    right number of values in another order, and reshaping them scrambles every sample."""
    if len(got) == 1 or len(expected) == 1:
        return
    if tuple(d for d in got if d != 1) != tuple(d for d in expected if d != 1):
        raise DataError(
            f"{where}: expected samples of shape {expected}, received {got}: as many values in another "
            "layout (channels last?), which reshaping would scramble; put them in the model's layout "
            f"({'x.permute(0, 2, 1) for [N, T, C] signals' if len(expected) == 2 else 'x.permute(0, 3, 1, 2) for [N, H, W, C] images'}) "
            "or pass flat rows"
        )


def _shape_refusal(err: BaseException, shape: Sequence[int], where: str, what: str = "samples") -> DataError:
    """torch's shape error of a model's first forward, said as what to change."""
    return DataError(
        f"{where}: the model cannot take {what} of shape {list(shape)} ({first_line(err)}); build it for "
        "that shape (or reshape the data)"
    )


def _check_one_input(model: nn.Module, err: TypeError) -> None:
    """Refuse a model whose forward needs more than the input tensor (``forward(self, x, t)``): the
    learner calls ``model(x)``, and a task id reaches the model through a strategy, not an argument."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a C extension's forward)
        return
    required = [
        p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if len(required) > 1:
        raise ConfigError(
            f"the model's forward must take one input tensor, model(x), but {type(model).__name__}.forward "
            f"requires ({', '.join(required)}): {err}. For a task-aware model use the MultiHead strategy (a "
            ".features trunk and a Linear .classifier: one head per task, chosen by the task id given to fit "
            "and predict), or wrap it in a small nn.Module whose forward(x) calls it with the other arguments "
            "fixed, e.g. self.inner(x, 0)"
        ) from err


def _version() -> str:
    from lifelong import __version__

    return __version__


def _require_scalar(value: Any, strategy: Strategy, hook: str) -> None:
    """A per-sample loss broadcast into the step's loss fails in backward() with torch's "grad can be
    implicitly created only for scalar outputs", which names neither the strategy nor the hook."""
    if isinstance(value, Tensor) and value.ndim != 0:
        raise ConfigError(
            f"{type(strategy).__name__}.{hook} returned a tensor of shape {tuple(value.shape)}; it must return "
            "a scalar (reduce it, e.g. with .mean() or .sum()) or None"
        )


def _plain_sgd(optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """The param group when ``optimizer.step()`` is one update ``p -= lr * grad`` (SGD, one group, no
    momentum, weight decay, maximize or hooks), else None.

    ``Optimizer.step`` and ``zero_grad`` wrap that update in a profiler range, hook checks and
    grad-mode switches that cost a small model about a fifth of its step at batch 10; the learner then
    does the same update itself, bit for bit (tests/learn/test_learner.py compares the weights).
    """
    if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    if group["momentum"] or group["weight_decay"] or group["maximize"] or not isinstance(group["lr"], float):
        return None
    hooks = (
        getattr(optimizer, "_optimizer_step_pre_hooks", None),
        getattr(optimizer, "_optimizer_step_post_hooks", None),
        getattr(_optimizer_module, "_global_optimizer_pre_hooks", None),
        getattr(_optimizer_module, "_global_optimizer_post_hooks", None),
    )
    if any(h is None or len(h) for h in hooks):  # a hook to run, or a torch that keeps them elsewhere
        return None
    return group


def _sgd_step(group: dict[str, Any]) -> None:
    params = [p for p in group["params"] if p.grad is not None]
    if params:
        with torch.no_grad():
            torch._foreach_add_(params, [p.grad for p in params], alpha=-group["lr"])


def _first_not_whole(t: Any) -> str:
    """The first task id in ``t`` that is not a whole number (a pandas NA, text, 1.5), with its
    position, or ``t`` itself on one line: a Series' repr spans lines and hides the culprit."""
    values = t.tolist() if hasattr(t, "tolist") else t
    if isinstance(values, (list, tuple)):
        for i, v in enumerate(values):
            ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            ok = ok or (isinstance(v, float) and math.isfinite(v) and v == round(v))
            if not ok:
                return f"{v!r} at position {i}"
    return " ".join(repr(t).split())[:80]


def _stream_id(experiences: Sequence[Experience], kind: str) -> list[Any]:
    """What a resumed fit must find again: the stream's kind and each experience's classes, task, sizes
    and a digest of its samples (another split of the same sizes was resumed as if it were this one)."""
    return [kind, *([list(e.classes), e.task_id, len(e.train), len(e.test), _digest(e.train), _digest(e.test)]
                    for e in experiences)]  # fmt: skip


def _digest(data: Dataset) -> str:
    """sha256 of a dataset's labels and its first and last 32 samples: cheap, and tells two splits apart."""
    h = hashlib.sha256(data.y.detach().cpu().contiguous().numpy().tobytes())
    for rows in (data.x[:32], data.x[-32:]):
        h.update(rows.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())  # any dtype, bf16 too
    return h.hexdigest()[:16]
