"""Request and response bodies of the HTTP API, and the validation of inputs at that boundary.

Inputs arrive as JSON nested lists of numbers and become a float32 array here, checked for shape
(against the serving model's input shape), finiteness and batch size before any model sees them.
Nothing user-supplied is ever unpickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    WithJsonSchema,
    field_validator,
)

from lifelong.errors import DataError
from lifelong.system.contract import MAX_CLASS_NAME, unstorable

_EXAMPLE = [[0.1, -1.2, 0.3, 2.0, 0.0, 0.5, -0.7, 1.1]]


class InputTooLargeError(DataError):
    """A request carries more samples or bytes than the server accepts (HTTP 413)."""


def _utf8(text: str) -> str:
    """Text a store cannot keep (a lone surrogate, a NUL) is a 422 here, never a database error."""
    if (problem := unstorable(text)) is not None:
        raise ValueError(problem)
    return text


# Bounded types: a client integer beyond what the database stores is a 422, never a 500.
MAX_LABEL = 2**31 - 1
MAX_REASON = 200  # characters of a training request's reason (HTTP and `lifelong train`)
MAX_VERSION = 2**31 - 1
MAX_ID = 2**63 - 1


def _label(value: Any) -> int | str:
    """A class index, or a class name (checked against the deployment's names by its contract).

    A whole-number float (``1.0``: a label column read as float) is its index, as in the library
    (:func:`lifelong.data.dataset.class_ids`); a fractional one is refused, not rounded."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_LABEL:
            raise ValueError(f"a class index is an integer from 0 to {MAX_LABEL}")
        return value
    if isinstance(value, str):
        if not 0 < len(value) <= MAX_CLASS_NAME:
            raise ValueError(f"a class name has 1 to {MAX_CLASS_NAME} characters")
        return _utf8(value)
    raise ValueError("must be a class index (0, 1, ...; 2.0 reads as 2) or a class name")


Label = Annotated[
    int | str,
    PlainValidator(_label),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_LABEL},
                {"type": "string", "minLength": 1, "maxLength": MAX_CLASS_NAME},
            ],
            "description": "a class index (0, 1, ...) or, where the classes have names, a class name",
        }
    ),
]
Version = Annotated[int, Field(ge=1, le=MAX_VERSION)]
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
Text64 = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_utf8)]
MAX_FEEDBACK = 10_000  # labels per batch request


def _batch(value: Any) -> Any:
    """A non-empty JSON list, or the array the off-loop parser already made of one (api/body.py)."""
    if isinstance(value, np.ndarray) and value.ndim >= 1 and len(value):
        return value
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list with one entry per sample")
    return value


