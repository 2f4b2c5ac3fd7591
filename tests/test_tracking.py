"""MLflow tracking against a real MLflow SQLite store, read back through MLflow's own client."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="MLflow is not installed; pip install 'lifelong[tracking]'")
pytest.importorskip("alembic", reason="MLflow's SQL store needs alembic; pip install 'lifelong[tracking]'")

from mlflow import MlflowClient  # noqa: E402

from lifelong.checks import toy_model, toy_scenario  # noqa: E402
from lifelong.learn import Learner  # noqa: E402
from lifelong.strategies import EWC, Replay  # noqa: E402
from lifelong.tracking import MLflowLogger, log_training_attempt  # noqa: E402


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for the module: creating its schema takes seconds; each test uses its own experiment."""
    return tmp_path_factory.mktemp("mlflow")


def _uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


def _runs(uri: str, experiment: str) -> list:
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(experiment)
    return c.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def test_fit_is_one_run_with_params_curves_and_artifacts(store_dir: Path, tmp_path: Path) -> None:
    uri = _uri(store_dir)
    logger = MLflowLogger(uri, run_name="toy", params={"benchmark": "toy", "strategy": "replay+ewc"})
    learner = Learner(toy_model(), [Replay(20), EWC(lam=5.0)], lr=0.1, batch_size=16, callbacks=[logger])
    result = learner.fit(toy_scenario())
    (run,) = _runs(uri, "lifelong")
    assert run.info.run_id == logger.run_id_ and run.info.status == "FINISHED"
    assert run.info.run_name == "toy"
    p = run.data.params
    assert p["strategies"] == "replay+ewc" and p["ewc.lam"] == "5.0" and p["replay.buffer_size"] == "20"
    assert (
        p["lr"] == "0.1" and p["scenario"] == "class" and p["experiences"] == "2" and p["benchmark"] == "toy"
    )
    m = run.data.metrics  # the latest value of each metric
    assert m["acc"] == pytest.approx(result.metrics["acc"]) and m["bwt"] == pytest.approx(
        result.metrics["bwt"]
    )
    for key in ("forgetting", "negative_flip_rate", "train_seconds", "buffer_bytes", "peak_rss_mb"):
        assert key in m
    assert m["buffer_bytes"] > 0
    c = MlflowClient(uri)
    history = c.get_metric_history(run.info.run_id, "acc_seen")  # ACC after each experience
    assert [h.step for h in history] == [0, 1]
    expected = [sum(row[: i + 1]) / (i + 1) for i, row in enumerate(result.accuracy_matrix)]
    assert [h.value for h in history] == pytest.approx(expected)
    assert [h.step for h in c.get_metric_history(run.info.run_id, "train_loss")] == [0, 1]
    files = {f.path for f in c.list_artifacts(run.info.run_id)} | {
        f.path for f in c.list_artifacts(run.info.run_id, "plots")
    }
    assert "result.json" in files and "plots/matrix-toy-replay+ewc.png" in files
    local = Path(c.download_artifacts(run.info.run_id, "result.json", str(tmp_path / "dl")))
    assert json.loads(local.read_text())["accuracy_matrix"] == result.accuracy_matrix
    # artifacts live beside the database, not in the working directory
    assert (store_dir / "mlartifacts").is_dir()


