"""Train one candidate version out of the serving process, gate it, and register it only if it passes.

``train_once`` reads the window of labelled samples that arrived since the last attempt, continues
the champion's checkpoint (or starts a fresh model for ``scheduled-retrain``), closes the window
with ``consolidate()`` (the boundary, where replay stores exemplars and EWC importances), and then
compares candidate and champion on data neither was trained on:

- *new data*: the most recent ``holdout_fraction`` of the window, held out of training (and trained
  on next time, since the cursor stops before it);
- *old data*: the champion's replay memory when it has one, else the most recent samples trained on
  before this window. There it measures accuracy and the negative flip rate (samples the champion
  got right that the candidate gets wrong: the regressions users notice).

The decision and its figures are stored as a ``gate`` event. Registration goes through
``registry.publish()``, so a trainer killed at any point leaves no half-registered version; the
order publish -> alias -> cursor makes a crash retrain the same window (at least once), never skip it.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import torch

import lifelong.strategies  # noqa: F401  (fills the strategy REGISTRY that Learner.load resolves names in)
from lifelong.data.dataset import Dataset
from lifelong.data.scenarios import Experience
from lifelong.errors import ConfigError, NotFoundError
from lifelong.learn.learner import Learner
from lifelong.learn.models import build, for_input
from lifelong.learn.strategy import REGISTRY, Strategy
from lifelong.system.policy import Gate, Mode, Policy, judge
from lifelong.system.registry import Registry
from lifelong.system.store import Store, samples

CURSOR = "trainer"  # last sample id a training attempt consumed (passed or not)


@dataclass
class TrainResult:
    """What one attempt did; ``version`` is set only when the gate passed and the version registered."""

    trained: bool
    passed: bool = False
    version: int | None = None
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float = 0.0


def train_once(
    store: Store,
    registry: Registry,
    policy: Policy,
    gate: Gate | None = None,
    *,
    reason: str = "",
    mode: Mode | None = None,
    prepare: Callable[[Dataset], Dataset] | None = None,
) -> TrainResult:
    """Train, gate and maybe register one candidate on the labelled samples since the last attempt.

    ``prepare`` may rewrite the training part of the window (augment, filter; tests corrupt labels
    with it); the holdout is never touched.
    """
    gate = gate or Gate()
    mode = mode or policy.mode
    champion = registry.alias("champion")
    if champion is None:
        raise NotFoundError("no champion to train from; bootstrap one with `lifelong up --bootstrap digits`")
    start_cpu = time.process_time()
    ids, data = _window(store, policy, mode)
    n_hold = max(gate.min_holdout, int(len(ids) * gate.holdout_fraction))
    if len(ids) < n_hold + 1:
        return TrainResult(False, reasons=[f"window too small: {len(ids)} labelled samples"])
    train_ids, train, holdout = (
        ids[:-n_hold],
        data.subset(torch.arange(len(ids) - n_hold)),
        data.subset(torch.arange(len(ids) - n_hold, len(ids))),
    )
    if prepare is not None:
        train = prepare(train)
    old_learner = Learner.load(registry.get(champion).path)
    candidate = _candidate(registry.get(champion).path, policy, mode)
    candidate.learn(Experience(candidate.experience_index + 1, tuple(train.classes), 0, train, holdout))
    old = _old_data(store, old_learner, int(ids[0]), gate.old_size)
    with tempfile.TemporaryDirectory(prefix="lifelong-candidate-") as tmp:
        candidate.save(tmp)
        size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 2**20
        figures = _compare(candidate, old_learner, holdout, old)
        figures.update(size_mb=size_mb, latency_ms=_latency_ms(candidate, holdout))
        cpu = time.process_time() - start_cpu
        figures.update(
            train_cpu_seconds=cpu, n_train=len(train), n_holdout=len(holdout), n_old=len(old or ())
        )
        reasons = judge(gate, figures)
        passed = not reasons
        payload = {
            "passed": passed,
            "reasons": reasons,
            "reason": reason,
            "mode": mode,
            "policy": policy.kind,
            "parent": champion,
            "window": [int(train_ids[0]), int(train_ids[-1])],
            "figures": figures,
            "train_cpu_seconds": cpu,
            "version": None,
        }
        version = None
        if passed:
            name = "+".join(s.name for s in candidate.strategies) or (
                "scratch" if mode == "scratch" else "naive"
            )
            with registry.publish(
                strategy=name,
                parent=champion,
                params={"policy": policy.to_dict(), "gate": asdict(gate), "mode": mode},
                window=(int(train_ids[0]), int(train_ids[-1])),
                metrics=figures,
            ) as draft:
                shutil.copytree(tmp, draft.path, dirs_exist_ok=True)
            version = draft.version
            payload["version"] = version
    store.add_event("gate", payload)
    if version is not None:
        if gate.promote_to == "champion":
            registry.set_alias("champion", version)
        elif gate.promote_to == "canary":
            registry.set_alias("canary", version, share=gate.canary_share)
        store.mark_trained(train_ids, version)
    store.advance_cursor(CURSOR, int(train_ids[-1]))
    return TrainResult(True, passed, version, reasons, figures, cpu)


def bootstrap(
    store: Store,
    registry: Registry,
    data: Dataset,
    *,
    model: str = "mlp",
    n_classes: int | None = None,
    strategies: Sequence[str] = (),
    strategy_params: dict[str, Any] | None = None,
    epochs: int = 10,
    lr: float = 0.05,
    momentum: float = 0.9,
    batch_size: int = 16,
    seed: int = 0,
) -> int:
    """Train a first champion on ``data`` so a fresh system can serve; return its version."""
    torch.manual_seed(seed)
    # Train on float32 inputs shaped as the server stores them ([N, D] for an MLP), so the replay
    # memory filled here holds the same form as the windows it later mixes with.
    x = data.features()
    data = Dataset(x.reshape(len(x), -1) if model == "mlp" else x, data.y, None, 1.0, data.name)
    net = for_input(model, data.input_shape, n_classes or max(data.classes) + 1)
    learner = Learner(net, _strategies(strategies, strategy_params or {}), lr=lr, momentum=momentum,
                      batch_size=batch_size, epochs=epochs, seed=seed)  # fmt: skip
    learner.learn(Experience(0, tuple(data.classes), 0, data, data))
    name = "+".join(strategies) or "naive"
    with registry.publish(strategy=name, params={"bootstrap": data.name, "model": model}) as draft:
        learner.save(draft.path)
    assert draft.version is not None
    registry.set_alias("champion", draft.version)
    store.add_event("bootstrap", {"version": draft.version, "data": data.name, "n": len(data)})
    return draft.version


# --- helpers ------------------------------------------------------------------------------------
def _strategies(names: Sequence[str], params: dict[str, Any]) -> list[Strategy]:
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ConfigError(f"unknown strategy {unknown[0]!r}; valid: {', '.join(sorted(REGISTRY))}")
    return [REGISTRY[n](**params) for n in names]


def _candidate(path: Path, policy: Policy, mode: Mode) -> Learner:
    """Continue the champion (its strategies' state included), or a fresh model of the same shape."""
    loaded = Learner.load(path)
    wanted = policy.strategies
    if mode == "finetune" and [s.name for s in loaded.strategies] == wanted:
        learner = loaded  # memory and importances carry over from version to version
    else:
        model = loaded.model if mode == "finetune" else build(loaded.model.lifelong_spec)  # type: ignore[arg-type]
        learner = Learner(
            model,
            _strategies(wanted, policy.strategy_params),
            optimizer=loaded.optimizer_name,
            lr=loaded.lr,
            momentum=loaded.momentum,
            batch_size=loaded.batch_size,
            seed=loaded.seed + loaded.step,
        )
    learner.epochs = policy.epochs
    return learner


def _window(store: Store, policy: Policy, mode: Mode) -> tuple[torch.Tensor, Dataset]:
    """Labelled samples to learn from, in id order: new ones (fine-tuning) or the recent ``window``."""
    cursor = store.cursor(CURSOR)
    if mode == "scratch":
        since = _nth_latest_labelled(store, policy.window)
    else:
        since = cursor
        if store.count_samples(since, labelled_only=True) > policy.window:  # keep the most recent
            since = max(since or 0, _nth_latest_labelled(store, policy.window) or 0)
    s = store.samples(since_id=since, labelled_only=True)
    return s.ids, _dataset(s.x, s.y)


def _nth_latest_labelled(store: Store, n: int) -> int | None:
    """The id just before the ``n`` most recent labelled samples (None: fewer than ``n`` exist)."""
    q = sa.select(samples.c.id).where(samples.c.label.is_not(None)).order_by(samples.c.id.desc())
    with store.engine.connect() as conn:
        row = conn.execute(q.offset(n).limit(1)).first()
    return None if row is None else int(row[0])


def _dataset(x: torch.Tensor, y: torch.Tensor, name: str = "window") -> Dataset:
    """Stored features as a Dataset: floats as sent, uint8 images scaled by 1/255."""
    return Dataset(x, y, None, 1 / 255 if x.dtype == torch.uint8 else 1.0, name)


def _old_data(store: Store, champion: Learner, first_new: int, n: int) -> Dataset | None:
    """The champion's replay memory, else the ``n`` most recent samples trained on before the window."""
    for s in champion.strategies:
        buf = getattr(s, "buffer_", None)
        if buf is not None and len(buf) and buf.x is not None:
            return Dataset(buf.x[: buf.size], buf.y[: buf.size].clone(), None, buf.scale, "replay-memory")
    q = sa.select(samples.c.id).where(samples.c.label.is_not(None), samples.c.id < first_new)
    with store.engine.connect() as conn:
        row = conn.execute(q.order_by(samples.c.id.desc()).offset(n).limit(1)).first()
    s = store.samples(
        since_id=None if row is None else int(row[0]), until_id=first_new - 1, labelled_only=True
    )
    return _dataset(s.x, s.y, "previous") if len(s.ids) else None


def _compare(candidate: Learner, champion: Learner, new: Dataset, old: Dataset | None) -> dict[str, Any]:
    cand_new, champ_new = candidate.correct(new), champion.correct(new)
    figures: dict[str, Any] = {
        "new_accuracy": float(cand_new.float().mean()),
        "champion_new_accuracy": float(champ_new.float().mean()),
        "old_accuracy": None,
        "champion_old_accuracy": None,
        "negative_flip_rate": None,
    }
    if old is not None and len(old):
        cand_old, champ_old = candidate.correct(old), champion.correct(old)
        figures.update(
            old_accuracy=float(cand_old.float().mean()),
            champion_old_accuracy=float(champ_old.float().mean()),
            negative_flip_rate=float((champ_old & ~cand_old).float().mean()),
        )
    return figures


def _latency_ms(learner: Learner, data: Dataset, repeats: int = 15) -> float:
    """Median time to answer one request of one sample, the serving path's unit of work."""
    x = data.features(slice(0, 1))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        learner.predict_logits(x)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)
