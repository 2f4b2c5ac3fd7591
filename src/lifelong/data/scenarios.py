"""Scenarios: how a dataset is cut into a stream of experiences.

The four settings of van de Ven et al. (2022), "Three types of incremental learning", plus
task-free streams: class-incremental (new classes, one head, no task id at test time),
task-incremental (new classes, task id given), domain-incremental (same classes, shifted
inputs) and task-free (samples arrive once, boundaries are gradual and never announced).
"""

from __future__ import annotations

import math
import numbers
import operator
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, overload

import numpy as np
import torch
from torch import Tensor

from lifelong.data.dataset import (
    MAX_LABEL_GAP,
    Batch,
    Dataset,
    Split,
    as_split,
    concat,
    frame_columns,
    from_tensors,
    from_torch,
)
from lifelong.errors import DataError, ScenarioError

KINDS = ("class", "task", "domain", "task-free")


@dataclass(eq=False)
class Experience:
    """One step of a stream: its train and test data, the classes it holds and its task id."""

    index: int
    classes: tuple[int, ...]
    task_id: int
    train: Dataset
    test: Dataset
    scenario: Scenario | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.scenario.kind if self.scenario is not None else "class"


@dataclass(eq=False)
class Scenario:
    """An ordered list of experiences; iterating yields them in order."""

    name: str
    kind: str
    experiences: list[Experience]
    n_classes: int

    def __post_init__(self) -> None:
        for e in self.experiences:
            e.scenario = self

    def __repr__(self) -> str:
        classes = [list(e.classes) for e in self.experiences]
        return (f"Scenario({self.name!r}, kind={self.kind!r}, {len(self.experiences)} experiences, "
                f"{self.n_classes} classes: {classes})")  # fmt: skip

    def __iter__(self) -> Iterator[Experience]:
        return iter(self.experiences)

    def __len__(self) -> int:
        return len(self.experiences)

    @overload
    def __getitem__(self, i: int) -> Experience: ...
    @overload
    def __getitem__(self, i: slice) -> Scenario: ...
    def __getitem__(self, i: int | slice) -> Experience | Scenario:
        """One experience, or for a slice a scenario of those experiences, numbered from 0 as a
        stream of their own (``learner.fit(scenario[2:])`` starts at the third)."""
        if not isinstance(i, slice):
            return self.experiences[i]
        ends = (i.start, i.stop) if i.step is None else (i.start, i.stop, i.step)
        name = f"{self.name}[{':'.join('' if v is None else str(v) for v in ends)}]"
        part = [
            Experience(k, e.classes, e.task_id, e.train, e.test) for k, e in enumerate(self.experiences[i])
        ]
        if not part:
            raise ScenarioError(f"{name}: no experience in that range of the {len(self)}")
        return Scenario(name, self.kind, part, self.n_classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.experiences[0].train.input_shape

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        """The input columns' names where the data had them (a frame or a table), else None."""
        return self.experiences[0].train.feature_names if self.experiences else None


def _whole(value: Any, arg: str, minimum: int | None = None) -> int:
    """``value`` as an int (at least ``minimum``), or a ScenarioError naming ``arg``: 2.5 experiences or
    a seed of "a" would otherwise fail deep inside torch, in a message that names neither."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ScenarioError(f"{arg}: must be a whole number, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ScenarioError(f"{arg}: must be >= {minimum}, got {value}")
    return int(value)


def _scores(difficulty: Any, scenario: Scenario) -> list[float]:
    """One finite difficulty per experience, from a function of an experience or a list of numbers."""
    if callable(difficulty):
        values = [difficulty(e) for e in scenario]
    elif isinstance(difficulty, (str, bytes)) or not isinstance(difficulty, Iterable):
        raise ScenarioError(
            f"difficulty: give a function of an experience or one number per experience, got {difficulty!r}"
        )
    else:
        values = list(difficulty)
    scores = []
    for i, v in enumerate(values):
        try:  # numbers, numpy and 0-d torch scalars; not text
            score = math.nan if isinstance(v, (str, bytes, bool)) else float(v)
        except (TypeError, ValueError):
            score = math.nan
        if not math.isfinite(score):
            raise ScenarioError(f"difficulty: experience {i}'s score must be a finite number, got {v!r}")
        scores.append(score)
    return scores


def _angles(rotations: Any) -> list[float]:
    """``rotations`` as a list of finite angles in degrees, or a ScenarioError saying what to give."""
    example = "give a list of angles in degrees, e.g. rotations=[0, 90, 180]"
    if isinstance(rotations, (str, bytes)) or not isinstance(rotations, Iterable):
        raise ScenarioError(f"rotations: {example}; got {rotations!r}")
    angles = [a.item() if isinstance(a, Tensor) and a.numel() == 1 else a for a in rotations]
    for a in angles:
        if isinstance(a, (bool, str, bytes)) or not isinstance(a, numbers.Real) or not math.isfinite(a):
            raise ScenarioError(f"rotations: {a!r} is not a finite number of degrees; {example}")
    if not angles:
        raise ScenarioError(f"rotations: {example}; got none")
    return [float(a) for a in angles]


def holdout(data: Dataset, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """A seeded train/test split of one dataset, stratified by class.

    Each class puts ``round(test_fraction * n)`` of its samples (at least one when it has two
    or more) in the test set, so every class is both learned and evaluated.
    """
    seed = _whole(seed, "seed")
    if not isinstance(test_fraction, numbers.Real) or not 0 < test_fraction < 1:
        raise ScenarioError(f"test_fraction: must be in (0, 1), got {test_fraction}")
    if len(data) < 2:
        raise ScenarioError(f"{data.name}: {len(data)} samples cannot be split into train and test")
    g = torch.Generator().manual_seed(seed)
    test = []
    for c in data.classes:
        idx = (data.y == c).nonzero().squeeze(1)
        k = min(len(idx) - 1, max(1, round(test_fraction * len(idx)))) if len(idx) > 1 else 0
        test.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    is_test = torch.zeros(len(data), dtype=torch.bool)
    is_test[torch.cat(test)] = True
    return Split(
        data.subset(torch.nonzero(~is_test).squeeze(1), f"{data.name}-train"),
        data.subset(torch.nonzero(is_test).squeeze(1), f"{data.name}-test"),
    )


def default_classes_per_experience(n_classes: int) -> int:
    """The split used when none is asked for: two classes per experience (the usual protocol,
    e.g. Split MNIST) when that makes at least two experiences, else one, so that even a
    two-class dataset gives a stream with something to forget."""
    return 2 if n_classes % 2 == 0 and n_classes >= 4 else 1


def _n_outputs(classes: Sequence[int]) -> int:
    """Outputs a classifier needs: labels index them, so the largest label plus one (not the
    number of classes: labels {0, 3, 7} need 8). Ids far sparser than that are refused: one
    label of 10**9 would ask the model for a billion outputs."""
    n = max(classes) + 1
    if n > len(classes) + MAX_LABEL_GAP:
        raise ScenarioError(
            f"labels reach {n - 1} for {len(classes)} classes: a classifier would need {n} outputs; "
            "labels index the outputs, so remap them to 0..n_classes-1 (np.unique(y, return_inverse=True)[1])"
        )
    return n


def _one_dataset(data: Any) -> Dataset | None:
    """``data`` as one :class:`Dataset` when it is a single dataset (a Dataset, a
    :class:`~lifelong.data.files.Table` or a map-style torch dataset of ``(x, y)`` items);
    None when it is something else, such as a ``(train, test)`` pair."""
    if isinstance(data, Dataset):
        return data
    if hasattr(data, "to_dataset"):  # a lifelong.data.files.Table
        return data.to_dataset()
    if frame_columns(data) is not None:  # a pandas DataFrame: which column is the label is not known
        raise ScenarioError(
            "data: a pandas DataFrame does not say which column is the label; read it with "
            "lifelong.data.load_table(frame, label_column=...) (domain_column=, drop_columns= too) and pass "
            "the table"
        )
    if (
        hasattr(data, "__getitem__")
        and hasattr(data, "__len__")
        and not isinstance(data, (Split, tuple, list, str, bytes, dict))
    ):
        return from_torch(data, "dataset")
    return None


def _as_split(data: Any, seed: int) -> Split:
    """A (train, test) pair as given, or a seeded, stratified 80/20 :func:`holdout` of one dataset.

    Every constructor that takes data reads it here, so all accept the same forms. Task ids the data
    carries (a table read with a task column) are dropped: a class- or domain-incremental learner
    is never told the task, and :func:`task_incremental` sets its own.
    """
    one = _one_dataset(data)
    if one is not None:
        return holdout(one.replace(t=None), 0.2, seed)
    split = as_split(data)
    split = Split(split.train.replace(t=None), split.test.replace(t=None))
    untrained = sorted(set(split.test.classes) - set(split.train.classes))
    if untrained:
        raise ScenarioError(
            f"the test set holds classes {untrained} that the train set lacks: no experience could "
            "learn them; give each class training samples or drop them from the test set"
        )
    return split


def _group_sizes(
    n_classes: int, n_experiences: int | None, classes_per_experience: int | Sequence[int] | None
) -> list[int]:
    """How many classes each experience gets, checked against the number of classes."""
    n = n_classes
    if n_experiences is not None:
        n_experiences = _whole(n_experiences, "n_experiences", 1)
    if n_experiences is None and classes_per_experience is None:
        classes_per_experience = default_classes_per_experience(n)
    if isinstance(classes_per_experience, (numbers.Number, str)):  # one size for all, or a mistake
        classes_per_experience = _whole(classes_per_experience, "classes_per_experience", 1)
    if classes_per_experience is not None and not isinstance(classes_per_experience, int):
        try:
            if any(isinstance(k, bool) for k in classes_per_experience):
                raise TypeError("booleans are not sizes")
            sizes = [operator.index(k) for k in classes_per_experience]
        except TypeError as e:
            raise ScenarioError(
                f"classes_per_experience: expected an int or a list of ints, got {classes_per_experience!r}"
            ) from e
        if any(k < 1 for k in sizes):
            raise ScenarioError(
                f"classes_per_experience: {sizes} has an entry below 1; every experience needs at least one class"
            )
        if sum(sizes) != n:
            raise ScenarioError(
                f"classes_per_experience: {sizes} adds up to {sum(sizes)}, but the dataset has {n} classes; "
                f"give entries that add up to {n}"
            )
        if n_experiences is not None and n_experiences != len(sizes):
            raise ScenarioError(
                f"n_experiences: {n_experiences} conflicts with classes_per_experience={sizes} "
                f"({len(sizes)} experiences); leave n_experiences out"
            )
        return sizes
    if classes_per_experience is not None:
        if classes_per_experience < 1 or n % classes_per_experience:
            raise ScenarioError(
                f"classes_per_experience: {classes_per_experience} does not divide the {n} classes; give "
                f"a divisor of {n} or a list of sizes that adds up to {n}"
            )
        if n_experiences is not None and n_experiences * classes_per_experience != n:
            raise ScenarioError(
                f"n_experiences: {n_experiences} x classes_per_experience {classes_per_experience} "
                f"!= {n} classes; give only one of them"
            )
        return [classes_per_experience] * (n // classes_per_experience)
    assert n_experiences is not None
    if n_experiences < 1 or n % n_experiences:
        raise ScenarioError(
            f"n_experiences: {n_experiences} does not divide the {n} classes; "
            f"choose one of {[d for d in range(1, n + 1) if n % d == 0]} or give classes_per_experience as a list"
        )
    return [n // n_experiences] * n_experiences


def _class_split(
    data: Any,
    n_experiences: int | None,
    classes_per_experience: int | Sequence[int] | None,
    class_order: Sequence[int] | None,
    seed: int,
    task_labels: bool,
    name: str,
) -> Scenario:
    seed = _whole(seed, "seed")
    split = _as_split(data, seed)
    if len(split.train) == 0 or len(split.test) == 0:
        raise ScenarioError("dataset: the train or test split is empty; a scenario needs samples in both")
    classes = split.train.classes
    if class_order is None:
        order = classes
        if seed:
            perm = torch.randperm(len(classes), generator=torch.Generator().manual_seed(seed))
            order = [classes[i] for i in perm.tolist()]
    else:
        order = [int(c) for c in class_order]
        unknown = sorted(set(order) - set(classes))
        if unknown:
            raise ScenarioError(f"class_order: classes {unknown} are not in the dataset (it has {classes})")
        if len(set(order)) != len(order):
            raise ScenarioError("class_order: each class may appear only once")
    sizes = _group_sizes(len(order), n_experiences, classes_per_experience)
    ends = list(accumulate(sizes))
    experiences = []
    for i, (start, end) in enumerate(zip([0, *ends], ends)):
        cls = tuple(order[start:end])
        wanted = torch.tensor(cls)
        tr = split.train.subset(torch.isin(split.train.y, wanted).nonzero().squeeze(1), f"{name}-{i}-train")
        te = split.test.subset(torch.isin(split.test.y, wanted).nonzero().squeeze(1), f"{name}-{i}-test")
        if len(te) == 0:  # its accuracy would be NaN in every row of the matrix, and ACC with it
            raise ScenarioError(
                f"experience {i} (classes {list(cls)}) has no test samples: the test set holds none of these "
                "classes (a class of one sample goes to the train set); give each class 2 or more samples, "
                "or a (train, test) pair whose test set has them"
            )
        if task_labels:
            tr, te = tr.with_task(i), te.with_task(i)
        experiences.append(Experience(i, cls, i if task_labels else 0, tr, te))
    kind = "task" if task_labels else "class"
    return Scenario(name, kind, experiences, _n_outputs(classes))


def class_incremental(
    dataset: Any,
    n_experiences: int | None = None,
    classes_per_experience: int | Sequence[int] | None = None,
    class_order: Sequence[int] | None = None,
    seed: int = 0,
) -> Scenario:
    """Split the classes into disjoint groups, one per experience; no task id at test time.

    With ``class_order=None`` and ``seed=0`` the classes come in sorted order (the usual
    protocol); another seed shuffles them. ``dataset`` is a ``(train, test)`` pair, or one
    :class:`Dataset`, :class:`~lifelong.data.files.Table` or map-style torch dataset, split
    80/20 (stratified) with ``seed``. A ``class_order`` may name a subset of the classes: the
    others are left out of every experience. ``classes_per_experience`` is one size for all or a list,
    e.g. ``[4, 2, 2, 2]`` for a larger first experience; with neither it nor ``n_experiences``
    the split is :func:`default_classes_per_experience`.
    """
    return _class_split(
        dataset, n_experiences, classes_per_experience, class_order, seed, False, "class-incremental"
    )


def task_incremental(
    dataset: Any,
    n_experiences: int | None = None,
    classes_per_experience: int | Sequence[int] | None = None,
    class_order: Sequence[int] | None = None,
    seed: int = 0,
) -> Scenario:
    """The class-incremental split with a task id per experience, known at train and test time.

    A task of one class is answered by its id alone (every method scores 1.0 on it): that is warned
    about, since it is what a two-class file split into experiences gives."""
    scenario = _class_split(
        dataset, n_experiences, classes_per_experience, class_order, seed, True, "task-incremental"
    )
    single = [e.task_id for e in scenario.experiences if len(e.classes) == 1]
    if single:
        warnings.warn(
            f"task_incremental: task{'s' if len(single) > 1 else ''} {single} hold{'' if len(single) > 1 else 's'} "
            "one class, answered by the task id alone (accuracy 1.0 whatever the method): give each task at "
            "least 2 classes (classes_per_experience), or compare class- or domain-incremental",
            UserWarning,
            stacklevel=2,
        )
    return scenario


def rotate(x: Tensor, degrees: float) -> Tensor:
    """Rotate images ``x`` [N, C, H, W] (floats, or uint8 pixels) by ``degrees`` around their centre."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ScenarioError(
            f"rotate: x must be images [N, C, H, W], got {getattr(x, 'shape', type(x).__name__)}"
        )
    if not (x.dtype.is_floating_point or x.dtype == torch.uint8):  # rounded into 0-255 after sampling
        raise ScenarioError(f"rotate: x must be floating point or uint8 pixels, got {x.dtype}")
    if isinstance(degrees, bool) or not isinstance(degrees, numbers.Real) or not math.isfinite(degrees):
        raise ScenarioError(f"rotate: degrees must be a finite number, got {degrees!r}")
    if degrees % 360 == 0:
        return x.clone()
    theta = math.radians(degrees)
    c, s = math.cos(theta), math.sin(theta)
    out = torch.empty_like(x)
    # a rotation of pixel coordinates, written in affine_grid's coordinates (each axis scaled to
    # [-1, 1]): the aspect ratio enters, or a non-square image is sheared rather than rotated
    aspect = x.shape[-2] / x.shape[-1]
    mat = torch.tensor([[c, -s * aspect, 0.0], [s / aspect, c, 0.0]]).expand(1, 2, 3)
    for start in range(0, len(x), 8192):  # chunks bound the float copy
        chunk = x[start : start + 8192].float()
        grid = torch.nn.functional.affine_grid(
            mat.expand(len(chunk), 2, 3), list(chunk.shape), align_corners=False
        )
        r = torch.nn.functional.grid_sample(chunk, grid, align_corners=False)
        out[start : start + 8192] = (
            r.round_().clamp_(0, 255).to(x.dtype) if not x.dtype.is_floating_point else r
        )
    return out


