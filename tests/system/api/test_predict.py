"""POST /v1/predict against a real server: bad inputs get a 4xx; class and feature names; probabilities."""

from __future__ import annotations

import gzip

import httpx
import pytest
import torch
from torch import nn

from lifelong.errors import DataError
from lifelong.learn import models
from lifelong.learn.learner import Learner
from lifelong.learn.models import create_model, register_model
from lifelong.system.app import create_app
from lifelong.system.service import System
from lifelong.system.settings import Settings
from lifelong.system.store import Store
from tests.system._models import DATA, error_of, trained
from tests.system._serve import running
from tests.system._server import AUTH, FEATURES, NAMES, TOKEN, Server, sample


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"{not json", 400, "MalformedJSON"),
        (b'{"inputs": [[NaN, 0, 0, 0, 0, 0, 0, 0]]}', 422, "DataError"),
        (b'{"inputs": [[1e39, 0, 0, 0, 0, 0, 0, 0]]}', 422, "DataError"),
        (b'{"inputs": [[0, 0, 0]]}', 422, "DataError"),
        (b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, 0], [0]]}', 422, "DataError"),
        (b'{"inputs": [["a", 0, 0, 0, 0, 0, 0, 0]]}', 422, "DataError"),
        (b'{"inputs": [1, 2]}', 422, "DataError"),
        (b'{"inputs": []}', 422, "ValidationError"),
        (b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, 0]], "extra": 1}', 422, "ValidationError"),
        (b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, 0]], "ids": ["a", "b"]}', 422, "DataError"),
        (b'{"inputs": ' + str([[0] * 8] * 17).encode() + b"}", 413, "InputTooLargeError"),
        (b'{"inputs": ' + str([[0.5] * 8] * 600).encode() + b"}", 413, "BodyTooLargeError"),
    ],
)
def test_bad_predict_requests_get_a_4xx_and_the_server_keeps_serving(
    server: Server, body: bytes, status: int, kind: str
) -> None:
    with server.client() as c:
        r = c.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
        assert error_of(r, status) == kind
        assert c.post("/v1/predict", json={"inputs": sample()}).status_code == 200


@pytest.mark.parametrize(
    ("body", "headers", "status", "kind", "says"),
    [  # was: 422 "Input should be a valid dictionary", and 400 "There was an error parsing the body"
        (b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, 0]]}', {"Content-Type": "text/plain"}, 415,
         "UnsupportedMediaType", "Content-Type: application/json"),
        (b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, 0]]}', {}, 415, "UnsupportedMediaType", "sent with no Content-Type"),
        (b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, 0]]}', {"Content-Type": "text/json"}, 415,  # was a 422: not a dict
         "UnsupportedMediaType", "sent as 'text/json'"),
        (gzip.compress(b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, 0]]}', mtime=0),
         {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400, "MalformedJSON", "uncompressed"),
        (b"[" * 15_000, {"Content-Type": "application/json"}, 400, "MalformedJSON", "nested"),
    ],
)  # fmt: skip
def test_a_body_that_is_not_plain_json_says_how_to_send_it(
    server: Server, body: bytes, headers: dict[str, str], status: int, kind: str, says: str
) -> None:
    with server.client() as c:
        r = c.post("/v1/predict", content=body, headers=headers)
        assert error_of(r, status) == kind and says in r.json()["error"]["message"], r.text


def test_finite_inputs_that_overflow_the_models_outputs_get_a_422(server: Server) -> None:
    w = trained(0).model.features[1].weight[0]  # every term of hidden unit 0 pushed the same way
    with server.client() as c:
        r = c.post("/v1/predict", json={"inputs": [(3e38 * w.sign()).tolist()]})
        assert error_of(r, 422) == "DataError" and "values too large" in r.json()["error"]["message"]


def test_predictions_can_carry_probabilities_by_class(server: Server) -> None:
    with server.client() as c:
        plain = c.post("/v1/predict", json={"inputs": sample(2)}).json()["predictions"]
        assert "probabilities" not in plain[0]
        preds = c.post("/v1/predict", json={"inputs": sample(2), "probabilities": True}).json()["predictions"]
        for p in preds:
            assert list(p["probabilities"]) == ["0", "1", "2", "3"]
            assert list(p["probabilities"].values()) == p["scores"] and abs(sum(p["scores"]) - 1) < 1e-5
            assert max(p["probabilities"], key=p["probabilities"].get) == str(p["label"])


