"""Run a grid of benchmarks x strategies x seeds and aggregate the results."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lifelong.bench.benchmarks import BENCHMARKS, Benchmark, get
from lifelong.errors import ConfigError
from lifelong.learn.callbacks import Callback
from lifelong.learn.learner import ADAPTIVE_LR, OPTIMIZERS, Learner
from lifelong.learn.models import for_input
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy
from lifelong.learn.strategy import strategy_names as _registered
from lifelong.strategies import tuning
from lifelong.strategies.tuning import DEFAULT_LR

MEMORY_PARAMS = ("buffer_size",)


def strategy_names() -> list[str]:
    return _registered()


#: scenario family of each benchmark: hyper-parameters are tuned per family, on validation data
FAMILIES = {"split-fmnist": "class", "split-digits": "class", "split-fmnist-task": "task",
            "permuted-fmnist": "domain", "rotated-fmnist": "domain"}  # fmt: skip


def tuned_params(name: str, benchmark: str, buffer: int | None = None) -> dict[str, Any]:
    """Best-known hyper-parameters for ``name`` on ``benchmark`` with a memory of ``buffer`` samples:
    its family's, then those searched on the benchmark at the nearest memory size, then its own.

    Not a built-in benchmark (the user's own file, ``advise``): none, so the strategy runs with its
    class's defaults (its paper's values) and ``DEFAULT_LR``; values searched on Fashion-MNIST
    need not suit other data."""
    if benchmark not in BENCHMARKS:
        return {}
    return tuning.tuned_params(name, FAMILIES.get(benchmark), benchmark, buffer)


def validation_split(scenario: Any, fraction: float, seed: int) -> Any:
    """Hold out ``fraction`` of every experience's training data as its test set (for tuning: the
    real test sets are never looked at)."""
    g = torch.Generator().manual_seed(seed)
    for e in scenario.experiences:
        order = torch.randperm(len(e.train), generator=g)
        n_val = max(1, int(len(e.train) * fraction))
        e.test, e.train = (
            e.train.subset(order[:n_val].sort().values),
            e.train.subset(order[n_val:].sort().values),
        )
    return scenario


def make_strategy(name: str, benchmark: str, buffer: int | None = None, **overrides: Any) -> Strategy:
    return _built(name, tuned_params(name, benchmark, buffer), buffer, overrides)


def _built(name: str, tuned: dict[str, Any], buffer: int | None, overrides: dict[str, Any]) -> Strategy:
    params = dict(tuned)
    if buffer is not None:  # build drops it for a method that keeps no memory
        params.update(dict.fromkeys(MEMORY_PARAMS, buffer))
    return tuning.build(name, params, **overrides)  # an override it does not take is refused, by name


@dataclass
class Settings:
    model: str = "mlp"
    epochs: int = 1  # 0: the benchmark's default
    lr: float | None = None  # None: the strategy's tuned value for the benchmark's family, else DEFAULT_LR
    batch_size: int = 10
    buffer: int | None = 500
    train_fraction: float = 1.0
    device: str = "cpu"  # cpu, cuda, cuda:1, mps
    extra: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "sgd"  # the tuned rates are SGD's; adam and adamw default to ADAPTIVE_LR
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the model's factory
    # strategy name -> values over the tuned ones (bench --params)
    strategy_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse values no run means (a fraction of 0 would still train on one sample per experience)."""
        check_param("Settings", "train_fraction", self.train_fraction, low=0, low_open=True, high=1)
        check_param("Settings", "lr", self.lr, low=0, low_open=True, none="the tuned value")
        check_param("Settings", "epochs", self.epochs, int, low=0, none="the benchmark's")  # 0 too
        check_param("Settings", "batch_size", self.batch_size, int, low=1)
        check_param("Settings", "buffer", self.buffer, int, low=0, none="each strategy's own memory size")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"Settings: unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}"
            )


def _subsample(scenario: Any, fraction: float, seed: int) -> Any:
    """Keep ``fraction`` of every experience's training data (to fit a CPU budget; the test sets stay whole)."""
    if fraction >= 1.0:
        return scenario
    g = torch.Generator().manual_seed(seed)
    for e in scenario.experiences:
        n = max(1, int(len(e.train) * fraction))
        e.train = e.train.subset(torch.randperm(len(e.train), generator=g)[:n].sort().values)
    return scenario


