"""Conformance checks every registered strategy must pass, plus a toy stream and model for tests.

Each check is a named function ``check(strategy) -> None`` that raises ``AssertionError``
with a reason; ``run_checks`` runs them all. Tests parametrize over ``REGISTRY`` x ``CHECKS``.
A hybrid (a list of strategies, as a learner takes it) is checked as one: its parts' definitions
one by one, its training (save, resume, determinism, scenario kinds) together, so an interaction
between the parts (a penalty on another part's replayed samples) is trained through.

Examples
--------
>>> from lifelong.strategies import Replay
>>> len(run_checks(Replay(buffer_size=20)))  # the checks passed, by name
9
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import Tensor, nn

from lifelong.data.dataset import Dataset, Split
from lifelong.data.scenarios import (
    KINDS,
    Scenario,
    class_incremental,
    domain_incremental,
    task_free,
    task_incremental,
)
from lifelong.errors import ConfigError, StrategyMismatchError
from lifelong.learn.callbacks import Callback, Control, LoopState
from lifelong.learn.learner import Learner
from lifelong.learn.models import MLP
from lifelong.learn.strategy import Strategy


def toy_data(n_classes: int = 4, per_class: int = 60, dim: int = 8, seed: int = 0) -> Split:
    """Gaussian blobs, one per class, well separated: a stream a tiny MLP learns in seconds."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=g) * 3

    def draw(n: int) -> Dataset:
        y = torch.arange(n_classes).repeat_interleave(n)
        x = centres[y] + torch.randn(len(y), dim, generator=g)
        return Dataset(x, y, name="toy")

    return Split(draw(per_class), draw(per_class // 3))


def toy_scenario(kind: str = "class", seed: int = 0) -> Any:
    """Two experiences of two classes each (class / task), two permutations (domain) or a task-free stream."""
    data = toy_data(seed=seed)
    if kind == "class":
        return class_incremental(data, n_experiences=2)
    if kind == "task":
        return task_incremental(data, n_experiences=2)
    if kind == "domain":
        return domain_incremental(data, permutations=2, seed=seed)
    if kind == "task-free":
        return task_free(class_incremental(data, n_experiences=2), batch_size=8, seed=seed)
    raise ValueError(f"unknown kind {kind!r}; valid: {KINDS}")


def toy_model(seed: int = 0, batch_norm: bool = False) -> nn.Module:
    """The toy scenario's MLP (8 inputs, 16 hidden units, 4 classes); ``batch_norm`` puts a
    BatchNorm1d after the hidden layer, for the checks of what a method does with one."""
    torch.manual_seed(seed)
    model = MLP(in_features=8, hidden=(16,), n_classes=4)
    if batch_norm:
        flatten, linear, relu = model.features
        model.features = nn.Sequential(flatten, linear, nn.BatchNorm1d(16), relu)
        del model.lifelong_spec  # no longer the registered "mlp" its spec would rebuild
    return model


Checked: TypeAlias = "Strategy | Sequence[Strategy]"  # one strategy, or a hybrid's parts


def _parts(strategy: Checked) -> list[Strategy]:
    return [strategy] if isinstance(strategy, Strategy) else list(strategy)


def _clone(strategy: Checked) -> Checked:
    return strategy.clone() if isinstance(strategy, Strategy) else [s.clone() for s in strategy]


def _supports(strategy: Checked) -> set[str]:
    """The scenario kinds every part supports."""
    return set(KINDS).intersection(*(s.supports for s in _parts(strategy)))


def _name(strategy: Checked) -> str:
    return "+".join(type(s).__name__ for s in _parts(strategy))


def _kind_for(strategy: Checked) -> str:
    for kind in ("class", "task", "domain", "task-free"):
        if kind in _supports(strategy):
            return kind
    raise AssertionError(f"{_name(strategy)} supports no scenario kind")


def _learner(strategy: Checked, seed: int = 0) -> Learner:
    return Learner(toy_model(seed), _parts(strategy), lr=0.1, batch_size=8, epochs=1, seed=seed)


def _states(learner: Learner) -> list[dict[str, Any]]:
    return [s.state_dict() for s in learner.strategies]


def _weights(learner: Learner) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in learner.model.state_dict().items()}


def _same(a: Tensor, b: Tensor) -> bool:
    """Bit-equal, NaN equal to NaN: a diverged run's state is compared as saved, and its failure is
    reported as divergence (:func:`check_supported_kinds`), not as "differs"."""
    if torch.equal(a, b):
        return True
    return (
        a.is_floating_point() and a.dtype == b.dtype and torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)
    )