def domain_incremental(
    dataset: Any = None,
    permutations: int | None = None,
    rotations: Sequence[float] | None = None,
    seed: int = 0,
    domains: Sequence[Any] | None = None,
    names: Sequence[str] | None = None,
) -> Scenario:
    """Same classes in every experience, inputs from another domain in each.

    Give exactly one of ``domains`` (your own: per experience a ``(train, test)`` pair, each a
    :class:`Dataset` or an ``(x, y)`` tuple, or one dataset, a :class:`Dataset` or an ``(x, y)``
    tuple of arrays, tensors or frames, split 80/20 with ``seed``),
    ``permutations`` (the number of experiences, each a fixed random pixel permutation of
    ``dataset``) or ``rotations`` (one angle in degrees per experience). ``dataset`` is read as
    by :func:`class_incremental`. ``names`` (with ``domains``) names each domain's data
    (``domain-<name>-train``). For domains given as a column of one table see
    :func:`domains_from_column`; for a drifting stream's phases, ``DriftingStream.scenario()``.
    """
    if sum(a is not None for a in (permutations, rotations, domains)) != 1:
        raise ScenarioError(
            "domain_incremental: give exactly one of domains=[(train, test), ...], permutations=N "
            "or rotations=[angles]"
        )
    seed = _whole(seed, "seed")
    if permutations is not None:
        permutations = _whole(permutations, "permutations", 1)
    angles = _angles(rotations) if rotations is not None else []
    if domains is not None:
        if dataset is not None:
            raise ScenarioError("domain_incremental: with domains=..., leave dataset out")
        if names is not None and len(names) != len(domains):
            raise ScenarioError(
                f"domain_incremental: {len(names)} names for {len(domains)} domains; give one each"
            )
        return _own_domains(domains, [str(n) for n in names] if names is not None else None, seed=seed)
    split = _as_split(dataset, seed)
    if len(split.train) == 0 or len(split.test) == 0:
        raise ScenarioError("dataset: the train or test split is empty")
    classes = tuple(sorted(set(split.train.classes) | set(split.test.classes)))
    gen = torch.Generator().manual_seed(seed)
    experiences = []
    if permutations is not None:
        n_features = math.prod(split.train.input_shape)
        for i in range(permutations):
            perm = torch.randperm(n_features, generator=gen)
            tr, te = (
                d.replace(
                    x=d.x.reshape(len(d), -1)[:, perm].reshape(d.x.shape), name=f"permuted-{i}-{d.name}"
                )
                for d in split
            )
            experiences.append(Experience(i, classes, 0, tr, te))
        return Scenario("permuted", "domain", experiences, _n_outputs(classes))
    if len(split.train.input_shape) != 3:
        raise ScenarioError(f"rotations: need image inputs [C, H, W], got shape {split.train.input_shape}")
    for i, angle in enumerate(angles):
        tr, te = (d.replace(x=rotate(d.x, angle), name=f"rotated{angle:g}-{d.name}") for d in split)
        experiences.append(Experience(i, classes, 0, tr, te))
    return Scenario("rotated", "domain", experiences, _n_outputs(classes))


