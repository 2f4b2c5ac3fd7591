"""What goes into a version's artifact: the learner checkpoint and its deployment contract.

Both the bootstrap and the trainer publish through :func:`publish_learner`, which reloads the
artifact before the registry commits it: a model that cannot be rebuilt by name (a module that is
not registered with ``register_model``) is refused with the reason, and nothing is registered.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from lifelong.errors import CheckpointError, ConfigError, LifelongError, StrategyMismatchError
from lifelong.learn.checkpoint import MANIFEST
from lifelong.learn.learner import Learner
from lifelong.learn.models import HOW_TO_REGISTER, MODELS, build
from lifelong.learn.tokens import input_embedding
from lifelong.system.contract import Contract
from lifelong.system.registry import Registry


def contract_of(learner: Learner) -> Contract:
    """The contract a learner implies: its output units as the class set, its input shape, the
    columns of the frame it was trained on (if any), and whether new classes may come (the learner's
    ``allow_new_classes``: a learner built to grow was bootstrapped into a fixed label space)."""
    shape, n = learner.input_shape, learner.n_outputs
    if shape is None or not n:
        raise ConfigError(
            "cannot tell this model's input shape or classes; pass contract=Contract(classes=..., "
            "input_shape=...) or build the model with lifelong.learn.models.create_model"
        )
    return Contract(tuple(range(n)), tuple(int(d) for d in shape), feature_names=learner.feature_names,
                    allow_new_classes=learner.allow_new_classes)  # fmt: skip


def publish_learner(learner: Learner, contract: Contract, path: str | Path) -> None:
    """Write checkpoint and contract into ``path`` and prove they load back as a servable version."""
    check_ids_fit_float32(learner.model)
    learner.save(path)
    contract.save(path)
    check_servable(path, contract)


def contract_for(registry: Registry, learner: Learner) -> Contract:
    """The contract a learner trained outside the loop is registered with: the champion's when it reads
    the same inputs and answers the same classes (so feature names, standardisation and class names
    carry over), else what the model tells (:func:`contract_of`)."""
    champion = registry.alias("champion")
    current = None if champion is None else Contract.load(registry.get(champion).path)
    if (
        current is not None
        and tuple(learner.input_shape or ()) == current.input_shape
        and (learner.n_outputs == len(current.classes))
    ):
        return current
    return contract_of(learner)


def check_registrable(learner: Learner, what: str) -> None:
    """Refuse a learner no server could serve, before anything is registered: ids float32 cannot hold,
    strategies that need the task id to predict (a request carries none), or a model built directly,
    with no spec to rebuild it from the checkpoint."""
    check_ids_fit_float32(learner.model)
    task_aware = [type(s).__name__ for s in learner.strategies
                  if "task_labels" in s.needs or not s.supports & {"class", "domain"}]  # fmt: skip
    if task_aware:  # every prediction would be a 422 asking for t=, which no request can send (a trial)
        one = len(task_aware) == 1
        raise StrategyMismatchError(
            f"{what}: {', '.join(task_aware)} need{'s' if one else ''} each sample's task id to predict, and a "
            "prediction request carries none: the service serves class- and domain-incremental models; "
            f"{what} a learner without {'it' if one else 'them'}"
        )
    if getattr(learner.model, "lifelong_spec", None) is None:  # said first: the schema check read oddly
        raise CheckpointError(
            f"{what}: the model is a {type(learner.model).__name__} built directly, with no spec to rebuild it "
            f"from the checkpoint, so no server or worker could load it: {HOW_TO_REGISTER}, and build it with "
            "lifelong.learn.models.create_model"
        )


def register_learner(registry: Registry, learner: Learner, contract: Contract,
                     metrics: dict[str, Any] | None = None) -> int:  # fmt: skip
    """Publish ``learner`` with ``contract`` as a new version (reloaded before the registry commits it);
    no alias moves. Checked first with :func:`check_registrable`."""
    strategy = "+".join(s.name for s in learner.strategies) or "none"
    spec = getattr(learner.model, "lifelong_spec", None) or {}
    params = {"contract": contract.to_dict(), "model": spec.get("name")}  # `lifelong models` shows it
    with registry.publish(strategy=strategy, metrics=metrics, params=params) as draft:
        publish_learner(learner, contract, draft.path)
    assert draft.version is not None
    return draft.version


def check_ids_fit_float32(model: nn.Module) -> None:
    """The service carries and stores inputs as float32, exact for whole numbers only up to 2**24: a
    token model with a larger vocabulary would have ids above it silently rounded to a neighbour's."""
    embedding = input_embedding(model)
    rows = int(getattr(embedding, "num_embeddings", 0))
    if rows > 2**24:
        raise ConfigError(
            f"the model's input {type(embedding).__name__} has {rows:,} rows, but the service carries and "
            f"stores inputs as float32, which holds token ids exactly only up to {2**24:,}: hash or remap "
            f"the ids into at most {2**24:,} rows"
        )


