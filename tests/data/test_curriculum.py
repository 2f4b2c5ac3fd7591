"""curriculum: reorder a scenario's experiences, re-index them, keep task ids consistent."""

import pytest
import torch

from lifelong.checks import toy_data, toy_scenario
from lifelong.data.dataset import Dataset, Split
from lifelong.data.scenarios import class_incremental, class_overlap, curriculum
from lifelong.errors import ScenarioError


def test_given_order_reindexes_without_touching_the_source() -> None:
    source = toy_scenario("class")
    reordered = curriculum(source, order=[1, 0])
    assert [e.classes for e in reordered] == [(2, 3), (0, 1)]
    assert [e.index for e in reordered] == [0, 1]
    assert all(e.scenario is reordered for e in reordered)
    assert [e.index for e in source] == [0, 1] and all(e.scenario is source for e in source)
    assert [e.classes for e in curriculum(source)] == [(0, 1), (2, 3)]


def test_random_order_is_seeded() -> None:
    source = class_incremental(toy_data(n_classes=8, per_class=6), n_experiences=4)
    a, b = (curriculum(source, "random", seed=3) for _ in range(2))
    assert [e.classes for e in a] == [e.classes for e in b]
    orders = {tuple(e.classes for e in curriculum(source, "random", seed=s)) for s in range(5)}
    assert len(orders) > 1


def separable(gap: float, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(2).repeat_interleave(30)
    x = torch.randn(60, 4, generator=g) + gap * torch.eye(4)[y]
    return Split(Dataset(x, y), Dataset(x, y))


def test_easy_first_sorts_by_class_overlap() -> None:
    # experience 0: overlapping classes (hard), experience 1: far apart (easy)
    hard, easy = separable(0.5, 0), separable(8.0, 1)
    data = Split(*(Dataset(torch.cat([h.x, e.x]), torch.cat([h.y, e.y + 2])) for h, e in zip(hard, easy)))
    source = class_incremental(data, n_experiences=2)
    assert class_overlap(source[0]) > class_overlap(source[1])
    assert [e.classes for e in curriculum(source, "easy-first")] == [(2, 3), (0, 1)]
    assert [e.classes for e in curriculum(source, "hard-first")] == [(0, 1), (2, 3)]
    assert [e.classes for e in curriculum(source, "easy-first", difficulty=[0.0, 1.0])] == [(0, 1), (2, 3)]


def test_task_ids_follow_the_new_order() -> None:
    reordered = curriculum(toy_scenario("task"), order=[1, 0])
    for i, e in enumerate(reordered):
        assert e.task_id == i
        assert torch.equal(e.train.t, torch.full_like(e.train.y, i))
        assert torch.equal(e.test.t, torch.full_like(e.test.y, i))
    assert reordered[0].classes == (2, 3)


def test_bad_orders_are_refused() -> None:
    with pytest.raises(ScenarioError, match="permutation"):
        curriculum(toy_scenario("class"), order=[0, 0])
    with pytest.raises(ScenarioError, match="unknown"):
        curriculum(toy_scenario("class"), order="backwards")
    with pytest.raises(ScenarioError, match="one per experience"):
        curriculum(toy_scenario("class"), order="easy-first", difficulty=[1.0])


def test_task_ids_the_data_names_are_kept() -> None:
    """They were renumbered 0, 1 ..., so the model then refused the user's own ids at prediction."""
    from lifelong.checks import toy_data
    from lifelong.data.scenarios import tasks_from_column

    data = toy_data().train
    half = len(data) // 2
    named = tasks_from_column(data, [7] * half + [2] * (len(data) - half))
    reordered = curriculum(named, order=[1, 0])
    assert [e.task_id for e in reordered] == [2, 7]
    assert set(reordered[0].train.t.tolist()) == {2} and set(reordered[1].test.t.tolist()) == {7}