def _own_domains(domains: Sequence[Any], names: Sequence[str] | None = None, seed: int = 0) -> Scenario:
    """One experience per ``(train, test)`` pair or single dataset (split 80/20 with ``seed``);
    every domain must share the sample shape."""
    pairs = list(domains)
    if not pairs:
        raise ScenarioError("domains: give at least one (train, test) pair")
    experiences: list[Experience] = []
    for i, pair in enumerate(pairs):
        label = names[i] if names is not None else str(i)
        one = _one_dataset(pair)
        if one is None and _is_xy(pair):  # (X, y) of one domain, not a (train, test) pair
            one = _as_dataset(pair, f"domain-{label}")
        if one is not None:
            pair = holdout(one.replace(name=f"domain-{label}"), 0.2, seed)
        elif not (isinstance(pair, (tuple, list, Split)) and len(pair) == 2):
            raise ScenarioError(
                f"domains[{i}]: expected a (train, test) pair or one dataset, got {type(pair).__name__}"
            )
        tr, te = (
            _as_dataset(d, f"domain-{label}-{part}").replace(t=None)
            for d, part in zip(pair, ("train", "test"))
        )
        if len(tr) == 0 or len(te) == 0:
            raise ScenarioError(f"domains[{i}]: the train or test set is empty")
        if tr.input_shape != te.input_shape or (
            experiences and tr.input_shape != experiences[0].train.input_shape
        ):
            raise ScenarioError(
                f"domains[{i}]: samples of shape {tr.input_shape} / {te.input_shape} differ from the first "
                f"domain's {experiences[0].train.input_shape if experiences else tr.input_shape}"
            )
        named = {d.feature_names for d in (tr, te, *(e.train for e in experiences[:1])) if d.feature_names}
        if len(named) > 1:  # taken by position, one domain's columns would feed another's features
            raise ScenarioError(
                f"domains[{i}]: its train and test sets and the first domain name their features differently "
                f"({'; '.join(str(list(n)[:5]) for n in named)}); put every domain's columns in one order "
                "(frame[names])"
            )
        # the classes this domain holds: a class arriving in a later domain is not "seen" before it
        # (bench listed all six categories for a first period of five; ER-ACE masks by classes seen)
        experiences.append(Experience(i, tuple(sorted(set(tr.classes) | set(te.classes))), 0, tr, te))
    classes = sorted({c for e in experiences for c in e.classes})
    return Scenario("domains", "domain", experiences, _n_outputs(classes))


