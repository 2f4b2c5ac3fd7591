"""Experiment tracking in MLflow: each benchmark run, and each production training attempt, as an MLflow run.

Install with ``pip install 'lifelong[tracking]'`` (``mlflow-skinny`` plus ``alembic`` for SQL stores).
The client is MLflow's own :class:`mlflow.MlflowClient` bound to one tracking URI, never the
process-global fluent API, so two loggers with different URIs in one process do not interfere.

Examples
--------
>>> import tempfile
>>> from lifelong.checks import toy_model, toy_scenario
>>> from lifelong.learn import Learner
>>> with tempfile.TemporaryDirectory() as tmp:
...     logger = MLflowLogger(f"sqlite:///{tmp}/mlflow.db", run_name="toy replay")
...     _ = Learner(toy_model(), callbacks=[logger]).fit(toy_scenario())
...     run = client(logger.tracking_uri).get_run(logger.run_id_)
>>> run.info.status, run.data.metrics["acc"] > 0
('FINISHED', True)
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lifelong.errors import ConfigError
from lifelong.learn.callbacks import Callback, Control, LoopState

log = logging.getLogger(__name__)
RESULT_METRICS = ("acc", "bwt", "fwt", "forgetting", "plasticity", "negative_flip_rate", "intransigence",
                  "train_seconds_per_epoch", "samples_per_second", "extra_parameters", "buffer_bytes",
                  "peak_rss_mb")  # fmt: skip


def _mlflow_client_class() -> Any:
    try:
        from mlflow import MlflowClient
    except ImportError as e:
        raise ConfigError(
            f"MLflow tracking needs the 'tracking' extra ({e}); pip install 'lifelong[tracking]'"
        ) from e
    return MlflowClient


def client(tracking_uri: str | None = None) -> Any:
    """An ``MlflowClient`` for ``tracking_uri`` (None: ``MLFLOW_TRACKING_URI`` or MLflow's default,
    which in MLflow 3 is ``sqlite:///mlflow.db`` in the working directory). A store MLflow refuses
    (MLflow 3 refuses a file store such as ``./mlruns`` or ``file:///...`` unless
    ``MLFLOW_ALLOW_FILE_STORE=true``) is a :class:`ConfigError` that says so."""
    client_class = _mlflow_client_class()
    from mlflow.exceptions import MlflowException

    try:
        return client_class(tracking_uri)
    except MlflowException as e:
        first = str(e).split(". ")[0]
        raise ConfigError(
            f"tracking URI {tracking_uri!r}: MLflow refuses it ({first}); use a database store such as "
            "sqlite:///mlflow.db, or set MLFLOW_ALLOW_FILE_STORE=true to keep a file store"
        ) from e


def experiment_id(mlflow_client: Any, name: str) -> str:
    """The id of experiment ``name``, created if missing; a SQLite store keeps its artifacts beside the
    database file (``<db dir>/mlartifacts``) rather than in whatever directory the process runs from."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    uri = str(mlflow_client.tracking_uri)
    location = None
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return str(mlflow_client.create_experiment(name, artifact_location=location))


def _log_batch(mlflow_client: Any, run_id: str, metrics: Mapping[str, float] = {}, step: int = 0,
               params: Mapping[str, Any] = {}, tags: Mapping[str, Any] = {}) -> None:  # fmt: skip
    """One call for many values; non-finite or non-numeric metrics are left out (MLflow rejects NaN in some stores)."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    ms = [Metric(k, float(v), now, step) for k, v in metrics.items() if _finite(v)]
    ps = [Param(k, str(v)[:6000]) for k, v in params.items()]
    ts = [RunTag(k, str(v)[:5000]) for k, v in tags.items()]
    mlflow_client.log_batch(run_id, metrics=ms, params=ps, tags=ts)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class MLflowLogger(Callback):
    """Log one ``Learner.fit`` as an MLflow run.

    Parameters: the learner's hyper-parameters (optimizer, each strategy's) and protocol (scenario
    kind, number of experiences), plus ``params``. Metrics, with the experience as the step: training
    loss and seconds per experience; after each evaluation ``acc_seen`` (mean over the experiences
    trained so far), ``acc_all`` and ``acc_on_<j>`` per experience. At the end the result's metrics
    (ACC, BWT, forgetting, flip rate, time, memory) and artifacts: ``result.json`` (the accuracy
    matrix and costs) and, with matplotlib, the matrix and accuracy plots.
    Under torch.distributed only rank 0 logs: one run per job, with the job's costs.

    Parameters
    ----------
    tracking_uri : where MLflow stores runs (``sqlite:///mlflow.db``, ``http://host:5000``); None uses
        ``MLFLOW_TRACKING_URI`` or MLflow's default.
    experiment : MLflow experiment name (created if missing).
    run_name : shown in the MLflow UI.
    params, tags : extra values logged with the run (for example the benchmark and seed).
    plots : log PNG plots as artifacts (needs matplotlib; skipped without it).
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str = "lifelong", run_name: str | None = None,
                 params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None,
                 plots: bool = True) -> None:  # fmt: skip
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.params, self.tags, self.plots = dict(params or {}), dict(tags or {}), plots
        self.run_id_: str | None = None  # the latest run's (it stays readable after fit)
        self._open = False  # a fit's run is open; the next fit starts a new one
        self._client: Any = client(tracking_uri)  # a store MLflow refuses is refused here, before any fit
        self._loss: Any = 0.0
        self._steps = 0
        self._start = 0.0
        self._told_partial = False

    def _run(self, state: LoopState) -> str:
        if not self._open:  # open only once a run was created, so run_id_ is set then
            exp = experiment_id(self._client, self.experiment)
            run = self._client.create_run(
                exp, run_name=self.run_name, tags={"lifelong.kind": "fit", **self.tags}
            )
            self.run_id_, self._open = run.info.run_id, True
            _log_batch(self._client, self.run_id_, params={**state.params, **self.params})
        assert self.run_id_ is not None
        return self.run_id_

    def on_experience_start(self, state: LoopState, control: Control) -> None:
        if state.rank:  # under torch.distributed one run per job, from rank 0
            return
        self._run(state)
        self._loss, self._steps, self._start = 0.0, 0, time.perf_counter()

    def on_step_end(self, state: LoopState, control: Control) -> None:
        if state.rank:  # under torch.distributed one run per job, from rank 0
            return
        if not state.fitting and not self._told_partial:  # partial_fit: no run was ever created, silently
            self._told_partial = True
            warnings.warn(
                "MLflowLogger logs fit() runs; partial_fit steps are not logged (log your own metrics with "
                "mlflow, or a service's trainings with lifelong.tracking.log_training_attempt)",
                UserWarning,
                stacklevel=2,
            )
        if state.loss_tensor is not None:
            self._loss, self._steps = self._loss + state.loss_tensor, self._steps + 1

    def on_experience_end(self, state: LoopState, control: Control) -> None:
        if state.rank:  # under torch.distributed one run per job, from rank 0
            return
        metrics = {"experience_seconds": time.perf_counter() - self._start}
        if self._steps:
            metrics["train_loss"] = float(self._loss) / self._steps
        run_id = self._run(state)
        _log_batch(self._client, run_id, metrics, step=state.experience)

    def on_evaluate(self, state: LoopState, control: Control) -> None:
        if state.rank:  # under torch.distributed one run per job, from rank 0
            return
        i, row = state.evaluation, state.accuracy
        metrics = {f"acc_on_{j}": a for j, a in enumerate(row)}
        metrics.update(acc_seen=sum(row[: i + 1]) / (i + 1), acc_all=sum(row) / len(row))
        run_id = self._run(state)
        _log_batch(self._client, run_id, metrics, step=i)

    def on_fit_end(self, state: LoopState, control: Control) -> None:
        if state.rank:  # under torch.distributed one run per job, from rank 0
            return
        run_id, result = self._run(state), state.result
        metrics = {k: v for k, v in result.metrics.items() if k in RESULT_METRICS}
        metrics.update(train_seconds=result.train_seconds, epochs=result.epochs, samples=result.samples)
        _log_batch(self._client, run_id, metrics, step=len(result.accuracy_matrix))
        self._client.log_dict(run_id, result.to_dict(), "result.json")
        if self.plots:
            self._log_plots(run_id, result)
        self.close()

    def _log_plots(self, run_id: str, result: Any) -> None:
        try:
            from lifelong.bench.report import plot
        except ImportError:  # pragma: no cover - report itself imports nothing heavy
            return
        entry = {"benchmark": str(self.params.get("benchmark", "run")), "strategy": str(self.params.get("strategy", "learner")),
                 "accuracy_matrix": result.accuracy_matrix}  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="lifelong-plots-") as tmp:
            try:
                written = plot([entry], Path(tmp))
            except ImportError:
                log.info("matplotlib is not installed: no plots logged to MLflow")
                return
            for path in written:
                self._client.log_artifact(run_id, str(path), "plots")

    def close(self, status: str = "FINISHED") -> None:
        """End the run (``fit`` does this itself; call it after ``learn`` / ``partial_fit`` use)."""
        if self.run_id_ is not None and self._open:
            self._client.set_terminated(self.run_id_, status)
        self._open = False


