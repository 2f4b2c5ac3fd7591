"""Tables of the user's own data: ``.npz``, ``.csv`` and ``.parquet`` files read into a :class:`Table`.

A ``.npz`` holds arrays ``x`` (samples) and ``y`` (labels), optionally ``domain`` and ``task``.
A CSV or Parquet file holds one row per sample: the label column, optionally a domain and a
task column, and every other column is a numeric feature. Labels that are all whole numbers
written as text (``"2"``, ``"10"``, ``"1"``: a Parquet string column, an ``.npz`` of strings) are
those integers, as the same column read from a CSV is; other string labels are mapped to
``0..K-1`` in :func:`label_order` (numeric-looking names by value, so ``"2"`` before ``"10"``,
then the rest as text) and their names kept in ``Table.class_names``. Anything malformed
(missing file or column, a non-numeric feature, NaN) is a DataError that names it.

>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
>>> np.savez(path, x=np.eye(4), y=np.array([0, 1, 0, 1]))
>>> table = load_table(path)
>>> table.x.shape, table.classes
((4, 4), [0, 1])
"""

from __future__ import annotations

import itertools
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lifelong.data.dataset import Dataset, Split, frame_columns, tensor_of
from lifelong.errors import ConfigError, DataError, quoted

if TYPE_CHECKING:
    import pandas as pd

SUFFIXES = (".npz", ".csv", ".parquet")
# a whole number written as text above this is a name (no head has that many outputs)
MAX_TEXT_LABEL = 2**31 - 1
_WHOLE = re.compile(r"0|[1-9][0-9]*")


def integer_label(text: str) -> int | None:
    """The class index a label written as text stands for, or None where it is a name.

    Only a whole number written the one plain way is an index (``"10"``); ``"010"``, ``"+1"``,
    ``"2.0"``, ``"-1"`` and ``" 3"`` stay names, so no two different texts read as the same class.

    >>> integer_label("10"), integer_label("010"), integer_label("cat")
    (10, None, None)
    """
    if not _WHOLE.fullmatch(text) or len(text) > 10:
        return None
    value = int(text)
    return value if value <= MAX_TEXT_LABEL else None


def label_order(name: str) -> tuple[int, float, str]:
    """The sort key that gives class names their indices: numeric-looking names by their value, then
    every other name as text. The one order of :func:`load_table` and of new classes named by clients
    (:meth:`lifelong.system.contract.Contract.new_class_names`).

    >>> sorted(["10", "b", "2", "1.5", "a"], key=label_order)
    ['1.5', '2', '10', 'a', 'b']
    """
    try:
        value = float(name)
    except ValueError:
        return (1, 0.0, name)
    return (0, value, name) if math.isfinite(value) else (1, 0.0, name)


def in_column_order(frame: Any, names: tuple[str, ...] | list[str], what: str = "the frame") -> Any:
    """``frame``'s columns ``names``, in that order, or a DataError naming what it lacks or adds.

    How a model trained on named columns takes a frame whose columns come in another order (as
    scikit-learn matches ``feature_names_in_``)."""
    given = frame_columns(frame) or []
    check_columns(given, names, what)
    if given == list(names):
        return frame
    at = {c: i for i, c in enumerate(given)}
    return frame.iloc[:, [at[n] for n in names]]


def check_columns(given: list[str], names: tuple[str, ...] | list[str], what: str) -> None:
    """A DataError naming the features ``given`` lacks or adds to ``names``; nothing if they match."""
    have, known = set(given), set(names)
    missing = [n for n in names if n not in have]
    unknown = [n for n in given if n not in known]
    if missing or unknown:
        problems = [f"lacks {', '.join(map(repr, missing[:10]))}" if missing else "",
                    f"has unknown {', '.join(map(quoted, unknown[:10]))}" if unknown else ""]  # fmt: skip
        raise DataError(
            f"{what} {' and '.join(p for p in problems if p)}; the features are "
            f"{', '.join(names[:20])}{' ...' if len(names) > 20 else ''}"
        )