def _is_xy(pair: Any) -> bool:
    """Whether ``pair`` is one dataset's ``(x, y)`` (an array, tensor or frame of inputs first) rather
    than a ``(train, test)`` pair, whose parts are datasets or ``(x, y)`` tuples themselves."""
    return (
        isinstance(pair, (tuple, list))
        and len(pair) == 2
        and (isinstance(pair[0], (Tensor, np.ndarray)) or hasattr(pair[0], "to_numpy"))
    )


def _as_dataset(data: Any, name: str) -> Dataset:
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        try:
            return from_tensors(data[0], data[1], name=name)
        except (TypeError, ValueError, RuntimeError) as e:
            raise ScenarioError(f"{name}: cannot read (x, y) as arrays: {e}") from e
    raise ScenarioError(f"{name}: expected a Dataset or an (x, y) tuple, got {type(data).__name__}")


def domains_from_column(
    data: Any, domain_values: Any = None, test_fraction: float = 0.2, seed: int = 0
) -> Scenario:
    """A domain-incremental scenario with one experience per distinct value of a domain column.

    ``data`` is a :class:`~lifelong.data.files.Table` (whose ``domains`` are used unless
    ``domain_values`` is given), or a :class:`Dataset` or map-style torch dataset with
    ``domain_values``, one per sample.
    Experiences follow the order in which each value first appears; each domain's samples are
    split into train and test with :func:`holdout` (seeded, stratified by class).
    """
    if hasattr(data, "to_dataset") and domain_values is None:
        domain_values = data.domains
    one = _one_dataset(data)
    if one is None:
        raise ScenarioError(f"domains_from_column: expected a Table or a Dataset, got {type(data).__name__}")
    data = one
    if domain_values is None:
        raise ScenarioError(
            "domains_from_column: no domain values; name a domain column or pass domain_values"
        )
    values = _per_sample(domain_values, data, "domain_values", "domain")
    order = list(dict.fromkeys(values))
    if len(order) < 1:
        raise ScenarioError("domains_from_column: the data is empty")
    pairs = []
    for v in order:
        idx = torch.tensor([i for i, w in enumerate(values) if w == v])
        if len(idx) < 2:
            raise ScenarioError(
                f"domain {v!r} has {len(idx)} sample; each domain needs at least 2 (train and test)"
            )
        pairs.append(holdout(data.subset(idx, f"domain-{v}"), test_fraction, seed))
    return _own_domains(pairs, [str(v) for v in order])


