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

import logging
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from warnings import catch_warnings, filterwarnings

import numpy as np
import torch

from lifelong.data.dataset import Dataset
from lifelong.data.scenarios import Experience
from lifelong.errors import ConfigError, LifelongError, NotFoundError
from lifelong.learn.buffers import Buffer
from lifelong.learn.callbacks import Callback, Control, LoopState
from lifelong.learn.checkpoint import match_dtypes
from lifelong.learn.learner import ADAPTIVE_LR, LARGE_INPUT, Learner
from lifelong.learn.models import build, for_input
from lifelong.learn.strategy import Strategy, get_strategy
from lifelong.learn.tokens import input_embedding
from lifelong.metrics.accuracy import fraction_correct
from lifelong.system.contract import Contract
from lifelong.system.events import EventKind
from lifelong.system.launch import Compute, fit
from lifelong.system.policy import Gate, Mode, Policy, concept_change, judge, mcnemar_p
from lifelong.system.registry import AliasMoved, Registry
from lifelong.system.store import Samples, Store
from lifelong.system.versions import check_ids_fit_float32, check_servable, contract_of, publish_learner

log = logging.getLogger(__name__)
CURSOR = "trainer"  # last sample id a passed attempt trained on; its holdout: next time. Not moved by a
# rejection: after a concept change, windows of 60-100 labels each, every one rejected, were skipped for good
# (1,574 labels never trained on, continual stuck at 0.5 accuracy for 2000 samples)
SEEN = "trainer-seen"  # last sample id an attempt saw (its holdout included): where new labels start


@dataclass
class TrainResult:
    """What one attempt did; ``version`` is set only when the gate passed and the version registered."""

    trained: bool
    passed: bool = False
    version: int | None = None
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    attempt: dict[str, Any] = field(default_factory=dict)  # the gate event's payload, as recorded


class Interrupted(Exception):
    """A training that must not publish (not a failure): its worker was asked to stop, lost its lease
    to another worker, or the champion it trained from was replaced meanwhile. Its message says which;
    no gate event is written, so the attempt neither answers the triggers nor reads as a verdict."""


class LeaseLost(Interrupted):
    """Interrupted because the worker's lease was not renewed: its worker may know who holds it now."""


@dataclass
class _StopWhen(Callback):
    """Abandon a training between two steps once ``asked()`` says so (SIGTERM, ``up`` gone)."""

    asked: Callable[[], bool | str]

    def on_step_end(self, state: LoopState, control: Control) -> None:
        _stop_if(self.asked())


def _stop_if(asked: bool | str) -> None:
    """Raise :class:`Interrupted` when asked to stop, with the reason given (a str) or SIGTERM's."""
    if asked:
        raise Interrupted(
            asked if isinstance(asked, str) else "asked to stop during the training; nothing was published"
        )