@dataclass(frozen=True, eq=False)
class Table:
    """Samples read from a file: features ``x`` (float32 ``[N, D]``; a ``.npz`` may keep an image shape),
    labels ``y`` (int64), and the optional per-sample ``domains`` and ``tasks`` columns."""

    x: np.ndarray
    y: np.ndarray
    domains: np.ndarray | None
    feature_names: list[str]
    classes: list[int]
    class_names: list[str] | None = None
    tasks: np.ndarray | None = None
    task_names: list[str] | None = None  # task id i's name in the file, where the file named its tasks
    name: str = "table"

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:  # sizes, not every value (the dataclass's repr printed the whole arrays)
        shape = "x".join(map(str, self.x.shape[1:]))
        extra = "".join(f", {k}" for k in ("domains", "tasks") if getattr(self, k) is not None)
        names = f" {self.class_names[:10]}" if self.class_names else ""
        return (
            f"Table({self.name!r}: {len(self)} samples of {shape}, {len(self.classes)} classes{names}{extra})"
        )

    @property
    def n_classes(self) -> int:
        """Outputs a classifier needs: the largest label plus one."""
        return int(self.y.max()) + 1

    def reshaped(self, shape: tuple[int, ...] | None) -> Table:
        """The samples as ``[N, *shape]`` (images stored as one row of pixels, say); None keeps them.

        >>> t = Table(np.zeros((2, 64), np.float32), np.array([0, 1]), None, [], [0, 1])
        >>> t.reshaped((1, 8, 8)).x.shape
        (2, 1, 8, 8)
        """
        if shape is None:
            return self
        if math.prod(shape) != math.prod(self.x.shape[1:]):
            given = ",".join(map(str, shape))
            raise DataError(
                f"{self.name}: --input-shape {given} holds {math.prod(shape)} values per sample, but each "
                f"sample of the file has {math.prod(self.x.shape[1:])} (shape {list(self.x.shape[1:])})"
            )
        return replace(self, x=self.x.reshape(len(self.x), *shape))

    def to_dataset(self) -> Dataset:
        """The samples as a lifelong :class:`Dataset` (task ids from the task column, if any), carrying
        the feature names, so that a learner trained on it matches frames by column name."""
        t = None if self.tasks is None else tensor_of(self.tasks)
        names = tuple(self.feature_names) if self.feature_names else None  # an image .npz has none
        return Dataset(tensor_of(self.x), tensor_of(self.y), t, 1.0, self.name, names)

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> Split:
        """A seeded train/test split, stratified by class (see :func:`lifelong.data.scenarios.holdout`)."""
        from lifelong.data.scenarios import holdout

        return holdout(self.to_dataset(), test_fraction, seed)


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """The shape of one sample from the command line: ``30``, ``1,28,28`` or ``1x28x28`` (None: none
    given)."""
    if not text:
        return None
    try:
        shape = tuple(int(d) for d in text.replace("x", ",").split(","))
    except ValueError:
        raise ConfigError(f"--input-shape must be integers like 30 or 1,28,28, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise ConfigError(f"--input-shape must be positive integers, got {text!r}")
    return shape


def load_table(
    path: str | os.PathLike[str] | pd.DataFrame,
    label_column: str = "label",
    domain_column: str | None = None,
    task_column: str | None = None,
    drop_columns: Sequence[str] = (),
) -> Table:
    """Read ``path`` (``.npz``, ``.csv`` or ``.parquet``) into a :class:`Table`.

    For ``.npz`` the arrays are named ``x``, ``y`` and optionally ``domain`` / ``task``; the
    column arguments apply to CSV and Parquet. ``drop_columns`` are columns that are not features
    (an id, a timestamp, free text): every other column but the label, domain and task is one.
    A pandas DataFrame is read as a CSV file's rows would be, its columns named as text (a frame made
    from an array names its label column 3 or "3"); a name twice is a DataError.
    """
    if frame_columns(path) is not None:
        return _from_frame(
            path, Path("dataframe"), label_column, domain_column, task_column, tuple(drop_columns)
        )
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p} is a directory; give a data file in it ({', '.join(SUFFIXES)})")
    if p.suffix.lower() not in SUFFIXES:
        raise DataError(f"{p}: unsupported file type {p.suffix!r}; use one of {', '.join(SUFFIXES)}")
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    if p.suffix.lower() == ".npz":
        if drop_columns:
            raise DataError(f"{p}: an .npz has no named columns to drop ({', '.join(drop_columns)}); "
                            "drop them from x when writing it")  # fmt: skip
        named = [
            f"{what}_column={col!r}"
            for what, col in (("domain", domain_column), ("task", task_column))
            if col
        ]
        if (
            named
        ):  # silently ignored, it left tasks=None and "no task ids; name a task column" after (a trial)
            raise DataError(f"{p}: an .npz has no named columns ({', '.join(named)}): it gives each sample's task "
                            "and domain in arrays named 'task' and 'domain' beside x and y; drop the argument")  # fmt: skip
        return _from_npz(p)
    frame = _read_frame(p)
    return _from_frame(frame, p, label_column, domain_column, task_column, tuple(drop_columns))