def test_class_names_come_back_in_predictions_and_are_accepted_as_labels(named: Server) -> None:
    with named.client() as c, Store(data_dir=named.data_dir) as store:
        preds = c.post("/v1/predict", json={"inputs": sample(3), "probabilities": True}).json()["predictions"]
        assert [p["class_name"] for p in preds] == [NAMES[p["label"]] for p in preds]
        assert set(preds[0]["probabilities"]) == set(NAMES)
        labelled = store.count_samples(labelled_only=True)
        items = [
            {"prediction_id": p["id"], "label": name} for p, name in zip(preds, ["nebbiolo", "barbera", 2])
        ]
        assert c.post("/v1/feedback", json={"feedback": items}).status_code == 204
        assert store.samples(labelled_only=True).y.tolist()[-3:] == [3, 0, 2]  # names stored as indices
        assert store.count_samples(labelled_only=True) == labelled + 3
        (sid,) = c.post("/v1/samples", json={"inputs": sample(1), "labels": ["dolcetto"]}).json()["ids"]
        assert c.patch(f"/v1/samples/{sid}", json={"label": "barolo"}).json() == {"id": sid, "label": 1}
        # an unknown name is refused with the valid ones, and nothing of the batch is stored
        before = store.count_samples(labelled_only=True)
        r = c.post(
            "/v1/feedback",
            json={"feedback": [items[0], {"prediction_id": preds[1]["id"], "label": "chianti"}]},
        )
        assert error_of(r, 422) == "DataError"
        message = r.json()["error"]["message"]
        assert "item 1" in message and "'chianti'" in message and "1 (barolo)" in message
        assert store.count_samples(labelled_only=True) == before
        # a malformed batch item is reported as a batch item, not as a malformed single feedback
        r = c.post("/v1/feedback", json={"feedback": [{"prediction_id": preds[0]["id"], "label": 1.5}]})
        assert error_of(r, 422) == "ValidationError" and "FeedbackItem" not in r.json()["error"]["message"]
        assert r.json()["error"]["message"].startswith("body.feedback.0.label")
        # a wrong shape is named in the client's words (was: body.item.prediction_id, pydantic's union tag)
        r = c.post("/v1/feedback", json={"items": [items[0]]})
        assert error_of(r, 422) == "ValidationError"
        assert r.json()["error"]["message"] == (
            "body.prediction_id: Field required; body.label: Field required; body.items: Extra inputs are not permitted"
        )
        # a whole-number float is its index, as in the library (a label column read as float)
        r = c.post("/v1/feedback", json={"feedback": [{"prediction_id": preds[0]["id"], "label": 2.0}]})
        assert r.status_code == 204 and store.samples(labelled_only=True).y.tolist()[-4] == 2
        assert r.content == b"" and "content-type" not in r.headers  # no body, no content type


def test_inputs_may_be_sent_by_feature_name(named: Server) -> None:
    rows = sample(2)
    records = [dict(reversed(list(zip(FEATURES, row)))) for row in rows]  # any key order
    with named.client() as c:
        by_position = c.post("/v1/predict", json={"inputs": rows}).json()["predictions"]
        by_name = c.post("/v1/predict", json={"inputs": records}).json()["predictions"]
        assert [p["scores"] for p in by_name] == [p["scores"] for p in by_position]
        assert len(c.post("/v1/samples", json={"inputs": records, "labels": [0, 1]}).json()["ids"]) == 2
        r = c.post("/v1/predict", json={"inputs": [rows[0], records[1]]})  # a list first, then an object
        assert (
            error_of(r, 422) == "DataError"
            and "send every sample the same way" in r.json()["error"]["message"]
        )
        r = c.post("/v1/predict", json={"inputs": [{"x0": 1.0}]})
        assert error_of(r, 422) == "DataError" and "sample 0 lacks 'x1'" in r.json()["error"]["message"]
        r = c.post("/v1/predict", json={"inputs": [{**records[0], "x2": "high"}]})
        assert (
            error_of(r, 422) == "DataError" and "holds 'high' in feature 'x2'" in r.json()["error"]["message"]
        )


def test_class_names_are_refused_where_the_classes_have_none(server: Server) -> None:
    with server.client() as c:
        r = c.post("/v1/samples", json={"inputs": sample(1), "labels": ["cat"]})
        assert (
            error_of(r, 422) == "DataError"
            and "have none; send the class index" in r.json()["error"]["message"]
        )
        assert "class_name" not in c.post("/v1/predict", json={"inputs": sample(1)}).json()["predictions"][0]


def test_a_models_own_failure_is_a_500_and_its_refusal_a_422(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model's forward that raises on well-formed inputs is the model's fault, logged, not blamed on
    the client as a shape (the router said 'cannot take inputs of shape (8,)' for any RuntimeError);
    a model refusing an input raises DataError and the client reads its message in a 422."""
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))

    @register_model("picky")
    class Picky(nn.Module):
        def __init__(self, in_features: int, n_classes: int) -> None:
            super().__init__()
            self.classifier = nn.Linear(in_features, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool((x[:, 0] > 1e3).any()):
                raise DataError("inputs: x0 above 1000 is a sensor fault; send calibrated readings")
            if bool((x[:, 0] < -1e3).any()):
                raise RuntimeError("picky forward broke")
            return self.classifier(x)

    learner = Learner(create_model("picky", in_features=8, n_classes=4), lr=0.1)
    learner.partial_fit(DATA.train.x, DATA.train.y)
    settings = Settings(data_dir=tmp_path, token=TOKEN, poll_seconds=0.2)
    with System(settings) as setup:
        setup.promote(setup.bootstrap(learner))
    with running(create_app(settings)) as url:

        def post(x0: float) -> httpx.Response:  # its own connection: uvicorn closes one after a 500
            body = {"inputs": [[x0] + sample()[0][1:]]}
            return httpx.post(f"{url}/v1/predict", json=body, headers=AUTH, timeout=10)

        assert post(0.5).status_code == 200
        refused = post(5e3)
        assert error_of(refused, 422) == "DataError" and "sensor fault" in refused.json()["error"]["message"]
        broken = post(-5e3)
        assert error_of(broken, 500) == "InternalError" and "shape" not in broken.text
        assert post(0.5).status_code == 200