def train_once(
    store: Store,
    registry: Registry,
    policy: Policy,
    gate: Gate | None = None,
    *,
    reason: str = "",
    mode: Mode | None = None,
    since: int | None = None,
    forget: bool = False,
    prepare: Callable[[Dataset], Dataset] | None = None,
    holds_lease: Callable[[], bool] | None = None,
    compute: Compute | None = None,
    should_stop: Callable[[], bool | str] | None = None,
    started: int | None = None,
) -> TrainResult:
    """Train, gate and maybe register one candidate on the labelled samples since the last attempt.

    ``since`` is a detected change point (a sample id): fine-tuning then starts after it, so the
    candidate learns the new concept rather than the old one; ``forget`` empties the replay memory it
    inherits first (a concept drift: the memory's labels are outdated), unless the window brings
    classes the champion never saw. ``prepare`` may rewrite the training
    part of the window (augment, filter; tests corrupt labels with it); the holdout is never touched.
    ``holds_lease`` is asked before publishing and before promoting: a worker that lost its lease
    to another one registers nothing, and neither does a candidate whose parent is no longer the
    champion (:class:`Interrupted`). ``started``: the id of the worker's ``training`` event, recorded in
    the gate event (the triggers logged after it are still unanswered). ``should_stop`` is asked after every step and before publishing:
    once it says yes (or gives a reason, a str), :class:`Interrupted` is raised and nothing is published. ``compute`` says where the training itself runs (a device,
    N processes under torchrun: :mod:`lifelong.system.launch`); the gate runs here either way.
    """
    gate = gate or Gate()
    compute = compute or Compute()
    mode = mode or policy.mode
    champion = registry.alias("champion")
    if champion is None:
        raise NotFoundError("no champion to train from; bootstrap one with `lifelong up --bootstrap FILE`")
    start_cpu = cpu_seconds()
    record = registry.get(champion)
    old_learner = Learner.load(record.path, device=compute.device)
    contract = _with_pixel_range(Contract.load(record.path) or contract_of(old_learner), store)
    if contract.allow_new_classes and contract.class_names is not None:  # a corrected typo keeps no output
        store.compact_classes(
            max([len(contract.classes), *(_n_classes(v.path) for v in registry.versions())]),
            admitted=policy.min_new_class_labels,
        )
    # the latest change this lineage learned from: a version trained after a change point passes it on,
    # so labels from before it stay out of later windows once the monitors re-armed against that version
    change = max([c for c in (since, _lineage_change(registry, record)) if c is not None], default=None)
    ids, data, waiting, skipped = _window(store, policy, mode, since, contract, change)
    n_hold = max(gate.min_holdout, int(len(ids) * gate.holdout_fraction))
    if len(ids) < n_hold + 1:  # recorded as an attempt, so a request or drift is answered, not retried
        reasons = [
            f"window too small: {len(ids)} labelled samples, need at least {n_hold + 1} ({n_hold} are held "
            "out to gate the candidate; send labels first)"
        ]
        attempt = {"passed": False, "trained": False, "reasons": reasons, "reason": reason, "mode": mode,
                   "policy": policy.kind, "parent": champion, "window": None, "figures": {},
                   "train_cpu_seconds": 0.0, "version": None}  # fmt: skip
        if waiting:
            attempt["waiting_classes"] = _named(store, waiting)
        if started is not None:
            attempt["started"] = started
        store.add_event(EventKind.GATE, attempt)
        if len(ids):  # seen: a schedule (or an unmeasured champion) waits for more, not every poll
            store.advance_cursor(SEEN, int(ids[-1]))
        return TrainResult(False, reasons=reasons, attempt=attempt)
    train_ids, train, holdout = (
        ids[:-n_hold],
        data.subset(torch.arange(len(ids) - n_hold)),
        data.subset(torch.arange(len(ids) - n_hold, len(ids))),
    )
    if prepare is not None:
        train = prepare(train)
    candidate = _candidate(record.path, policy, mode, compute.device)
    # New classes explain a drop in accuracy without making the memory wrong (class-incremental
    # drift): keep it then, or fine-tuning on a few new labels alone overwrites the old classes.
    forget = forget and set(data.y.unique().tolist()) <= set(old_learner.classes_seen)
    if forget:
        for memory in _replay_memories(candidate):
            memory.clear()
    top = int(data.y.max()) + 1
    added = list(range(len(contract.classes), top))  # said in the gate event: the head grew for them
    if top > len(contract.classes):  # only reachable with allow_new_classes: grow the head first
        candidate.grow_classes(top)
        contract = contract.with_classes(top, store.class_names())
    experience = Experience(candidate.experience_index + 1, tuple(train.classes), 0, train, holdout)
    if should_stop is not None:
        candidate.add_callback(_StopWhen(should_stop))
    with catch_warnings():  # the advice to standardise is for `up`, which the bootstrap gave once:
        # every training repeated it in the worker's log, also where --standardize was on (a trial's images)
        filterwarnings("ignore", ".*networks learn poorly from unscaled features", UserWarning)
        candidate = fit(candidate, experience, compute)  # here, or in N processes under torchrun
    if should_stop is not None:  # a job under torchrun is not stopped mid-way
        _stop_if(should_stop())
    old = _old_data(store, old_learner, int(ids[0]), gate.old_size, contract)
    with tempfile.TemporaryDirectory(prefix="lifelong-candidate-") as tmp:
        candidate.save(tmp)  # written once: measured here, copied into the registry if it passes
        contract.save(tmp)
        size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 2**20
        figures = _compare(candidate, old_learner, holdout, old)
        figures.update(size_mb=size_mb, latency_ms=_latency_ms(candidate, holdout))
        cpu = cpu_seconds() - start_cpu
        figures.update(
            train_cpu_seconds=cpu, n_train=len(train), n_holdout=len(holdout), n_old=len(old or ())
        )
        reasons = judge(gate, figures)
        if not weights_finite(candidate):  # its every answer would be a 422 blaming the client's values
            reasons.insert(0, _diverged(candidate, train, train_ids, contract))
        recalled, scored = _recall(
            registry, champion, contract, gate, candidate, old_learner, holdout, old, compute.device
        )
        passed = not reasons or recalled is not None
        payload = {
            "passed": passed,
            "reasons": reasons,
            "reason": reason,
            "mode": mode,
            "policy": policy.kind,
            "parent": champion,
            "window": [int(train_ids[0]), int(train_ids[-1])],
            "holdout": [int(ids[len(ids) - n_hold]), int(ids[-1])],  # judged on: the newest labels
            "forgot_memory": forget,
            "classes_added": list(_named(store, dict.fromkeys(added, 0))) if added else None,
            "figures": figures,
            "train_cpu_seconds": cpu,
            "version": None,
        }
        if scored:  # which former concepts were looked at, recalled or not (a trial could not tell)
            payload["recall_scored"] = scored
        if waiting:  # new classes with too few labels to learn yet (a stray label stays out of the head)
            payload["waiting_classes"] = _named(store, waiting)
        # a window over all the data, or --delete-trained: the gate cannot see forgetting, so it says so
        if old is None or len(old) == 0:
            payload["warnings"] = ["no labelled samples older than the window to measure forgetting on (the window "
                                   "starts at the oldest one stored: a retraining over all the data, or older ones "
                                   "were deleted by --delete-trained or retention): old accuracy and flip rate not "
                                   "checked"]  # fmt: skip
        elif concept_change(gate, figures):  # say why the forgetting budgets were not applied
            p = mcnemar_p(figures["new_wins"], figures["new_losses"])
            payload["warnings"] = [f"judged on new data alone: a significant gain on it (McNemar p {p:.2g}) "
                                   "reads as a concept change, where old data carries the old rule"]  # fmt: skip
        if skipped:
            warnings = payload.setdefault("warnings", [])
            assert isinstance(warnings, list)
            warnings.append(
                f"{skipped} new labelled samples before the window were not trained on: the policy trains on the "
                f"latest window={policy.window} (raise it in --policy-json to take more)"
            )
        if holds_lease is not None and not holds_lease():  # its verdict, cursors and window are the other's
            raise LeaseLost(
                "this worker lost its lease during the training (another worker took it, or the store could "
                "not be reached to renew it); nothing published"
            )
        moved = registry.alias("champion")
        if moved != champion:  # a stalled worker's candidate would replace a newer champion
            raise Interrupted(
                f"the champion moved from v{champion} to v{moved} during the training (promoted by another "
                f"worker or by hand); a candidate trained from v{champion} is outdated; nothing published"
            )
        if started is not None:  # the triggers logged before it were answered; later ones were not
            payload["started"] = started
        version = None
        if recalled is not None:  # a former champion serves again; the trained candidate is not published
            version, payload["recalled"] = recalled["version"], recalled
            payload.update(version=version, reasons=[])
            payload["candidate_reasons"] = reasons  # what the gate said of the trained one, if anything
        elif passed:
            name = "+".join(s.name for s in candidate.strategies) or (
                "scratch" if mode == "scratch" else "naive"
            )
            with registry.publish(
                strategy=name,
                parent=champion,
                params={"policy": policy.to_dict(), "gate": asdict(gate), "mode": mode, "reason": reason,
                        "contract": contract.to_dict(), "change_point": change,
                        "model": (getattr(candidate.model, "lifelong_spec", None) or {}).get("name")},
                window=(int(train_ids[0]), int(train_ids[-1])),
                metrics=figures,
            ) as draft:  # fmt: skip
                # entry by entry, not copytree(tmp, ...): that gave the artifact tmp's 0700 mode
                for entry in Path(tmp).iterdir():
                    copy = shutil.copytree if entry.is_dir() else shutil.copy2
                    copy(entry, draft.path / entry.name)
                check_servable(draft.path, contract)
            version = draft.version
            payload["version"] = version
    promoted = None  # the version moved into place, if any
    if version is not None and (holds_lease is None or holds_lease()):
        try:  # the champion read above may have moved while the candidate was published (a rollback)
            if gate.promote_to == "champion":
                registry.set_alias("champion", version, expected=champion)
            elif gate.promote_to == "canary":  # a canary is judged against the champion it was trained from
                registry.set_alias("canary", version, share=gate.canary_share, champion=champion)
        except AliasMoved as err:  # no gate event: the attempt is the worker's interrupted one
            raise Interrupted(
                f"the champion moved from v{champion} to "
                f"{'nothing' if err.now is None else f'v{err.now}'} while v{version} was being published "
                f"(by hand or by another worker); v{version} is registered, not promoted"
            ) from None
        promoted = version
    store.add_event(EventKind.GATE, payload)
    if promoted is not None and recalled is None:  # a recalled version never learned this window
        store.mark_trained(train_ids, promoted)
    # a rejected window is trained on again by the next attempt, with the labels since; so is a recalled one
    if passed and recalled is None:
        store.advance_cursor(CURSOR, int(train_ids[-1]))
    store.advance_cursor(SEEN, int(ids[-1]))  # the holdout is not new data for the next schedule
    return TrainResult(True, passed, version, reasons, figures, cpu, payload)