def test_training_attempts_are_runs_tagged_with_the_version(store_dir: Path) -> None:
    uri = _uri(store_dir)
    passed = {"passed": True, "reasons": [], "reason": "data_drift", "mode": "finetune", "policy": "continual",
              "parent": 3, "window": [101, 400], "version": 4, "train_cpu_seconds": 1.5,
              "figures": {"new_accuracy": 0.91, "old_accuracy": 0.88, "flip_rate": 0.02, "latency_ms": 0.4,
                          "size_mb": 0.1, "n_old": 0}}  # fmt: skip
    refused = {**passed, "passed": False, "reasons": ["old accuracy fell 0.12 > 0.05"], "version": None,
               "figures": {**passed["figures"], "old_accuracy": 0.76, "missing": None}}  # fmt: skip
    skipped = {"passed": False, "trained": False, "reasons": ["window too small: 3 labelled samples"],
               "reason": "requested", "parent": 3, "window": None, "version": None, "figures": {}}  # fmt: skip
    ids = [
        log_training_attempt(uri, passed),
        log_training_attempt(uri, refused),
        log_training_attempt(uri, skipped),
    ]
    assert all(ids)
    by_id = {r.info.run_id: r for r in _runs(uri, "lifelong-system")}  # start times may tie to the ms
    ok, bad, small = (by_id[i] for i in ids)
    assert (ok.data.tags["trained"], bad.data.tags["trained"], small.data.tags["trained"]) == (
        "true",
        "true",
        "false",
    )
    assert small.info.run_name == "not trained (parent v3)" and bad.info.run_name == "refused (parent v3)"
    assert ok.data.tags["registry_version"] == "4" and ok.data.tags["passed"] == "true"
    assert ok.data.params == {"window": "101-400", "parent": "3", "mode": "finetune", "reason": "data_drift",
                              "policy": "continual"}  # fmt: skip
    assert ok.data.metrics["old_accuracy"] == 0.88 and ok.data.metrics["train_cpu_seconds"] == 1.5
    assert bad.data.tags["registry_version"] == "none" and bad.data.tags["passed"] == "false"
    assert "old accuracy fell" in bad.data.tags["reasons"] and "missing" not in bad.data.metrics


def test_unreachable_tracking_server_is_a_warning_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow 3's default store is ./mlflow.db: nothing may create it here
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert log_training_attempt(f"http://127.0.0.1:{port}", {"passed": False, "figures": {}}) is None
    assert "could not log the training attempt" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_a_file_store_mlflow_refuses_is_a_config_error_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lifelong.errors import ConfigError

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(ConfigError, match="sqlite:///mlflow.db, or set MLFLOW_ALLOW_FILE_STORE=true"):
        MLflowLogger((tmp_path / "mlruns").as_uri())  # refused when built (was: once fit had begun)


def test_a_logger_used_for_a_second_fit_logs_a_second_run(store_dir: Path) -> None:
    """The second fit wrote into the first, finished run (its steps restarting at 0)."""
    uri = _uri(store_dir)
    logger = MLflowLogger(uri, experiment="twice", plots=False)
    learner = Learner(toy_model(), lr=0.1, batch_size=16, callbacks=[logger])
    learner.fit(toy_scenario())
    first = logger.run_id_
    learner.fit(toy_scenario())
    runs = _runs(uri, "twice")
    assert [r.info.run_id for r in runs] == [first, logger.run_id_] and first != logger.run_id_
    assert all(r.info.status == "FINISHED" for r in runs)


def test_under_torch_distributed_only_rank_0_logs(store_dir: Path) -> None:
    """Every rank runs the same callbacks; ranks other than 0 would each log a run of their share."""
    uri = _uri(store_dir)
    logger = MLflowLogger(uri, experiment="ranks", plots=False)
    learner = Learner(toy_model(), lr=0.1, batch_size=16, callbacks=[logger])
    learner.state.rank = 1  # as a Learner in a group's rank 1 sets it
    learner.fit(toy_scenario())
    assert logger.run_id_ is None
    assert MlflowClient(uri).get_experiment_by_name("ranks") is None or not _runs(uri, "ranks")


def test_partial_fit_with_the_logger_says_it_is_not_logged(store_dir: Path) -> None:
    """No run, no experiment and no word: a user took the callback's silence for a logged run."""
    import torch

    logger = MLflowLogger(_uri(store_dir))
    learner = Learner(toy_model(), callbacks=[logger])
    with pytest.warns(
        UserWarning, match="MLflowLogger logs fit\\(\\) runs; partial_fit steps are not logged"
    ):
        learner.partial_fit(torch.randn(8, 8), torch.arange(8) % 4)
