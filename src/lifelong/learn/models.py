"""Models by registered name, so a checkpoint can rebuild them without pickling code.

A factory (a class or a function returning an ``nn.Module``) registers under a name with
:func:`register_model`; :func:`create_model` builds it and attaches ``lifelong_spec`` (the name
and the JSON keyword arguments), which the learner writes to the checkpoint manifest and
:func:`build` turns back into a module on load. Plugins register by being imported
(``--plugin module``, ``LIFELONG_PLUGINS`` or an entry point, see :mod:`lifelong.learn.plugins`);
nothing is ever imported because a checkpoint names a model.

>>> @register_model("tiny")
... def tiny(in_features: int = 4, n_classes: int = 2) -> nn.Module:
...     return nn.Linear(in_features, n_classes)
>>> create_model("tiny", in_features=3).lifelong_spec
{'name': 'tiny', 'kwargs': {'in_features': 3}}
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from lifelong.errors import ConfigError, DataError, StrategyMismatchError
from lifelong.learn.params import check_param

Factory = Callable[..., nn.Module]
F = TypeVar("F", bound=Factory)

#: name -> factory; filled by :func:`register_model` (the built-ins below and every imported plugin).
MODELS: dict[str, Factory] = {}

HOW_TO_REGISTER = (
    "register its factory with @lifelong.learn.models.register_model(name) in a module that is imported "
    "first: in Python, import it yourself; on the command line, --plugin module.path or "
    "LIFELONG_PLUGINS=module.path; or an installed 'lifelong.models' entry point"
)


def register_model(name: str) -> Callable[[F], F]:
    """Register a factory (class or function returning an ``nn.Module``) under ``name``.

    Registering the same factory twice (a module imported again) is a no-op; another factory
    under a taken name is refused, so two plugins cannot silently shadow each other. A class built
    directly (``MyNet(hidden=24)``, not through :func:`create_model`) records its spec too, so its
    checkpoint loads.
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise ConfigError(f"register_model: the name must be a non-empty string, got {name!r}")

    def decorator(factory: F) -> F:
        old = MODELS.get(name)
        if old is not None and origin(old) != origin(factory):
            raise ConfigError(
                f"register_model: {name!r} is already registered by {origin(old)}; pick another name"
            )
        MODELS[name] = factory
        if isinstance(factory, type) and issubclass(factory, nn.Module):
            _record_spec_when_built(factory, name)
        return factory

    return decorator


def _record_spec_when_built(cls: type[nn.Module], name: str) -> None:
    """Wrap ``cls.__init__`` to record ``{"name", "kwargs"}`` from the arguments it was given, where
    they are JSON data (else the checkpoint cannot rebuild it, and loading says to use create_model)."""
    init = cls.__dict__.get("__init__")
    if init is None or getattr(init, "__lifelong_records__", False):
        return
    signature = inspect.signature(init)

    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if type(self) is not cls or isinstance(getattr(self, "lifelong_spec", None), dict):
            return  # a subclass is not this factory; create_model and built-ins record their own
        try:
            bound = signature.bind(self, *args, **kwargs).arguments
        except TypeError:
            return
        given: dict[str, Any] = {}
        for i, (param, value) in enumerate(bound.items()):
            kind = signature.parameters[param].kind
            if i == 0:
                continue  # self
            if kind is inspect.Parameter.POSITIONAL_ONLY:
                return  # no keyword to rebuild it with
            if kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    return  # nor for extra positional arguments
            elif kind is inspect.Parameter.VAR_KEYWORD:
                given.update(value)
            else:
                given[param] = value
        try:
            plain = json.loads(json.dumps(given, allow_nan=False))
        except (TypeError, ValueError):
            return
        self.lifelong_spec = {"name": name, "kwargs": plain}  # type: ignore[assignment]

    functools.update_wrapper(__init__, init)
    __init__.__lifelong_records__ = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[method-assign]


