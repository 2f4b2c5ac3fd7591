"""In-memory datasets: raw tensors kept compact (uint8 images), normalised only when a batch is drawn."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from lifelong.errors import DataError


class Batch(NamedTuple):
    """One mini-batch: inputs ``x`` (float), labels ``y`` (int64) and task ids ``t`` (int64 or None)."""

    x: Tensor
    y: Tensor
    t: Tensor | None = None


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs and integer labels held as tensors.

    ``x`` keeps its storage dtype (uint8 for images, 4x smaller than float32); ``scale``
    turns it into floats when a batch is drawn, so normalisation costs nothing up front.
    ``t`` holds a task id per sample for task-incremental scenarios. ``feature_names`` names
    the inputs when they came from named columns (a pandas frame, a CSV or Parquet table): a
    learner trained on them records the names and matches later frames by name, not position.
    """

    x: Tensor
    y: Tensor
    t: Tensor | None = None
    scale: float = 1.0
    name: str = "data"
    feature_names: tuple[str, ...] | None = None

    def __repr__(self) -> str:  # the sizes, not the tensors (a printed scenario would fill the terminal)
        t = "" if self.t is None else f", tasks={torch.unique(self.t).tolist()}"
        return (f"Dataset({self.name!r}, {len(self.y)} samples of {list(self.x.shape[1:])} {self.x.dtype}, "
                f"classes={self.classes}{t}, scale={self.scale:g})")  # fmt: skip

    def __post_init__(self) -> None:
        if self.x.ndim < 2:
            raise DataError(
                f"{self.name}: x must have a batch dimension and features, got shape {tuple(self.x.shape)}"
            )
        if self.y.ndim != 1 or len(self.y) != len(self.x):
            raise DataError(
                f"{self.name}: y must be 1-D with one label per row of x; got x {tuple(self.x.shape)}, "
                f"y {tuple(self.y.shape)}"
            )
        if self.y.dtype.is_floating_point or self.y.dtype == torch.bool:
            raise DataError(
                f"{self.name}: labels must be integers, got dtype {self.y.dtype}; cast with y.long()"
            )
        if len(self.y) and int(self.y.min()) < 0:
            raise DataError(f"{self.name}: labels must be >= 0, found {int(self.y.min())}")
        if self.t is not None and len(self.t) != len(self.y):
            raise DataError(f"{self.name}: t must have one task id per sample")
        if self.y.dtype != torch.int64:
            object.__setattr__(self, "y", self.y.long())
        if self.feature_names is not None:
            names = tuple(str(n) for n in self.feature_names)
            if len(names) != math.prod(self.input_shape):
                raise DataError(
                    f"{self.name}: {len(names)} feature names for samples of shape {list(self.input_shape)} "
                    f"({math.prod(self.input_shape)} values); give one name per feature, or none"
                )
            if len(set(names)) != len(names):
                twice = sorted({n for n in names if names.count(n) > 1})
                raise DataError(
                    f"{self.name}: feature names {twice[:10]} appear more than once; columns are matched "
                    "by name, so each must be unique: rename them"
                )
            object.__setattr__(self, "feature_names", names)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def classes(self) -> list[int]:
        """Sorted distinct labels present."""
        return torch.unique(self.y).tolist()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def features(self, index: Tensor | slice | None = None) -> Tensor:
        """Float inputs for ``index`` (all when None), scaled on the fly."""
        x = self.x if index is None else self.x[index]
        return x.float().mul_(self.scale) if self.scale != 1.0 else x.float()

    def batch(self, index: Tensor | slice) -> Batch:
        return Batch(self.features(index), self.y[index], None if self.t is None else self.t[index])

    def subset(self, index: Tensor, name: str | None = None) -> Dataset:
        t = None if self.t is None else self.t[index]
        return self.replace(x=self.x[index], y=self.y[index], t=t, name=name or self.name)

    def with_task(self, task_id: int) -> Dataset:
        return self.replace(t=torch.full_like(self.y, task_id))

    def replace(self, **changes: Any) -> Dataset:
        return dataclasses.replace(self, **changes)

    def nbytes(self) -> int:
        return sum(a.numel() * a.element_size() for a in (self.x, self.y, self.t) if a is not None)


def concat(datasets: Sequence[Dataset], name: str = "concat") -> Dataset:
    """Join datasets that share input shape, dtype, scale and feature names (unnamed ones join any)."""
    datasets = [d for d in datasets if len(d)]
    if not datasets:
        raise DataError("concat: nothing to join, every dataset is empty")
    first = datasets[0]
    for d in datasets[1:]:
        if d.input_shape != first.input_shape or d.x.dtype != first.x.dtype or d.scale != first.scale:
            raise DataError(f"concat: {d.name} differs from {first.name} in input shape, dtype or scale")
    named = {d.feature_names for d in datasets if d.feature_names is not None}
    if len(named) > 1:  # joined by position, columns of another order would mix features
        raise DataError(
            f"concat: the datasets name their features differently ({', '.join(str(list(n)[:5]) for n in named)}); "
            "put their columns in one order first (frame[names])"
        )
    ts = [d.t for d in datasets if d.t is not None]
    t = torch.cat(ts) if len(ts) == len(datasets) else None
    return Dataset(
        torch.cat([d.x for d in datasets]), torch.cat([d.y for d in datasets]), t, first.scale, name,
        next(iter(named), None),
    )  # fmt: skip


