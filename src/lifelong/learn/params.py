"""Checks of the numbers and choices a user passes: one rule and one message for every option.

Strategies' hyper-parameters, the Learner's arguments, the reference models' sizes and the benchmark
runner's settings all go through ``check_param``, so ``lr=nan`` reads the same wherever it is given:
``Learner: lr=nan is invalid; lr must be a finite number > 0``.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import numbers
import operator
from collections.abc import Callable, Collection
from typing import Any, TypeVar, cast

from lifelong.errors import ConfigError

F = TypeVar("F", bound=Callable[..., None])


def check_param(
    owner: object,
    name: str,
    value: Any,
    kind: type = float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    none: str | None = None,
) -> None:
    """Refuse a hyper-parameter outside its range when the strategy is built, not steps later.

    Why: a bad value otherwise trains silently wrong (GEM without memory is fine-tuning) or fails deep
    in torch. ``kind`` is ``float`` (a finite real number: no NaN, inf, string or bool), ``int`` (a
    whole number, not a float: counts, sizes) or ``bool``; ``low``/``high`` bound it (exclusive when
    ``low_open``/``high_open``); ``none`` says what None means where None is allowed. The ConfigError
    names ``owner`` (a strategy or other object, or a name), the parameter, the value given and the valid
    range.
    """
    if value is None and none is not None:
        return
    if kind is bool:
        typed = isinstance(value, bool)
    elif kind is int:  # a Python, NumPy or torch integer (``operator.index`` takes each); not a bool
        typed = not isinstance(value, bool) and _index(value) is not None
        value = _index(value) if typed else value
    else:
        typed = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = typed and (
        kind is bool
        or (
            (kind is int or math.isfinite(value))
            and (low is None or (value > low if low_open else value >= low))
            and (high is None or (value < high if high_open else value <= high))
        )
    )
    if not ok:
        need = _requirement(kind, low, high, low_open, high_open)
        given = f"{value!r}" if typed else f"{value!r} (a {type(value).__name__})"
        alternative = f" (or None: {none})" if none is not None else ""
        raise ConfigError(f"{_owner(owner)}: {name}={given} is invalid; {name} must be {need}{alternative}")


def check_choice(owner: object, name: str, value: Any, choices: Collection[str]) -> None:
    """Refuse an option that is not one of ``choices``, naming the strategy and the valid ones."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(
            f"{_owner(owner)}: {name}={value!r} is invalid; {name} must be one of {', '.join(map(repr, choices))}"
        )


def _owner(owner: object) -> str:
    return owner if isinstance(owner, str) else type(owner).__name__


def _requirement(kind: type, low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """``a whole number >= 1``, ``a finite number in [0, 1)``, ``True or False``."""
    if kind is bool:
        return "True or False"
    what = "a whole number" if kind is int else "a finite number"
    if low is not None and high is not None:
        return f"{what} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{what} {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{what} {'<' if high_open else '<='} {high:g}"
    return what


def _index(value: Any) -> int | None:
    try:
        return operator.index(value)
    except TypeError:
        return None


def refuse_unknown_params(init: F, owner: str | None = None) -> F:
    """Wrap a constructor so that a keyword it does not take (a typo such as ``EWC(lamda=1)``) or a
    missing or surplus argument is a :class:`ConfigError` naming the parameter, the nearest valid
    name and the valid ones, instead of Python's bare ``TypeError``; errors raised inside the
    constructor's body are left as they are."""
    signature = inspect.signature(init)
    valid = [p for p in list(signature.parameters)[1:] if signature.parameters[p].kind not in (
        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]  # fmt: skip

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            signature.bind(self, *args, **kwargs)
        except TypeError as err:
            name = owner or type(self).__name__
            unknown = [k for k in kwargs if k not in signature.parameters]
            if unknown:
                hints = []
                for k in unknown:
                    close = difflib.get_close_matches(k, valid, n=1)
                    hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
                what = f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(hints)}"
            else:
                what = str(err)
            raise ConfigError(f"{name}: {what}; valid parameters: {', '.join(valid) or 'none'}") from None
        init(self, *args, **kwargs)

    return cast(F, wrapper)
