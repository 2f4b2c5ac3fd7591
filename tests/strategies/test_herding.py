"""Herding (iCaRL): the running mean of the chosen exemplars tracks the class mean."""

import pytest
import torch

from lifelong.strategies._herding import herding


def test_first_pick_is_closest_to_mean() -> None:
    f = torch.tensor([[0.0], [1.0], [2.0], [10.0]])  # mean 3.25
    assert herding(f, 1).tolist() == [2]


def test_second_pick_balances_the_first_not_nearest_to_mean() -> None:
    # mean 0: 0.1 first; then -0.45 (pair mean -0.175) beats 0.35 (pair mean 0.225), though 0.35 is nearer 0
    f = torch.tensor([[0.1], [0.35], [-0.45], [3.0], [-3.0]])
    picked = herding(f, 2)
    assert picked.tolist() == [0, 2]
    mu = f.mean(0)
    nearest_two = (f - mu).norm(dim=1).argsort()[:2]
    assert (f[picked].mean(0) - mu).norm() < (f[nearest_two].mean(0) - mu).norm()


def test_each_step_minimises_running_mean_distance() -> None:
    f = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
    picked = herding(f, 5).tolist()
    mu = f.double().mean(0)
    for k in range(1, 6):
        rest = [i for i in range(12) if i not in picked[: k - 1]]
        dist = {i: float((mu - f[picked[: k - 1] + [i]].double().mean(0)).norm()) for i in rest}
        assert picked[k - 1] == min(dist, key=dist.get)


def test_order_is_a_priority_and_sizes_are_clamped() -> None:
    f = torch.randn(7, 4, generator=torch.Generator().manual_seed(1))
    full = herding(f, 7)
    assert sorted(full.tolist()) == list(range(7))
    assert herding(f, 3).tolist() == full[:3].tolist()
    assert herding(f, 100).tolist() == full.tolist()
    assert herding(f, 0).numel() == 0 and herding(f, 0).dtype == torch.long


def test_normalize_uses_directions_only() -> None:
    f = torch.randn(6, 3, generator=torch.Generator().manual_seed(2))
    scaled = f * torch.arange(1, 7).unsqueeze(1)
    assert herding(scaled, 4, normalize=True).tolist() == herding(f, 4, normalize=True).tolist()


def _herding_float64_loop(features: torch.Tensor, m: int, normalize: bool) -> list[int]:
    """The previous implementation: a float64 distance over every row at each pick."""
    f = features.double()
    if normalize:
        f = torch.nn.functional.normalize(f, dim=1)
    mu, running, taken, chosen = f.mean(0), torch.zeros(f.shape[1], dtype=torch.float64), set(), []
    for k in range(1, m + 1):
        dist = (mu - (running + f) / k).norm(dim=1)
        dist[list(taken)] = float("inf")
        i = int(dist.argmin())
        chosen.append(i)
        taken.add(i)
        running += f[i]
    return chosen


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("normalize", [False, True])
def test_same_selections_as_the_float64_loop(seed: int, normalize: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    features = torch.relu(torch.randn(600, 32, generator=g) @ torch.randn(32, 128, generator=g))  # ReLU-like
    assert herding(features, 120, normalize=normalize).tolist() == _herding_float64_loop(
        features, 120, normalize
    )