class Split(NamedTuple):
    """A train and a test dataset drawn from the same source."""

    train: Dataset
    test: Dataset


def from_tensors(x: Any, y: Any, *, scale: float | None = None, name: str = "tensors") -> Dataset:
    """Wrap array-likes ``x`` (inputs) and ``y`` (integer labels) as a :class:`Dataset`.

    uint8 inputs are scaled by 1/255 when batches are drawn unless ``scale`` says otherwise. A
    pandas frame's column names are kept as the dataset's ``feature_names``.
    """
    columns = frame_columns(x)
    x = features_of(x, name)
    y = class_ids(y, name)
    if len(x) == 0:
        raise DataError(f"{name}: x is empty; a dataset needs at least one sample")
    if scale is None:
        scale = 1 / 255 if x.dtype == torch.uint8 else 1.0
    if x.dtype.is_floating_point and not bool(torch.isfinite(x).all()):
        raise DataError(f"{name}: x contains NaN or infinite values; clean or impute them first")
    return Dataset(x, y, None, scale, name, None if columns is None else tuple(columns))


def features_of(x: Any, name: str) -> Tensor:
    """``x`` (a tensor, array, nested list or pandas frame) as a tensor of numbers, or a DataError
    naming its dtype: text or objects cannot be trained on, and torch's own error names neither."""
    if isinstance(x, Tensor):
        t = x
    else:
        try:
            arr = np.asarray(x.to_numpy() if hasattr(x, "to_numpy") else x)
        except ValueError as e:  # a ragged nested list
            raise DataError(
                f"{name}: x cannot be read as one array ({e}); give every sample the same shape"
            ) from e
        if arr.dtype.kind not in "biuf":
            raise DataError(
                f"{name}: x has dtype {arr.dtype}, not real numbers; features must be numeric: encode text or "
                "category columns first (one-hot, or sklearn's OrdinalEncoder), or read a file with "
                "lifelong.data.load_table, which does"
            )
        t = tensor_of(arr)
    if t.dtype.is_complex:
        raise DataError(f"{name}: x has dtype {t.dtype}; features must be real numbers")
    return t


def from_torch(dataset: Any, name: str = "torch-dataset") -> Dataset:
    """Materialise a map-style torch ``Dataset`` of ``(input, int label)`` or ``(input, int label,
    int task id)`` items (Avalanche's form) into memory; task ids are kept as the dataset's ``t``."""
    if isinstance(dataset, Dataset):
        return dataset
    try:
        n = len(dataset)
    except TypeError as e:
        raise DataError(f"{name}: expected a map-style dataset with __len__ and __getitem__") from e
    if n == 0:
        raise DataError(f"{name}: the dataset is empty")
    xs: list[Tensor] = []
    ys: list[Any] = []
    ts: list[int] = []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise DataError(
                f"{name}: item {i} is not an (input, label) pair or an (input, label, task id) triple; "
                "arrays of inputs and labels become a dataset with lifelong.data.from_tensors(x, y)"
            )
        if len(item) != (3 if ts else 2) and i:
            raise DataError(f"{name}: item {i} has {len(item)} parts, item 0 has {3 if ts else 2}; give every "
                            "item a task id, or none")  # fmt: skip
        xs.append(_input(item[0], i, xs[0].shape if xs else None, name))
        ys.append(_scalar(item[1]))
        if len(item) == 3:
            if not _is_class_id(item[2]) or _scalar(item[2]) < 0:
                raise DataError(
                    f"{name}: item {i} has task id {item[2]!r}; the third part of an item is its task id, "
                    "a whole number >= 0 (return (input, label) items if it is something else)"
                )
            ts.append(int(_scalar(item[2])))
    data = from_tensors(torch.stack(xs), ys, name=name)  # from_tensors checks the labels
    return data.replace(t=torch.tensor(ts, dtype=torch.long)) if ts else data


def _input(value: Any, i: int, shape: torch.Size | None, name: str) -> Tensor:
    """One item's input as a tensor shaped like the first item's, or a DataError naming the item."""
    fix = (
        "give the dataset a transform that turns every input into a tensor of one shape (torchvision: "
        "transform=transforms.Compose([transforms.Resize(size), transforms.ToTensor()]))"
    )
    try:
        x = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as e:
        raise DataError(
            f"{name}: item {i}'s input is of type {type(value).__name__}, not a tensor ({e}); {fix}"
        ) from e
    if x.dtype.is_complex:
        raise DataError(f"{name}: item {i}'s input has dtype {x.dtype}, not real numbers; {fix}")
    if shape is not None and x.shape != shape:
        raise DataError(
            f"{name}: item {i}'s input has shape {list(x.shape)}, item 0's {list(shape)}; samples are stacked "
            f"into one tensor, so {fix}"
        )
    return x