def configured(
    strategy: str,
    benchmark: str,
    buffer: int | None = None,
    lr: float | None = None,
    params: dict[str, Any] | None = None,
    optimizer: str = "sgd",
) -> tuple[Strategy, float]:
    """The strategy and learning rate a run of ``strategy`` on ``benchmark`` uses: its tuned values
    (``params`` override them) and rate, unless ``lr`` sets one for every strategy. The one place that
    decides both, for ``run_one``, ``bench --dry-run`` and the reproductions. The tuned rates are
    SGD's: under an adaptive ``optimizer`` the default is ``ADAPTIVE_LR``."""
    tuned = tuned_params(strategy, benchmark, buffer)  # read once, for the values and the rate
    tuned_lr = float(tuned.get("lr", DEFAULT_LR)) if optimizer == "sgd" else ADAPTIVE_LR
    rate = lr if lr is not None else tuned_lr
    return _built(strategy, tuned, buffer, params or {}), rate


#: joins a hybrid's methods in a run's name: ``replay+lwf`` trains Replay and LwF together, in that order
HYBRID = "+"


def parts(strategy: str) -> list[str]:
    """The methods a run's strategy name trains with: ``"replay+lwf"`` -> ``["replay", "lwf"]``."""
    return strategy.split(HYBRID)


def configured_run(strategy: str, benchmark: str, settings: Settings,
                   params: dict[str, Any] | None = None) -> tuple[list[Strategy], float]:  # fmt: skip
    """The methods and learning rate of a run of ``strategy`` (one method or a hybrid ``a+b``): each
    method its tuned values, ``settings.strategy_params`` (by method name, also within a hybrid) and
    ``params`` (a single method's) over them; the rate ``settings.lr``, else the smallest of the
    methods' tuned rates (a hybrid is not tuned as one: each method was stable at its own rate, and
    their losses add up; on split-digits replay+lwf collapsed to one class at replay's 0.3, and
    scored 0.93 at LwF's 0.1)."""
    names = parts(strategy)
    if params and len(names) > 1:
        raise ConfigError(f"params apply to one method; for the hybrid {strategy} give each method's values by "
                          "name in Settings.strategy_params (bench --params)")  # fmt: skip
    built = [configured(n, benchmark, settings.buffer, settings.lr,
                        {**settings.strategy_params.get(n, {}), **(params or {})}, settings.optimizer)
             for n in names]  # fmt: skip
    return [s for s, _ in built], min(rate for _, rate in built)


def run_params(strategies: Sequence[Strategy], strategy: str) -> dict[str, Any]:
    """A run entry's ``params``: one method's values, or a hybrid's per method name."""
    if len(strategies) == 1:
        return strategies[0].get_params()
    return {n: s.get_params() for n, s in zip(parts(strategy), strategies, strict=True)}