def default_lr(optimizer: str) -> float:
    """The first champion's learning rate when none is given: SGD's 0.05, or 0.001 for an adaptive
    optimizer (adam, adamw), which steps per unit gradient and would diverge at SGD's rate."""
    return 0.05 if optimizer == "sgd" else ADAPTIVE_LR


def bootstrap(
    store: Store,
    registry: Registry,
    data: Dataset | None,
    *,
    model: str = "mlp",
    model_kwargs: dict[str, Any] | None = None,
    n_classes: int | None = None,
    input_shape: Sequence[int] | None = None,
    standardize: bool = False,
    raw_columns: Sequence[str] = (),
    class_names: Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
    allow_new_classes: bool = False,
    strategies: Sequence[str] = (),
    strategy_params: dict[str, Any] | None = None,
    epochs: int = 10,
    lr: float | None = None,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    batch_size: int = 16,
    seed: int = 0,
) -> int:
    """Register a first champion so a fresh system can serve; return its version.

    With ``data`` the model is trained on 80% of it and its accuracy on the other 20% is recorded as
    the figure the continual policy's live-accuracy floor compares with; the data is also kept in the
    store (as trained samples), as the reference of the data-drift test and the gate's "old" data.
    With ``data=None`` the champion is untrained (give ``n_classes`` and ``input_shape``).
    ``model`` is any registered model name; ``model_kwargs`` its arguments (default: sized for the data).
    """
    torch.manual_seed(seed)
    if data is None:
        if n_classes is None or input_shape is None:
            raise ConfigError(
                "an untrained champion needs the number of classes (--n-classes) and the input shape "
                "(--input-shape, e.g. 30 or 1,28,28)"
            )
        if standardize:  # nothing to measure a mean and std on
            raise ConfigError(
                "standardize (--standardize) needs data to measure each feature's mean and std, and an untrained "
                "champion has none: drop it, or bootstrap from a file (--bootstrap FILE)"
            )
        x = np.zeros((0, *input_shape), dtype=np.float32)
        contract = Contract(
            tuple(range(n_classes)), tuple(int(d) for d in input_shape), allow_new_classes=allow_new_classes
        )
    else:
        x = data.features().numpy()
        if model == "mlp" and not model_kwargs:  # the server stores flat rows for an MLP
            x = x.reshape(len(x), -1)
        y = data.y.numpy()
        _check_n_classes(n_classes, y, class_names)
        contract = Contract.fit(x, y, n_classes=n_classes, standardize=standardize, class_names=class_names,
                                feature_names=feature_names, allow_new_classes=allow_new_classes,
                                raw_columns=raw_columns)  # fmt: skip
    net = _model(model, model_kwargs, contract)
    check_ids_fit_float32(net)  # before training, not at publication
    embedding = input_embedding(net)
    if embedding is not None and standardize:
        raise ConfigError(
            f"model {model!r} takes token ids (its first layer is {type(embedding).__name__}), and "
            "--standardize (standardize=True) would scale them into fractions: drop it, ids are served as they are"
        )
    if data is not None and embedding is None and not standardize:
        _warn_if_unscaled(x, feature_names)  # token ids are not features on a scale
    if data is not None and class_names is None:
        _warn_if_sparse_labels(y)
    if data is not None:
        _warn_if_rare_classes(y, class_names)
    learner = Learner(net, _strategies(strategies, strategy_params or {}), optimizer=optimizer,
                      lr=default_lr(optimizer) if lr is None else lr,
                      momentum=momentum if optimizer == "sgd" else 0.0, batch_size=batch_size,
                      epochs=epochs, seed=seed)  # fmt: skip
    metrics: dict[str, Any] = {}
    if data is not None:
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        n_hold = max(1, len(x) // 5)
        full = _dataset(torch.from_numpy(contract.transform(x)), data.y, data.name)
        train, hold = full.subset(order[n_hold:]), full.subset(order[:n_hold])
        learner.learn(Experience(0, tuple(train.classes), 0, train, hold))
        if learner.diverged or not weights_finite(learner):  # served, every answer was a 422 on the inputs
            raise ConfigError(
                f"the first champion's training diverged (loss or weights not finite): {learner.divergence_hint()}; "
                "nothing was registered"
            )
        metrics = {"new_accuracy": fraction_correct(learner.correct(hold)), "n_train": len(train),
                   "n_holdout": len(hold)}  # fmt: skip
    name = "+".join(strategies) or "naive"
    params = {
        "bootstrap": None if data is None else data.name,
        "model": model,
        "contract": contract.to_dict(),
    }
    with registry.publish(strategy=name, params=params, metrics=metrics) as draft:
        publish_learner(learner, contract, draft.path)
    assert draft.version is not None
    if data is not None:  # keep the bootstrap data: drift reference and the gate's old data
        ids = store.add_samples(x, data.y.numpy(), source="bootstrap")
        store.mark_trained(ids, draft.version)
        store.advance_cursor(CURSOR, max(ids))
    registry.set_alias("champion", draft.version)
    store.add_event(EventKind.BOOTSTRAP, {"version": draft.version, "data": params["bootstrap"], "n": len(x)})
    return draft.version


# --- helpers ------------------------------------------------------------------------------------
def weights_finite(learner: Learner) -> bool:
    """Whether every parameter is finite: a diverged training leaves NaN weights that answer nothing."""
    return all(bool(torch.isfinite(p).all()) for p in learner.model.parameters())


def _strategies(names: Sequence[str], params: dict[str, Any]) -> list[Strategy]:
    classes = [get_strategy(n) for n in names]  # a ConfigError names an unknown one and how to register it
    try:
        return [cls(**params) for cls in classes]
    except (TypeError, ConfigError) as err:  # a parameter the strategy does not take, or a value it refuses
        raise ConfigError(f"strategy_params {params} do not fit {', '.join(names)}: {err}") from err


def _candidate(path: Path, policy: Policy, mode: Mode, device: str = "cpu") -> Learner:
    """Continue the champion (its strategies' state included), or a fresh model of the same shape.

    The manual stage trains the champion as it is, with its own strategies (a champion bootstrapped with
    Replay lost its memory to plain fine-tuning at the first training by hand); scheduled fine-tuning
    is plain fine-tuning, and continual learning uses the policy's strategy."""
    loaded = Learner.load(path, device=device)
    wanted = [s.name for s in loaded.strategies] if policy.kind == "manual" else policy.strategies
    if mode == "finetune" and [s.name for s in loaded.strategies] == wanted:
        learner = loaded  # memory and importances carry over from version to version
    else:
        if mode == "finetune":
            model = loaded.model
        else:  # a fresh model, in the champion's dtype (a spec builds float32)
            model = build(loaded.model.lifelong_spec)  # type: ignore[arg-type]
            match_dtypes(model, loaded.model.state_dict())
        learner = Learner(
            model,
            _strategies(wanted, policy.strategy_params),
            optimizer=loaded.optimizer_name,
            lr=loaded.lr,
            momentum=loaded.momentum,
            batch_size=loaded.batch_size,
            seed=loaded.seed + loaded.step,
            device=device,
        )
    learner.epochs = policy.epochs
    return learner


def _model(name: str, kwargs: dict[str, Any] | None, contract: Contract) -> torch.nn.Module:
    """A registered model sized for the contract (``in_features``, ``n_classes`` where its factory takes
    them), ``kwargs`` adding to or overriding those: as ``lifelong bench`` builds it, so
    ``--model-kwargs '{"hidden": 16}'`` needs no sizes (was: kwargs replaced the sizing)."""
    return for_input(name, contract.input_shape, len(contract.classes), **(kwargs or {}))


def _warn_if_unscaled(x: np.ndarray, names: Sequence[str] | None) -> None:
    """Say when features on raw scales far apart reach a network unstandardised: an MLP then often
    learns next to nothing (a backtest at chance, exit 0), and the fix is one flag."""
    flat = x.reshape(len(x), -1)
    if len(flat) < 2:
        return
    spread = np.abs(flat).max(axis=0)
    if spread.max() < 100 * max(float(np.median(spread)), 1e-12) and spread.max() < 1e3:
        return
    i = int(spread.argmax())
    name = names[i] if names is not None and i < len(names) else f"feature {i}"
    log.warning("the features are on very different scales (%s reaches %.3g, the median feature %.3g): pass "
                "--standardize (standardize=True) so the model sees them standardised",
                name, spread[i], float(np.median(spread)))  # fmt: skip


def _check_n_classes(n_classes: int | None, y: np.ndarray, class_names: Sequence[str] | None) -> None:
    """Refuse an ``n_classes`` the labels contradict, saying what to give instead."""
    if n_classes is None or not len(y):
        return
    if class_names is not None and n_classes != len(class_names):
        raise ConfigError(
            f"n_classes (--n-classes) is {n_classes}, but the labels name {len(class_names)} classes "
            f"({', '.join(class_names[:5])}{', ...' if len(class_names) > 5 else ''}): named classes are exactly "
            "the names found; drop --n-classes (and learn new names later with --allow-new-classes)"
        )
    top = int(y.max()) + 1
    if n_classes < top:
        raise ConfigError(
            f"n_classes (--n-classes) is {n_classes}, but the labels go up to {top - 1}: give --n-classes {top} "
            "or more (room for classes still to come), or drop it"
        )


def _warn_if_sparse_labels(y: np.ndarray) -> None:
    """Say when whole-number labels look like codes, not class indices (10, 20, 30): the head gets
    max + 1 outputs and the contract accepts every index below, labels never seen included."""
    seen = np.unique(y)
    top = int(seen.max()) if len(seen) else 0
    if top + 1 <= 2 * len(seen):
        return
    shown = ", ".join(str(int(v)) for v in seen[:5]) + (", ..." if len(seen) > 5 else "")
    log.warning("the labels are %d classes numbered up to %d (%s): the model gets %d outputs and feedback "
                "may name any class 0-%d; if these are codes, number the classes 0-%d or give them as text "
                "(class names)", len(seen), top, shown, top + 1, top, len(seen) - 1)  # fmt: skip


def _warn_if_rare_classes(y: np.ndarray, class_names: Sequence[str] | None, rare: int = 5) -> None:
    """Say when a class has fewer than ``rare`` rows: a stray value in the label column (a typo, a
    3.5 among names) becomes a class of the deployment for ever, and named classes are numbered in
    order, so it can move every real class's index. Over HTTP a new class needs 5 labels too."""
    values, counts = np.unique(y, return_counts=True)
    few = [(int(v), int(n)) for v, n in zip(values, counts) if n < rare]
    if not few:
        return
    said = ", ".join(
        f"{class_names[v]!r} (index {v}): {n} row{'s' * (n > 1)}"
        if class_names
        else f"{v}: {n} row{'s' * (n > 1)}"
        for v, n in few[:5]
    )
    log.warning("%d of the bootstrap data's %d classes have fewer than %d rows: %s; each is a class of this "
                "deployment for ever (a typo in the label column?); fix the rows and bootstrap again if so",
                len(few), len(values), rare, said)  # fmt: skip


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended: a training run by torchrun
    (``--nproc N``) spends it in the ranks, which ``time.process_time`` alone never sees."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _window(
    store: Store, policy: Policy, mode: Mode, since: int | None, contract: Contract, change: int | None = None
) -> tuple[torch.Tensor, Dataset, dict[int, int], int]:
    """Labelled samples to learn from, in id order: new ones (fine-tuning, after the change point
    when one was detected) or the recent ``window`` (retraining); the new classes still waiting
    for labels (see :func:`_admit_new_classes`), with labels that came after a training passed their
    samples in front, none from before ``change`` (the lineage's latest change point: a trial's
    trainings after the first one past a change pulled 800 labels of the old rule back in, and another's
    trained on the 1,600 before the change alone); and how many new labels fine-tuning leaves out, past
    ``window`` (a worker down for a while came back to 3,100 new labels and trained on the last 2,000
    without a word of the other 1,100)."""
    skipped = 0
    if mode == "scratch":
        start = store.nth_latest_labelled(policy.window)
    else:
        start = max(store.cursor(CURSOR) or 0, since or 0) or None
        new = store.count_samples(start, labelled_only=True)
        if new > policy.window:  # keep the most recent
            start = max(start or 0, store.nth_latest_labelled(policy.window) or 0)
            skipped = new - policy.window
    s = store.samples(since_id=start, labelled_only=True)
    if mode == "finetune" and since is None and start is not None and len(s.ids) < policy.window:
        # labels that came after a training passed their samples (feedback on older predictions: after an
        # upgrade, every label for a prediction made before it) join this window, up to its size; they were
        # stored and never trained on. Past a detected change they stay out: they describe the old data
        s = _prepend(store.untrained_of(contract.classes, start + 1, policy.window - len(s.ids), change), s)
    s, waiting = _admit_new_classes(store, s, contract, policy)
    return s.ids, _dataset(_as_model_input(s.x, contract), s.y), waiting, skipped


