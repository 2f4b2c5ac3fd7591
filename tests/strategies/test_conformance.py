"""Every registered strategy passes every named conformance check."""

import pytest

import lifelong.strategies  # noqa: F401  (registers the built-in strategies)
from lifelong.checks import CHECKS
from lifelong.learn.strategy import REGISTRY

#: defaults that are right for a benchmark but slow on the toy stream (GDumb retrains 128 passes)
FAST = {"gdumb": {"epochs": 2}}


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_conformance(name: str, check: str) -> None:
    CHECKS[check](REGISTRY[name](**FAST.get(name, {})))


def test_registry_holds_the_core_six() -> None:
    assert {"naive", "joint", "cumulative", "replay", "ewc", "lwf"} <= set(REGISTRY)