def origin(obj: Any) -> str:
    """``module.qualname`` of a class or function: the same for a module imported again, different
    for another definition under a taken name (models and strategies register by name)."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def model_names() -> list[str]:
    return sorted(MODELS)


def get_factory(name: str) -> Factory:
    """The factory registered as ``name``; ConfigError naming the valid names otherwise."""
    if name not in MODELS:
        raise ConfigError(
            f"unknown model {name!r}; registered models: {', '.join(model_names())}. "
            f"To use your own, {HOW_TO_REGISTER}"
        )
    return MODELS[name]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build registered model ``name`` with ``kwargs`` and record its spec for checkpoints.

    ``kwargs`` must be JSON data (numbers, strings, lists, dicts): the checkpoint stores them
    as JSON and rebuilds the model from them. Tuples become lists.
    """
    factory = get_factory(name)
    try:
        plain = json.loads(json.dumps(kwargs, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"model {name!r}: keyword arguments must be JSON data (numbers, strings, lists, dicts): {e}"
        ) from e
    try:
        model = factory(**plain)
    except (TypeError, ValueError, RuntimeError) as e:  # a wrong keyword, or a value torch cannot size
        raise ConfigError(f"model {name!r} cannot be built with {plain}: {str(e).splitlines()[0]}") from e
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model {name!r}: the factory returned {type(model).__name__}, not an nn.Module")
    spec = getattr(model, "lifelong_spec", None)
    if not (isinstance(spec, dict) and spec.get("name") == name):  # built-ins record their defaults too
        # a plain attribute: nn.Module's stub types attributes as Tensor | Module
        model.lifelong_spec = {"name": name, "kwargs": plain}  # type: ignore[assignment]
    return model


def build(spec: dict[str, Any]) -> nn.Module:
    """Rebuild a model from its ``lifelong_spec`` (``{"name", "kwargs"}``)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"a model spec needs a name and kwargs, got {spec!r}")
    return create_model(spec["name"], **spec.get("kwargs", {}))


@register_model("mlp")
class MLP(nn.Module):
    """Flatten, then ``Linear-ReLU`` blocks and a linear classifier (``classifier`` is the head)."""

    def __init__(
        self, in_features: int = 784, hidden: Sequence[int] = (100, 100), n_classes: int = 10
    ) -> None:
        super().__init__()
        if isinstance(hidden, int):  # MLP(64, 10) reads as (in_features, n_classes) but means hidden=10
            raise ConfigError(
                f"MLP: hidden is a list of layer widths, got the number {hidden}; pass n_classes by "
                f"keyword: MLP({in_features}, n_classes={hidden}) (or hidden=[{hidden}])"
            )
        check_param("MLP", "in_features", in_features, int, low=1)
        check_param("MLP", "n_classes", n_classes, int, low=1)
        if (
            isinstance(hidden, (str, bytes))
            or not isinstance(hidden, Iterable)
            or not all(map(_size, hidden))
        ):
            raise ConfigError(
                f"MLP: hidden must be a list of layer widths, each a whole number >= 1; got {hidden!r}"
            )
        dims = [in_features, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(dims[-1], n_classes)
        self.lifelong_spec = {"name": "mlp", "kwargs": {"in_features": in_features, "hidden": list(hidden),
                                                        "n_classes": n_classes}}  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@register_model("cnn")
class CNN(nn.Module):
    """Two conv blocks and a linear head: small enough for CPU, strong enough for Fashion-MNIST."""

    def __init__(
        self, in_channels: int = 1, image_size: int = 28, width: int = 32, n_classes: int = 10
    ) -> None:
        super().__init__()
        for option, value in (("in_channels", in_channels), ("width", width), ("n_classes", n_classes)):
            check_param("CNN", option, value, int, low=1)
        check_param("CNN", "image_size", image_size, int, low=4)  # two 2x2 poolings: smaller leaves no pixel
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )  # fmt: skip
        side = image_size // 4
        self.classifier = nn.Linear(2 * width * side * side, n_classes)
        self.lifelong_spec = {"name": "cnn", "kwargs": {"in_channels": in_channels, "image_size": image_size,
                                                        "width": width, "n_classes": n_classes}}  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def _size(value: Any) -> bool:
    """Whether ``value`` is a whole number >= 1 (a Python, NumPy or torch integer; not a bool): a width in
    ``hidden``."""
    if isinstance(value, bool):
        return False
    try:
        return operator.index(value) >= 1
    except TypeError:
        return False


def for_input(name: str, input_shape: Sequence[int], n_classes: int, /, **kwargs: Any) -> nn.Module:
    """Build model ``name`` sized for ``input_shape`` ([C, H, W] or [D]) and ``n_classes``.

    The built-ins get their sizes computed (``kwargs`` add to them). Any other registered model
    gets ``in_features`` (the flattened sample size), ``n_classes`` and, for samples of two or more
    dimensions, ``in_channels`` (the first) where its signature takes them; ``kwargs`` extend or
    override them (a CNN's image size, say). The model is
    then checked against the data (:func:`check_fits`).
    """
    if name == "mlp":
        model = create_model(
            "mlp", **{"in_features": math.prod(input_shape), "n_classes": n_classes, **kwargs}
        )
    elif name == "cnn":
        if len(input_shape) != 3:
            raise ConfigError(f"model cnn needs image inputs [C, H, W], got {tuple(input_shape)}; use mlp")
        sizes = {"in_channels": input_shape[0], "image_size": input_shape[-1], "n_classes": n_classes}
        model = create_model("cnn", **{**sizes, **kwargs})
    else:
        factory = get_factory(name)  # unknown names fail here, with the list of valid ones
        sizes = {"in_features": math.prod(input_shape), "n_classes": n_classes}
        if len(input_shape) >= 2:  # a signal's [C, T] or an image's [C, H, W]: its channels, as the cnn gets
            sizes["in_channels"] = input_shape[0]
        sizes = {k: v for k, v in sizes.items() if _accepts(factory, k)}  # a CNN may take n_classes only
        try:
            model = create_model(name, **{**sizes, **kwargs})
        except ConfigError as e:
            raise ConfigError(
                f"{e}; sizing a model for the data passes in_features and n_classes where its factory takes "
                "them, so a factory that needs other arguments gets them from its kwargs (--model-kwargs)"
            ) from e
    check_fits(model, input_shape, n_classes, name)
    return model


# Words torch's shape errors use ("mat1 and mat2 shapes cannot be multiplied", "expected input[2, 1, 8, 8]
# to have 3 channels", "Expected 3D (unbatched) or 4D (batched) input", "The size of tensor a (10) must
# match", "running_mean should contain 10 elements not 8", "Dimension out of range") and its other
# errors do not ("must have the same dtype", "out of memory").
_SHAPE_WORDS = re.compile(r"shape|size|dimension|channels|\d+D\b|elements not", re.IGNORECASE)


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none), for a one-line report."""
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__


def is_shape_error(err: BaseException) -> bool:
    """Whether an error from a model's forward is torch saying the input has the wrong shape.

    Only such an error is reported as the data's shape (with the shape to build the model for); any
    other error of the model's own code passes on unchanged, so that it is not misnamed as one."""
    return isinstance(err, (RuntimeError, IndexError, ValueError, AssertionError)) and bool(
        _SHAPE_WORDS.search(first_line(err))
    )


def shape_error(err: BaseException) -> BaseException | None:
    """torch's shape error behind ``err``: ``err`` itself, or the one the learner's first forward
    already said as a DataError (raised from it); None when ``err`` is about something else."""
    if is_shape_error(err):
        return err
    cause = err.__cause__
    return cause if isinstance(err, DataError) and cause is not None and is_shape_error(cause) else None


def check_fits(model: nn.Module, input_shape: Sequence[int], n_classes: int, name: str) -> None:
    """Refuse, before any training, a model whose forward cannot take samples of ``input_shape`` (a
    CNN given images stored as rows of pixels, say), or that has fewer outputs than the data has
    classes (``n_classes`` in ``--model-kwargs`` under the data's: training would stop at the first
    labels the head lacks, advising ``allow_new_classes=True``, a Python argument the CLI does not take).

    One forward of two zero samples, in eval mode and without gradients, so nothing about the model
    changes. Its embeddings take the probe's float zeros as token ids, as they take every input once
    a Learner holds the model."""
    from lifelong.learn.tokens import accept_token_ids

    accept_token_ids(model)  # idempotent; the Learner registers the same hooks
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))
    except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as err:
        shape = ",".join(str(d) for d in input_shape)
        first = first_line(err)
        if not is_shape_error(err):
            raise ConfigError(
                f"model {name!r} fails on two zero samples of shape [{shape}] before any data reaches it "
                f"({type(err).__name__}: {first}); check its code and kwargs (--model-kwargs)"
            ) from err
        raise ConfigError(
            f"model {name!r} cannot take samples of shape [{shape}] ({first}); check its "
            "kwargs (--model-kwargs) against the data, and if the samples are images stored as rows of "
            "pixels, give their shape (--input-shape C,H,W)"
        ) from err
    finally:
        model.train(was_training)
    width = out.shape[-1] if isinstance(out, Tensor) and out.ndim == 2 else None
    if width is not None and width < n_classes:
        raise ConfigError(
            f"model {name!r} has {width} outputs, but the data has labels up to {n_classes - 1} "
            f"({n_classes} classes); drop n_classes from --model-kwargs (it is sized for the data) "
            f"or set it to at least {n_classes}"
        )