def _lineage_change(registry: Registry, record: Any) -> int | None:
    """The change point the nearest ancestor that recorded one learned from (``record`` first): a version
    trained by code before change points were recorded (a code rollback's) passes its parent's on."""
    for _ in range(1000):  # a lineage is a chain; bounded all the same
        if "change_point" in record.params:
            found = record.params["change_point"]
            return int(found) if found is not None else None
        if record.parent is None:
            return None
        record = registry.get(record.parent, collected=True)
    return None


def _admit_new_classes(
    store: Store, s: Samples, contract: Contract, policy: Policy
) -> tuple[Samples, dict[int, int]]:
    """A class the champion's head lacks enters training once ``policy.min_new_class_labels`` of its
    labels are stored, so one stray label (a typo in a name) does not grow the head: until then its rows
    wait outside the window (the returned counts say which), and on admission its earlier rows that no
    version trained on join the window's training part, also when none is in this window (its labels
    all came in a window whose candidate the gate rejected: the class was dropped for good)."""
    known = len(contract.classes)
    if not contract.allow_new_classes or not len(s.ids):
        return s, {}
    counts = store.label_counts(known)
    waiting = {c: n for c, n in counts.items() if n < policy.min_new_class_labels}
    if waiting:
        keep = torch.tensor([int(c) not in waiting for c in s.y.tolist()], dtype=torch.bool)
        s = Samples(s.ids[keep], s.x[keep], s.y[keep])
    admitted = sorted(c for c in counts if c not in waiting)
    if admitted and len(s.ids):
        s = _prepend(store.untrained_of(admitted, int(s.ids[0]), policy.window), s)
    return s, waiting


