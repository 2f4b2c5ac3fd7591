"""The strategy hook interface: a method overrides only the moments of the loop it cares about.

The learner owns the loop (``Learner.train_step`` reads top to bottom); a strategy never
copies it. Every hook is a no-op by default, and the learner calls only the hooks a strategy
overrides, so an unused moment costs nothing per step.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from lifelong.data.dataset import Batch, Dataset
from lifelong.data.scenarios import KINDS as SCENARIO_KINDS
from lifelong.errors import CheckpointError, ConfigError
from lifelong.learn.models import origin
from lifelong.learn.params import refuse_unknown_params

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner

#: name -> class, filled by subclasses that set ``name``; the CLI and checkpoints resolve names here.
REGISTRY: dict[str, type[Strategy]] = {}

HOOKS = (
    "attach",
    "before_experience",
    "train_data",
    "batch",
    "forward",
    "loss",
    "penalty",
    "after_backward",
    "after_step",
    "after_experience",
    "predict",
    "train_step",
)
#: the moments of a step that a strategy owning the step (``owns`` "step") never reaches
STEP_HOOKS = ("batch", "loss", "penalty", "after_backward", "train_step")


class Strategy:
    """Base class of continual-learning methods.

    Class attributes declare what a method is: ``name`` (registry and CLI name),
    ``supports`` (scenario kinds among ``class``, ``task``, ``domain``, ``task-free``) and
    ``needs`` (``task_labels``, ``boundaries``). Constructors check hyper-parameters
    (:func:`check_param`, :func:`check_choice`) and store them verbatim; learned state lives in
    attributes ending in ``_`` and is what :meth:`state_dict` saves.

    Two more declarations matter to the learner: ``reads_window`` (False when
    :meth:`after_experience` never reads the experience's data, so ``partial_fit`` need not keep
    the window's batches until the boundary) and ``rows_per_rank`` (attributes holding samples,
    as dicts of row-aligned tensors, that each rank keeps a share of under torch.distributed;
    :class:`~lifelong.learn.buffers.Buffer` attributes are found without it).

    ``owns`` names what a method takes over, which at most one strategy of a learner may:
    ``step`` (it trains with its own step, so other strategies' batch, loss, penalty and
    after_backward hooks would never run: MER, GDumb; a :meth:`train_step` that returns a loss
    without declaring it is refused at its first step if another strategy has such hooks) and
    ``parameters`` (it allocates, masks or
    grows the model's parameters per task: HAT, PackNet, CPG, PNN, DEN, adapters, one model per
    experience). The learner refuses a combination that breaks this before any training.

    ``anchors`` marks a penalty on each parameter's distance from its value at the last boundary,
    kept per parameter name and shape (EWC, SI, MAS, L2, RWalk, SCP); ``grows_layers`` a method that
    widens hidden layers (CPG, DEN), after which those anchors no longer fit: the learner refuses
    the two together, and a grower beside a method that ``keeps_teacher`` (a copy of the model at the
    last boundary, rebuilt from its weights: LwF, iCaRL, generative replay's solver). ``follows_growth`` False: the method keeps state sized to the model's weights
    that a grown head cannot join (OGD's flattened directions), so ``allow_new_classes`` is refused
    before the head grows. ``float32_only``: the method builds float32 tensors or layers of its own
    (importances, projections, new columns), so a float64 or bfloat16 model is refused when the
    learner is built. ``single_process`` says why a method cannot train under torch.distributed
    (refused in every rank, and by the service at start-up with ``--nproc`` > 1).
    ``waits_for_boundary``: a task-free-capable method that trains as fine-tuning until the first
    boundary unless the learner is ``task_free`` (ER-ACE); ``partial_fit`` warns about it, as about
    every method without ``task-free`` support, until ``consolidate()`` is first called.
    """

    name: ClassVar[str] = ""
    supports: ClassVar[frozenset[str]] = frozenset({"class", "task", "domain", "task-free"})
    needs: ClassVar[frozenset[str]] = frozenset()
    reads_window: ClassVar[bool] = True
    rows_per_rank: ClassVar[tuple[str, ...]] = ()
    owns: ClassVar[frozenset[str]] = frozenset()
    anchors: ClassVar[bool] = False
    keeps_teacher: ClassVar[bool] = False
    grows_layers: ClassVar[bool] = False
    follows_growth: ClassVar[bool] = True
    float32_only: ClassVar[bool] = False
    single_process: ClassVar[str] = ""  # why it cannot train under torch.distributed ("": it can)
    waits_for_boundary: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register a class that sets its own ``name``; a name another class holds is refused (as
        ``register_model`` does), so a plugin cannot silently replace a built-in for the CLI and for
        checkpoints. The same class defined again (a module imported or reloaded) replaces itself."""
        super().__init_subclass__(**kwargs)
        unknown = sorted(set(cls.supports) - set(SCENARIO_KINDS))
        if unknown:  # a misspelled kind ("task_free") would refuse the scenarios it meant to support
            raise ConfigError(
                f"{cls.__name__}.supports: unknown scenario kinds {unknown}; valid: {', '.join(SCENARIO_KINDS)}"
            )
        init = cls.__dict__.get("__init__")
        if init is not None and not hasattr(init, "__wrapped__"):  # a typo'd hyper-parameter: a ConfigError
            cls.__init__ = refuse_unknown_params(init)  # type: ignore[method-assign]
        name = cls.__dict__.get("name")
        if not name:
            return
        if not cls.__module__.startswith("lifelong."):  # the built-ins hold their names first
            import lifelong.strategies  # noqa: F401
        old = REGISTRY.get(name)
        if old is not None and origin(old) != origin(cls):
            raise ConfigError(
                f"strategy name {name!r} of {origin(cls)} is already taken by {origin(old)}; pick another name"
            )
        REGISTRY[name] = cls

    # -- hooks, in loop order -------------------------------------------------------------
    def attach(self, learner: Learner) -> None:
        """Called when the learner is built and after state is loaded: rebuild model structure."""

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        """A new experience starts: grow a column, reset a head, snapshot the old model."""

    def train_data(self, learner: Learner, experience: Experience, data: Dataset) -> Dataset:
        """Choose what the experience trains on (cumulative and joint training replace it)."""
        return data

    def batch(self, learner: Learner, batch: Batch) -> Batch:
        """Return the batch to train on; replay appends samples after the incoming ones."""
        return batch

    def forward(self, learner: Learner, x: Tensor, t: Tensor | None) -> Tensor | None:
        """Compute logits when the model needs more than ``model(x)`` (task heads, masks)."""
        return None

    def loss(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        """Replace the task loss (cross-entropy by default); the first non-None answer wins."""
        return None

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        """A term added to the loss: regularisation or distillation."""
        return None

    def after_backward(self, learner: Learner) -> None:
        """Gradients are ready: project or mask them."""

    def after_step(self, learner: Learner) -> None:
        """The optimizer stepped: accumulate path integrals, store the incoming batch."""

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        """Consolidate at a boundary: importances, exemplars, pruning, freezing."""

    def predict(self, learner: Learner, x: Tensor, t: Tensor | None) -> Tensor | None:
        """Scores at inference when they differ from the training forward (nearest mean, masks)."""
        return None

    def train_step(self, learner: Learner, batch: Batch) -> Tensor | None:
        """Own a whole step (meta-updates); the exception, not the rule. Return the loss."""
        return None

    # -- configuration and state --------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters, read from the constructor's signature: each argument's attribute of the
        same name (clone and checkpoints rebuild the strategy from them); a constructor taking
        ``**kwargs`` adds its parent constructor's arguments."""
        params: dict[str, Any] = {}
        # a subclass passing **kwargs on to its parent's constructor: the parent's arguments are its too
        for depth, klass in enumerate(c for c in type(self).__mro__ if "__init__" in c.__dict__):
            if klass in (Strategy, object):
                break
            sig = inspect.signature(klass.__dict__["__init__"])
            for p, v in sig.parameters.items():
                if p == "self" or v.kind in (v.VAR_POSITIONAL, v.VAR_KEYWORD) or p in params:
                    continue
                if not hasattr(self, p):
                    if depth:  # a parent's argument the subclass may set itself under another name
                        continue
                    raise ConfigError(
                        f"{type(self).__name__}: constructor argument {p!r} is not stored as self.{p}; get_params, "
                        f"clone and checkpoints read each hyper-parameter back by its name: store it verbatim "
                        f"(self.{p} = {p})"
                    )
                params[p] = getattr(self, p)
            if not any(v.kind == v.VAR_KEYWORD for v in sig.parameters.values()):
                break
        return params

    def clone(self) -> Strategy:
        """A fresh, untrained strategy with the same hyper-parameters."""
        return type(self)(**self.get_params())

    def state_dict(self) -> dict[str, Any]:
        """Learned state: every attribute ending in ``_`` (objects with ``state_dict`` recurse)."""
        state = {}
        for k, v in vars(self).items():
            if isinstance(v, nn.Module) and k.endswith("_") and not k.startswith("_"):
                raise CheckpointError(
                    f"{type(self).__name__}.{k} holds a model ({type(v).__name__}); a checkpoint keeps tensors "
                    "and plain data, not modules: keep its weights ({name: p.detach().clone()}) in the state "
                    "and rebuild the module from them when needed (as LwF keeps its teacher's), or name the "
                    "attribute with a leading underscore if it need not survive a checkpoint"
                )
            if k.endswith("_") and not k.startswith("_"):
                state[k] = v.state_dict() if hasattr(v, "state_dict") else v
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s attributes. The names must be this strategy's own and each value of
        the kind its attribute holds: a checkpoint edited, or written by another version of the method,
        loaded "fine" and failed (or protected nothing: an EWC without its anchors) at the next step."""
        expected = self.state_dict()
        unknown, missing = sorted(state.keys() - expected.keys()), sorted(expected.keys() - state.keys())
        if unknown or missing:
            raise CheckpointError(
                f"{type(self).__name__}: the checkpoint's state "
                + "; ".join(
                    ([f"has unknown {unknown}"] if unknown else [])
                    + ([f"lacks {missing}"] if missing else [])
                )
                + ": it was written by another version of the strategy, or edited (load it with that version), "
                "or the strategy sets these attributes outside __init__ (declare them there)"
            )
        for k, v in state.items():
            current = getattr(self, k, None)
            if current is not None and v is not None and _kind(current) != _kind(v):
                raise CheckpointError(
                    f"{type(self).__name__}.{k}: the checkpoint holds {type(v).__name__} where "
                    f"{_kind(current)} is expected (an edited or foreign checkpoint)"
                )
            if current is not None and hasattr(current, "load_state_dict"):
                current.load_state_dict(v)
            else:
                setattr(self, k, v)

    def memory_bytes(self) -> int:
        """Bytes of stored samples, logits or generators (the method's memory cost)."""
        return 0

    def extra_parameters(self) -> int:
        """Parameters the method keeps beyond the model (old models, importances count as state)."""
        return 0

    def check_stream(self, learner: Learner, experiences: list[Experience]) -> None:
        """Refuse, before ``fit`` trains anything, a stream the method cannot finish (PackNet with
        more tasks than it shares its weights among); nothing by default."""

    def divergence_hint(self) -> str | None:
        """What to change when a run with this strategy diverged, if the method knows a likely cause."""
        return None

    def __repr__(self) -> str:
        try:
            params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        except ConfigError:  # a repr must not raise: it is used in the very messages that explain this
            params = "..."
        return f"{type(self).__name__}({params})"


def get_strategy(name: str, defined_as: str | None = None) -> type[Strategy]:
    """The strategy class registered as ``name``; the built-ins are always found.

    The built-in methods register when ``lifelong.strategies`` (this package's own module) is
    imported, which happens here on first need; plugins must have been imported already.
    ``defined_as`` (a checkpoint's record of a subclass with no name of its own, see
    :func:`checkpoint_entry`): that subclass of the named class, which must be defined already.
    """
    if name not in REGISTRY:
        import lifelong.strategies  # noqa: F401  (the built-ins register themselves on import)
    if name and name not in REGISTRY:
        raise ConfigError(
            f"unknown strategy {name!r}; registered strategies: {', '.join(strategy_names())}. To use your "
            "own, subclass lifelong.learn.Strategy with a `name` in a module that is imported first: in "
            "Python, import it yourself; on the command line, --plugin module.path or "
            "LIFELONG_PLUGINS=module.path; or an installed 'lifelong.strategies' entry point"
        )
    base = REGISTRY[name] if name else Strategy
    if defined_as is None or origin(base) == defined_as:
        if base is Strategy:
            raise ConfigError("a strategy needs a name (or, in a checkpoint, the class it was saved from)")
        return base
    found = [c for c in _subclasses(base) if origin(c) == defined_as]
    if not found:
        raise ConfigError(
            f"strategy {defined_as}, a subclass of {origin(base)} without a `name` of its own, is not defined "
            "here: import the module that defines it first (--plugin module.path), or give it its own `name`"
        )
    return found[-1]  # the latest definition, as a reloaded module's


def checkpoint_entry(strategy: Strategy) -> dict[str, Any]:
    """How a checkpoint records ``strategy``: its registered name and hyper-parameters, plus, for a
    subclass without a name of its own (``class MyReplay(Replay)``), where it is defined, so that it
    loads back as that subclass instead of silently as its parent."""
    entry: dict[str, Any] = {"name": strategy.name, "params": strategy.get_params()}
    if REGISTRY.get(strategy.name) is not type(strategy):
        entry["class"] = origin(type(strategy))
    return entry


def _subclasses(cls: type[Strategy]) -> list[type[Strategy]]:
    """Every subclass of ``cls`` defined so far, in definition order, depth first."""
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def strategy_names() -> list[str]:
    """Every registered strategy name, the built-ins included."""
    import lifelong.strategies  # noqa: F401

    return sorted(REGISTRY)


def overrides(strategy: Strategy, hook: str) -> bool:
    """Whether ``strategy`` implements ``hook`` itself (so the learner must call it)."""
    return getattr(type(strategy), hook) is not getattr(Strategy, hook)


def _kind(value: Any) -> str:
    """What a state value is, as a checkpoint carries it (tuples come back as lists, ints as floats may)."""
    if hasattr(value, "state_dict") and not isinstance(value, Tensor):
        return "dict"  # an object restored from its state dict
    for kind, types in (("tensor", Tensor), ("bool", bool), ("number", (int, float)), ("text", str),
                        ("dict", dict), ("list", (list, tuple)), ("set", (set, frozenset))):  # fmt: skip
        if isinstance(value, types):
            return kind
    return type(value).__name__