def _from_npz(p: Path) -> Table:
    with p.open("rb") as f:  # numpy reads any other bytes as a pickle and advises allow_pickle
        if f.read(4) != b"PK\x03\x04":
            raise DataError(f"{p} is not an .npz file (a zip archive of arrays, as np.savez writes); rewrite it "
                            "with np.savez(path, x=..., y=...)")  # fmt: skip
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:  # not a zip, or object arrays (which would need pickle)
        raise DataError(f"{p}: cannot read as .npz without pickle: {e}") from e
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"{p}: missing array(s) {missing}; it holds {sorted(arrays)} (need x and y)")
    x, y = arrays["x"], arrays["y"]
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise DataError(
            f"{p}: need x [n_samples, features...] and y [n_samples]; got x {x.shape}, y {y.shape}"
        )
    if x.dtype.kind not in "biuf":
        raise DataError(f"{p}: x must be numeric, got dtype {x.dtype}")
    # uint8 pixels are scaled to [0, 1], as from_tensors and the bundled images are: read as 0-255 a CNN's
    # first champion diverged (`up --bootstrap images.npz`), where the same pixels in Python trained
    x = x.astype(np.float32) / 255 if x.dtype == np.uint8 else _float32(x, f"{p}: x")
    y, names = _labels(y, f"{p}: y")
    _refuse_numeric_target(y, names, f"{p}: y")
    features = [f"x{i}" for i in range(x.shape[1])] if x.ndim == 2 else []
    domains = _column(arrays.get("domain"), len(y), f"{p}: domain")
    tasks = task_codes(arrays.get("task"), len(y), f"{p}: task")
    task_ids, task_names = tasks or (None, None)
    return Table(x, y, domains, features, sorted(set(y.tolist())), names, task_ids, task_names, p.stem)


def _read_frame(p: Path) -> Any:
    try:
        import pandas as pd
    except ImportError as e:
        raise DataError(f"{p}: reading CSV or Parquet needs pandas: pip install 'lifelong[data]'") from e
    try:
        if p.suffix.lower() == ".csv":
            return pd.read_csv(p)
        return pd.read_parquet(p)
    except ImportError as e:
        raise DataError(f"{p}: reading Parquet needs pyarrow: pip install 'lifelong[data]' ({e})") from e
    except Exception as e:  # pandas and pyarrow raise many parser error types
        raise DataError(f"{p}: cannot parse the file: {type(e).__name__}: {e}") from e


