"""The herding buffer (class-balanced, herding order) and byte budgets of every buffer policy."""

import pytest
import torch

from lifelong.checks import toy_model
from lifelong.data.dataset import Batch, Dataset
from lifelong.learn.buffers import BUFFERS, HerdingBuffer, make_buffer
from lifelong.learn.learner import Learner
from lifelong.learn.strategy import Strategy
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


def test_herding_buffer_remembers_a_batch_like_every_buffer() -> None:
    """``remember`` passes the storage dtype to ``add``; the herding buffer takes it too."""
    learner = Learner(toy_model(), [], batch_size=8)
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(12, 8, generator=g), torch.arange(3).repeat(4))
    buf = make_buffer("herding", 6)
    buf.remember(learner, batch)
    assert len(buf) == 6 and sorted(buf.y[: len(buf)].tolist()) == [0, 0, 1, 1, 2, 2]


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


@pytest.mark.parametrize("policy", sorted(BUFFERS))
def test_a_memory_not_yet_full_counts_the_samples_it_holds(policy: str) -> None:
    """Replay's 500-sample memory on 142 samples reported 500 slots' bytes, iCaRL's its 142 exemplars."""
    buf, g = make_buffer(policy, 12), torch.Generator().manual_seed(0)
    x, y = _uint8(6, 3)
    buf.add(x, y, generator=g, scale=1 / 255)
    assert len(buf) == 6 and buf.nbytes() == 6 * (16 + 8 + 8)


def _tagged(first: int, n: int, dim: int = 784, n_classes: int = 10) -> tuple[torch.Tensor, ...]:
    """Offered samples whose every field carries the sample's id: a mixed row cannot hide."""
    ids = torch.arange(first, first + n)
    x = ids.float()[:, None].expand(n, dim).contiguous()
    return x, ids % n_classes, ids, ids.float()[:, None].expand(n, n_classes).contiguous()


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_reservoir_rows_come_from_one_sample_and_the_last_offer_wins(threads: int) -> None:
    torch.set_num_threads(threads)  # the autouse fixture restores the count
    capacity, batch = 500, 128
    buf, g = make_buffer("reservoir", capacity), torch.Generator().manual_seed(0)
    shadow = torch.Generator().manual_seed(0)  # replays the same draws sequentially, one sample at a time
    expected = torch.full((capacity,), -1)
    seen = 0
    for b in range(120):
        x, y, t, logits = _tagged(b * batch, batch)
        buf.add(x, y, t, generator=g, logits=logits)
        fill = min(capacity - seen, batch) if seen < capacity else 0
        expected[seen : seen + fill] = t[:fill]
        if fill < batch:
            u = torch.rand(batch - fill, generator=shadow).tolist()
            for i, r in enumerate(u, start=fill):
                j = int(r * (seen + i + 1))
                if j < capacity:
                    expected[j] = t[i]  # sequential reservoir: a later sample overwrites an earlier one
        seen += batch
    ids = buf.t
    assert len(buf) == capacity and torch.equal(ids, expected)
    assert torch.equal(buf.x, ids.float()[:, None].expand_as(buf.x))  # no row mixes two samples
    assert torch.equal(buf.y, ids % 10) and torch.equal(
        buf.logits, ids.float()[:, None].expand_as(buf.logits)
    )


@pytest.mark.parametrize("policy", sorted(BUFFERS))
def test_every_policy_keeps_each_row_whole(policy: str) -> None:
    buf, g = make_buffer(policy, 50), torch.Generator().manual_seed(0)
    for b in range(20):
        x, y, t, logits = _tagged(b * 64, 64, dim=16)
        buf.add(x, y, t, generator=g, logits=logits)
    ids = buf.t[: len(buf)]
    assert len(torch.unique(ids)) == len(buf)
    assert torch.equal(buf.x[: len(buf)], ids.float()[:, None].expand(len(buf), 16))
    assert torch.equal(buf.y[: len(buf)], ids % 10)


def test_memory_stores_the_incoming_rows_as_stored_not_requantised() -> None:
    from lifelong.data.scenarios import class_incremental
    from lifelong.learn.models import MLP
    from lifelong.strategies import Replay

    x, y = _uint8(200, 4)
    data = Dataset(x, y, scale=1 / 255)
    scenario = class_incremental((data, data), 2)

    class Raw(Strategy):  # what a memory sees as the incoming rows, during each step
        name = ""

        def __init__(self) -> None:
            self.seen: list[torch.dtype | None] = []

        def after_step(self, learner) -> None:
            raw = learner.incoming_raw
            self.seen.append(None if raw is None else raw.dtype)

    raw = Raw()
    learner = Learner(MLP(x[0].numel(), (8,), 4), [Replay(50), raw], batch_size=10)
    learner.learn(scenario.experiences[0])
    buffer = learner.strategies[0].buffer_
    assert buffer.x.dtype == torch.uint8
    assert raw.seen and set(raw.seen) == {torch.uint8}
    assert learner.incoming is None and learner.incoming_raw is None  # released after the step
    rows = {tuple(r.flatten().tolist()) for r in x}
    assert all(tuple(r.flatten().tolist()) in rows for r in buffer.x[: len(buffer)])
    # a step driven from outside the epoch loop has no known source rows
    learner.train_step(scenario.experiences[1].train.batch(torch.arange(5)))
    assert raw.seen[-1] is None
