"""Hyper-parameters tuned per scenario family, read from the data files in ``hparams/``.

A class's defaults are its paper's values; the files hold what a search on validation data chose
for each scenario family (the CLI's benchmarks use them). ``tuned`` gives Python users the same.
A family's values were searched with a memory of ``SEARCH_MEMORY`` samples; a file may also hold
values searched at other memory sizes on one benchmark (``memory``: benchmark, then size), as the DER
authors tune each size: a memory method run on that benchmark gets the values searched at the size
nearest its own. They are not carried to the family's other benchmarks: the best rate follows the
stream's length as much as the memory (split-fmnist's memory-200 DER++ rate, 0.01, makes 0.62 on
split-digits, five short epochs, where the family's 0.05 makes 0.91). For the same reason a family's
other benchmark may have its own rates, searched there at ``SEARCH_MEMORY`` (split-digits does).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NamedTuple

from lifelong.bench.benchmarks import get as get_benchmark
from lifelong.errors import ConfigError
from lifelong.learn.strategy import REGISTRY, Strategy, strategy_names

HPARAMS_DIR = Path(__file__).resolve().parent / "hparams"
FAMILY_NAMES = ("class", "task", "domain")
DEFAULT_LR = 0.03  # the DER paper's protocol (SGD, batch 10), where a method's rate was not searched
SEARCH_MEMORY = 500  # the memory size a family's own values were searched at


class Tuned(NamedTuple):
    """A strategy built with tuned values, and the learner's learning rate searched with them."""

    strategy: Strategy
    lr: float


def tuned_params(
    name: str, family: str | None, benchmark: str | None = None, buffer_size: int | None = None
) -> dict[str, Any]:
    """``default``, then the values tuned for ``family``, then those searched on ``benchmark`` at the
    memory size nearest ``buffer_size`` (by ratio; without one, at ``SEARCH_MEMORY``'s), then any set
    for ``benchmark`` itself.

    An ``lr`` among them is the learner's, searched with the method's own values as the DER paper
    searches each method's learning rate. A strategy without a file has no tuned values.
    """
    path = HPARAMS_DIR / f"{name}.json"
    if not path.is_file():
        return {}
    table = json.loads(path.read_text())
    family_values = table.get("families", {}).get(family or "", {})
    searched = table.get("memory", {}).get(benchmark or "", {})  # benchmark, then memory size
    sizes = {SEARCH_MEMORY: {}, **{int(k): v for k, v in searched.items()}}
    # without a memory size, the values searched at the family's own
    size = buffer_size if buffer_size is not None and buffer_size > 0 else SEARCH_MEMORY
    nearest = min(sizes, key=lambda m: (abs(math.log(m / size)), -m))  # ties go to the larger memory
    family_values = {**family_values, **sizes[nearest]}
    return {**table.get("default", {}), **family_values, **(table.get(benchmark, {}) if benchmark else {})}


def build(name: str, params: dict[str, Any], **overrides: Any) -> Strategy:
    """``name`` built from ``params`` (keys it does not take are dropped) and ``overrides`` (checked)."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown strategy {name!r}; valid: {', '.join(strategy_names())}")
    cls = REGISTRY[name]
    accepted = cls().get_params()
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{name} takes no {', '.join(unknown)}; its hyper-parameters are: {', '.join(accepted) or 'none'}"
        )
    return cls(**{k: v for k, v in {**params, **overrides}.items() if k in accepted})


def tuned(name: str, family: str = "class", benchmark: str | None = None, **overrides: Any) -> Tuned:
    """The strategy the benchmarks run for a scenario family, and its learning rate; with ``benchmark``
    and ``buffer_size``, the values searched on that benchmark at the nearest memory size.

    >>> from lifelong.strategies import tuned
    >>> tuned("derpp", "class")
    Tuned(strategy=DERPP(buffer_size=500, batch_size=32, alpha=2.0, beta=1.0), lr=0.05)
    >>> tuned("derpp", "class", buffer_size=200).lr  # the family's values at any memory size
    0.05
    >>> tuned("derpp", "class", benchmark="split-fmnist", buffer_size=200)  # searched there at 200
    Tuned(strategy=DERPP(buffer_size=200, batch_size=32, alpha=2.0, beta=1.0), lr=0.01)
    >>> tuned("naive", "class", benchmark="split-digits").lr  # five short epochs: a larger rate, searched there
    0.1
    """
    if family not in FAMILY_NAMES:
        raise ConfigError(f"unknown scenario family {family!r}; valid: {', '.join(FAMILY_NAMES)}")
    if benchmark is not None:  # a misspelt name would silently fall back to the family's values
        get_benchmark(benchmark)  # ConfigError naming the valid ones
    params = tuned_params(name, family, benchmark, overrides.get("buffer_size"))
    lr = float(params.pop("lr", DEFAULT_LR))
    return Tuned(build(name, params, **overrides), lr)