def _per_sample(values: Any, data: Dataset, arg: str, what: str) -> list[Any]:
    """``values`` as a list with one entry per sample of ``data``, refusing nested, missing or
    miscounted ones (a domain or task column read from a user's file)."""
    values = values.tolist() if hasattr(values, "tolist") else values
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ScenarioError(f"{arg}: give one value per sample (a list or 1-D array), got {values!r}")
    from lifelong.data.files import is_missing

    values = list(values)
    bad = next((i for i, v in enumerate(values) if isinstance(v, list) or is_missing(v)), None)
    if bad is not None:
        if isinstance(values[bad], list):
            raise DataError(f"{arg}: sample {bad}'s {what} is a list; give a 1-D array, one value per sample")
        shown = "NaN" if isinstance(values[bad], float) else values[bad]
        raise DataError(f"{arg}: sample {bad}'s {what} is missing ({shown}); fill or drop those rows")
    if len(values) != len(data):
        raise DataError(f"{arg}: got {len(values)} values for {len(data)} samples; give one per sample")
    return values


def tasks_from_column(
    data: Any, task_values: Any = None, test_fraction: float = 0.2, seed: int = 0
) -> Scenario:
    """A task-incremental scenario with one experience per task the data names.

    ``data`` is a :class:`~lifelong.data.files.Table` (whose task column is used unless
    ``task_values`` is given), or a :class:`Dataset` with ``task_values``, one per sample.
    Task ids follow the labels' rule: whole numbers >= 0 (ints, whole floats, numeric text) are kept
    as given (a model asked later for task 3 answers with task 3's classes); names are numbered in
    sorted order (:func:`~lifelong.data.files.label_order`; ``Table.task_names`` lists them) and the
    experiences' data is named after them (``task-north-train``).
    Experiences follow the order in which each task first appears and hold the classes present in
    that task, which may repeat across tasks (two tasks of labels 0 and 1 share a head's outputs
    unless a strategy such as ``MultiHead`` gives each task its own). Each task's samples are split
    into train and test with :func:`holdout` (seeded, stratified by class).

    >>> from lifelong.data.dataset import from_tensors
    >>> data = from_tensors(torch.randn(8, 3), torch.tensor([0, 1, 0, 1, 2, 3, 2, 3]))
    >>> s = tasks_from_column(data, [7, 7, 7, 7, 2, 2, 2, 2])
    >>> [(e.task_id, e.classes) for e in s]
    [(7, (0, 1)), (2, (2, 3))]
    """
    from lifelong.data.files import task_codes

    names = None
    if hasattr(data, "to_dataset") and task_values is None:
        task_values, names = data.tasks, data.task_names
    one = _one_dataset(data)
    if one is None:
        raise ScenarioError(f"tasks_from_column: expected a Table or a Dataset, got {type(data).__name__}")
    if task_values is None:
        raise ScenarioError("tasks_from_column: no task ids; name a task column or pass task_values")
    values = _per_sample(task_values, one, "task_values", "task")
    if not values:
        raise ScenarioError("tasks_from_column: the data is empty")
    coded = task_codes(np.asarray(values), len(values), "task_values")
    assert coded is not None  # values is not None
    ids, names = coded[0], names or coded[1]
    experiences = []
    for i, task in enumerate(dict.fromkeys(ids.tolist())):
        label = f"{names[task]!r} (id {task})" if names else str(task)
        idx = torch.from_numpy(np.flatnonzero(ids == task))
        if len(idx) < 2:
            raise ScenarioError(
                f"task {label} has {len(idx)} sample; each task needs at least 2 (train and test)"
            )
        tr, te = holdout(one.subset(idx, f"task-{names[task] if names else task}"), test_fraction, seed)
        if len(te) == 0:  # its accuracy would be NaN in every row of the matrix, and ACC with it
            raise ScenarioError(
                f"task {label} has no test samples: each of its classes has one sample (which goes to the "
                "train set); give its classes 2 or more samples"
            )
        classes = tuple(sorted(set(tr.classes) | set(te.classes)))
        experiences.append(Experience(i, classes, task, tr.with_task(task), te.with_task(task)))
    every = sorted({c for e in experiences for c in e.classes})
    return Scenario("tasks", "task", experiences, _n_outputs(every))


