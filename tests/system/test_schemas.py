"""The HTTP boundary's validation: labels, batches and inputs refused with a message that says what
is wrong in the client's terms (the full request path is tested in test_app.py)."""

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from lifelong.errors import DataError
from lifelong.system.schemas import (
    MAX_LABEL,
    FeedbackRequest,
    InputTooLargeError,
    Label,
    PredictRequest,
    to_array,
)

LABEL = TypeAdapter(Label)
FEEDBACK = TypeAdapter(FeedbackRequest)


@pytest.mark.parametrize(
    ("given", "read"), [(3, 3), (2.0, 2), (0, 0), ("cat", "cat"), (MAX_LABEL, MAX_LABEL)]
)
def test_a_label_is_a_class_index_or_name(given: object, read: object) -> None:
    assert LABEL.validate_python(given) == read


@pytest.mark.parametrize(
    ("given", "why"),
    [
        (2.5, "class index .* or a class name"),  # fractional: refused, not rounded
        (True, "class index .* or a class name"),  # a bool is not a class
        (-1, "from 0 to"),
        (MAX_LABEL + 1, "from 0 to"),  # beyond what the database stores: a 422, not a 500
        ("", "1 to .* characters"),
        ("a\x00b", "NUL"),
        (None, "class index .* or a class name"),
    ],
)
def test_a_label_that_is_neither_is_refused_saying_why(given: object, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        LABEL.validate_python(given)


def test_a_null_among_a_requests_labels_says_they_are_all_or_none() -> None:
    """It read "must be a class index", hiding that one request cannot mix labelled and unlabelled samples."""
    from lifelong.system.schemas import SamplesRequest

    with pytest.raises(
        ValidationError, match="sample 1's is null; send samples without a label in a request"
    ):
        SamplesRequest.model_validate({"inputs": [[1, 2], [3, 4]], "labels": [1, None]})


def test_feedback_is_one_item_or_a_batch_and_a_bad_batch_item_is_reported_as_such() -> None:
    assert FEEDBACK.validate_python({"prediction_id": "p1", "label": 1}).label == 1
    batch = FEEDBACK.validate_python({"feedback": [{"prediction_id": "p1", "label": "cat"}]})
    assert batch.feedback[0].label == "cat"
    with pytest.raises(ValidationError) as refused:
        FEEDBACK.validate_python({"feedback": [{"prediction_id": "p1", "label": 1.5}]})
    (error,) = refused.value.errors()
    assert error["loc"][-3:] == ("feedback", 0, "label")  # the batch's item, not a bad single item
    with pytest.raises(ValidationError, match="at least 1 item"):
        FEEDBACK.validate_python({"feedback": []})


def test_a_request_with_an_unknown_field_or_no_inputs_is_refused() -> None:
    assert len(PredictRequest.model_validate({"inputs": [[1, 2]]}).inputs) == 1
    with pytest.raises(ValidationError, match="non-empty list"):
        PredictRequest.model_validate({"inputs": []})
    with pytest.raises(ValidationError, match="extra"):
        PredictRequest.model_validate({"inputs": [[1, 2]], "input": [[1, 2]]})  # a typo is not ignored


def test_to_array_makes_a_float32_batch() -> None:
    x = to_array([[1, 2], [3.5, True]], max_batch=4)
    assert x.dtype == np.float32 and x.tolist() == [[1.0, 2.0], [3.5, 1.0]]
    assert to_array(np.zeros((2, 1, 3)), max_batch=2).shape == (2, 1, 3)
    assert to_array([[2**64, 1]], max_batch=1).tolist() == [
        [2.0**64, 1.0]
    ]  # was "only numbers", at no position


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "non-empty list"),
        ([[1, 2], [3]], r"ragged: .*sample 0 has shape \[2\], sample 1 has \[1\]"),
        ([[1, 2], {"a": 1}], "sample 1 is an object of named features"),
        ([[1, 2], [3, "x"]], r"only numbers: sample 1 holds 'x' at \[1\]"),
        ([[1, 2], [3, None]], r"only numbers: sample 1 holds None at \[1\]"),
        ([[1, 2], [1, float("nan")]], r"NaN or infinite values .*: sample 1 holds nan at \[1\]"),
        ([[1e39]], r"beyond float32 range\): sample 0 holds 1e\+39 at \[0\]"),
        ([[10**400]], r"beyond float32 range \(integers of hundreds of digits\)"),
        ([1, 2, 3], r"batch of samples, got shape \(3,\); wrap one sample as \[sample\]"),
    ],
)
def test_to_array_refuses_bad_inputs_in_the_clients_terms(inputs: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        to_array(inputs, max_batch=8)


def test_a_non_finite_value_is_named_by_its_feature_where_the_columns_have_names() -> None:
    """A string was named by its column ("in feature 'income'"), NaN by its position ("at [5]", a trial)."""
    with pytest.raises(DataError, match=r"sample 1 holds nan in feature 'late'$"):
        to_array([[1, 2], [1, float("nan")]], max_batch=8, feature_names=("income", "late"))
    with pytest.raises(DataError, match=r"sample 0 holds inf at \[1, 0\]"):  # an image's pixel: no name
        to_array([[[1.0], [float("inf")]]], max_batch=8, feature_names=("a", "b"))


def test_a_batch_over_the_limit_is_its_own_error_for_a_413() -> None:
    with pytest.raises(InputTooLargeError, match="batch of 3 samples exceeds the limit of 2; split it"):
        to_array([[1], [2], [3]], max_batch=2)