def _scalar(value: Any) -> Any:
    """A one-element tensor or array (as a torch Dataset may return a label) as a Python number."""
    return value.item() if isinstance(value, (Tensor, np.ndarray)) and math.prod(value.shape) == 1 else value


def frame_columns(x: Any) -> list[str] | None:
    """The column names of a pandas frame (as text), None for anything else; a DataError when a name
    appears twice (columns are matched by name: the last of the two would silently win)."""
    if not (hasattr(x, "columns") and hasattr(x, "to_numpy")):
        return None
    names = [str(c) for c in x.columns]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(
            f"the frame's columns {twice[:10]} appear more than once (as text); columns are matched by "
            "name, so each must be unique: rename them (frame.columns = [...])"
        )
    return names


def tensor_of(arr: np.ndarray) -> Tensor:
    """``arr`` as a tensor sharing its memory where it can; a read-only array (what pandas hands over)
    is copied, since torch warns about, and cannot protect, memory it must not write."""
    return torch.from_numpy(np.ascontiguousarray(arr) if arr.flags.writeable else arr.copy())


# how far past the known classes a label may reach: the head grows to the largest label, so a stray
# 10**9 would ask for a billion outputs (the library's scenarios and head growth, the service's labels)
MAX_LABEL_GAP = 1000


def class_ids(y: Any, where: str, n: int | None = None) -> Tensor:
    """``y`` as int64 class ids (``n`` of them when given), or a DataError naming the first label
    that is not one.

    Integers in any form (Python, NumPy, torch, pandas) pass, and so do whole-number floats (a
    label column read as float); a fractional, NaN, boolean or text label is a mistake to report,
    not to round. The one rule for :func:`from_tensors`, :func:`from_torch` and ``Learner.partial_fit``.
    """
    t: Tensor | None = None
    if isinstance(y, Tensor):
        t = y.detach().cpu()
    elif not isinstance(y, (list, tuple)):  # a list is read item by item: numpy takes [0, True] as ints
        arr = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        if arr.dtype.kind in "iufb":
            t = tensor_of(arr)
    if t is not None and t.ndim == 0:
        t = t.reshape(1)
    whole = (  # integers, or floats that are all whole numbers
        t is not None
        and t.dtype != torch.bool
        and not t.dtype.is_complex
        and (not t.dtype.is_floating_point or bool((t == t.round()).all()))
    )
    if not whole:  # find the culprit in the client's terms (on the error path, or an object array of ints)
        items = t if t is not None else np.asarray(y, dtype=object)
        if items.ndim != 1:
            raise DataError(
                f"{where}: need one label per sample, got labels of shape {tuple(items.shape)}{_shape_hint(items.shape)}"
            )
        values = items.tolist()
        for i, v in enumerate(values):
            if v is None or (isinstance(v, float) and math.isnan(v)) or type(v).__name__ == "NAType":
                raise DataError(f"{where}: sample {i} has no label (missing: {v}); drop it or give it one")
            if not _is_class_id(v):
                hint = "a dict or sklearn's LabelEncoder for names" if isinstance(v, str) else "int(label)"
                raise DataError(
                    f"{where}: sample {i} has label {v!r} ({type(v).__name__}); labels must be integer class "
                    f"ids 0..n_classes-1: map them to ints first ({hint}; lifelong.data.load_table "
                    "maps a file's names and keeps them)"
                )
        t = torch.tensor([int(v) for v in values], dtype=torch.long)
    assert t is not None
    t = t.long()
    if t.ndim != 1 or (n is not None and len(t) != n):
        want = f"{n} samples, " if n is not None else ""
        raise DataError(
            f"{where}: need one label per sample: {want}labels of shape {tuple(t.shape)}{_shape_hint(t.shape)}"
        )
    if len(t) and int(t.min()) < 0:
        raise DataError(
            f"{where}: labels must be >= 0, found {int(t.min())} at sample {int(t.argmin())}; class ids "
            "start at 0: remap them (np.unique(y, return_inverse=True)[1])"
        )
    return t


def _shape_hint(shape: Any) -> str:
    if len(shape) == 2 and shape[1] == 1:
        return " (a column: pass y.ravel())"
    if len(shape) == 2:
        return " (one-hot or scores? pass y.argmax(1))"
    return ""


def _is_class_id(v: Any) -> bool:
    v = _scalar(v)
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, numbers.Integral):
        return True
    return isinstance(v, numbers.Real) and math.isfinite(v) and float(v).is_integer()


def as_split(data: Any) -> Split:
    """Accept a :class:`Split`, a ``(train, test)`` pair of datasets or map-style torch datasets."""
    if isinstance(data, Split):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return Split(from_torch(data[0], "train"), from_torch(data[1], "test"))
    raise DataError(
        "expected a (train, test) pair, e.g. lifelong.data.fashion_mnist() or (from_tensors(x, y), from_tensors(xt, yt)); "
        f"got {type(data).__name__}"
    )
