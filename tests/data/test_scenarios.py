import re
import warnings

import numpy as np
import pytest
import torch

from lifelong.checks import toy_data
from lifelong.data import Split, from_tensors
from lifelong.data.scenarios import (
    class_incremental,
    curriculum,
    default_classes_per_experience,
    domain_incremental,
    domains_from_column,
    holdout,
    rotate,
    task_free,
    task_incremental,
)
from lifelong.errors import DataError, ScenarioError


def test_class_incremental_splits_classes_in_order() -> None:
    s = class_incremental(toy_data(), n_experiences=2)
    assert [e.classes for e in s] == [(0, 1), (2, 3)]
    assert set(s[0].train.y.tolist()) == {0, 1} and set(s[1].test.y.tolist()) == {2, 3}
    assert s.kind == "class" and s[0].train.t is None and s[1].index == 1


def test_a_slice_is_a_scenario_of_its_own_numbered_from_zero() -> None:
    s = task_incremental(toy_data(per_class=40, n_classes=8), n_experiences=4)
    part = s[1:3]
    assert isinstance(part, type(s)) and part.name == "task-incremental[1:3]" and part.kind == "task"
    assert [e.classes for e in part] == [s[1].classes, s[2].classes] and [e.index for e in part] == [0, 1]
    assert [e.task_id for e in part] == [1, 2] and part.n_classes == s.n_classes
    assert all(e.scenario is part for e in part) and all(
        e.scenario is s for e in s
    )  # the original keeps its own
    assert s[-1].index == 3 and [e.classes for e in s[::2]] == [s[0].classes, s[2].classes]
    with pytest.raises(ScenarioError, match=r"task-incremental\[5:\]: no experience"):
        s[5:]


def test_class_order_and_seed() -> None:
    s = class_incremental(toy_data(), classes_per_experience=1, class_order=[3, 1, 0, 2])
    assert [e.classes for e in s] == [(3,), (1,), (0,), (2,)]
    shuffled = class_incremental(toy_data(), n_experiences=4, seed=5)
    assert sorted(c for e in shuffled for c in e.classes) == [0, 1, 2, 3]


def test_a_class_order_may_name_a_subset_of_the_classes() -> None:
    s = class_incremental(toy_data(), classes_per_experience=1, class_order=[2, 0])
    assert [e.classes for e in s] == [(2,), (0,)] and s.n_classes == 4
    assert set(torch.cat([e.test.y for e in s]).tolist()) == {0, 2}


def test_test_classes_without_training_samples_are_refused() -> None:
    data = toy_data()
    no_three = data.train.subset((data.train.y != 3).nonzero().squeeze(1))
    for make in (
        lambda d: class_incremental(d, n_experiences=3),
        lambda d: domain_incremental(d, permutations=2),
    ):
        with pytest.raises(ScenarioError, match=r"test set holds classes \[3\] that the train set lacks"):
            make(Split(no_three, data.test))


def test_labels_far_sparser_than_the_classes_are_refused() -> None:
    x = torch.zeros(40, 3)
    sparse = from_tensors(x, torch.tensor([0, 1, 2, 10**9] * 10))
    with pytest.raises(ScenarioError, match=r"labels reach 1000000000 for 4 classes.*remap them"):
        class_incremental(sparse, n_experiences=2)
    assert (
        class_incremental(from_tensors(x, torch.tensor([0, 1, 2, 900] * 10)), n_experiences=2).n_classes
        == 901
    )


def test_classes_per_experience_booleans_are_refused() -> None:
    with pytest.raises(ScenarioError, match="classes_per_experience"):
        class_incremental(toy_data(), classes_per_experience=[True] * 4)


def test_task_incremental_carries_task_ids() -> None:
    s = task_incremental(toy_data(), n_experiences=2)
    assert s.kind == "task" and s[1].task_id == 1 and set(s[1].train.t.tolist()) == {1}


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [({"n_experiences": 3}, "n_experiences"), ({"classes_per_experience": 3}, "classes_per_experience"),
     ({"class_order": [0, 1, 2, 9]}, "class_order"), ({"class_order": [0, 0, 1, 2]}, "class_order")],
)  # fmt: skip
def test_invalid_arguments_name_the_argument(kwargs, arg) -> None:
    with pytest.raises(ScenarioError, match=arg):
        class_incremental(toy_data(), **kwargs)