@dataclass(eq=False)
class TaskFreeStream:
    """Samples that arrive once, in mini-batches, with gradual, unannounced boundaries.

    ``boundaries[i]`` is the number of batches after which experience ``i`` of the source
    scenario is (mostly) consumed; it is used only to evaluate, never shown to strategies.
    """

    source: Scenario
    data: Dataset
    batch_size: int
    boundaries: list[int]
    kind: str = "task-free"
    name: str = "task-free"

    def __iter__(self) -> Iterator[Batch]:
        for start in range(0, len(self.data), self.batch_size):
            yield self.data.batch(slice(start, start + self.batch_size))

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    @property
    def experiences(self) -> list[Experience]:
        return self.source.experiences

    @property
    def n_classes(self) -> int:
        return self.source.n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.data.input_shape

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        return self.data.feature_names


def task_free(
    stream_or_scenario: Any, batch_size: int = 10, blur: float = 0.0, seed: int = 0
) -> TaskFreeStream:
    """Turn a scenario into an online stream where each sample is seen once.

    Sample ``i`` of experience ``k`` gets the sort key ``k + u_i + blur * n_i`` with
    ``u_i ~ U(0, 1)`` and ``n_i ~ N(0, 1)``: with ``blur=0`` experiences follow each other
    with sharp (but unannounced) boundaries, larger values mix neighbouring experiences.
    """
    if isinstance(stream_or_scenario, TaskFreeStream):
        stream_or_scenario = stream_or_scenario.source
    if not isinstance(stream_or_scenario, Scenario):
        raise ScenarioError(
            f"stream_or_scenario: expected a Scenario (e.g. class_incremental(...)), got {type(stream_or_scenario).__name__}"
        )
    # refused: fit scored such a stream's tasks 1.. among their own classes and task 0 among all of them
    if stream_or_scenario.kind == "task":
        raise ScenarioError(
            f"task_free: {stream_or_scenario.name!r} is task-incremental, and a task-free stream has no tasks "
            "(no boundaries, so no task to learn each sample's classes under or to answer with): build the "
            "stream from a class- or domain-incremental scenario of the same data, or learn the tasks with "
            "fit(scenario)"
        )
    batch_size, seed = _whole(batch_size, "batch_size", 1), _whole(seed, "seed")
    if isinstance(blur, bool) or not isinstance(blur, numbers.Real) or not 0 <= blur < math.inf:
        raise ScenarioError(f"blur: must be a finite number >= 0, got {blur!r}")
    gen = torch.Generator().manual_seed(seed)
    parts = [e.train for e in stream_or_scenario]
    sizes = [len(p) for p in parts]
    exp_of = torch.repeat_interleave(torch.arange(len(parts)), torch.tensor(sizes))
    key = exp_of.double() + torch.rand(len(exp_of), generator=gen, dtype=torch.float64)
    if blur:
        key += blur * torch.randn(len(exp_of), generator=gen, dtype=torch.float64)
    order = torch.argsort(key)
    data = concat(parts, "task-free").subset(order, "task-free")
    ends = torch.cumsum(torch.tensor(sizes), 0).tolist()
    boundaries = [math.ceil(e / batch_size) for e in ends]
    for k in range(1, len(boundaries)):
        if boundaries[k] == boundaries[k - 1]:  # the accuracy matrix would lose experience k-1's row
            raise ScenarioError(
                f"batch_size: {batch_size} is larger than experience {k}'s {sizes[k]} training samples, so "
                f"experiences {k - 1} and {k} would end in the same batch and the accuracy matrix could "
                f"not have a row after each; use batch_size <= {min(sizes)}"
            )
    return TaskFreeStream(stream_or_scenario, data, batch_size, boundaries)


