"""What the system tests share: toy champions trained once, a seeded store, and the error-body check."""

from __future__ import annotations

import functools

import httpx
import torch

from lifelong.checks import toy_data, toy_model
from lifelong.data.dataset import Dataset
from lifelong.learn.learner import Learner
from lifelong.system.registry import Registry
from lifelong.system.store import Store
from lifelong.system.trainer import bootstrap

DATA = toy_data(seed=0)  # 4 classes, 8 features


@functools.cache
def trained(seed: int = 0, *, wrong: bool = False, passes: int = 3) -> Learner:
    """A toy learner (cached: only saved, never changed); ``wrong`` learns shifted labels."""
    learner = Learner(toy_model(seed), lr=0.2, batch_size=32, seed=seed)
    x, y = DATA.train.x, DATA.train.y
    y = (y + 1) % 4 if wrong else y
    g = torch.Generator().manual_seed(seed)
    for _ in range(passes):
        order = torch.randperm(len(x), generator=g)
        learner.partial_fit(x[order], y[order])
    return learner


def seed_store(
    store: Store, registry: Registry, strategies: tuple[str, ...] = ("replay",), known: int = 2
) -> Dataset:
    """A champion on classes below ``known`` and a store holding labelled samples of all four classes."""
    split = toy_data(per_class=90)
    old = split.train.subset(torch.nonzero(split.train.y < known).squeeze(1), "old")
    bootstrap(store, registry, old, n_classes=4, strategies=strategies, strategy_params={"buffer_size": 60},
              epochs=3, lr=0.05, batch_size=16)  # fmt: skip
    order = torch.randperm(len(split.train), generator=torch.Generator().manual_seed(1))
    store.add_samples(split.train.x[order], split.train.y[order])
    return split.test


def error_of(response: httpx.Response, status: int) -> str:
    """The error type of a 4xx/5xx JSON body, after checking the body is exactly ``{"error": {type, message}}``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"} and body["error"]["message"]
    return body["error"]["type"]