@pytest.mark.parametrize(
    ("build", "arg"),
    [(lambda d: class_incremental(d, n_experiences=2.5), "n_experiences"),
     (lambda d: class_incremental(d, n_experiences="2"), "n_experiences"),
     (lambda d: class_incremental(d, n_experiences=True), "n_experiences"),  # was taken as 1
     (lambda d: task_incremental(d, classes_per_experience=2.5), "classes_per_experience"),
     (lambda d: class_incremental(d, seed="a"), "seed"),
     (lambda d: class_incremental(d, seed=1.5), "seed"),
     (lambda d: domain_incremental(d, permutations=2.5), "permutations"),
     (lambda d: domain_incremental(d, permutations=2, seed="a"), "seed"),
     (lambda d: domain_incremental(d, rotations="90"), "rotations"),  # a string, not a list of angles
     (lambda d: domain_incremental(d, rotations=90), "rotations"),
     (lambda d: domain_incremental(d, rotations=[0, float("nan")]), "rotations"),
     (lambda d: holdout(d.train, seed="a"), "seed"),
     (lambda d: task_free(class_incremental(d), batch_size=2.5), "batch_size"),
     (lambda d: task_free(class_incremental(d), seed="a"), "seed"),
     (lambda d: curriculum(class_incremental(d), "random", seed="a"), "seed")],
)  # fmt: skip
def test_arguments_of_the_wrong_type_are_scenario_errors_naming_them(build, arg) -> None:
    """They failed inside torch (TypeError, RuntimeError: 'manual_seed expected a long') or, for
    rotations="90", with a format error about the letter 9."""
    with pytest.raises(ScenarioError, match=f"^{arg}: "):
        build(toy_data())


