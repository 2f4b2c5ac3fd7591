"""Every registered strategy passes every named conformance check."""

import pytest

import lifelong.strategies  # noqa: F401  (registers the built-in strategies)
from lifelong.checks import CHECKS
from lifelong.learn.strategy import REGISTRY

#: defaults that are right for a benchmark but wrong for the toy stream: GDumb retrains 128 passes
#: (slow); the quadratic penalties' gradient step diverges once lr * lam * importance > 2 for one
#: weight, and the toy's unstandardised blobs (E[x^2] ~ 10) at the checks' lr 0.1 give, after the
#: first experience, a largest Fisher of 0.42 (EWC's lam 100: 4.2) and a largest SCP Gamma of 25
#: (its gradient 2 * lam * Gamma, lam 1: 4.9); these strengths keep the step stable (0.42, 0.5)
TOY_PARAMS = {
    "gdumb": {"epochs": 2},
    "ewc": {"lam": 10.0},
    "online-ewc": {"lam": 10.0},
    "scp": {"lam": 0.1},
}


@pytest.mark.filterwarnings("error:training diverged:RuntimeWarning")  # a diverged run checks nothing
@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_conformance(name: str, check: str) -> None:
    CHECKS[check](REGISTRY[name](**TOY_PARAMS.get(name, {})))


def test_registry_holds_the_core_six() -> None:
    assert {"naive", "joint", "cumulative", "replay", "ewc", "lwf"} <= set(REGISTRY)