def _accepts(factory: Factory, keyword: str) -> bool:
    """Whether ``factory`` takes ``keyword`` (by name or through ``**kwargs``); True if unknowable."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return True
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def spec_input_shape(spec: dict[str, Any] | None) -> tuple[int, ...] | None:
    """The sample shape a spec declares: ``(in_features,)``, or ``(C, H, W)`` for the CNN; else None."""
    if not isinstance(spec, dict):
        return None
    kw = spec.get("kwargs") or {}
    if spec.get("name") == "cnn":
        side = int(kw.get("image_size", 28))
        return (int(kw.get("in_channels", 1)), side, side)
    if isinstance(kw.get("in_features"), int):
        return (kw["in_features"],)
    if spec.get("name") == "mlp":
        return (784,)
    return None


@contextlib.contextmanager
def reading_features(model: nn.Module, who: str) -> Iterator[None]:
    """Name the convention when ``model.features`` cannot take the model's inputs.

    Nearest-mean, multi-head and adapter methods (and herding memories) call ``model.features(x)``
    themselves, as the input of ``model.classifier``: a model with a ``features`` submodule that is
    only part of the way there (an embedding or a reshape before it) fails inside torch with a shape
    error that names neither. A dtype error passes through (the learner names the model's dtype).
    """
    try:
        yield
    except RuntimeError as err:
        first = first_line(err)
        if "dtype" in first or "scalar type" in first:
            raise
        raise StrategyMismatchError(
            f"{who} calls {type(model).__name__}.features(x) on the model's inputs and feeds the result to "
            f".classifier, so forward must be classifier(features(x)); features could not take them ({first}): "
            "put every layer before the classifier (an embedding, a reshape) inside .features"
        ) from err


def has_batch_norm(model: nn.Module) -> bool:
    """Whether a training forward mixes the samples of a batch (batch norm), so one sample alone
    cannot be trained on and a batch's rows are not independent."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