def test_empty_dataset_is_refused() -> None:
    with pytest.raises(DataError):
        from_tensors(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    data = toy_data()
    with pytest.raises(ScenarioError, match="empty"):
        class_incremental(Split(data.train, data.test.subset(torch.arange(0))), n_experiences=2)
    with pytest.raises(DataError, match="pair"):
        class_incremental("not data")


def test_domain_incremental_permutes_the_same_classes() -> None:
    s = domain_incremental(toy_data(), permutations=3, seed=1)
    assert len(s) == 3 and all(e.classes == (0, 1, 2, 3) for e in s) and s.kind == "domain"
    x0, x1 = s[0].train.x, s[1].train.x
    assert not torch.equal(x0, x1) and torch.equal(x0.sort(1).values, x1.sort(1).values)
    with pytest.raises(ScenarioError, match="exactly one"):
        domain_incremental(toy_data())


def test_rotation_turns_images() -> None:
    img = torch.zeros(1, 1, 9, 9, dtype=torch.uint8)
    img[0, 0, 4, 6:] = 255  # a bar right of centre
    turned = rotate(img, 90)
    assert turned.dtype == torch.uint8 and turned[0, 0, 4, 6:].sum() < 255 and turned.sum() > 0
    assert torch.equal(rotate(img, 360), img)
    images = Split(from_tensors(img.repeat(4, 1, 1, 1), torch.tensor([0, 1, 0, 1])),
                   from_tensors(img.repeat(2, 1, 1, 1), torch.tensor([0, 1])))  # fmt: skip
    s = domain_incremental(images, rotations=[0, 90])
    assert torch.equal(s[0].train.x, images.train.x) and not torch.equal(s[1].train.x, images.train.x)
    with pytest.raises(ScenarioError, match="image"):
        domain_incremental(toy_data(), rotations=[0, 90])


def test_rotation_keeps_lengths_in_non_square_images() -> None:
    """A 90-degree turn of a 9-pixel bar through the centre of a 9x17 image is a 9-pixel column
    (rotating in affine_grid's [-1, 1] coordinates squeezed it to 5), as torch.rot90 turns squares."""
    wide = torch.zeros(1, 1, 9, 17)
    wide[0, 0, 4, 4:13] = 1
    assert (rotate(wide, 90)[0, 0] > 0.5).nonzero().tolist() == [[r, 8] for r in range(9)]
    square = torch.rand(2, 1, 12, 12)
    assert torch.allclose(rotate(square, 90), torch.rot90(square, 1, (-2, -1)), atol=1e-5)


def test_task_free_stream_sees_each_sample_once() -> None:
    scenario = class_incremental(toy_data(), n_experiences=2)
    sharp = task_free(scenario, batch_size=8, blur=0.0)
    ys = torch.cat([b.y for b in sharp])
    assert len(ys) == sum(len(e.train) for e in scenario)
    half = len(scenario[0].train)
    assert set(ys[:half].tolist()) == {0, 1} and set(ys[half:].tolist()) == {2, 3}
    blurred = torch.cat([b.y for b in task_free(scenario, batch_size=8, blur=1.0)])
    assert set(blurred[:half].tolist()) & {2, 3}  # neighbouring experiences mix
    assert sorted(blurred.tolist()) == sorted(ys.tolist())
    with pytest.raises(ScenarioError, match="blur"):
        task_free(scenario, blur=-1)


# -- scenarios from the user's own data ------------------------------------------------------
def test_a_task_incremental_scenario_is_refused_as_a_task_free_stream() -> None:
    """fit registered task 0 with every class: task 0 was scored among all of them, the others among
    their own, and predicting task 1 afterwards said it was never trained."""
    tasks = task_incremental(toy_data(per_class=40, n_classes=8), n_experiences=4)
    with pytest.raises(
        ScenarioError, match=r"task_free: .* is task-incremental.*class- or domain-incremental"
    ):
        task_free(tasks)


def test_own_domains_as_datasets_or_arrays() -> None:
    from tests.data._tabular import tabular

    pairs = []
    for shift in (0.0, 2.0, -2.0):
        (x, y), (xt, yt) = tabular(200, 1, shift), tabular(60, 2, shift)
        pairs.append(((x, y), (from_tensors(xt, yt))))
    s = domain_incremental(domains=pairs)
    assert s.kind == "domain" and len(s) == 3 and s.n_classes == 3
    assert all(e.classes == (0, 1, 2) for e in s) and s.input_shape == (30,)
    assert float(s[1].train.x.mean()) > float(s[0].train.x.mean()) + 1.5
    with pytest.raises(ScenarioError, match="differ"):
        domain_incremental(domains=[pairs[0], ((pairs[1][0][0][:, :29], pairs[1][0][1]), pairs[1][1])])
    with pytest.raises(ScenarioError, match="exactly one"):
        domain_incremental(toy_data(), permutations=2, domains=pairs)


def test_own_domains_as_one_x_y_per_domain_are_split_not_read_as_train_and_test() -> None:
    import pandas as pd

    from tests.data._tabular import tabular

    domains = []
    for shift in (0.0, 2.0):
        x, y = tabular(100, 1, shift)
        domains.append((pd.DataFrame(x, columns=[f"f{i}" for i in range(30)]), y))
    x, y = tabular(100, 2, -2.0)
    domains.append((torch.from_numpy(x), torch.from_numpy(y)))
    s = domain_incremental(
        domains=domains, seed=1
    )  # was "domain-0-train: expected a Dataset ..., got DataFrame"
    assert len(s) == 3 and s.input_shape == (30,)
    assert all(len(e.train) + len(e.test) == 100 and 15 <= len(e.test) <= 25 for e in s)  # split 80/20
    assert s[0].train.feature_names == tuple(f"f{i}" for i in range(30))
    assert float(s[1].train.x.mean()) > float(s[0].train.x.mean()) + 1.5


def test_own_domains_must_name_their_columns_alike() -> None:
    import pandas as pd

    from tests.data._tabular import tabular

    names = [f"f{i}" for i in range(30)]
    (x, y), (xt, yt) = tabular(200, 1), tabular(60, 2)
    first = pd.DataFrame(x, columns=names)
    second = first[names[::-1]]  # the same columns, another order: by position they would be mixed up
    s = domain_incremental(domains=[from_tensors(first, y), from_tensors(first, y)])
    assert s.feature_names == tuple(names)
    with pytest.raises(ScenarioError, match=r"domains\[1\]: .* name their features differently"):
        domain_incremental(domains=[from_tensors(first, y), (from_tensors(second, y), from_tensors(xt, yt))])


def test_domains_from_a_column_of_a_loaded_file(tmp_path) -> None:
    from lifelong.data.files import load_table
    from tests.data._tabular import frame

    frame().to_csv(tmp_path / "plants.csv", index=False)
    table = load_table(tmp_path / "plants.csv", label_column="species", domain_column="site")
    s = domains_from_column(table, seed=3)
    assert [e.train.name.split("-")[1] for e in s] == ["north", "south"]
    for e in s:
        assert len(e.train) + len(e.test) == 150 and 0.15 < len(e.test) / 150 < 0.25
        assert set(e.test.classes) == {0, 1, 2}
    assert torch.equal(domains_from_column(table, seed=3)[0].test.x, s[0].test.x)  # seeded
    assert not torch.equal(domains_from_column(table, seed=4)[0].test.x, s[0].test.x)
    ds = table.to_dataset()
    assert len(domains_from_column(ds, list(table.domains))) == 2
    with pytest.raises(DataError, match="one per sample"):
        domains_from_column(ds, list(table.domains)[:10])


def test_class_and_task_incremental_on_a_loaded_table(tmp_path) -> None:
    from lifelong.data.files import load_table
    from lifelong.learn import Learner
    from lifelong.learn.models import for_input
    from tests.data._tabular import tabular

    x, y = tabular(600)
    np.savez(tmp_path / "t.npz", x=x, y=y)
    data = load_table(tmp_path / "t.npz").to_dataset()
    for make in (class_incremental, task_incremental):
        s = make(data, classes_per_experience=1, seed=0)
        assert len(s) == 3 and s.n_classes == 3 and s.input_shape == (30,)
        assert sum(len(e.train) + len(e.test) for e in s) == 600
        torch.manual_seed(0)
        learner = Learner(for_input("mlp", s.input_shape, s.n_classes, hidden=[16]), lr=0.1, batch_size=16)
        result = learner.fit(s)
        assert result.accuracy_matrix[-1][-1] > 0.9  # the last class is learned


def _sparse_labels() -> Split:
    """Images labelled {0, 3, 7}: non-contiguous labels, as after dropping classes from a dataset."""
    g = torch.Generator().manual_seed(0)

    def draw(n: int):
        y = torch.tensor([0, 3, 7]).repeat(n)
        return from_tensors(torch.randint(0, 256, (len(y), 1, 4, 4), generator=g, dtype=torch.uint8), y)

    return Split(draw(10), draw(3))


def test_outputs_cover_the_largest_label_not_the_number_of_classes() -> None:
    data = _sparse_labels()
    for s in (
        domain_incremental(data, permutations=2),
        domain_incremental(data, rotations=[0, 90]),
        domain_incremental(domains=[data, data]),
        class_incremental(data, classes_per_experience=1),
        task_incremental(data, classes_per_experience=1),
    ):
        assert s.n_classes == 8, s.name  # label 7 needs output 7


class _TorchStyle:
    """A map-style torch dataset: __getitem__ and __len__ giving (x, y) items."""

    def __init__(self, data) -> None:
        self.data = data

    def __getitem__(self, i: int):
        return self.data.x[i], int(self.data.y[i])

    def __len__(self) -> int:
        return len(self.data)


def test_every_constructor_holds_out_20_percent_of_one_dataset(tmp_path) -> None:
    from lifelong.data.files import load_table
    from tests.data._tabular import tabular

    data = toy_data(per_class=50).train  # 4 classes x 50 samples
    x, y = tabular(200)
    np.savez(tmp_path / "t.npz", x=x, y=y)
    table = load_table(tmp_path / "t.npz")
    makers = {
        "class": lambda d, seed: class_incremental(d, classes_per_experience=1, seed=seed),
        "task": lambda d, seed: task_incremental(d, classes_per_experience=1, seed=seed),
        "permuted": lambda d, seed: domain_incremental(d, permutations=2, seed=seed),
        "domains": lambda d, seed: domain_incremental(domains=[d, d], seed=seed),
    }
    for name, make in makers.items():
        for one in (data, _TorchStyle(data), table):
            s = make(one, 0)
            train, test = sum(len(e.train) for e in s), sum(len(e.test) for e in s)
            assert test / (train + test) == pytest.approx(0.2, abs=0.02), name
            assert {c for e in s for c in e.test.classes} == {c for e in s for c in e.train.classes}, name
        first, again, other = (make(data, seed)[0].test for seed in (0, 0, 1))
        assert torch.equal(first.y, again.y) and torch.equal(first.x.sort(0).values, again.x.sort(0).values)
        if name != "permuted":  # another seed holds out other samples (the permuted x would differ anyway)
            assert not torch.equal(first.x, other.x), name
    values = ["a"] * 100 + ["b"] * 100
    assert len(domains_from_column(_TorchStyle(data), values)) == 2


def test_classes_per_experience_as_a_list() -> None:
    s = class_incremental(toy_data(n_classes=6), classes_per_experience=[3, 1, 2])
    assert [e.classes for e in s] == [(0, 1, 2), (3,), (4, 5)]
    assert set(s[0].train.y.tolist()) == {0, 1, 2} and set(s[2].test.y.tolist()) == {4, 5}
    t = task_incremental(toy_data(n_classes=6), n_experiences=3, classes_per_experience=[3, 1, 2])
    assert [e.task_id for e in t] == [0, 1, 2]
    for kwargs, message in [
        ({"classes_per_experience": [3, 2]}, r"adds up to 5, but the dataset has 6 classes"),
        ({"classes_per_experience": [4, 0, 2]}, r"below 1"),
        ({"classes_per_experience": [3, 1, 2], "n_experiences": 2}, r"n_experiences: 2 conflicts"),
        ({"classes_per_experience": [3.5, 2.5]}, r"list of ints"),
    ]:
        with pytest.raises(ScenarioError, match=message):
            class_incremental(toy_data(n_classes=6), **kwargs)


def test_default_split_is_two_classes_per_experience_when_that_makes_two_experiences() -> None:
    assert [default_classes_per_experience(n) for n in (1, 2, 3, 4, 5, 6, 10)] == [1, 1, 1, 2, 1, 2, 2]
    assert [e.classes for e in class_incremental(toy_data(n_classes=2))] == [(0,), (1,)]  # was one experience
    assert len(class_incremental(toy_data(n_classes=10))) == 5
    assert len(class_incremental(toy_data(n_classes=5))) == 5


def test_reprs_show_sizes_not_tensors() -> None:
    from lifelong.data import digits

    scenario = class_incremental(digits(), n_experiences=5)
    assert repr(scenario).startswith("Scenario('class-incremental', kind='class', 5 experiences, 10 classes")
    first = repr(scenario.experiences[0].train)
    assert "samples of [1, 8, 8] torch.uint8" in first and "tensor(" not in first and len(first) < 200


def test_an_experience_without_test_samples_is_refused_not_scored_nan() -> None:
    x = torch.randn(12, 3)
    y = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 3])  # classes 2 and 3: one sample each, both trained
    with pytest.raises(ScenarioError, match=r"experience 1 \(classes \[2, 3\]\) has no test samples"):
        class_incremental(from_tensors(x, y), n_experiences=2)  # fit reported ACC nan before
    two_each = torch.cat([y[:10], torch.tensor([2, 2, 3, 3])])
    s = class_incremental(from_tensors(torch.randn(14, 3), two_each), n_experiences=2)
    assert [len(e.test) for e in s] == [2, 2]


