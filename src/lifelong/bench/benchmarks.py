"""Named benchmarks: a scenario plus the protocol it is run with.

The default protocol follows the DER paper's Split MNIST setting (Buzzega et al., 2020),
applied to Fashion-MNIST: class-incremental, 5 experiences of 2 classes in order 0..9,
single head, MLP 784-100-100-10, SGD lr 0.03, batch 10, one epoch per experience.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lifelong.errors import ConfigError, DataError


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    build: Callable[[int], Any]  # seed -> Scenario
    dataset: str
    epochs: int = 1  # default passes per experience (small datasets need more than one)


def _fmnist() -> Any:
    from lifelong.data import fashion_mnist

    return fashion_mnist()


def _digits() -> Any:
    from lifelong.data import digits

    return digits()


def _split_fmnist(seed: int) -> Any:
    from lifelong.data.scenarios import class_incremental

    return class_incremental(_fmnist(), n_experiences=5)


def _split_fmnist_task(seed: int) -> Any:
    from lifelong.data.scenarios import task_incremental

    return task_incremental(_fmnist(), n_experiences=5)


def _permuted_fmnist(seed: int) -> Any:
    from lifelong.data.scenarios import domain_incremental

    return domain_incremental(_fmnist(), permutations=5, seed=seed)


def _rotated_fmnist(seed: int) -> Any:
    from lifelong.data.scenarios import domain_incremental

    return domain_incremental(_fmnist(), rotations=[0, 45, 90, 135, 180])


def _split_digits(seed: int) -> Any:
    from lifelong.data.scenarios import class_incremental

    return class_incremental(_digits(), n_experiences=5)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark("split-fmnist", "Fashion-MNIST, class-incremental, 5 x 2 classes", _split_fmnist, "fashion-mnist"),
        Benchmark("split-fmnist-task", "Fashion-MNIST, task-incremental, 5 x 2 classes", _split_fmnist_task,
                  "fashion-mnist"),
        Benchmark("permuted-fmnist", "Fashion-MNIST, domain-incremental, 5 pixel permutations", _permuted_fmnist,
                  "fashion-mnist"),
        Benchmark("rotated-fmnist", "Fashion-MNIST, domain-incremental, rotations 0-180 by 45 deg", _rotated_fmnist,
                  "fashion-mnist"),
        Benchmark("split-digits", "scikit-learn 8x8 digits, class-incremental, 5 x 2 classes", _split_digits,
                  "digits", epochs=5),
    ]
}  # fmt: skip


def get(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; valid: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


SCENARIOS = ("class", "domain", "task")


def from_file(
    path: str | os.PathLike[str],
    label_column: str = "label",
    scenario: str = "class",
    domain_column: str | None = None,
    test_fraction: float = 0.2,
    input_shape: tuple[int, ...] | None = None,
    drop_columns: Sequence[str] = (),
    model: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    task_column: str | None = None,
) -> Benchmark:
    """A benchmark on the user's own file (``.npz``, ``.csv``, ``.parquet``).

    ``class`` and ``task`` cut the classes into experiences of
    :func:`~lifelong.data.scenarios.default_classes_per_experience` after a seeded, stratified
    80/20 split (a file with one class has nothing to forget and is refused), except that ``task``
    with a ``task_column`` (or an ``.npz``'s ``task`` array) makes one experience per task the file
    names; ``domain`` makes one experience per value of ``domain_column`` (80/20 inside each; one
    value is refused likewise).
    Features are standardised with the mean and standard deviation of the training samples
    (the test samples never inform them), so methods are compared on a well-conditioned problem,
    unless ``model`` (the registered name the grid trains, with ``model_kwargs``) takes token ids:
    an embedding first gets the ids as they are, which standardising would turn into fractions.
    The file is read once, here, so a malformed file fails before any training. ``input_shape``
    reshapes each sample (images stored as one row of pixels become ``[C, H, W]`` for a CNN);
    ``drop_columns`` are the file's columns that are not features (ids, timestamps).
    """
    from lifelong.data.files import load_table

    if scenario not in SCENARIOS:
        raise ConfigError(f"scenario: unknown {scenario!r}; valid: {', '.join(SCENARIOS)}")
    npz = str(path).lower().endswith(".npz")  # its domains are its "domain" array, not a named column
    for role, column in (("domain", domain_column), ("task", task_column)):
        if npz and column is not None:
            raise ConfigError(
                f"{path}: an .npz gives each sample's {role} in its '{role}' array, not a named column; drop "
                f"--{role}-column {column}"
            )
    if scenario != "task" and task_column is not None:
        raise ConfigError(
            f"a task column is read by the task scenario only; add --scenario task (or drop "
            f"--task-column {task_column} for a {scenario}-incremental benchmark)"
        )
    if scenario == "domain" and domain_column is None and not npz:
        raise ConfigError(
            "a domain-incremental benchmark needs the column that names each sample's domain: give it "
            "with --domain-column NAME (domain_column= in Python), or choose --scenario class or task"
        )
    if scenario != "domain" and domain_column is not None:
        raise ConfigError(
            f"a domain column is read by the domain scenario only; add --scenario domain (or drop "
            f"--domain-column {domain_column} for a {scenario}-incremental benchmark)"
        )
    table = load_table(path, label_column, domain_column, task_column, drop_columns).reshaped(input_shape)
    if scenario != "task":  # an .npz's task array is read by the task scenario only
        table = replace(table, tasks=None)
    if scenario != "domain" and len(table.classes) < 2:
        raise DataError(
            f"{path}: {len(table.classes)} class in column {label_column!r}; a {scenario}-incremental "
            "benchmark needs at least 2 (or use --scenario domain with --domain-column)"
        )
    if scenario == "task" and table.tasks is not None and len(set(table.tasks.tolist())) < 2:
        raise DataError(
            f"{path}: the task {'column ' + repr(task_column) if task_column else 'array'} holds one task; a "
            "task-incremental benchmark needs at least 2 (drop it to split the classes into tasks instead)"
        )
    if scenario == "domain":
        if table.domains is None:
            raise DataError(
                f"{path}: no domain values; a CSV or Parquet file names its domain column with "
                "--domain-column, an .npz holds them as an array named 'domain'"
            )
        if len(set(table.domains.tolist())) < 2:
            raise DataError(
                f"{path}: column {domain_column!r} holds one value; a domain-incremental benchmark needs at "
                "least 2 domains to have something to forget (name another column, or use --scenario class)"
            )

    standardise = model is None or not _takes_ids(model, model_kwargs or {}, table)

    def build(seed: int) -> Any:
        from lifelong.data import scenarios

        if scenario == "domain":
            s = scenarios.domains_from_column(table, test_fraction=test_fraction, seed=seed)
        elif table.tasks is not None:
            s = scenarios.tasks_from_column(table, test_fraction=test_fraction, seed=seed)
        else:
            make = scenarios.class_incremental if scenario == "class" else scenarios.task_incremental
            s = make(table.split(test_fraction, seed))
        return standardised(s) if standardise else s

    shape = "x".join(str(d) for d in table.x.shape[1:])
    return Benchmark(
        f"{Path(path).stem}-{scenario}",
        f"{path}: {len(table)} samples of {shape} features, {len(table.classes)} classes{_named(table.class_names)}, "
        f"{scenario}-incremental",
        build,
        str(path),
    )


def _named(names: list[str] | None, most: int = 10) -> str:
    """`` (0=cat, 1=dog, ...)``: which number is which class, where the file named them."""
    if not names:
        return ""
    shown = ", ".join(f"{i}={n}" for i, n in enumerate(names[:most]))
    return f" ({shown}{', ...' if len(names) > most else ''})"


def _takes_ids(model: str, model_kwargs: dict[str, Any], table: Any) -> bool:
    """Whether ``model``, sized for ``table``, starts with an embedding (token ids). A model that
    cannot be built for the table says so when the grid builds it: here it is not one."""
    from lifelong.learn.models import for_input
    from lifelong.learn.tokens import input_embedding

    try:
        probe = for_input(model, table.x.shape[1:], table.n_classes, **model_kwargs)
    except Exception:  # a plugin factory's own error: the grid reports it when it builds the model
        return False
    return input_embedding(probe) is not None


def standardised(scenario: Any) -> Any:
    """Scale every experience's inputs with the mean and std of all training samples."""
    import torch

    train = torch.cat([e.train.features() for e in scenario])
    mean, std = train.mean(0), train.std(0).clamp(min=1e-6)
    for e in scenario:
        e.train = e.train.replace(x=(e.train.features() - mean) / std, scale=1.0)
        e.test = e.test.replace(x=(e.test.features() - mean) / std, scale=1.0)
    return scenario