def _tensors_equal(a: Any, b: Any, where: str = "state") -> None:
    if isinstance(a, Tensor):
        assert isinstance(b, Tensor) and a.shape == b.shape and _same(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys differ ({set(a) ^ set(b)})"
        for k in a:
            _tensors_equal(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _tensors_equal(x, y, f"{where}/{i}")
    elif hasattr(a, "__array__") or hasattr(b, "__array__"):  # numpy: == is elementwise
        assert np.array_equal(np.asarray(a), np.asarray(b)), f"{where} differs"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def check_params(strategy: Checked) -> None:
    """Each constructor argument is stored under its own name, as ``get_params`` (and so ``clone``
    and checkpoints) read it back."""
    for part in _parts(strategy):
        try:
            part.get_params()
        except ConfigError as e:
            raise AssertionError(str(e)) from None


def check_clone(strategy: Checked) -> None:
    """``clone()`` gives a new object with equal hyper-parameters and untrained state."""
    _learner(strategy).fit(toy_scenario(_kind_for(strategy)))
    for part in _parts(strategy):
        fresh = part.clone()
        assert fresh is not part and type(fresh) is type(part)
        assert fresh.get_params() == part.get_params(), (
            f"{type(part).__name__}: clone changed hyper-parameters"
        )
        _tensors_equal(fresh.state_dict(), type(part)(**part.get_params()).state_dict(), "clone state")


def check_state_dict_roundtrip(strategy: Checked) -> None:
    """Save after training, load into a new learner: same state, same predictions."""
    kind = _kind_for(strategy)
    stream = toy_scenario(kind)
    learner = _learner(strategy)
    learner.fit(stream)
    with tempfile.TemporaryDirectory() as d:
        learner.save(d)
        loaded = Learner.load(d)
    _tensors_equal(_states(learner), _states(loaded), "strategy state")
    test = stream.experiences[0].test
    assert _same(
        learner.predict_logits(test.features(), test.t), loaded.predict_logits(test.features(), test.t)
    ), "predictions differ after save and load"


def check_resume(strategy: Checked) -> None:
    """Saved in the middle of an experience (between ``partial_fit`` calls; at the boundary for a method
    that rewrites an experience's data) and loaded, training goes on as if it had never stopped: the
    same weights, strategy state and predictions. State kept outside ``state_dict`` fails here."""
    kind = _kind_for(strategy)
    first, second = toy_scenario("class" if kind == "task-free" else kind).experiences[:2]
    whole = any(
        type(s).train_data is not Strategy.train_data for s in _parts(strategy)
    )  # partial_fit refuses
    n, half = len(second.train), len(second.train) // 2
    parts = [second.train.subset(torch.arange(half)), second.train.subset(torch.arange(half, n))]

    def run(stop: bool) -> Learner:
        learner = _learner(_clone(strategy), seed=1)
        learner.learn(first)
        for i, part in enumerate([second.train] if whole else parts):
            if stop and i == (0 if whole else 1):
                with tempfile.TemporaryDirectory() as d:
                    learner.save(d)
                    learner = Learner.load(d)
            if whole:
                learner.learn(second)
            else:
                learner.partial_fit(part.features(), part.y, part.t)
        if not whole:
            learner.consolidate()
        return learner

    straight, resumed = run(False), run(True)
    lost = [a for s, r in zip(straight.strategies, resumed.strategies) for a in _lost_attributes(s, r)]
    assert not lost, (
        f"attributes {lost} differ after a checkpoint: learned state must end in '_' (saved with the "
        "strategy), or be rebuilt from saved state in attach"
    )
    _tensors_equal(_weights(straight), _weights(resumed), "weights")
    _tensors_equal(_states(straight), _states(resumed), "strategy state")
    test = second.test
    assert _same(
        straight.predict_logits(test.features(), test.t), resumed.predict_logits(test.features(), test.t)
    ), "predictions differ"


def check_fit_resume(strategy: Checked) -> None:
    """A ``fit`` checkpointed after its first experience (from ``on_evaluate``, as the README says) and
    loaded goes on at the second, to the accuracy matrix of a fit that never stopped. A check of the
    whole stream that counts the experiences already learned (PackNet's room for tasks) fails here."""
    kind = _kind_for(strategy)
    scenario = toy_scenario("class" if kind == "task-free" else kind)

    class CrashAfterFirst(Callback):  # saves as the README says, then ends the fit as a crash would
        def on_evaluate(self, state: LoopState, control: Control) -> None:
            if state.evaluation == 0:
                learner.save(directory)
                raise _Crash

    straight = _learner(_clone(strategy), seed=1).fit(scenario)
    with tempfile.TemporaryDirectory() as directory:
        learner = _learner(_clone(strategy), seed=1)
        learner.add_callback(CrashAfterFirst())
        with contextlib.suppress(_Crash):
            learner.fit(scenario)
        resumed = Learner.load(directory).fit(scenario)
    assert np.array_equal(straight.accuracy_matrix, resumed.accuracy_matrix), (
        f"a fit resumed from a checkpoint saved after its first experience ended with the accuracy matrix "
        f"{resumed.accuracy_matrix}, one that never stopped with {straight.accuracy_matrix}"
    )


class _Crash(Exception):
    """Ends a fit where a crash would (``check_fit_resume``)."""


def _lost_attributes(straight: Strategy, resumed: Strategy) -> list[str]:
    """Public attributes without the trailing ``_`` (so not saved) whose values differ between a run
    straight through and one resumed from a checkpoint: state the checkpoint dropped."""
    lost = []
    for k, v in vars(straight).items():
        if k.startswith("_") or k.endswith("_") or k in straight.get_params():
            continue
        try:
            _tensors_equal(v, getattr(resumed, k, None), k)
        except (AssertionError, TypeError, RuntimeError):
            lost.append(k)
    return lost


def check_seeded_determinism(strategy: Checked) -> None:
    """Two learners with the same seed end with bit-identical weights."""
    kind = _kind_for(strategy)
    runs = []
    for _ in range(2):
        learner = _learner(_clone(strategy), seed=3)
        learner.fit(toy_scenario(kind))
        runs.append(_weights(learner))
    _tensors_equal(runs[0], runs[1], "weights")


def check_inputs_not_mutated(strategy: Checked) -> None:
    """Training never writes into the scenario's data, nor into the arrays given to ``partial_fit``
    (whose batches are views of them, where ``fit``'s are copies)."""
    kind = _kind_for(strategy)
    stream = toy_scenario(kind)
    before = [(e.train.x.clone(), e.train.y.clone(), e.test.x.clone()) for e in stream.experiences]
    _learner(_clone(strategy)).fit(stream)
    for (x, y, xt), e in zip(before, stream.experiences):
        assert torch.equal(x, e.train.x) and torch.equal(y, e.train.y) and torch.equal(xt, e.test.x), (
            "fit wrote into the scenario's data"
        )
    first = toy_scenario("class" if kind == "task-free" else kind).experiences[0].train
    x, y = first.features(), first.y.clone()
    t = None if first.t is None else first.t.clone()
    x0 = x.clone()
    try:
        with warnings.catch_warnings():  # "acts at boundaries": advice for a user's stream, not this check
            warnings.filterwarnings("ignore", "partial_fit: .* acts at boundaries", UserWarning)
            _learner(strategy).partial_fit(x, y, t)
    except StrategyMismatchError:  # refuses partial_fit (it rewrites a whole experience's training set)
        return
    assert torch.equal(x, x0) and torch.equal(y, first.y), "partial_fit wrote into the caller's x or y"


def check_supported_kinds(strategy: Checked) -> None:
    """Every scenario kind the strategy declares in ``supports`` trains without raising or diverging
    (a strategy whose penalty was NaN on every task-incremental run passed, since only errors counted)."""
    for kind in KINDS:
        if kind in _supports(strategy):
            learner = _learner(_clone(strategy))
            try:
                with warnings.catch_warnings():  # the divergence is reported below, as the failure
                    warnings.filterwarnings("ignore", "training diverged", RuntimeWarning)
                    result = learner.fit(toy_scenario(kind))
            except Exception as e:
                raise AssertionError(f"declares {kind} in supports, but a {kind} scenario raised "
                                     f"{type(e).__name__}: {e}") from e  # fmt: skip
            assert not result.diverged, (
                f"declares {kind} in supports, but training on a {kind} scenario diverged (a non-finite or "
                f"exploding loss): {learner.divergence_hint()}"
            )


def check_support_enforced(strategy: Checked) -> None:
    """An unsupported scenario kind is refused before any weight changes."""
    for kind in KINDS:
        if kind in _supports(strategy):
            continue
        learner = _learner(_clone(strategy))  # a strategy belongs to one learner
        before = _weights(learner)
        try:
            learner.fit(toy_scenario(kind))
        except StrategyMismatchError:
            pass
        else:
            raise AssertionError(f"{_name(strategy)} accepted an unsupported {kind} scenario")
        _tensors_equal(before, _weights(learner), "weights after refusal")


CHECKS: dict[str, Callable[[Checked], None]] = {
    "params": check_params,  # first: every other check clones, which reads the params
    "clone": check_clone,
    "state_dict_roundtrip": check_state_dict_roundtrip,
    "resume": check_resume,
    "fit_resume": check_fit_resume,
    "seeded_determinism": check_seeded_determinism,
    "inputs_not_mutated": check_inputs_not_mutated,
    "supported_kinds": check_supported_kinds,
    "support_enforced": check_support_enforced,
}


def run_checks(strategy: Strategy | Sequence[Strategy]) -> list[str]:
    """Run every check on fresh clones of ``strategy`` (or of a hybrid's parts, a list) and return
    their names (all passed); the AssertionError it raises is the report:
    each failed check by name, with its reason (an exception a check raised is one too). After a failed
    ``params`` check the others, which clone the strategy, cannot run and are not tried."""
    hybrid = (
        isinstance(strategy, (list, tuple)) and strategy and all(isinstance(p, Strategy) for p in strategy)
    )
    if not (isinstance(strategy, Strategy) or hybrid):
        raise ConfigError(
            f"run_checks takes a Strategy instance or a non-empty list of them (a hybrid), got {strategy!r}: "
            "pass e.g. run_checks(EWC()) or run_checks([Replay(200), LwF()])"
        )
    failures = []
    for name, check in CHECKS.items():
        try:
            check(strategy if name == "params" else _clone(strategy))
        except AssertionError as e:
            failures.append(f"{name}: {e}")
            if name == "params":
                break
        except Exception as e:  # a hook that raises is a failure to report, not the end of the report
            failures.append(f"{name}: raised {type(e).__name__}: {e}")
    if failures:
        raise AssertionError(
            f"{_name(strategy)} fails {len(failures)} of the {len(CHECKS)} conformance checks:\n"
            + "\n".join(f"  {f}" for f in failures)
        )
    return list(CHECKS)


__all__ = ["CHECKS", "Scenario", "run_checks", "toy_data", "toy_model", "toy_scenario"]