def test_a_task_free_batch_that_would_end_two_experiences_at_once_is_refused() -> None:
    """Two boundaries in one batch dropped a row of the accuracy matrix and shifted the rest."""
    scenario = class_incremental(toy_data(per_class=60), n_experiences=2)  # 120 training samples each
    assert task_free(scenario, batch_size=120).boundaries == [1, 2]
    with pytest.raises(
        ScenarioError, match=r"batch_size: 250 is larger than experience 1's 120 training samples"
    ):
        task_free(scenario, batch_size=250)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [({"order": [0.2, 1.9]}, "order: must be a whole number, got 0.2"), ({"order": 3}, "order: give given"),
     ({"order": "easy-first", "difficulty": [5, float("nan")]}, "experience 1's score must be a finite number"),
     ({"order": "easy-first", "difficulty": lambda e: "hard"}, "experience 0's score must be a finite number"),
     ({"order": "easy-first", "difficulty": 3}, "difficulty: give a function of an experience")],
)  # fmt: skip
def test_curriculum_refuses_orders_and_scores_it_would_have_truncated_or_missorted(kwargs, says) -> None:
    """A fractional order was truncated, a NaN score mis-sorted, a scalar raised a raw TypeError."""
    with pytest.raises(ScenarioError, match=re.escape(says)):
        curriculum(class_incremental(toy_data(), n_experiences=2), **kwargs)
    ordered = curriculum(
        class_incremental(toy_data(), n_experiences=2),
        "hard-first",
        difficulty=lambda e: torch.tensor(float(e.index)),
    )
    assert [e.classes for e in ordered] == [(2, 3), (0, 1)]  # 0-d tensors are scores


