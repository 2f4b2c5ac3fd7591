"""A tiny simulation through the real server (uvicorn on loopback) and worker process, on digits."""

from __future__ import annotations

import json
from pathlib import Path

from lifelong.bench.simulate import SimConfig, simulate, table, target


def test_tiny_simulation_writes_results_and_plot(tmp_path: Path) -> None:
    cfg = SimConfig(stream="digits-drift", samples=480, label_delay=20, rate=80.0, chunk=20, bootstrap=200,
                    test_size=100, poll=0.1)  # fmt: skip
    results = simulate(["continual"], cfg, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    (row,) = saved["policies"]
    assert row["policy"] == "continual"
    for key in ("prequential_accuracy", "final_accuracy", "train_cpu_seconds", "versions_trained",
                "versions_promoted", "rollbacks"):  # fmt: skip
        assert isinstance(row[key], int | float), key
    assert 0.3 < row["prequential_accuracy"] <= 1.0  # the bootstrapped champion is far above chance
    assert row["boundaries"] == [0, 80, 160, 240, 320, 400]
    assert all({"at", "delay"} <= set(d) for d in row["drift_detections"])
    noticed = row["drift_detections"] or any("floor" in r for r in row["training_reasons"])
    assert noticed, "new classes, rotation and noise went unnoticed"
    assert row["versions_trained"] >= 1 and row["train_cpu_seconds"] > 0
    assert set(row["new_class_accuracy"]) == {"new-classes"}  # classes 6-9 arrive in phase 2 only
    assert 0.0 <= row["new_class_accuracy"]["new-classes"] <= 1.0
    assert (tmp_path / "prequential.png").stat().st_size > 1000
    assert table(results).row_count == 1


def test_tabular_stream_bootstraps_with_its_own_classes_and_reports_each_phase(tmp_path: Path) -> None:
    """sea-drift: 3 features, 2 classes; the first champion must be a 3-in, 2-out MLP, not a 10-class one."""
    from lifelong.learn.learner import Learner
    from lifelong.system.registry import Registry
    from lifelong.system.store import Store

    cfg = SimConfig(stream="sea-drift", samples=300, label_delay=10, rate=0.0, chunk=25, bootstrap=200,
                    test_size=100, poll=0.1)  # fmt: skip
    results = simulate(["manual"], cfg, tmp_path)
    (row,) = results["policies"]
    assert row["phases"] == ["base", "concept", "covariate", "gradual", "concept-covariate", "recurring"]
    assert len(row["prequential_by_phase"]) == 6 and row["prequential_by_phase"][0] > 0.7, row
    with Store(data_dir=tmp_path / "manual") as store:
        first = Learner.load(Registry(store).get(1).path)
    assert first.model.lifelong_spec["kwargs"]["in_features"] == 3  # type: ignore[index]
    assert first.model.lifelong_spec["kwargs"]["n_classes"] == 2  # type: ignore[index]
    assert table(results).columns[2].header == "base"


def _row(policy: str, by_phase: list[float], cpu: float) -> dict[str, object]:
    return {
        "policy": policy,
        "phases": ["a", "b", "c"],
        "prequential_by_phase": by_phase,
        "train_cpu_seconds": cpu,
    }


def test_target_names_each_phase_and_the_compute_it_misses() -> None:
    met = {
        "policies": [
            _row("scheduled-retrain", [0.9, 0.8, 0.7], 10.0),
            _row("continual", [0.5, 0.76, 0.9], 4.0),
        ]
    }
    assert target(met) == []  # phase a (the first) does not count; b is within 0.05
    missed = {
        "policies": [
            _row("scheduled-retrain", [0.9, 0.8, 0.7], 10.0),
            _row("continual", [0.9, 0.7, 0.9], 6.0),
        ]
    }
    assert target(missed) == [
        "phase b: continual 0.700 < scheduled-retrain 0.800 - 0.05",
        "training compute: continual 6.0 s >= half of scheduled-retrain's 10.0 s",
    ]
    assert target({"policies": [_row("continual", [0.9], 1.0)]}) == []  # nothing to compare with
    retrain, cont = _row("scheduled-retrain", [0.9, 0.8, 0.7], 10.0), _row("continual", [0.9, 0.8, 0.7], 1.0)
    retrain["new_class_accuracy"], cont["new_class_accuracy"] = {"b": 0.4}, {"b": 0.0}
    assert target({"policies": [retrain, cont]}) == [
        "new classes in phase b: continual 0.000 < scheduled-retrain 0.400 - 0.05"
    ]