def _from_frame(
    frame: Any, p: Path, label: str, domain: str | None, task: str | None, drop: tuple[str, ...] = ()
) -> Table:
    columns = frame_columns(frame) or []
    frame = frame.set_axis(columns, axis=1)  # a caller's frame keeps its own column labels
    # names as text, as the columns: a frame built from an array has columns 0..D-1, named as 3 or "3"
    label = str(label)
    domain, task = (None if c is None else str(c) for c in (domain, task))
    drop = tuple(str(c) for c in drop)
    unknown = [c for c in drop if c not in columns]
    if unknown:
        raise DataError(f"{p}: no column(s) {unknown} to drop; the columns are {columns}")
    kept = [c for c in drop if c in {label, domain, task}]
    if kept:
        raise DataError(f"{p}: column {kept[0]!r} is the label, domain or task column; it cannot be dropped")
    roles = [(r, c) for r, c in (("label", label), ("domain", domain), ("task", task)) if c is not None]
    for (first_role, name), (other_role, same) in itertools.combinations(roles, 2):
        if same == name:  # a domain named by the label: one class per domain, nothing to learn across them
            raise DataError(
                f"{p}: column {name!r} is given as both the {first_role} and the {other_role} column; "
                "name a different column for each (--label-column, --domain-column, --task-column)"
            )
    for role, col in (("label", label), ("domain", domain), ("task", task)):
        if col is not None and col not in columns:
            raise DataError(
                f"{p}: no {role} column {col!r}; the columns are {columns}"
                + ("; name it with --label-column / label_column=" if role == "label" else "")
            )
    if len(frame) == 0:
        raise DataError(f"{p}: the file has no rows")
    features = [c for c in columns if c not in {label, domain, task, *drop}]
    if not features:
        raise DataError(f"{p}: no feature columns besides {label!r}")
    for c in features:
        kind = frame[c].dtype.kind
        if kind not in "biuf":
            raise DataError(_not_numeric(p, c, frame[c]))
    wide = frame[features].to_numpy(dtype=np.float64)
    nan_cols = [c for c, bad in zip(features, ~np.isfinite(wide).all(0)) if bad]
    if nan_cols:
        raise DataError(
            f"{p}: feature columns {nan_cols} hold NaN (missing) or infinite values; impute or drop them"
        )
    x = _float32(wide, f"{p}: feature columns", features)
    _warn_row_numbers(wide, features, p)
    y, names = _labels(frame[label].to_numpy(), f"{p}: label column {label!r}")
    _refuse_numeric_target(
        y,
        names,
        f"{p}: label column {label!r}",
        ", or name the class column (--label-column / label_column=)",
    )
    domains = None if domain is None else _column(frame[domain].to_numpy(), len(y), f"{p}: domain column")
    tasks = None if task is None else task_codes(frame[task].to_numpy(), len(y), f"{p}: task column {task!r}")
    task_ids, task_names = tasks or (None, None)
    return Table(x, y, domains, features, sorted(set(y.tolist())), names, task_ids, task_names, p.stem)


def _warn_row_numbers(x: np.ndarray, columns: list[str], p: Path) -> None:
    """Warn of feature columns that number the rows (each row the one before plus 1): an id, which a
    model reads as a feature; a file sorted by class made one worth 0.54 accuracy on wine, against
    0.33 without it (a user trial)."""
    if len(x) < 20:
        return
    steps = np.diff(x, axis=0)
    numbering = [c for c, col in zip(columns, (steps == 1).all(0)) if col]
    if numbering:
        warnings.warn(
            f"{p}: column(s) {numbering} number the rows (each value the row before's plus 1): an id or an "
            "index, not a feature, which a model learns the file's order from; leave it out with "
            "--drop-columns / drop_columns=",
            UserWarning,
            stacklevel=4,
        )


def _float32(x: np.ndarray, where: str, columns: list[str] | None = None) -> np.ndarray:
    """``x`` as float32, refusing NaN, infinities and values beyond float32's range (1e300 became inf
    in the cast, with numpy's overflow warning, and was then called infinite)."""
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{where} holds NaN or infinite values; impute or drop them")
    big = np.abs(x) > np.finfo(np.float32).max
    if big.any():
        flat = big.reshape(len(x), -1)
        named = [columns[j] for j in np.flatnonzero(flat.any(0))] if columns else None
        raise DataError(
            f"{where}{' ' + str(named) if named else ''} hold values beyond float32's range (largest "
            f"{np.abs(x).max():.3g}, limit {np.finfo(np.float32).max:.3g}); rescale them (e.g. log) or clip them"
        )
    return x.astype(np.float32)