def test_domains_from_column_names_a_missing_domain_and_refuses_a_scalar() -> None:
    """A NaN domain was reported as "domain nan has 0 sample" (NaN != NaN); a scalar raised TypeError."""
    data = toy_data().train
    values = np.repeat([1.0, 2.0], len(data) // 2)
    values[7] = np.nan
    with pytest.raises(DataError, match=r"sample 7's domain is missing \(NaN\)"):
        domains_from_column(data, domain_values=values)
    with pytest.raises(ScenarioError, match=r"domain_values: give one value per sample"):
        domains_from_column(data, domain_values=5)


def test_a_domain_lists_the_classes_it_holds_and_the_scenario_all_of_them() -> None:
    """A sixth category arriving in the second period was listed as the first period's too (bench
    printed it there, and a method masking by classes seen counted it seen before any label came)."""
    data = toy_data().train  # classes 0-3
    first = data.y < 3
    order = torch.cat([torch.nonzero(first).flatten(), torch.nonzero(~first).flatten()])
    data = data.subset(order)
    scenario = domains_from_column(data, domain_values=["a"] * int(first.sum()) + ["b"] * int((~first).sum()))
    assert [e.classes for e in scenario] == [(0, 1, 2), (3,)]
    assert scenario.n_classes == 4


def test_own_domains_take_names_one_each() -> None:
    train, test = toy_data()
    scenario = domain_incremental(domains=[(train, test), (train, test)], names=["north", "south"])
    assert len(scenario) == 2
    with pytest.raises(ScenarioError, match="1 names for 2 domains"):
        domain_incremental(domains=[(train, test), (train, test)], names=["north"])


@pytest.mark.parametrize(
    ("x", "degrees", "says"),
    [(torch.full((1, 1, 4, 4), 1000), 90, "floating point or uint8"),  # clamped to 255 before
     (torch.zeros(1, 1, 4, 4), float("nan"), "finite number"),  # all zeros before
     (torch.zeros(1, 1, 4, 4), float("inf"), "finite number"), (torch.zeros(1, 4, 4), 90, "[N, C, H, W]")],
)  # fmt: skip
def test_rotate_refuses_what_it_would_corrupt(x: torch.Tensor, degrees: float, says: str) -> None:
    from lifelong.data.scenarios import rotate

    with pytest.raises(ScenarioError, match=re.escape(says)):
        rotate(x, degrees)


def _two_tasks_one_label_set(n: int = 400):
    """Two tasks, each labelled no/yes, whose labels depend on the same feature in opposite ways:
    only a model told the task can get both right."""
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4))
    shop = np.where(np.arange(n) % 2 == 0, "outlet", "flagship")
    yes = (x[:, 0] > 0) == (shop == "flagship")
    df = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    df["returned"], df["shop"] = np.where(yes, "yes", "no"), shop
    return df