def _prepend(earlier: Samples, s: Samples) -> Samples:
    """``earlier`` rows no version trained on, in front of the window ``s`` (its training part, not the
    holdout at its end); rows of another input width or dtype (a forced contract change) are left out."""
    if not len(earlier.ids):
        return s
    if not len(s.ids):
        return earlier
    if earlier.x.shape[1:] != s.x.shape[1:] or earlier.x.dtype != s.x.dtype:
        return s
    return Samples(torch.cat([earlier.ids, s.ids]), torch.cat([earlier.x, s.x]), torch.cat([earlier.y, s.y]))


def _n_classes(artifact: str | Path) -> int:
    """Outputs a registered version has (0 for an artifact made before contracts)."""
    contract = Contract.load(artifact)
    return 0 if contract is None else len(contract.classes)


def _named(store: Store, counts: dict[int, int]) -> dict[str, int]:
    """Label counts keyed as an operator knows the classes: by name where the store gave one."""
    names = {i: n for n, i in store.class_names().items()}
    return {names.get(c, str(c)): n for c, n in sorted(counts.items())}


def _diverged(candidate: Learner, train: Dataset, ids: torch.Tensor, contract: Contract) -> str:
    """Why a candidate's weights are not finite, naming the window's largest inputs by sample id when
    they are far off the scale a network learns from: the rows to correct or delete, as no retraining
    of a window holding them converges (a few 1e30 values failed every training until found by hand)."""
    reason = "training diverged (the candidate's weights are not finite)"
    largest = train.x.reshape(len(train.x), -1).abs().amax(1)
    if not len(largest) or float(largest.max()) <= LARGE_INPUT:
        return f"{reason}: {candidate.divergence_hint()}"
    top = torch.argsort(largest, descending=True)[:5]
    top = top[largest[top] > LARGE_INPUT]
    listed = ", ".join(f"{int(ids[i])} (|x| {float(largest[i]):.3g})" for i in top)
    fix = "correct or delete the wrong ones (DELETE /v1/samples/{id})"
    if contract.mean is None:  # a standardised deployment already is; the ids are what is left to act on
        fix += ", or standardise the features (--standardize in lifelong up)"
    return f"{reason}: the window's largest inputs, as the model sees them, are in samples {listed}; {fix}"


