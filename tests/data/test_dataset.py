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
        (float("nan"), "nan"),
        (True, "True"),
        ("cat", "'cat'"),
    ],
)
def test_from_torch_refuses_other_labels_naming_the_sample(label: Any, shown: str) -> None:
    with pytest.raises(DataError, match="sample 1 has label") as e:
        from_torch(Pairs([0, label]))
    assert shown in str(e.value)
    assert "integer class ids" in str(e.value) and "map them to ints" in str(e.value)


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