def test_tasks_from_a_column_make_one_experience_per_task_and_a_head_per_task_learns_both(tmp_path) -> None:
    """A task column was carried as task ids, then task_incremental re-split the data by class."""
    from lifelong.data.files import load_table
    from lifelong.data.scenarios import tasks_from_column
    from lifelong.learn import Learner
    from lifelong.learn.models import MLP
    from lifelong.strategies import MultiHead

    _two_tasks_one_label_set().to_csv(tmp_path / "returns.csv", index=False)
    table = load_table(tmp_path / "returns.csv", label_column="returned", task_column="shop")
    s = tasks_from_column(table, seed=1)
    assert s.kind == "task" and len(s) == 2
    assert [e.task_id for e in s] == [1, 0]  # numbered like labels (flagship 0, outlet 1), in order met
    assert [e.classes for e in s] == [(0, 1), (0, 1)]
    for e in s:
        assert set(e.train.t.tolist()) == set(e.test.t.tolist()) == {e.task_id}
        assert len(e.train) + len(e.test) == 200
    torch.manual_seed(0)
    learner = Learner(MLP(4, (32,), 2), [MultiHead()], lr=0.1, epochs=20, batch_size=16)
    acc = learner.fit(s).accuracy_matrix[-1]
    assert min(acc) > 0.85, acc  # a shared head without task ids cannot beat about 0.5 on the pair

    with pytest.raises(ScenarioError, match="no task ids; name a task column"):
        tasks_from_column(table.to_dataset())
    ds = table.to_dataset()
    assert [e.task_id for e in tasks_from_column(ds, [5] * 200 + [2] * 200)] == [5, 2]  # ids kept
    with pytest.raises(DataError, match="got 3 values for 400 samples"):
        tasks_from_column(ds, [0, 1, 2])
    with pytest.raises(ScenarioError, match="task 9 has 1 sample"):
        tasks_from_column(ds, [0] * 399 + [9])