def check_servable(path: str | Path, contract: Contract) -> None:
    """Prove that the artifact in ``path`` loads back and fits ``contract`` (else refuse to publish it)."""
    try:
        reloaded = Learner.load(path)
    except CheckpointError as err:
        raise CheckpointError(f"this version could not be published: {err}") from err
    n = reloaded.n_outputs
    if n and max(contract.classes) >= n:
        raise ConfigError(
            f"the contract names classes up to {max(contract.classes)} but the model has {n} outputs"
        )
    shape = reloaded.input_shape
    if shape is not None and math.prod(shape) != math.prod(contract.input_shape):
        raise ConfigError(f"the contract's input shape {contract.input_shape} does not fit the model {shape}")


def _model_spec(path: str | Path) -> dict[str, Any] | None:
    """The ``{"name", "kwargs"}`` an artifact's model is rebuilt from (None: unreadable or a custom
    model; loading the artifact says what is wrong)."""
    try:
        spec = json.loads((Path(path) / MANIFEST).read_text())["model"]["spec"]
    except Exception:  # a damaged artifact
        return None
    return spec if isinstance(spec, dict) else None


def model_name(path: str | Path) -> str | None:
    """The registered model name an artifact is rebuilt by (None: unreadable or a custom model)."""
    name = (_model_spec(path) or {}).get("name")
    return name if isinstance(name, str) else None


def input_embedding_of(path: str | Path) -> nn.Module | None:
    """The embedding a version's model takes its token ids with (None: it takes features), from the
    model rebuilt by its recorded name, without loading the weights or the strategies' state."""
    spec = _model_spec(path)
    try:
        return input_embedding(build(spec)) if spec is not None else None
    except LifelongError:  # a plugin this process lacks (or a damaged spec): training the version says so
        return None


def check_models_known(registry: Registry) -> None:
    """Refuse to start a server or worker that cannot rebuild a deployed version's model.

    A model registered by a plugin module is unknown to a process started without that
    ``--plugin``: the server would otherwise run and answer that no champion is deployed, and the
    worker would hold the lease and fail every training."""
    _check_artifacts_here(registry)
    deployed = []
    for alias, state in sorted(registry.aliases().items()):
        try:
            deployed.append((alias, state.version, registry.get(state.version).path))
        except LifelongError:  # a collected or missing version: loading it reports that
            continue
    check_artifacts_known(deployed)


def _check_artifacts_here(registry: Registry) -> None:
    """A store whose versions have no artifact under this data directory was opened with the wrong
    ``--data-dir`` (easy after a migration): the server ran answering 503 and the worker took the
    production store's lease, where a refusal at start belongs."""
    kept = [v for v in registry.versions() if not v.collected]
    if kept and not any(v.path.exists() for v in kept):
        raise ConfigError(
            f"the store registers versions v{kept[0].version}..v{kept[-1].version}, and {registry.artifacts_dir} "
            "holds none of them: start with the --data-dir the store was served with (its artifacts/ "
            "directory), or copy that artifacts/ directory here"
        )


def check_artifacts_known(deployed: Iterable[tuple[str, int, Path]]) -> None:
    """:func:`check_models_known` for (alias, version, artifact path) triples, e.g. a serving snapshot."""
    for alias, version, path in deployed:
        name = model_name(path)
        if name is not None and name not in MODELS:
            raise ConfigError(
                f"the {alias} (v{version}) needs the model {name!r}, which this process does not know: start "
                f"it with --plugin MODULE (or LIFELONG_PLUGINS=MODULE), the module that registers it with "
                f"@register_model({name!r})"
            )
