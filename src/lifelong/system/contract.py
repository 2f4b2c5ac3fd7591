"""The deployment contract: which labels and which inputs a deployed model accepts.

Every version carries one (``contract.json`` inside its artifact, so it is hashed with the weights):
the class set (label space, optionally with names), the input shape of one sample, optional
feature names (so a pandas frame can be reordered) and optional standardisation fitted on the
bootstrap data. The boundary (HTTP, :class:`~lifelong.system.service.System`, the trainer) checks
data against it, so a label the model has no output for is refused at the door instead of breaking
every later training attempt.

>>> c = Contract(classes=(0, 1), input_shape=(3,))
>>> c.check_labels([1, 0])
[1, 0]
>>> c.check_labels([2])
Traceback (most recent call last):
...
lifelong.errors.DataError: label 2 is not in this deployment's label space; valid labels: 0, 1 (...)
>>> named = Contract(classes=(0, 1), input_shape=(3,), class_names=("cat", "dog"))
>>> named.check_labels(["dog", 0])
[1, 0]
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lifelong.data.dataset import MAX_LABEL_GAP
from lifelong.data.files import check_columns, frame_columns, in_column_order, integer_label, label_order
from lifelong.errors import CheckpointError, DataError, RegistryError, quoted

if TYPE_CHECKING:
    from lifelong.system.registry import Registry

FILE = "contract.json"
MAX_CLASS_NAME = 200  # characters of a class name: what the API accepts and the store keeps
MAX_NEW_CLASSES = MAX_LABEL_GAP  # with allow_new_classes: how far past the known classes a new index may be
# standardised deployments: a value this many standard deviations from the bootstrap mean is a unit or
# encoding error (1e30 in a feature of std 1 passed every check and made every later training diverge)
MAX_STANDARD_SCORE = 1e6


def unstorable(text: str) -> str | None:
    """Why ``text`` (an id, a class name) cannot be kept by every supported store, or None.

    JSON allows a lone surrogate ("\\ud800") that no database encodes, and a NUL character that
    PostgreSQL's text columns refuse (SQLite keeps it): both are refused at the door instead.
    """
    if "\x00" in text:
        return "must not contain a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)"
    return None


def _reads_as_index(name: str) -> int | None:
    """The whole number ``name`` reads as to a person, in any of the ways Python writes one ("3", "03",
    "+3", "3.0", "3e0", a full-width or Arabic-Indic three), or None: a new class named so would sit
    beside class 3 for ever, where a JSON 3.0 is class 3 itself (a trial)."""
    try:
        value = float(unicodedata.normalize("NFKC", name).strip())
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() and abs(value) < 2**63 else None


def _fold(name: str) -> str:
    """A class name as people read it: case and Unicode form ("rosé" composed or with a combining
    accent) ignored, so two names that look alike cannot become two classes."""
    return unicodedata.normalize("NFKC", name).casefold()


def _array_or_row(shape: tuple[int, ...]) -> str:
    """How a sample of ``shape`` may be sent: an image as its array or its pixels in one row."""
    if len(shape) > 1:
        return f"an array of shape {list(shape)} or a flat list of {math.prod(shape)} numbers"
    return f"a list of {math.prod(shape)} numbers"


@dataclass(frozen=True)
class Contract:
    """Label space and input schema of a deployment.

    ``mean``/``std`` (per flattened feature) standardise inputs before the model sees them; samples
    are stored as sent, and both serving and training apply the same transform.
    """

    classes: tuple[int, ...]
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...] | None = None
    feature_names: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    allow_new_classes: bool = False
    # images: the bootstrap data's smallest and largest value, so pixels sent in other units (0-255 to a
    # deployment trained on 0-1) are refused instead of answered, stored and trained on
    value_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.feature_names is not None and not self.feature_names:  # an image .npz's (no columns)
            object.__setattr__(self, "feature_names", None)  # no names: samples are taken by position
        if not self.classes or any(c < 0 for c in self.classes):
            raise DataError(f"a contract needs class labels >= 0, got {list(self.classes)}")
        if self.class_names is not None and len(self.class_names) != len(self.classes):
            raise DataError(f"{len(self.class_names)} class names for {len(self.classes)} classes")
        width = math.prod(self.input_shape)
        for name in ("mean", "std"):
            v = getattr(self, name)
            if v is not None and len(v) != width:
                raise DataError(f"contract {name} has {len(v)} values for {width} input features")

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray | None,
        *,
        n_classes: int | None = None,
        standardize: bool = False,
        class_names: Sequence[str] | None = None,
        feature_names: Sequence[str] | None = None,
        allow_new_classes: bool = False,
        raw_columns: Sequence[str] = (),
    ) -> Contract:
        """The contract of data ``x`` [N, *shape] labelled ``y``: classes 0..K-1 with K from
        ``n_classes`` or the labels, and (``standardize``) per-feature mean and std of ``x``, but for
        the ``raw_columns`` (named features, as an integer code an embedding looks up), kept as sent."""
        if n_classes is None:
            if y is None or not len(y):
                raise DataError("give n_classes (no labels to read the class set from)")
            n_classes = int(np.max(y)) + 1
        mean = std = None
        if raw_columns and not standardize:
            raise DataError("raw columns (--standardize-exclude) name columns standardize leaves as sent; give "
                            "standardize (--standardize) too, or drop them")  # fmt: skip
        names = list(feature_names or ())
        if unknown := [c for c in raw_columns if c not in names]:
            raise DataError(f"--standardize-exclude names {', '.join(map(repr, unknown))}, not a feature column of the "
                            f"data; its columns: {', '.join(names[:20]) or 'none (an .npz has no names)'}")  # fmt: skip
        if standardize:
            flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
            raw = [names.index(c) for c in raw_columns]
            means, stds = flat.mean(0), flat.std(0)
            means[raw], stds[raw] = 0.0, 1.0  # an identity: a store code 0-4 stays 0-4 (it became -1 .. 1)
            mean = tuple(float(v) for v in means)
            std = tuple(float(v) if v > 1e-8 else 1.0 for v in stds)
        shape = tuple(int(d) for d in np.shape(x)[1:])
        value_range = None
        # an image ([C, H, W]): its pixels' units are the format's, not a feature's scale (a [T, F] series
        # is left alone: a spike past its bootstrap's range may be real)
        if len(shape) > 2 and len(x):
            value_range = (float(np.min(x)), float(np.max(x)))
        return cls(
            value_range=value_range,
            classes=tuple(range(n_classes)),
            input_shape=shape,
            class_names=tuple(class_names) if class_names is not None else None,
            feature_names=tuple(feature_names) if feature_names is not None else None,
            mean=mean,
            std=std,
            allow_new_classes=allow_new_classes,
        )

    def with_classes(self, n_classes: int, names: Mapping[str, int] | None = None) -> Contract:
        """The same contract with the label space grown to ``n_classes`` (class-incremental).

        ``names`` gives the new classes' names (the store's, see ``Store.name_classes``); a new
        class without one is called by its index."""
        have = self.class_names
        if have is not None:
            by_index = {i: n for n, i in (names or {}).items()}
            have = have + tuple(by_index.get(c, str(c)) for c in range(len(have), n_classes))
        return replace(self, classes=tuple(range(n_classes)), class_names=have)

    # -- checking ------------------------------------------------------------------------------
    def check_labels(
        self, labels: Sequence[Any], names: Mapping[str, int] | None = None, max_new: int = MAX_NEW_CLASSES
    ) -> list[int]:
        """Labels as class indices, or a DataError naming the first invalid one and the valid set.

        A label is a class index or, where the classes have names (a bootstrap file with string
        labels), a class name: clients send back what predictions call the class. Where the classes
        have no names, a whole number written as text (``"10"``, see
        :func:`~lifelong.data.files.integer_label`) is that index, as in a bootstrap file. With
        ``allow_new_classes`` a new index passes up to ``max_new`` past the known ones (the trainer
        grows the head to the largest label, so one stray 2**31 would ask for billions of outputs; the
        server passes ``LIFELONG_MAX_NEW_CLASSES``), and so does a name in ``names``, the indices the
        store gave to new classes' names."""
        out = []
        for lab in labels:
            if isinstance(lab, str):
                lab = self._index_of(lab, names or {})
            if lab is None:  # a batch mixing labelled and unlabelled samples
                raise DataError(
                    "a label is missing (None): labels are given for every sample of a call or for none; send "
                    'unlabelled samples in a call of their own (y=None, or no "labels")'
                )
            if isinstance(lab, bool) or not isinstance(lab, int | np.integer):
                raise DataError(f"a label is a class index (or a class name), got {quoted(lab)}")
            lab = int(lab)
            if lab < 0 or lab >= 2**31:
                raise DataError(f"label {lab} is out of range; labels are class indices >= 0")
            if lab not in self.classes and not self.allow_new_classes:
                raise DataError(
                    f"label {lab} is not in this deployment's label space; valid labels: "
                    f"{self.describe_classes()} (the label space is fixed when a deployment is bootstrapped; one "
                    "bootstrapped with --allow-new-classes, or in Python from a Learner(..., allow_new_classes=True), "
                    "learns new ones)"
                )
            if lab >= len(self.classes) + max_new:  # each index is one more output of the head
                raise DataError(
                    f"label {lab} is too far past this deployment's {len(self.classes)} classes: new classes "
                    f"take the next indices ({len(self.classes)}, {len(self.classes) + 1}, ...), at most "
                    f"{max_new} beyond them (LIFELONG_MAX_NEW_CLASSES), since the trainer grows the head to "
                    "the largest label"
                )
            out.append(lab)
        return out

    def _text_index(self, name: str, index: int) -> DataError:
        assert self.class_names is not None
        return DataError(
            f"label {name!r} is text, and this deployment's labels written as text are class names; send "
            f"the index as a number ({index}) or the name ({self.class_names[self.classes.index(index)]!r})"
        )

    def _index_of(self, name: str, names: Mapping[str, int]) -> int:
        if self.class_names is None:
            if (index := integer_label(name)) is not None:
                return index
            raise DataError(
                f"label {quoted(name)} is a name, but this deployment's classes have none; send the class "
                f"index ({self.describe_classes()})"
            )
        if name in self.class_names:
            return self.classes[self.class_names.index(name)]
        if self.allow_new_classes and name in names:
            return names[name]
        index = integer_label(name)
        if index is not None and index in self.classes:  # "2" where 2 is dog: text is read as a name
            raise self._text_index(name, index)
        raise DataError(
            f"label {quoted(name)} is not a class of this deployment; valid labels: {self.describe_classes()} "
            "(the label space is fixed when a deployment is bootstrapped; one bootstrapped with "
            "--allow-new-classes learns new ones)"
        )

    def new_class_names(self, labels: Sequence[Any], added: Mapping[str, int] | None = None) -> list[str]:
        """The names among ``labels`` that neither this contract nor ``added`` (the classes named since,
        from the store) knows, each one checked to be storable (1 to ``MAX_CLASS_NAME`` characters, see
        :func:`unstorable`) and distinct: with ``allow_new_classes`` they are new classes, to be given
        indices by the store in the order returned, once each: the order a bootstrap file numbers names
        in (:func:`~lifelong.data.files.label_order`, so ``"2"`` before ``"10"``), whatever order the
        client sent them in."""
        added = added or {}
        known = {**dict(zip(self.class_names or (), self.classes)), **added}
        new = sorted({lab for lab in labels if isinstance(lab, str) and lab not in known}, key=label_order)
        folded = {_fold(k): k for k in known}
        indices = {*self.classes, *added.values()}
        for name in new:
            if not 0 < len(name) <= MAX_CLASS_NAME:
                raise DataError(f"a class name has 1 to {MAX_CLASS_NAME} characters, got {len(name)}")
            if (problem := unstorable(name)) is not None:
                raise DataError(f"a class name {problem}")
            if not name.isprintable():  # a tab, a newline, a zero-width space: a class no one can tell apart
                raise DataError(
                    f"class name {quoted(name)} has characters that do not print (control, format or zero-width "
                    "ones, as a tab, a newline or U+200B); send the name as it reads"
                )
            # each would become a class of its own for ever: "2" (or "02", "2.0", "+2", a full-width "２")
            # where 2 is gamma, "alpha " for alpha
            index = _reads_as_index(name)
            if index is not None and index in indices:
                other = next((n for n, i in known.items() if i == index), str(index))
                raise DataError(
                    f"label {name!r} is text, and this deployment's labels written as text are class names; "
                    f"send the index as a number ({index}) or the name ({other!r})"
                )
            if name != name.strip():
                raise DataError(f"class name {name!r} has leading or trailing spaces; send {name.strip()!r}")
            if (twin := folded.get(_fold(name))) is not None:
                raise DataError(
                    f"class name {name!r} differs from {'this deployment' if twin in known else 'this request'}'s "
                    f"class {twin!r} only in case or Unicode form; send {twin!r} (a new class needs a name no "
                    "class has in any case or form)"
                )
            folded[_fold(name)] = name
        return new

    def class_name(self, label: int) -> str:
        """What a prediction calls class ``label``: its name, or the index as text (a grown class)."""
        if self.class_names is not None and label in self.classes:
            return self.class_names[self.classes.index(label)]
        return str(label)

    def describe_classes(self) -> str:
        if self.class_names is None:
            return ", ".join(str(c) for c in self.classes)
        return ", ".join(f"{c} ({n})" for c, n in zip(self.classes, self.class_names))

    def breaks(self, new: Contract) -> list[str]:
        """What replacing this contract with ``new`` changes for its clients: the inputs they send
        (shape, feature names) and the labels they get and give back (a class dropped or renamed).
        Standardisation and new classes are the deployment's own business."""
        changes = []
        if new.input_shape != self.input_shape:
            changes.append(f"inputs of shape {list(new.input_shape)} instead of {list(self.input_shape)}")
        if new.feature_names != self.feature_names and self.feature_names is not None:
            missing = [f for f in self.feature_names if f not in (new.feature_names or ())]
            changes.append(
                f"features {missing[:5]} no longer taken" if missing else "the features in another order"
            )
        dropped = [c for c in self.classes if c not in new.classes]
        if dropped:
            changes.append(f"class{'es' * (len(dropped) > 1)} {self._named(dropped)} dropped")
        renamed = [
            f"{c} ({self.class_name(c)!r} -> {new.class_name(c)!r})"
            for c in self.classes
            if c in new.classes and self.class_names is not None and new.class_name(c) != self.class_name(c)
        ]
        if renamed:
            changes.append(f"classes renamed: {', '.join(renamed[:5])}")
        return changes

    def _named(self, classes: Sequence[int]) -> str:
        return ", ".join(f"{c} ({self.class_name(c)})" if self.class_names else str(c) for c in classes[:5])

    def check_inputs(self, x: np.ndarray) -> np.ndarray:
        """``x`` [B, *input_shape]; a flat [B, D] with D the product of the shape (an image's pixels as
        one row, from a CSV say) is reshaped to it."""
        want = self.input_shape
        if tuple(x.shape[1:]) != want:
            if x.ndim == 2 and x.shape[1] == math.prod(want):
                return x.reshape(len(x), *want)
            flat = f" or be a flat list of {math.prod(want)} numbers" if len(want) > 1 else ""
            # one image sent as the whole batch: its rows were read as samples (got [14, 14] for [1, 14, 14])
            whole = (
                "; the inputs hold one sample's shape: send a list of samples ([sample])"
                if x.shape == want
                else ""
            )
            raise DataError(
                f"each sample must have shape {list(want)} ({math.prod(want)} features){flat}, "
                f"got {list(x.shape[1:])}{whole}"
            )
        return x

    def named_rows(self, x: Any) -> Any:
        """Samples given by feature name as rows in this contract's feature order; anything else as is.

        A batch of JSON objects (``[{"age": 41, "income": 3.2}, ...]``) or a pandas frame is matched
        by name, so a client need not know the column order of the bootstrap file. A frame whose
        deployment has no feature names is taken by position, as the library takes one."""
        if frame_columns(x) is not None:
            if self.feature_names is None:
                return x.to_numpy()
            return in_column_order(x, self.feature_names).to_numpy()
        if not (isinstance(x, list) and x and isinstance(x[0], dict)):
            return x
        names = self.feature_names
        if names is None:
            raise DataError(
                "inputs are given by feature name, but this deployment has no feature names (its "
                f"bootstrap data had none); send each sample as {_array_or_row(self.input_shape)}"
            )
        rows = []
        for i, r in enumerate(x):
            if not isinstance(r, dict):
                raise DataError(
                    f"sample {i} is not an object of named features; send every sample the same way"
                )
            check_columns(list(r), names, f"sample {i}")
            row = [r[n] for n in names]
            for n, v in zip(names, row):
                if not isinstance(v, int | float):  # JSON numbers (true/false count as 1/0, as in rows)
                    raise DataError(
                        f"inputs must hold only numbers: sample {i} holds {quoted(v)} in feature {n!r}"
                    )
            rows.append(row)
        return rows

    def check_scale(self, x: np.ndarray) -> None:
        """Refuse inputs (as :meth:`check_inputs` returns them) that lie more than ``MAX_STANDARD_SCORE``
        bootstrap standard deviations from its mean: no model trains on them (every training of a
        window holding one diverged, until someone found and deleted the rows). Images are also held
        to their bootstrap's value range, widened by its own width on each side (darker, brighter and
        augmented images pass; 0-255 pixels to a deployment trained on 0-1 do not). Unstandardised
        feature deployments have no scale to judge by."""
        if not len(x):
            return
        if self.value_range is not None:
            lo, hi = self.value_range
            width = max(hi - lo, 1e-12)
            outside = (x < lo - width) | (x > hi + width)
            if outside.any():
                i = int(np.argwhere(outside.reshape(len(x), -1).any(1))[0, 0])
                value = float(x[i][outside[i]].flat[0])
                raise DataError(
                    f"sample {i} holds {value:.4g}, outside this deployment's images, whose bootstrap pixels lay "
                    f"in [{lo:.4g}, {hi:.4g}]: send pixels in those units (an image file of uint8 pixels is read "
                    "as pixels / 255, so send x / 255)"
                )
        if self.mean is None or self.std is None:
            return
        z = np.abs(self.transform(x).reshape(len(x), -1))
        if not (z > MAX_STANDARD_SCORE).any():
            return
        i, j = (int(v) for v in np.argwhere(z > MAX_STANDARD_SCORE)[0])
        name = repr(self.feature_names[j]) if self.feature_names else str(j)
        raise DataError(
            f"sample {i} holds {float(x.reshape(len(x), -1)[i, j]):.4g} in feature {name}, {z[i, j]:.3g} standard "
            f"deviations from the bootstrap data's mean {self.mean[j]:.4g} (std {self.std[j]:.4g}); past "
            f"{MAX_STANDARD_SCORE:g} a value is taken for a unit or encoding error, on which every training "
            "would diverge: send it in the bootstrap data's units"
        )

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Inputs as the model sees them: standardised when the contract says so."""
        if self.mean is None or self.std is None:
            return x
        shape = x.shape
        flat = x.reshape(len(x), -1)
        out = (flat - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return out.astype(np.float32).reshape(shape)

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        # value_range only where recorded: an older version of lifelong (a code rollback) refused the
        # unknown field and could serve none of the versions a newer one wrote
        return {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(self).items()
            if not (k == "value_range" and v is None)
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Contract:
        try:
            fields: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
            return cls(**fields)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"invalid deployment contract: {err}") from err

    def save(self, directory: str | Path) -> None:
        (Path(directory) / FILE).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, directory: str | Path) -> Contract | None:
        """The contract stored in an artifact directory; None for artifacts made before contracts."""
        path = Path(directory) / FILE
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
            raise CheckpointError(f"{path} is not a valid contract: {err}") from err


def check_replaces(registry: Registry, new: Contract | None, what: str, force: bool) -> None:
    """Refuse to serve ``what`` (``"v4"``, ``"this model"``) with contract ``new`` to the clients of the
    registry's champion when it would break them (see :meth:`Contract.breaks`), unless ``force``: a
    model of another schema replaced a champion silently, and every client request failed after it."""
    champion = registry.alias("champion")
    if force or champion is None or new is None:
        return
    current = Contract.load(registry.get(champion).path)
    changes = [] if current is None else current.breaks(new)
    if changes:
        raise RegistryError(
            f"{what} would break the clients of champion v{champion}: {'; '.join(changes)}. Promote it "
            'anyway with force (lifelong promote --force, "force": true over HTTP, force=True in Python) '
            "when the clients change with it"
        )