def test_task_ids_a_table_carries_are_dropped_by_class_and_domain_scenarios(tmp_path) -> None:
    """class_incremental kept the task column's ids, so the learner masked outputs with them."""
    from lifelong.data.files import load_table

    frame = _two_tasks_one_label_set()
    frame["site"] = np.where(np.arange(len(frame)) < 200, "n", "s")
    table = load_table(frame, label_column="returned", task_column="shop", domain_column="site")
    for s in (
        class_incremental(table),
        domains_from_column(table),
        domain_incremental(table, permutations=2),
    ):
        assert all(d.t is None for e in s for d in (e.train, e.test)), s.kind


def test_task_names_name_the_experiences_and_the_errors() -> None:
    from lifelong.data.scenarios import tasks_from_column

    data = toy_data().train
    names = ["north"] * 60 + ["east"] * (len(data) - 61) + ["tiny"]
    with pytest.raises(ScenarioError, match="task 'tiny' \\(id 2\\) has 1 sample"):
        tasks_from_column(data, names)
    s = tasks_from_column(data, names[:-1] + ["east"])
    assert [(e.task_id, e.train.name) for e in s] == [(1, "task-north-train"), (0, "task-east-train")]


def test_a_task_of_one_class_is_warned_about() -> None:
    """A two-class file split into tasks gave tasks of one class: every method scored 1.0, silently."""
    with pytest.warns(UserWarning, match=r"tasks \[0, 1\] hold one class"):
        task_incremental(toy_data(n_classes=2), n_experiences=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        task_incremental(toy_data(n_classes=4), n_experiences=2)