def _labels(values: np.ndarray, where: str, what: str = "labels") -> tuple[np.ndarray, list[str] | None]:
    """Integer labels, or strings mapped to ``0..K-1`` in :func:`label_order` (names returned).

    Strings that are all whole numbers (:func:`integer_label`) are those integers, no names: the
    column means what it means when pandas reads it from a CSV as numbers. Task ids follow the
    same rule (``what``)."""
    if values.dtype.kind in "iu":
        if len(values) and values.min() < 0:
            raise DataError(
                f"{where}: {what} must be >= 0, found {values.min()}; renumber them, or give them as names"
            )
        return values.astype(np.int64), None
    if values.dtype.kind == "f":
        if np.isnan(values).any():
            raise DataError(f"{where}: {int(np.isnan(values).sum())} {what} are missing (NaN)")
        if not (np.isfinite(values) & (values == np.round(values))).all():
            raise DataError(f"{where}: {what} must be integers or names, got fractional or infinite values")
        return _labels(values.astype(np.int64), where, what)
    if values.dtype.kind == "b":
        return values.astype(np.int64), None
    missing = [i for i, v in enumerate(values.tolist()) if is_missing(v)]
    if missing:
        raise DataError(f"{where}: {len(missing)} {what} are missing (the first in row {missing[0]})")
    texts = [str(v) for v in values]
    whole = [integer_label(t) for t in texts]
    if all(w is not None for w in whole):
        return _labels(np.array(whole, dtype=np.int64), where, what)
    names = sorted(set(texts), key=label_order)
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[str(v)] for v in values], dtype=np.int64), names


def _refuse_numeric_target(y: np.ndarray, names: list[str] | None, where: str, hint: str = "") -> None:
    """Refuse a column of numbers that is a regression target, not classes (scikit-learn's diabetes:
    214 values over 442 rows). It was read as hundreds of classes of a row or two, and failed later,
    by accident, on an experience without test samples: lifelong learns classifiers."""
    n_classes = len(np.unique(y))
    if names is None and n_classes > 20 and len(y) < 3 * n_classes:
        raise DataError(
            f"{where}: {n_classes} distinct numbers over {len(y)} rows: a numeric target (regression), where "
            f"lifelong learns classification; bin it into classes (e.g. pandas.cut){hint}"
        )


def is_missing(value: Any) -> bool:
    """Whether one cell is missing: None, NaN, or pandas' ``NA`` / ``NaT`` (nullable columns).

    >>> [is_missing(v) for v in (None, float("nan"), "a", 0)]
    [True, True, False, False]
    """
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and NaT differ from themselves
    except (TypeError, ValueError):  # pandas.NA: its comparisons are NA, which has no truth value
        return True


def _column(values: np.ndarray | None, n: int, where: str) -> np.ndarray | None:
    if values is None:
        return None
    if values.ndim != 1 or len(values) != n:
        raise DataError(f"{where}: need one value per sample ({n}), got shape {values.shape}")
    missing = [i for i, v in enumerate(values.tolist()) if is_missing(v)]
    if missing:
        raise DataError(f"{where}: {len(missing)} values are missing (the first in row {missing[0]})")
    return values


def task_codes(values: np.ndarray | None, n: int, where: str) -> tuple[np.ndarray, list[str] | None] | None:
    """Task ids as int64 and their names, by the labels' rule: whole numbers >= 0 (ints, whole
    floats, numeric text) are those ids, without names; other values are numbered in
    :func:`label_order` and their names returned (None: no task column)."""
    values = _column(values, n, where)
    if values is None:
        return None
    return _labels(values, where, "task ids")


def _not_numeric(p: Path, name: str, column: pd.Series) -> str:
    """Why column ``name`` is refused, quoting its first cell that is not a number and that cell's row:
    a stray text cell in a numeric column is fixed differently from a column of text."""
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() & column.notna()
    if not bad.any():  # e.g. booleans or dates: nothing to quote
        return (f"{p}: feature column {name!r} is not numeric (dtype {column.dtype}); encode it as numbers "
                "or drop it (--drop-columns)")  # fmt: skip
    row = int(np.flatnonzero(bad.to_numpy())[0])
    first = f"{column.iloc[row]!r} in row {row} (0-based, header not counted)"
    if bad.sum() * 2 < column.notna().sum():  # mostly numbers: a few stray cells
        return (f"{p}: feature column {name!r} holds {int(bad.sum())} cells that are not numbers, the first "
                f"{first}; fix or remove those rows")  # fmt: skip
    return (f"{p}: feature column {name!r} is not numeric (e.g. {first}); encode it as numbers (one-hot or "
            "codes) or drop it (--drop-columns); if it names each sample's domain or task, say so "
            "(--domain-column, --task-column; load_table(..., domain_column=, task_column=))")  # fmt: skip
