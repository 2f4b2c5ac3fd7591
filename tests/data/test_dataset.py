"""Labels handed to from_torch / from_tensors: integer class ids in any common form, nothing else."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from lifelong.data.dataset import from_tensors, from_torch
from lifelong.errors import DataError


class Pairs(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, labels: list[Any]) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        return torch.full((3,), float(i)), self.labels[i]


@pytest.mark.parametrize(
    "label", [3, np.int64(3), np.int32(3), torch.tensor(3), torch.tensor([3]), np.array(3)]
)
def test_from_torch_takes_integer_labels_in_any_form(label: Any) -> None:
    data = from_torch(Pairs([1, label]))
    assert data.y.tolist() == [1, 3] and data.y.dtype == torch.int64


@pytest.mark.parametrize("label", [3.0, torch.tensor(3.0), np.float32(3), torch.tensor([3.0])])
def test_whole_number_float_labels_are_class_ids(label: Any) -> None:
    assert from_torch(Pairs([0, label])).y.tolist() == [0, 3]  # a label column read as float


@pytest.mark.parametrize(
    ("label", "shown"),
    [
        (3.5, "3.5"),
        (torch.tensor(3.5), "3.5"),
        (True, "True"),
        ("cat", "'cat'"),
    ],
)
def test_from_torch_refuses_other_labels_naming_the_sample(label: Any, shown: str) -> None:
    with pytest.raises(DataError, match="sample 1 has label") as e:
        from_torch(Pairs([0, label]))
    assert shown in str(e.value)
    assert "integer class ids" in str(e.value) and "map them to ints" in str(e.value)


def test_a_missing_label_is_named_missing() -> None:
    """A pandas Int64 NA, None or NaN was 'label nan (float) ... map them to ints first (int(label))'."""
    import pandas as pd

    for y in (pd.Series([1, None], dtype="Int64"), [1, None], torch.tensor([1.0, float("nan")])):
        with pytest.raises(DataError, match=r"sample 1 has no label \(missing: .*\); drop it or give it one"):
            from_tensors(torch.zeros(2, 3), y)
    with pytest.raises(DataError, match=r"sample 1 has no label"):
        from_torch(Pairs([0, float("nan")]))


def test_from_tensors_takes_numpy_integer_labels() -> None:
    data = from_tensors(torch.zeros(2, 3), [np.int64(0), np.int64(2)])
    assert data.y.tolist() == [0, 2]


@pytest.mark.parametrize(
    ("y", "shown"),
    [
        (torch.tensor([0.0, 1.5]), "sample 1 has label 1.5"),
        ([0, 1.5], "sample 1 has label 1.5"),
        ([0, True], "sample 1 has label True"),  # numpy would read it as 1
        (np.array([True, False]), "sample 0 has label True"),
        (["a", "b"], "sample 0 has label 'a'"),
        (np.array([0, "b"], dtype=object), "sample 1 has label 'b'"),
    ],
)
def test_from_tensors_refuses_other_labels_naming_the_sample(y: Any, shown: str) -> None:
    with pytest.raises(DataError, match="integer class ids") as e:
        from_tensors(torch.zeros(2, 3), y)
    assert shown in str(e.value)


def test_labels_of_another_shape_are_refused() -> None:
    with pytest.raises(DataError, match=r"one label per sample, got labels of shape \(2, 1\)"):
        from_tensors(torch.zeros(2, 3), [[0], [1]])
    with pytest.raises(DataError, match="labels must be >= 0, found -1 at sample 1"):
        from_tensors(torch.zeros(2, 3), [0, -1])


def test_label_shape_and_sign_errors_say_how_to_fix_them() -> None:
    with pytest.raises(DataError, match=r"\(a column: pass y.ravel\(\)\)"):
        from_tensors(torch.zeros(2, 3), np.array([[0], [1]]))
    with pytest.raises(DataError, match=r"one-hot or scores\? pass y.argmax\(1\)"):
        from_tensors(torch.zeros(2, 3), np.eye(2, dtype=np.int64))
    with pytest.raises(DataError, match="start at 0: remap them"):
        from_tensors(torch.zeros(2, 3), [0, -1])


def test_pandas_inputs_and_labels_are_taken_without_warnings() -> None:
    import warnings

    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [0.0, 1.0], "b": [2.0, 3.0], "label": [0, 1]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about a read-only array from a pandas column
        data = from_tensors(frame[["a", "b"]], frame["label"])
    assert data.x.tolist() == [[0.0, 2.0], [1.0, 3.0]] and data.y.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("x", "dtype"),
    [(np.array([["a"] * 4] * 6), "<U1"), (np.array([[1.0] * 4] * 6, dtype=object), "object"),
     ([["a", "b"]] * 6, "<U1"), (np.ones((6, 4), dtype=complex), "complex128")],
)  # fmt: skip
def test_features_that_are_not_real_numbers_are_refused_naming_their_dtype(x: Any, dtype: str) -> None:
    """Text features raised torch's TypeError ("can't convert np.ndarray of type numpy.str_");
    complex ones were kept and lost their imaginary part in training."""
    with pytest.raises(DataError, match=f"x has dtype {dtype}, not real numbers"):
        from_tensors(x, np.arange(6) % 2)


class Items(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """A torch dataset returning the given items as they are."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]


