"""Named benchmarks: a scenario plus the protocol it is run with.

The default protocol follows the DER paper's Split MNIST setting (Buzzega et al., 2020),
applied to Fashion-MNIST: class-incremental, 5 experiences of 2 classes in order 0..9,
single head, MLP 784-100-100-10, SGD lr 0.03, batch 10, one epoch per experience.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lifelong.errors import ConfigError


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