def _with_pixel_range(contract: Contract, store: Store) -> Contract:
    """An image contract written before pixel ranges were recorded, given its bootstrap's (the store's
    first rows, as clients send them): its versions never refused pixels in other units after an upgrade
    (1e20 pixels were stored, trained on and kept in the replay memory)."""
    if contract.value_range is not None or len(contract.input_shape) < 3:
        return contract
    first = store.samples(limit=1000)
    if not len(first.ids):
        return contract
    x = first.x.float()
    return replace(contract, value_range=(float(x.min()), float(x.max())))


def _as_model_input(x: torch.Tensor, contract: Contract) -> torch.Tensor:
    """Stored rows as the model sees them: uint8 images scaled to [0, 1], shaped and standardised."""
    arr = (x.float() / 255 if x.dtype == torch.uint8 else x.float()).numpy()
    if not len(arr):  # an empty window (a request without new labels): shaped, so it can say so
        return torch.zeros(0, *contract.input_shape)
    arr = contract.transform(contract.check_inputs(arr))
    return torch.from_numpy(np.ascontiguousarray(arr))


def _dataset(x: torch.Tensor, y: torch.Tensor, name: str = "window") -> Dataset:
    return Dataset(x, y, None, 1.0, name)


def _replay_memories(learner: Learner) -> list[Buffer]:
    """The sample memories of a learner's strategies (replay, DER, ER-ACE ... keep one as ``buffer_``)."""
    return [m for s in learner.strategies if isinstance(m := getattr(s, "buffer_", None), Buffer)]