def log_training_attempt(tracking_uri: str, payload: Mapping[str, Any], experiment: str = "lifelong-system") -> str | None:  # fmt: skip
    """Log one production training attempt (the trainer's ``gate`` event payload) as an MLflow run.

    Params: window, parent version, mode, reason, policy; metrics: the gate's figures (accuracy on
    new and old data, flip rate, latency, size, CPU seconds); tags: the registry version (``none``
    when the gate refused it), whether it passed and why not, and whether anything was trained
    (``trained=false``, run name "not trained": the window was too small to train and gate). Returns the run id, or None when the
    tracking server could not be reached (logged as a warning: serving and training go on).
    Raises :class:`ConfigError` when MLflow is not installed.
    """
    _mlflow_client_class()  # ConfigError now if MLflow is missing; a bad store below is only a warning
    try:
        mlflow_client = client(tracking_uri)
        exp = experiment_id(mlflow_client, experiment)
        version = payload.get("version")
        trained = bool(payload.get("trained", True))  # false: the window was too small, nothing ran
        tags = {"lifelong.kind": "training_attempt", "registry_version": str(version) if version is not None else "none",
                "passed": str(bool(payload.get("passed"))).lower(), "trained": str(trained).lower(),
                "reasons": "; ".join(payload.get("reasons") or []) or "-"}  # fmt: skip
        refused = "refused" if trained else "not trained"
        name = f"v{version}" if version is not None else f"{refused} (parent v{payload.get('parent')})"
        run = mlflow_client.create_run(exp, run_name=name, tags=tags)
        window = payload.get("window")
        params = {"window": f"{window[0]}-{window[1]}" if window else "none", "parent": payload.get("parent"),
                  "mode": payload.get("mode"), "reason": payload.get("reason"), "policy": payload.get("policy")}  # fmt: skip
        figures = dict(payload.get("figures") or {})
        if "train_cpu_seconds" in payload:
            figures.setdefault("train_cpu_seconds", payload["train_cpu_seconds"])
        _log_batch(
            mlflow_client, run.info.run_id, figures, params={k: v for k, v in params.items() if v is not None}
        )
        mlflow_client.log_dict(run.info.run_id, dict(payload), "gate.json")
        mlflow_client.set_terminated(run.info.run_id, "FINISHED")
        return str(run.info.run_id)
    except Exception as e:  # MLflow raises its own and network errors; tracking must never stop training
        log.warning("could not log the training attempt to MLflow at %s: %s", tracking_uri, e)
        return None
