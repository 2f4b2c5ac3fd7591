"""A tiny simulation through the real server (uvicorn on loopback) and worker process, on digits."""

from __future__ import annotations

import json
from pathlib import Path

from lifelong.bench.simulate import SimConfig, simulate, table


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
    assert (tmp_path / "prequential.png").stat().st_size > 1000
    assert table(results).row_count == 1