def _old_data(store: Store, champion: Learner, first_new: int, n: int, contract: Contract) -> Dataset | None:
    """The champion's replay memory, else the ``n`` most recent samples trained on before the window."""
    for buf in _replay_memories(champion):
        if len(buf) and buf.x is not None:
            return Dataset(buf.x[: buf.size], buf.y[: buf.size].clone(), None, buf.scale, "replay-memory")
    before = store.labelled_before(first_new, n)
    return _dataset(_as_model_input(before.x, contract), before.y, "previous") if len(before.ids) else None


def _same_inputs(a: Contract, b: Contract) -> bool:
    """Whether a version of contract ``a`` serves the clients of ``b`` unchanged: the same inputs, classes
    and class names (a recalled version from before the head grew would drop classes clients send)."""
    fields = ("input_shape", "feature_names", "mean", "std", "classes", "class_names")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def _recall(registry: Registry, champion: int, contract: Contract, gate: Gate, candidate: Learner,
            old_learner: Learner, holdout: Dataset, old: Dataset | None,
            device: str) -> tuple[dict[str, Any] | None, dict[str, dict[str, float]]]:  # fmt: skip
    """A former champion that answers this window's holdout significantly better than the trained
    candidate (one-sided exact McNemar on their paired answers, at ``gate.recall_alpha``) and passes the
    gate against the champion as a candidate would: a concept that returned. The best such, with its
    figures, or None. Fine-tuning after a drift had emptied the memory of the old concept, while the
    registry still held a version that knew it (Agrawal 0 -> 2 -> 0: 0.935 against 0.837, a trial).
    Also every version scored, ``{"v1": {"new_accuracy": ..., "p_value": ...}}``, for the gate event."""
    scored: dict[str, dict[str, float]] = {}
    if gate.recall_versions == 0:
        return None, scored
    mine = candidate.correct(holdout)
    best: dict[str, Any] | None = None
    for v in _former_concepts(registry, champion)[: gate.recall_versions]:
        try:  # collected by retention, or an artifact that no longer loads: not a version to serve again
            record = registry.get(v)
            theirs_contract = Contract.load(record.path)
            if theirs_contract is None or not _same_inputs(theirs_contract, contract):
                continue
            learner = Learner.load(record.path, device=device)
        except LifelongError:
            continue
        theirs = learner.correct(holdout)
        wins, losses = int((theirs & ~mine).sum()), int((mine & ~theirs).sum())
        p = mcnemar_p(wins, losses)
        scored[f"v{v}"] = {"new_accuracy": fraction_correct(theirs), "p_value": p}
        if p >= gate.recall_alpha:
            continue
        figures = _compare(learner, old_learner, holdout, old)
        size_mb = sum(f.stat().st_size for f in record.path.rglob("*") if f.is_file()) / 2**20
        figures.update(size_mb=size_mb, latency_ms=_latency_ms(learner, holdout))
        if judge(gate, figures) or (
            best is not None and figures["new_accuracy"] <= best["figures"]["new_accuracy"]
        ):
            continue
        best = {
            "version": v,
            "p_value": p,
            "candidate_new_accuracy": fraction_correct(mine),
            "figures": figures,
        }
    return best, scored