def class_overlap(experience: Experience, max_samples: int = 2000) -> float:
    """Difficulty of an experience: how close its training samples lie to other classes' means.

    The mean over samples of ``||x - mu_y|| / min_{c != y} ||x - mu_c||`` on flattened inputs
    (class means ``mu`` of the experience's own training data; at most ``max_samples`` samples,
    evenly strided). Below 1 a sample is nearer its own mean; higher means more overlap. An
    experience with a single class has nothing to confuse and scores 0.
    """
    data = experience.train
    if len(data) == 0 or len(data.classes) < 2:
        return 0.0
    idx = torch.arange(0, len(data), max(1, len(data) // max_samples))
    x, y = data.features(idx).flatten(1).double(), data.y[idx]
    classes = torch.tensor(data.classes)
    means = torch.stack([x[y == c].mean(0) for c in classes.tolist()])  # [C, D]
    dist = torch.cdist(x, means)  # [N, C]
    own = y[:, None] == classes[None, :]  # [N, C]
    ratio = dist[own] / dist.masked_fill(own, float("inf")).min(1).values.clamp(min=1e-12)
    return float(ratio.mean())


def curriculum(scenario: Scenario, order: Any = "given", difficulty: Any = None, seed: int = 0) -> Scenario:
    """The experiences of ``scenario`` in another order, re-indexed (experience ``i`` is at position ``i``).

    Parameters
    ----------
    scenario : the stream to reorder; it is not modified.
    order : ``"given"`` (unchanged), ``"random"`` (shuffled with ``seed``), ``"easy-first"`` or
        ``"hard-first"`` (sorted by difficulty, ties kept in the given order), or a sequence of
        experience indices, a permutation of ``range(len(scenario))``.
    difficulty : for the sorted orders, one score per experience (higher is harder) or a function
        ``Experience -> float``; default :func:`class_overlap`.
    seed : seeds ``"random"``.

    In task scenarios whose task ids number the experiences (0, 1, 2 ... as
    :func:`task_incremental` makes them) the ids are renumbered in order of first appearance, in
    the experiences and in their data's ``t``, so the first task learned is task 0 again; ids the
    data names (:func:`tasks_from_column`) are kept, since the model is asked for them later.

    Examples
    --------
    >>> from lifelong.checks import toy_scenario
    >>> [e.classes for e in curriculum(toy_scenario("class"), order=[1, 0])]
    [(2, 3), (0, 1)]
    """
    if not isinstance(scenario, Scenario):
        raise ScenarioError(f"curriculum: expected a Scenario, got {type(scenario).__name__}")
    seed = _whole(seed, "seed")
    n = len(scenario)
    if isinstance(order, str):
        if order == "given":
            perm = list(range(n))
        elif order == "random":
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
        elif order in ("easy-first", "hard-first"):
            if difficulty is None:
                difficulty = class_overlap
            scores = _scores(difficulty, scenario)
            if len(scores) != n:
                raise ScenarioError(
                    f"difficulty: got {len(scores)} scores for {n} experiences; give one per experience"
                )
            sign = 1.0 if order == "easy-first" else -1.0
            perm = sorted(range(n), key=lambda i: sign * scores[i])
        else:
            raise ScenarioError(
                f"order: unknown {order!r}; valid: given, random, easy-first, hard-first or a list"
            )
    else:
        if isinstance(order, bytes) or not isinstance(order, Iterable):
            raise ScenarioError(
                f"order: give given, random, easy-first, hard-first or a list of experience indices, got {order!r}"
            )
        perm = [_whole(i, "order") for i in order]
        if sorted(perm) != list(range(n)):
            raise ScenarioError(
                f"order: {perm} is not a permutation of the {n} experience indices 0..{n - 1}"
            )
    new_task: dict[int, int] = {}
    positional = [e.task_id for e in scenario] == list(range(n))  # ids that only count experiences
    experiences = []
    for i, j in enumerate(perm):
        e = scenario.experiences[j]
        train, test, task = e.train, e.test, e.task_id
        if scenario.kind == "task" and positional:
            ids = [e.task_id] + [v for d in (train, test) if d.t is not None for v in d.t.unique().tolist()]
            for old in ids:
                new_task.setdefault(old, len(new_task))
            table = torch.tensor([new_task.get(k, k) for k in range(max(new_task) + 1)])  # old id -> new id
            train, test = (d if d.t is None else d.replace(t=table[d.t]) for d in (train, test))
            task = new_task[e.task_id]
        experiences.append(Experience(i, e.classes, task, train, test))
    label = order if isinstance(order, str) else "custom"
    return Scenario(f"{scenario.name}-{label}", scenario.kind, experiences, scenario.n_classes)