def test_inputs_of_different_shapes_name_the_item_and_the_fix() -> None:
    items = [(torch.zeros(3), 0), (torch.zeros(3), 1), (torch.zeros(4), 0)]
    with pytest.raises(DataError, match=r"item 2's input has shape \[4\], item 0's \[3\].*transform"):
        from_torch(Items(items))


def test_images_without_to_tensor_name_the_item_and_the_fix() -> None:
    """A torchvision dataset built without transform=ToTensor() hands out PIL images."""
    image = pytest.importorskip("PIL.Image")
    items = [(image.new("L", (8, 8)), i % 2) for i in range(4)]
    with pytest.raises(DataError, match=r"item 0's input is of type Image.*ToTensor"):
        from_torch(Items(items))


def test_avalanche_style_task_ids_are_kept() -> None:
    """The third part of an (x, y, t) item was silently dropped; it is the dataset's task ids now."""
    data = from_torch(Items([(torch.zeros(3), i % 2, torch.tensor(i // 2)) for i in range(4)]))
    assert data.t is not None and data.t.tolist() == [0, 0, 1, 1] and data.y.tolist() == [0, 1, 0, 1]
    assert from_torch(Items([(torch.zeros(3), 0), (torch.zeros(3), 1)])).t is None
    with pytest.raises(DataError, match="item 1 has 2 parts, item 0 has 3"):
        from_torch(Items([(torch.zeros(3), 0, 0), (torch.zeros(3), 1)]))
    with pytest.raises(DataError, match="task id 'a.png'"):  # a path, not a task id
        from_torch(Items([(torch.zeros(3), 0, "a.png")]))
    with pytest.raises(DataError, match=r"not an \(input, label\) pair or an \(input, label, task id\)"):
        from_torch(Items([(torch.zeros(3), 0, 0, 0)]))


def test_a_frame_names_the_features_and_the_names_follow_the_data() -> None:
    import pandas as pd

    from lifelong.data.dataset import concat

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [2.0, 3.0, 4.0]})
    data = from_tensors(frame, [0, 1, 1])
    assert data.feature_names == ("a", "b")
    assert data.subset(torch.tensor([0, 2])).feature_names == ("a", "b")
    assert data.with_task(1).feature_names == ("a", "b")
    assert concat([data, from_tensors(frame.to_numpy(), [0, 1, 0])]).feature_names == ("a", "b")
    with pytest.raises(DataError, match="name their features differently"):
        concat([data, from_tensors(frame[["b", "a"]], [0, 1, 1])])
    with pytest.raises(DataError, match="3 feature names for samples of shape"):
        data.replace(feature_names=("a", "b", "c"))
    with pytest.raises(DataError, match=r"feature names \['a'\] appear more than once"):
        data.replace(feature_names=("a", "a"))