def _former_concepts(registry: Registry, champion: int) -> list[int]:
    """The last version of each earlier concept, newest first: every parent whose child was trained past
    a change point the parent had not seen. The last few champions are fine-tunes of one concept (on
    Agrawal the first champion, the one that knew the returning rule, was ten versions back)."""
    versions = {v.version: v for v in registry.versions()}  # loadable ones
    change = {
        n: _lineage_change(registry, v) for n, v in versions.items()
    }  # once each, not as child and parent
    found: list[int] = []
    for v in sorted(versions.values(), key=lambda r: r.version, reverse=True):
        if v.parent not in versions or v.parent in (champion, *found):
            continue
        if change[v.version] != change[v.parent]:
            found.append(v.parent)
    return found


def _compare(candidate: Learner, champion: Learner, new: Dataset, old: Dataset | None) -> dict[str, Any]:
    cand_new, champ_new = candidate.correct(new), champion.correct(new)
    figures: dict[str, Any] = {
        "new_accuracy": fraction_correct(cand_new),
        "champion_new_accuracy": fraction_correct(champ_new),
        "new_wins": int((cand_new & ~champ_new).sum()),  # the paired counts the concept-change test reads
        "new_losses": int((champ_new & ~cand_new).sum()),
        "old_accuracy": None,
        "champion_old_accuracy": None,
        "negative_flip_rate": None,
    }
    if old is not None and len(old):
        cand_old, champ_old = candidate.correct(old), champion.correct(old)
        figures.update(
            old_accuracy=fraction_correct(cand_old),
            champion_old_accuracy=fraction_correct(champ_old),
            negative_flip_rate=fraction_correct(champ_old & ~cand_old),
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