Inputs = Annotated[
    Any,
    PlainValidator(_batch),
    WithJsonSchema(
        {
            "type": "array",
            "minItems": 1,
            "items": {},
            "description": (
                "a batch: one nested list of numbers per sample, shaped like the model's input, or one "
                "object per sample keyed by feature name where the bootstrap data named its columns"
            ),
            "examples": [_EXAMPLE],
        }
    ),  # fmt: skip
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictRequest(_Body):
    inputs: Inputs
    ids: list[Text64] | None = Field(
        default=None, description="optional request id per sample; the same id is always routed the same way"
    )
    probabilities: bool = Field(
        default=False,
        strict=True,  # true or false: "yes", 1 or "false" would be guessed at
        description="also return each prediction's class probabilities keyed by class (name)",
    )


class Prediction(BaseModel):
    id: str = Field(..., description="prediction id; send it back with POST /v1/feedback")
    request_id: str | None = Field(
        default=None, description="the request id sent for this sample (ids), where one was sent"
    )
    label: int
    class_name: str | None = Field(
        default=None, description="the label's class name, where the deployment's classes have names"
    )
    scores: list[float] = Field(..., description="softmax over the model's outputs; index = label")
    version: int = Field(..., description="model version that answered")
    variant: Literal["champion", "canary"]
    probabilities: dict[str, float] | None = Field(
        default=None,
        description='only with "probabilities": true; the same numbers keyed by class name (or label)',
    )


class PredictResponse(BaseModel):
    predictions: list[Prediction]


class FeedbackItem(_Body):
    prediction_id: Text64 = Field(..., description="the id a prediction returned")
    label: Label = Field(..., description="the true class")


class FeedbackBatch(_Body):
    feedback: list[FeedbackItem] = Field(..., min_length=1, max_length=MAX_FEEDBACK)


def _feedback_shape(value: Any) -> str:
    """Which body this is, so a bad batch item is reported as that, not as a bad single item."""
    return "batch" if isinstance(value, dict) and "feedback" in value else "item"


UNION_TAGS = frozenset({"item", "batch"})  # pydantic puts them in an error's location: not the client's words

FeedbackRequest = Annotated[
    Annotated[FeedbackItem, Tag("item")] | Annotated[FeedbackBatch, Tag("batch")],
    Discriminator(_feedback_shape),
]


class SamplesRequest(_Body):
    inputs: Inputs
    labels: list[Label] | None = Field(default=None, description="one class per sample, if known")

    @field_validator("labels", mode="before")
    @classmethod
    def _all_or_none(cls, labels: Any) -> Any:
        """A null among labels: one request's samples are all labelled or all not."""
        if isinstance(labels, list) and None in labels:
            raise ValueError(
                f"labels give every sample's class, and sample {labels.index(None)}'s is null; send samples "
                "without a label in a request of their own, without labels"
            )
        return labels


class SamplesResponse(BaseModel):
    ids: list[int]


class SampleUpdate(_Body):
    label: Label | None = Field(..., description="the corrected class, or null to unlabel the sample")


class SampleOut(BaseModel):
    id: int
    label: int | None


class TrainRequest(_Body):
    reason: Annotated[str, AfterValidator(_utf8)] = Field(
        default="requested over HTTP", min_length=1, max_length=MAX_REASON, description="kept in the event"
    )


class TrainAccepted(BaseModel):
    status: Literal["queued"] = "queued"
    event_id: int = Field(..., description="the train_request event; the worker picks it up at its next poll")
    worker: bool = Field(
        ...,
        description="whether a worker holds the lease now; false: none started, or it stopped, and the "
        "request waits in the store until a worker (`lifelong worker` or `lifelong up`) runs on it",
    )
    message: str = Field(..., description="what happens to the request next, in words")


class Readiness(BaseModel):
    ready: bool
    reasons: list[str]


class ModelInfo(BaseModel):
    version: int
    parent: int | None
    created: float
    strategy: str
    window: list[int] | None  # first and last sample id trained on
    params: dict[str, Any]  # the policy, gate, mode and the deployment contract it was trained under
    metrics: dict[str, Any]  # the gate's figures
    sha256: str  # of the artifact, checked before it is loaded
    collected: bool  # its artifact was deleted by retention (--keep-versions): listed, never loaded
    aliases: list[str]


class PromoteRequest(_Body):
    alias: Literal["champion", "canary", "shadow"] = "champion"
    force: bool = Field(
        False,
        strict=True,  # it skips a safety check: "yes", 1 or "false" were read as true
        description="promote a version whose inputs or classes differ from the champion's",
    )


class RollbackRequest(_Body):
    alias: Literal["champion", "canary", "shadow"] = "champion"


class RollbackResponse(BaseModel):
    alias: str
    version: int | None = Field(..., description="the version the alias points at now (None: unset)")
    aliases: dict[str, AliasInfo] = Field(..., description="every alias after the move, as promote answers")


class DeploymentRequest(_Body):
    version: Annotated[Version, Field(strict=True)]  # a number, as promote's path takes it
    mode: Literal["canary", "shadow"] = "canary"
    share: float = Field(
        default=0.1,
        strict=True,  # a number: "0.5" was taken as one
        gt=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="canary traffic share, or shadow mirroring share; below 1 for a canary judged by "
        "the A/B test (canary test 'ab'), which needs champion traffic to compare it with (else 422)",
    )
    force: bool = Field(
        False, strict=True, description="a canary whose inputs or classes differ from the champion's"
    )


class AliasInfo(BaseModel):
    version: int
    share: float | None


class Deployments(BaseModel):
    aliases: dict[str, AliasInfo]


class CanaryDecision(BaseModel):
    decision: Literal["none", "wait", "promote", "rollback"]
    test: Literal["threshold", "ab"] | None = None
    p_value: float | None = Field(
        default=None, description="ab test: one-sided p-value that the canary is better"
    )
    canary: int | None = None
    champion: int | None = None
    canary_accuracy: float | None = None
    champion_accuracy: float | None = None
    canary_labelled: int = 0
    champion_labelled: int = 0


class DriftCheckOut(BaseModel):
    """One block of inputs the data-drift test judged (``GET /v1/drift/checks``)."""

    id: int
    ts: float
    version: int | None
    monitor: str
    first_id: int
    last_id: int
    score: float | None
    threshold: float | None
    p_value: float | None
    drift: bool
    drifted: int | None = Field(default=None, description="features the test flagged in this block")


class EventOut(BaseModel):
    id: int
    ts: float
    kind: str
    payload: dict[str, Any]


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def to_array(inputs: Any, max_batch: int, feature_names: Sequence[str] | None = None) -> np.ndarray:
    """Turn a JSON batch into float32 [B, ...]; raise a DataError that says what is wrong (naming the
    feature, where the deployment's columns have names).

    The sample shape is the deployment contract's to check (:meth:`Contract.check_inputs`, for
    predictions and samples alike), not this function's."""
    if not isinstance(inputs, list | np.ndarray) or len(inputs) == 0:
        raise DataError("inputs must be a non-empty list with one entry per sample")
    if len(inputs) > max_batch:
        raise InputTooLargeError(f"batch of {len(inputs)} samples exceeds the limit of {max_batch}; split it")
    try:
        raw = np.asarray(inputs)
    except ValueError as err:  # ragged nesting
        raise DataError(
            f"inputs are ragged: every sample must have the same shape ({_ragged(inputs)})"
        ) from err
    if raw.dtype.kind not in "fiub":
        if where := _first_non_number(inputs):
            raise DataError(f"inputs must hold only numbers{where}")
        try:  # all numbers: integers beyond 64 bits made it objects
            raw = np.asarray(inputs, dtype=np.float64)
        except OverflowError as err:  # beyond float64 too (10**400)
            raise DataError(
                "inputs contain values beyond float32 range (integers of hundreds of digits)"
            ) from err
    with np.errstate(over="ignore"):  # overflow to inf is caught just below
        x = raw.astype(np.float32)
    if not np.isfinite(x).all():
        where = np.argwhere(~np.isfinite(x))[0].tolist()  # the first bad value, as the others are named
        at = f": sample {where[0]} holds {float(raw[tuple(where)])} at {where[1:]}" if len(where) > 1 else ""
        if len(where) == 2 and feature_names is not None and where[1] < len(feature_names):
            at = (
                f": sample {where[0]} holds {float(raw[tuple(where)])} in feature {feature_names[where[1]]!r}"
            )
        raise DataError(f"inputs contain NaN or infinite values (or values beyond float32 range){at}")
    if x.ndim < 2:
        raise DataError(
            f"inputs must be a batch of samples, got shape {x.shape}; wrap one sample as [sample]"
        )
    return x


def _first_non_number(inputs: Sequence[Any] | np.ndarray) -> str:
    """Where the first value that is not a number is, in the client's terms (on the error path only)."""

    def walk(value: Any, at: list[int]) -> str | None:
        if isinstance(value, list | tuple | np.ndarray):
            return next(
                (found for i, v in enumerate(value) if (found := walk(v, [*at, i])) is not None), None
            )
        if isinstance(value, int | float | np.number | np.bool_):  # true/false count as 1/0, as numpy does
            return None
        value = value.item() if isinstance(value, np.generic) else value
        return f": sample {at[0]} holds {value!r} at {at[1:]}" if at else f": got {value!r}"

    return walk(inputs, []) or ""


def _ragged(inputs: Sequence[Any] | np.ndarray) -> str:
    """Where a ragged batch first differs, in the client's terms (numpy's message names its internals)."""
    first = None
    for i, sample in enumerate(inputs):
        if isinstance(sample, dict):
            return (
                f"sample {i} is an object of named features, sample 0 a list; send every sample the same way"
            )
        try:
            shape = list(np.asarray(sample).shape)
        except ValueError:
            return f"sample {i} is ragged itself"
        if first is None:
            first = shape
        elif shape != first:
            return f"sample 0 has shape {first}, sample {i} has {shape}"
    return "the samples nest differently"
