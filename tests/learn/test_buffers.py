"""The herding buffer (class-balanced, herding order) and byte budgets of every buffer policy."""

import pytest
import torch

from lifelong.checks import toy_model
from lifelong.data.dataset import Dataset
from lifelong.learn.buffers import BUFFERS, HerdingBuffer, make_buffer
from lifelong.learn.learner import Learner
from lifelong.strategies._herding import herding


def _uint8(n: int, n_classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8, generator=g)
    return x, torch.arange(n_classes).repeat(n // n_classes)


def test_herding_is_registered() -> None:
    assert BUFFERS["herding"] is HerdingBuffer
    assert isinstance(make_buffer("herding", 5), HerdingBuffer)


def test_herding_buffer_is_class_balanced() -> None:
    buf, g = make_buffer("herding", 10), torch.Generator().manual_seed(0)
    x, y = _uint8(60, 3)
    buf.add(x, y, generator=g, scale=1 / 255)
    counts = torch.bincount(buf.y[: len(buf)]).tolist()
    assert len(buf) == 10 and max(counts) - min(counts) <= 1
    x2, _ = _uint8(8, 1, seed=1)
    buf.add(x2, torch.full((8,), 3), generator=g, scale=1 / 255)  # a fourth class takes slots from the others
    counts = torch.bincount(buf.y[: len(buf)]).tolist()
    assert len(buf) == 10 and counts == [3, 3, 2, 2]


def test_herding_buffer_keeps_herding_exemplars_and_shrinks_to_a_prefix() -> None:
    buf, g = make_buffer("herding", 4), torch.Generator().manual_seed(0)
    f = torch.randn(9, 3, generator=g)
    buf.add(f, torch.zeros(9, dtype=torch.long), generator=g)  # features = inputs
    order = herding(f, 4)
    assert torch.equal(buf.x[:4], f[order])
    buf.add(torch.randn(5, 3, generator=g), torch.ones(5, dtype=torch.long), generator=g)
    assert torch.equal(buf.x[:2], f[order[:2]])  # class 0 kept its two best exemplars


def test_add_experience_herds_on_penultimate_features() -> None:
    learner = Learner(toy_model(), [], batch_size=8)
    g = torch.Generator().manual_seed(0)
    data = Dataset(torch.randn(20, 8, generator=g), torch.arange(2).repeat(10))
    buf = make_buffer("herding", 6)
    buf.add_experience(learner, data)
    with torch.no_grad():
        feats = learner.model.features(data.x)
    for c in (0, 1):
        members = (data.y == c).nonzero().squeeze(1)
        expected = data.x[members[herding(feats[members], 3)]]
        assert torch.equal(buf.x[: len(buf)][buf.y[: len(buf)] == c], expected)


@pytest.mark.parametrize("policy", sorted(BUFFERS))
def test_byte_budget_for_uint8_storage(policy: str) -> None:
    capacity, n_classes = 12, 3
    buf, g = make_buffer(policy, capacity), torch.Generator().manual_seed(0)
    x, y = _uint8(90, n_classes)
    logits = torch.randn(90, n_classes)
    for i in range(0, 90, 10):
        buf.add(x[i : i + 10], y[i : i + 10], generator=g, logits=logits[i : i + 10], scale=1 / 255)
    assert buf.x.dtype == torch.uint8 and len(buf) == capacity
    # x: 16 bytes per sample; y and t: int64; logits: float32 per class
    assert buf.nbytes() == capacity * (16 + 8 + 8 + 4 * n_classes)
