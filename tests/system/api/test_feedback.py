"""POST /v1/feedback: a batch is all or nothing and labels the inputs it names."""

from __future__ import annotations

from lifelong.system.store import Store
from tests.system._models import error_of
from tests.system._server import Server, sample


def test_batch_feedback_is_all_or_nothing_and_labels_the_inputs(server: Server) -> None:
    with server.client() as c, Store(data_dir=server.data_dir) as store:
        preds = c.post("/v1/predict", json={"inputs": sample(3)}).json()["predictions"]
        labelled = store.count_samples(labelled_only=True)
        items = [{"prediction_id": p["id"], "label": i} for i, p in enumerate(preds)]
        r = c.post("/v1/feedback", json={"feedback": [*items, {"prediction_id": "nope", "label": 0}]})
        assert error_of(r, 404) == "NotFoundError" and "item 3" in r.json()["error"]["message"]
        assert store.count_samples(labelled_only=True) == labelled  # nothing stored
        assert c.post("/v1/feedback", json={"feedback": items}).status_code == 204
        assert store.count_samples(labelled_only=True) == labelled + 3
        assert store.samples(labelled_only=True).y.tolist()[-3:] == [0, 1, 2]


def test_inputs_sent_under_one_client_id_keep_their_own_labels(server: Server) -> None:
    """Both feedback calls answered 204 and the second label overwrote the first: the feedback table
    was keyed by the client's id, which routes one user's requests alike and so repeats."""
    with server.client() as c, Store(data_dir=server.data_dir) as store:
        first, second = (
            c.post("/v1/predict", json={"inputs": sample(1), "ids": ["user-42"]}).json()["predictions"][0]
            for _ in range(2)
        )
        for p, label in ((first, 0), (second, 1)):
            assert c.post("/v1/feedback", json={"prediction_id": p["id"], "label": label}).status_code == 204
        truth = {p.prediction_id: p.label for p in store.labelled_predictions()}
        assert (truth[first["id"]], truth[second["id"]]) == (0, 1)


def test_a_body_that_is_not_an_object_is_shown_the_shape_to_send(server: Server) -> None:
    """A bare list of feedback read "body: Input should be a valid dictionary or object to extract fields from"."""
    with server.client() as c:
        r = c.post("/v1/feedback", json=[{"prediction_id": "x", "label": 1}])
        assert error_of(r, 422) == "ValidationError"
        assert r.json()["error"]["message"].startswith('the body must be a JSON object: {"prediction_id"')
        r = c.post("/v1/predict", json=[[0.0] * 8])
        assert (
            error_of(r, 422) == "ValidationError"
            and '{"inputs": [[...], ...]}' in r.json()["error"]["message"]
        )