def run_one(benchmark: str | Benchmark, strategy: str, seed: int, settings: Settings, callbacks: Sequence[Callback] = (),
            scenario: Any = None, params: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Train one strategy on one benchmark with one seed; returns a ``results.json`` run entry.

    ``params`` override the tuned hyper-parameters of the strategy.
    """
    bench = benchmark if isinstance(benchmark, Benchmark) else get(benchmark)
    benchmark = bench.name
    if scenario is None:
        scenario = _subsample(bench.build(seed), settings.train_fraction, seed)
    learner = build_learner(benchmark, strategy, seed, settings, scenario, callbacks, params)
    strats, lr = list(learner.strategies), learner.lr
    result = learner.fit(scenario)
    return {
        "benchmark": benchmark, "strategy": strategy, "seed": seed, "params": run_params(strats, strategy),
        "settings": run_settings(settings, lr),
        "accuracy_matrix": result.accuracy_matrix, "metrics": result.metrics,
        # what FWT and the flip rate were computed from, so both can be recomputed from the file
        "untrained_accuracy": result.untrained_accuracy, "flips": result.flips,
        "divergence_hint": result.info.get("divergence_hint"),
        "info": result.info,  # the fit's notes: one class answered, nothing trained, the peak's scope
        # what each column of the matrix is: a file's tasks and domains by name (task-north, domain-site2)
        "experiences": [{"name": e.train.name.removesuffix("-train"), "task_id": e.task_id, "classes": list(e.classes)}
                        for e in getattr(scenario, "experiences", [])],
    }  # fmt: skip


def run_settings(settings: Settings, lr: float) -> dict[str, Any]:
    """A run entry's ``settings``: what it trained with, the resolved learning rate included."""
    return {"model": settings.model, "model_kwargs": settings.model_kwargs, "epochs": settings.epochs, "lr": lr,
            "batch_size": settings.batch_size, "buffer": settings.buffer,
            "train_fraction": settings.train_fraction, "device": settings.device,
            # only when not SGD: an SGD run keeps the key it had before the optimizer was a setting
            **({"optimizer": settings.optimizer} if settings.optimizer != "sgd" else {})}  # fmt: skip


def build_learner(benchmark: str, strategy: str, seed: int, settings: Settings, scenario: Any,
                  callbacks: Sequence[Callback] = (), params: dict[str, Any] | None = None) -> Learner:  # fmt: skip
    """The model and learner a run trains; building it is where a strategy refuses a model it cannot
    act on (no ``.features``, batch norm under a projection), so ``bench`` builds every one first."""
    torch.manual_seed(seed)
    model = for_input(settings.model, scenario.input_shape, scenario.n_classes, **settings.model_kwargs)
    strats, lr = configured_run(strategy, benchmark, settings, params)
    return Learner(model, strats, lr=lr, batch_size=settings.batch_size, epochs=settings.epochs, seed=seed,
                   callbacks=callbacks, device=settings.device, optimizer=settings.optimizer)  # fmt: skip


def add_intransigence(runs: Sequence[dict[str, Any]]) -> None:
    """Intransigence (Chaudhry et al., 2018) of every run whose benchmark and seed also ran
    ``cumulative``: its accuracy on each experience just after learning it, below cumulative's (a
    model trained on all data up to there, the reference), averaged. Written into each run's metrics;
    NaN for a diverged run or against a diverged reference."""
    from lifelong.metrics import intransigence

    reference = {(r["benchmark"], r["seed"]): r for r in runs if r["strategy"] == "cumulative"}
    for r in runs:
        ref = reference.get((r["benchmark"], r["seed"]))
        if ref is None:
            continue
        diagonal = [row[j] for j, row in enumerate(ref["accuracy_matrix"]) if j < len(row)]
        bad = r["metrics"].get("diverged") or ref["metrics"].get("diverged")
        r["metrics"]["intransigence"] = math.nan if bad else intransigence(r["accuracy_matrix"], diagonal)
        r["reference_accuracy"] = diagonal  # what intransigence was measured against


def summarize(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds, one row per (benchmark, strategy)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["benchmark"], r["strategy"]), []).append(r)
    rows = []
    for (benchmark, strategy), rs in groups.items():
        row: dict[str, Any] = {"benchmark": benchmark, "strategy": strategy, "seeds": len(rs)}
        for k in rs[0]["metrics"]:
            vals = [math.nan if r["metrics"][k] is None else float(r["metrics"][k]) for r in rs]  # null: NaN
            row[k] = statistics.fmean(vals)
            finite = all(math.isfinite(v) for v in vals)  # a diverged seed's NaN: stdev raises on it
            row[k + "_std"] = (statistics.stdev(vals) if finite else math.nan) if len(vals) > 1 else 0.0
        rows.append(row)
    return rows


#: fewer optimizer steps than this in an experience read as a barely trained model, and are said
FEW_STEPS = 30


def few_steps(scenario: Any, batch_size: int, epochs: int) -> str:
    """A note when an experience trains too few steps to learn (a wine-sized file at one epoch: 5 steps,
    naive scoring 0.75 on a class before training on it, FWT positive, BWT 0): else nothing."""
    steps = [math.ceil(len(e.train) / batch_size) * epochs for e in scenario.experiences]
    if not steps or min(steps) >= FEW_STEPS:
        return ""
    k = steps.index(min(steps))
    n = len(scenario.experiences[k].train)
    return (f"only {steps[k]} training steps in experience {k} ({n} samples, batch {batch_size}, {epochs} "
            f"epoch{'s' if epochs != 1 else ''}): too few to learn, which shows as accuracy on classes not yet "
            "trained and little forgetting; raise --epochs")  # fmt: skip
