"""A tiny simulation through the real server (uvicorn on loopback) and worker process, on digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

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
    assert all(
        (d["delay"] is None) == (d["phase"] == 0) for d in row["drift_detections"]
    )  # none before a drift
    assert row["policy_fields"] == cfg.policy_json("continual", 80)  # what `up` needs to run it so
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


def test_a_backtest_replays_a_users_file_with_a_plugin_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lifelong simulate --data FILE --plugin ...`: the user's rows in order, the user's model, standardised
    inputs, and a class the first champion never saw arriving in the last third."""
    import numpy as np

    from lifelong.cli import main

    plugin = tmp_path / "backtest_models.py"
    plugin.write_text(
        "from torch import nn\nfrom lifelong.learn.models import register_model\n\n"
        "@register_model('wide')\nclass Wide(nn.Module):\n"
        "    def __init__(self, in_features: int, n_classes: int) -> None:\n"
        "        super().__init__()\n        self.classifier = nn.Linear(in_features, n_classes)\n\n"
        "    def forward(self, x):\n        return self.classifier(x)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{Path(__file__).resolve().parents[2] / 'src'}")
    rng = np.random.default_rng(0)
    n = 900
    y = np.where(np.arange(n) < 600, rng.integers(0, 2, n), rng.integers(0, 3, n))  # class 2 from row 600
    x = rng.normal(size=(n, 4)) + 3.0 * np.eye(3)[y][:, [0, 1, 2, 0]]
    x = x * np.array([1.0, 100.0, 0.01, 1000.0])  # raw columns on very different scales: --standardize
    header = "a,b,c,d,label"
    np.savetxt(tmp_path / "history.csv", np.column_stack([x, y]), delimiter=",", header=header, comments="")
    argv = ["simulate", "--data", str(tmp_path / "history.csv"), "--bootstrap", "300", "--segments", "3",
            "--plugin", "backtest_models", "--model", "wide", "--standardize", "--policy", "continual",
            "--label-delay", "10", "--rate", "150", "--out", str(tmp_path / "sim")]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((tmp_path / "sim" / "results.json").read_text())
    (row,) = results["policies"]
    assert row["phases"] == ["300-499", "500-699", "700-899"] and row["drift_points"] is False
    # no synthetic stream's fields, and no delays measured from segment cuts (they are no drift points)
    assert "stream" not in results["config"] and "samples" not in results["config"]
    assert row["first_detection_delay"] is None and all("delay" not in d for d in row["drift_detections"])
    assert row["prequential_by_phase"][0] > 0.9, row  # the plugin model, standardised, on its own classes
    assert set(row["new_class_accuracy"]) == {"500-699"}  # class 2 arrives at row 600, in the second segment
    assert row["versions_trained"] >= 1, row["training_reasons"]
    assert row["final_by_phase"]["700-899"] > 0.8, row  # the final champion learned class 2
    assert "lifelong simulate" in capsys.readouterr().out
    # a bad file is named before any process starts
    assert main([*argv[:2], str(tmp_path / "missing.csv"), *argv[3:]]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_backtest_on_a_file_with_one_class_is_refused_before_any_process(tmp_path: Path) -> None:
    """A one-class file (or the wrong --label-column, a constant) ran all four policies and reported
    accuracy 1.000 in every segment, exit 0: numbers that measure nothing."""
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    from lifelong.bench.simulate import make_sim_stream
    from lifelong.errors import DataError

    rows = "\n".join(f"{i * 0.1:.1f},{i % 7},yes" for i in range(200))
    (tmp_path / "one.csv").write_text("f0,f1,answer\n" + rows + "\n")
    with pytest.raises(
        DataError, match="one class \\('yes'\\) in column 'answer'; a backtest needs at least 2"
    ):
        make_sim_stream(SimConfig(data=str(tmp_path / "one.csv"), label_column="answer"))
    with pytest.raises(DataError, match="at least 2 classes"):
        simulate(
            ["manual"], SimConfig(data=str(tmp_path / "one.csv"), label_column="answer"), tmp_path / "out"
        )
    assert not (tmp_path / "out" / "manual").exists()  # no server, no worker, no data dir


def test_a_backtests_table_says_what_it_did() -> None:
    """The table of a backtest showed row ranges and a 'final' column without saying which rows trained
    the first champion or what 'final' was measured on."""
    from rich.console import Console

    row = {"policy": "manual", "prequential_accuracy": 0.5, "phases": ["300-599", "600-899", "900-1199"],
           "prequential_by_phase": [0.7, 0.1, 0.3], "final_accuracy": 0.4, "train_cpu_seconds": 0.0,
           "worker_cpu_seconds": 1.0, "versions_trained": 0, "versions_rejected": 0, "versions_promoted": 0,
           "rollbacks": 0, "drift_detections": [], "first_detection_delay": None, "drift_points": False}  # fmt: skip
    console = Console(width=600, record=True)
    console.print(table({"config": {"data": "/d/history.csv"}, "policies": [row]}))
    text = " ".join(console.export_text().split())  # the caption wraps at the table's width
    assert "backtest of /d/history.csv: rows 0-299 trained the first champion; rows 300-1199 streamed" in text
    assert "in 3 segments" in text and "'final' is the last champion's accuracy on them" in text
    console = Console(width=600, record=True)
    console.print(table({"config": {"stream": "sea-drift"}, "policies": [row]}))
    assert "backtest" not in console.export_text()  # a synthetic stream has no such line
    console = Console(width=600, record=True)
    console.print(table({"config": {"data": "/d/history.csv"}, "policies": [{**row, "drift_points": True}]}))
    assert "segments start at the known drift rows (--drift-at): delays from them" in " ".join(
        console.export_text().split()
    )


def test_the_table_says_how_to_run_a_policy_live_and_when_continuals_monitors_never_fired() -> None:
    """A trial on gradual drift: continual trained only on its 5,000-label safety net, said nowhere, and
    simulate's stream-scaled policy fields were nowhere to copy into `up`."""
    from rich.console import Console

    row = {"policy": "continual", "prequential_accuracy": 0.85, "phases": ["a", "b"],
           "prequential_by_phase": [0.8, 0.9], "final_accuracy": 0.9, "train_cpu_seconds": 0.1,
           "worker_cpu_seconds": 1.0, "versions_trained": 1, "versions_rejected": 0, "versions_promoted": 1,
           "rollbacks": 0, "drift_detections": [], "first_detection_delay": {"1000": None},
           "training_reasons": ["schedule: 5008 new labelled samples >= 5000"],
           "policy_fields": {"min_samples": 160, "window": 1285}}  # fmt: skip

    def caption(r: dict) -> str:
        console = Console(width=600, record=True)
        console.print(table({"config": {"stream": "x"}, "policies": [r]}))
        return " ".join(console.export_text().split())

    text = caption(row)
    assert "continual trained only on its safety-net schedule (1x): no drift monitor fired" in text
    assert 'lifelong up --policy continual --policy-json \'{"min_samples":160,"window":1285}\'' in text
    assert "never trained" in caption({**row, "training_reasons": [], "versions_trained": 0})
    assert "monitor fired" not in caption({**row, "training_reasons": ["performance drop detected"]})


def test_drift_at_is_checked_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lifelong.cli import main

    base = ["simulate", "--out", str(tmp_path / "out")]
    assert main([*base, "--stream", "sea-drift", "--drift-at", "300"]) == 2
    assert "--drift-at names rows of a --data file" in capsys.readouterr().err
    assert main([*base, "--data", str(tmp_path / "x.csv"), "--drift-at", "3k"]) == 2
    assert "--drift-at takes row numbers separated by commas" in capsys.readouterr().err


def test_every_policy_starts_from_the_same_first_champion(tmp_path: Path) -> None:
    """Continual's v1 was trained with replay, the others' without: 0.964 against 0.943 on Agrawal's
    base phase before any policy had trained, credited to the policy."""
    from lifelong.bench.simulate import first_champion, make_sim_stream
    from lifelong.learn.learner import Learner
    from lifelong.system.policy import preset
    from lifelong.system.registry import Registry
    from lifelong.system.store import Store
    from lifelong.system.trainer import _candidate

    cfg = SimConfig(stream="digits-drift", samples=480, bootstrap=200)
    stream, described = make_sim_stream(cfg)
    weights = []
    for kind in ("manual", "continual"):
        first_champion(cfg, stream, described, tmp_path / kind)
        with Store(data_dir=tmp_path / kind) as store:
            path = Registry(store).get(1).path
            weights.append(Learner.load(path).model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # the memory trained into v1 is continual's alone: a scheduled fine-tune drops the strategy
    assert [s.name for s in _candidate(path, preset("scheduled-finetune"), "finetune").strategies] == []
    assert [s.name for s in _candidate(path, preset("continual"), "finetune").strategies] == ["replay"]


def test_an_attempt_that_trained_nothing_is_skipped_not_a_trained_or_rejected_version(tmp_path: Path) -> None:
    """simulate counted a window too small to train as a version trained and rejected by the gate."""
    from lifelong.bench.simulate import _summarise
    from lifelong.system.events import EventKind
    from lifelong.system.store import Store

    with Store(f"sqlite:///{tmp_path / 's.db'}", data_dir=tmp_path) as store:
        store.add_event(EventKind.GATE, {"passed": True, "trained": True, "version": 2})
        store.add_event(EventKind.GATE, {"passed": False, "version": None})  # judged and refused
        store.add_event(EventKind.GATE, {"passed": False, "trained": False, "reasons": ["window too small"]})
        row = _summarise(store, [0], {}, drift_points=False)
    assert (row["versions_trained"], row["versions_rejected"], row["attempts_skipped"]) == (2, 1, 1)


def test_a_backtests_detections_name_the_file_row_they_fired_at(tmp_path: Path) -> None:
    """``at`` counts streamed samples while a backtest's phases name file rows (the first champion's
    and the held-out rows are never streamed): each detection also carries its ``row``."""
    import numpy as np

    from lifelong.bench.simulate import _summarise
    from lifelong.system.events import EventKind
    from lifelong.system.store import Store

    with Store(f"sqlite:///{tmp_path / 's.db'}", data_dir=tmp_path) as store:
        store.add_event(EventKind.DATA_DRIFT, {"at": 7})
        rows = {"p1": 7}  # prediction id -> stored sample id, as prediction_samples() maps them
        store.prediction_samples = lambda: rows  # type: ignore[method-assign]
        found = _summarise(
            store, [0], {"p1": 3}, drift_points=False, file_rows=np.array([300, 301, 303, 304])
        )
    assert found["drift_detections"] == [{"at": 3, "kind": "data", "row": 304}]


def test_policy_json_may_give_each_policy_its_own_fields_and_is_checked_at_the_streams_length() -> None:
    """--compare gave --policy-json to all four policies (a schedule for the scheduled ones was refused
    by manual), and fields were checked against the default stream's phase length, not a file's."""
    from lifelong.data.dataset import Dataset
    from lifelong.data.streams import FileStream
    from lifelong.errors import ConfigError

    x, y = torch.randn(1300, 3), torch.arange(1300) % 2
    stream = FileStream(Dataset(x, y), bootstrap=100, segments=6)  # phases of 180 streamed rows
    shared = SimConfig(overrides={"every_samples": 60})
    shared.check(["scheduled-retrain"], stream)  # min_samples scales to 50 here (187 on 9000 samples)
    with pytest.raises(
        ConfigError, match="policy manual trains only when asked.*under the names of the policies"
    ):
        shared.check(["manual", "scheduled-retrain"], stream)
    keyed = SimConfig(overrides={"scheduled-retrain": {"every_samples": 60}, "continual": {"epochs": 2}})
    keyed.check(["manual", "scheduled-retrain", "scheduled-finetune", "continual"], stream)
    assert "every_samples" not in keyed.policy_json("manual", 180)
    assert keyed.policy_json("scheduled-retrain", 180)["every_samples"] == 60
    assert keyed.policy_json("scheduled-finetune", 180)["every_samples"] == 90  # its own scaled schedule
    assert keyed.policy_json("continual", 180)["epochs"] == 2
    with pytest.raises(ConfigError, match="fields for scheduled-retrain, which this run does not run"):
        keyed.check(["continual"], stream)
    with pytest.raises(ConfigError, match="mixes policy names \\(manual\\) with policy fields \\(epochs\\)"):
        SimConfig(overrides={"manual": {}, "epochs": 2}).check(["manual"], stream)
    with pytest.raises(ConfigError, match="continual's fields must be an object"):
        SimConfig(overrides={"continual": 3}).check(["continual"], stream)
    with pytest.raises(
        ConfigError, match="every_samples=20 is below min_samples=50.*policy scheduled-retrain"
    ):
        SimConfig(overrides={"scheduled-retrain": {"every_samples": 20}}).check(
            ["manual", "scheduled-retrain"], stream
        )


def test_an_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """It was a FileExistsError traceback."""
    from lifelong.errors import ConfigError

    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="--out .*afile is a file, not a folder"):
        simulate(["manual"], SimConfig(), tmp_path / "afile")


def test_gate_json_reaches_every_policys_worker_and_a_typo_is_refused_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial: the README said --gate-json '{"recall_versions": 0}' turns recall off, and simulate had no
    such flag, so a backtest could not compare it."""
    import subprocess

    from lifelong.bench import simulate as sim
    from lifelong.cli import main

    assert main(["simulate", "--gate-json", '{"recal_versions": 0}', "--out", str(tmp_path / "x")]) == 2
    assert "gate: unknown field 'recal_versions'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    seen: list[list[str]] = []

    def popen(args: list[str], **kwargs: object) -> None:
        seen.append(args)
        raise RuntimeError("stop here")

    monkeypatch.setattr(subprocess, "Popen", popen)
    cfg = SimConfig(
        stream="digits-drift", samples=480, bootstrap=200, test_size=100, gate={"recall_versions": 0}
    )
    import threading

    with pytest.raises(RuntimeError, match="stop here"):
        sim.run_policy("continual", cfg, tmp_path)
    assert seen and seen[0][seen[0].index("--gate-json") + 1] == '{"recall_versions": 0}'
    assert not [t for t in threading.enumerate() if t.name == "uvicorn"]  # the server stopped with it
