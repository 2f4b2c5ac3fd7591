"""`lifelong advise`: the ranking rules on a made-up summary, the real results file, and a run on a CSV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lifelong.bench.advise import Constraints, find_results, load_summary, notes, recommend, split_name
from lifelong.cli import main
from lifelong.errors import ConfigError


def row(
    strategy: str, acc: float, seconds: float = 1.0, benchmark: str = "b", buffer_bytes: float = 0.0
) -> dict:
    return {"benchmark": benchmark, "strategy": strategy, "acc": acc, "forgetting": 1 - acc,
            "train_seconds_per_epoch": seconds, "buffer_bytes": buffer_bytes, "extra_parameters": 10.0}  # fmt: skip


ROWS = [
    row("naive", 0.20), row("joint", 0.85), row("cumulative", 0.86, 2.0, buffer_bytes=4e7),
    row("ewc", 0.21, 4.0), row("l2", 0.25, 1.5), row("lwf", 0.30, 1.2),
    row("replay-200", 0.70, 1.4), row("replay-500", 0.77, 1.5), row("derpp-500", 0.80, 3.0),
    row("gem-500", 0.79, 12.0), row("generative-replay", 0.45, 4.5), row("ncm", 0.66, 1.1),
    row("gpm", 0.21, 2.0), row("pnn", 0.99, 1.5), row("packnet", 0.98, 1.4, "b-task"), row("naive", 0.9, 1.0, "b-task"),
]  # fmt: skip


def methods(c: Constraints, benchmark: str = "b", top: int = 20) -> list[str]:
    return [a.method for a in recommend(c, ROWS, benchmark, top)]


def test_split_name() -> None:
    assert split_name("replay-500") == ("replay", 500) and split_name("er-ace") == ("er-ace", None)
    assert split_name("er-ace-200") == ("er-ace", 200)


def test_regularization_baseline_first_then_the_best_that_fit() -> None:
    got = methods(Constraints())
    assert got[0] == "lwf"  # the best regularization method, whatever its rank by accuracy
    assert got[1:4] == ["derpp-500", "replay-500", "ncm"]  # then by measured ACC
    assert "replay-200" not in got  # the largest memory within the limit stands for its method
    assert "cumulative" not in got and "naive" not in got and "joint" not in got
    assert "gem-500" not in got  # 12x naive's time is over the medium budget
    assert "pnn" not in got  # needs task ids at prediction
    assert "gem-500" in methods(Constraints(budget="high"))
    assert methods(Constraints(budget="low"))[:3] == ["lwf", "replay-500", "ncm"]


def test_memory_limits_pick_the_variant_and_all_allows_cumulative() -> None:
    got = methods(Constraints(memory=200))
    assert "replay-200" in got and "replay-500" not in got and "derpp-500" not in got
    assert methods(Constraints(memory=None))[1] == "cumulative"


def test_without_stored_data_only_methods_that_keep_no_samples() -> None:
    for c in (Constraints(store_data=False), Constraints(memory=0)):
        got = methods(c)
        assert not {"replay-500", "replay-200", "derpp-500", "cumulative"} & set(got)
        assert "generative-replay" in got and "ncm" in got and "gpm" in got
    private = methods(Constraints(private=True))
    assert "generative-replay" not in private and "replay-500" not in private and "ncm" in private
    advice = recommend(Constraints(store_data=False), ROWS, "b")
    assert any("no memory" not in a.reason for a in advice)


def test_task_ids_unlock_architectural_methods() -> None:
    got = methods(Constraints(task_ids_known=True, store_data=False), "b-task")
    assert got == ["packnet"]
    advice = recommend(Constraints(task_ids_known=True, store_data=False), ROWS, "b-task")
    assert advice[0].reason.startswith("no memory possible")
    with pytest.raises(ConfigError, match="task ids"):
        recommend(Constraints(), ROWS, "b-task")
    with pytest.raises(ConfigError, match="no rows"):
        recommend(Constraints(), ROWS, "nothing")
    with pytest.raises(ConfigError, match="budget"):
        Constraints(budget="huge")


def test_notes_say_when_nothing_allowed_beats_naive_and_what_a_memory_buys() -> None:
    c = Constraints(private=True, budget="low")
    rows = [r for r in ROWS if r["strategy"] not in ("ncm", "lwf", "l2")]
    said = notes(c, rows, "b", recommend(c, rows, "b"))
    assert any("no method that fits beats naive" in n for n in said)
    assert any("memory of 200 samples replay-200 reaches ACC 0.700" in n for n in said)


def test_a_memory_smaller_than_any_measured_one_is_said_not_silently_dropped() -> None:
    """--memory 199 dropped every memory method (measured at 200 and 500) without a word."""
    c = Constraints(memory=199)
    assert not any(split_name(m)[1] for m in methods(c))
    said = notes(c, ROWS, "b", recommend(c, ROWS, "b"))
    assert any("no memory method was measured with as few as 199 samples (the smallest is 200)" in n
               and "replay-200 reaches ACC 0.700" in n and "bench --buffer 199" in n for n in said)  # fmt: skip
    assert not any("as few as" in n for n in notes(Constraints(memory=200), ROWS, "b", []))


def test_cli_reads_the_projects_own_results(capsys: pytest.CaptureFixture[str]) -> None:
    path = find_results()
    assert main(["advise", "--log-json", "--top", "3"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    advice = [e for e in events if e["event"] == "advice"]
    assert len(advice) == 3 and advice[0]["family"] == "regularization"
    measured = {r["strategy"]: r for r in load_summary(path) if r["benchmark"] == "split-fmnist"}
    for a in advice:  # the figures are the file's, not typed in
        assert (
            a["acc"] == measured[a["method"]]["acc"]
            and a["forgetting"] == measured[a["method"]]["forgetting"]
        )


def test_bad_memory_and_missing_results_are_clear_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["advise", "--memory", "lots"]) == 2
    assert "argument --memory: must be a number of samples" in capsys.readouterr().err
    assert main(["advise", "--results", str(tmp_path / "none.json")]) == 2
    assert "no results file" in capsys.readouterr().err


def blobs_csv(
    path: Path,
    n_classes: int,
    per_class: int,
    n_features: int,
    seed: int,
    label: str = "label",
    names: bool = False,
) -> Path:
    """Gaussian blobs, one per class, as a CSV (``names``: labels written as class0, class1, ...)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), per_class)
    x = rng.normal(0, 4, size=(n_classes, n_features))[y] + rng.normal(0, 1, size=(len(y), n_features))
    lines = [",".join([*(f"f{i}" for i in range(n_features)), label])]
    lines += [
        ",".join([*(f"{v:.4f}" for v in xi), f"class{yi}" if names else str(yi)]) for xi, yi in zip(x, y)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_data_run_compares_the_shortlist_on_a_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    path = blobs_csv(tmp_path / "blobs.csv", 4, 40, 6, seed=0, label="kind", names=True)
    code = main(["advise", "--data", str(path), "--label-column", "kind", "--top", "2", "--log-json"])
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    shortlist = [e["strategy"] for e in events if e["event"] == "advice"]
    (comparison,) = [e for e in events if e["event"] == "comparison"]
    rows = comparison["rows"]
    assert {r["method"] for r in rows} == {*shortlist, "naive"}
    assert [r["acc"] for r in rows] == sorted((r["acc"] for r in rows), reverse=True)
    assert all(0 <= r["acc"] <= 1 and 0 <= r["forgetting"] <= 1 and r["seconds"] > 0 for r in rows)
    assert sum(e["event"] == "experience" for e in events) == 2 * len(rows)  # 4 classes: two experiences
    assert main(["advise", "--data", str(path), "--label-column", "missing"]) == 2
    assert "missing" in capsys.readouterr().err


ADVISE_PLUGIN = """
from torch import nn
from lifelong.learn.models import register_model


@register_model("lladvise-tab")
class Tab(nn.Module):
    def __init__(self, in_features: int, n_classes: int, width: int = 16) -> None:
        super().__init__()
        self.width = width
        self.features = nn.Sequential(nn.Linear(in_features, width), nn.ReLU())
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x))
"""


def test_data_run_trains_your_own_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`advise --data` scored the file with the built-in MLP only (a trial); your model is the one to rank."""
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    from lifelong.learn import models

    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "lladvise_tab.py").write_text(ADVISE_PLUGIN)
    built: list[int] = []
    path = blobs_csv(tmp_path / "blobs.csv", 4, 40, 6, seed=0, label="kind", names=True)
    argv = ["advise", "--data", str(path), "--label-column", "kind", "--top", "2", "--plugin", "lladvise_tab",
            "--model", "lladvise-tab", "--model-kwargs", '{"width": 5}']  # fmt: skip
    real = models.for_input

    def spy(name, *a, **kw):  # type: ignore[no-untyped-def]
        net = real(name, *a, **kw)
        built.append(getattr(net, "width", -1))
        return net

    monkeypatch.setattr(models, "for_input", spy)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "measured on" in out and "with model 'lladvise-tab'" in out
    assert built and set(built) == {5}  # every method of the comparison trained the plugin's model
    assert main(["advise", "--model", "lladvise-tab"]) == 2  # no --data: nothing to train it on
    assert "choose the model of the --data comparison; give --data" in capsys.readouterr().err


SIGNAL_PLUGIN = """
import torch
from torch import nn
from lifelong.learn.models import register_model


@register_model("lladvise-signal")
class Signal(nn.Module):
    def __init__(self, in_channels: int, n_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv1d(in_channels, 4, 1), nn.ReLU(), nn.Flatten())
        self.classifier = nn.Linear(12, n_classes)

    def forward(self, x):
        assert x.dim() == 3, x.shape  # [N, C, T]: a flat row would not do
        return self.classifier(self.features(x))
"""


def test_data_run_reshapes_rows_for_a_signal_model_that_takes_its_channels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sensor trial: advise's error said to give --input-shape, which advise did not have; a plugin
    factory needing in_channels got only in_features and n_classes."""
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    from lifelong.learn import models

    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "lladvise_signal.py").write_text(SIGNAL_PLUGIN)
    path = blobs_csv(tmp_path / "rows.csv", 4, 40, 6, seed=0)
    argv = [
        "advise",
        "--data",
        str(path),
        "--top",
        "1",
        "--plugin",
        "lladvise_signal",
        "--model",
        "lladvise-signal",
    ]
    assert main([*argv, "--input-shape", "2,3"]) == 0
    assert "with model 'lladvise-signal'" in capsys.readouterr().out
    assert main(["advise", "--input-shape", "2,3"]) == 2
    assert "--input-shape reshapes the samples of a --data file" in capsys.readouterr().err


def test_data_run_on_three_classes_uses_one_class_per_experience(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like scikit-learn's wine: `lifelong bench` took it, `advise --data` refused it (4 classes needed)."""
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    path = blobs_csv(tmp_path / "three.csv", 3, 40, 5, seed=1)
    # with task ids known, one class per task: every method printed ACC 1.000 (nothing to predict)
    assert main(["advise", "--data", str(path), "--task-ids-known"]) == 2
    assert "tasks of one class each" in capsys.readouterr().err
    assert main(["advise", "--data", str(path), "--top", "2", "--log-json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (comparison,) = [e for e in events if e["event"] == "comparison"]
    assert sum(e["event"] == "experience" for e in events) == 3 * len(comparison["rows"])
    (tmp_path / "one.csv").write_text("f0,label\n0.1,0\n0.2,0\n0.3,0\n")
    assert main(["advise", "--data", str(tmp_path / "one.csv")]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_data_run_on_five_classes_uses_the_default_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Five classes were asked for two experiences (min(5, 5 // 2)), which do not divide them: exit 2."""
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    path = blobs_csv(tmp_path / "five.csv", 5, 30, 4, seed=2)
    assert main(["advise", "--data", str(path), "--top", "1", "--log-json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (comparison,) = [e for e in events if e["event"] == "comparison"]
    assert sum(e["event"] == "experience" for e in events) == 5 * len(comparison["rows"])


@pytest.mark.parametrize(("flag", "value"), [("--top", "0"), ("--top", "-1"), ("--epochs", "0"), ("--threads", "0"),
                                             ("--memory", "-5")])  # fmt: skip
def test_meaningless_numbers_exit_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    """--top 0 listed nothing and blamed the constraints ("relax the budget"); now the flag is named."""
    assert main(["advise", flag, value]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: argument {flag}: must be") and captured.out == ""
    with pytest.raises(ConfigError, match="top"):
        recommend(Constraints(), ROWS, "b", 0)


def test_a_data_file_it_cannot_read_is_refused_before_anything_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --label-column the whole reference table came first, then the error."""
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    path = blobs_csv(tmp_path / "tab.csv", 3, 10, 2, seed=0, label="kind")
    assert main(["advise", "--data", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and "'label'" in captured.err


@pytest.mark.parametrize(("option", "value"), [("threads", 0), ("epochs", 0), ("seed", -1), ("threads", 1.5)])
def test_compare_on_data_refuses_meaningless_numbers_before_reading_the_file(
    option: str, value: object
) -> None:
    """From Python (not the CLI's argparse types): ``threads=0`` aborted in torch.set_num_threads."""
    from lifelong.bench.advise import compare_on_data

    with pytest.raises(ConfigError, match=f"^compare_on_data: {option}={value}"):
        compare_on_data([], "/nonexistent.csv", "label", Constraints(), **{option: value})  # type: ignore[arg-type]


def test_an_unknown_benchmark_lists_the_ones_the_results_file_has() -> None:
    """`advise --benchmark nope` said only that the file had no rows for it, not which names it has."""
    with pytest.raises(ConfigError, match="no rows for benchmark 'nope'; --benchmark is one of: b, b-task$"):
        recommend(Constraints(), ROWS, "nope")


def test_the_nothing_beats_naive_note_looks_past_the_listed_top() -> None:
    """`advise --top 1` lists only the regularization baseline, and the note then said no method that fits
    beats naive fine-tuning, while replay and DER++ (which fit) beat it by far."""
    c = Constraints()
    said = notes(c, ROWS, "b", recommend(c, ROWS, "b", top=1))
    assert not any("no method that fits beats naive" in n for n in said), said
    private = Constraints(private=True, budget="low")
    rows = [r for r in ROWS if r["strategy"] not in ("ncm", "lwf", "l2")]
    said = notes(private, rows, "b", recommend(private, rows, "b", top=1))
    assert any("no method that fits beats naive" in n for n in said)  # still said when true


def test_a_file_too_small_to_split_is_refused_before_the_advice_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seven rows, one class with a single sample: the advice table was printed, then the comparison
    failed (a class with no test samples); the bad file must be the only thing said."""
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    rows = ["0.1,0.2,a", "0.3,0.1,a", "0.2,0.5,a", "0.9,0.8,b", "0.7,0.9,b", "0.8,0.7,b", "0.5,0.5,c"]
    (tmp_path / "seven.csv").write_text("f0,f1,label\n" + "\n".join(rows) + "\n")
    assert main(["advise", "--data", str(tmp_path / "seven.csv"), "--top", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "seven.csv: 7 rows cannot be compared on: experience" in err and "no test samples" in err


def test_data_run_with_a_task_column_compares_on_the_files_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--task-ids-known re-split a file's classes into tasks; its own task column could not be named."""
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    from tests.data.test_scenarios import _two_tasks_one_label_set

    _two_tasks_one_label_set(200).to_csv(path := tmp_path / "returns.csv", index=False)
    argv = ["advise", "--data", str(path), "--label-column", "returned", "--task-column", "shop", "--top", "1",
            "--log-json", "--epochs", "3"]  # fmt: skip
    assert main(argv) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (constraints,) = [e for e in events if e["event"] == "constraints"]
    assert constraints["task_ids_known"] is True
    (comparison,) = [e for e in events if e["event"] == "comparison"]
    assert sum(e["event"] == "experience" for e in events) == 2 * len(comparison["rows"])  # two tasks
    assert main(["advise", "--task-column", "shop"]) == 2
    assert "give --data" in capsys.readouterr().err
    assert main([*argv[:6], "returned"]) == 2
    assert "given as both the label and the task column" in capsys.readouterr().err


def test_data_run_with_a_domain_column_compares_on_the_files_periods(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A binary file was split into two experiences of one class each (every method at ACC 0.5), and
    advise had no --domain-column to compare on the file's periods of drift, as bench has."""
    pd = pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    gen = np.random.default_rng(0)
    x = gen.normal(size=(300, 2))
    period = np.repeat(["early", "late"], 150)
    y = np.where(period == "early", x[:, 0] > 0, x[:, 1] > 0).astype(int)  # the concept drifts
    pd.DataFrame({"f0": x[:, 0], "f1": x[:, 1], "period": period, "label": y}).to_csv(
        path := tmp_path / "drift.csv", index=False
    )
    assert main(["advise", "--data", str(path), "--drop-columns", "period", "--top", "1", "--quiet"]) == 0
    assert "make experiences of one class each" in capsys.readouterr().out.replace("\n", " ")
    argv = ["advise", "--data", str(path), "--domain-column", "period", "--top", "1", "--log-json"]
    assert main(argv) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["benchmark"] for e in events if e["event"] == "evidence"] == ["rotated-fmnist"]
    assert not any("one class each" in e.get("text", "") for e in events)
    (comparison,) = [e for e in events if e["event"] == "comparison"]
    assert sum(e["event"] == "experience" for e in events) == 2 * len(comparison["rows"])  # two periods
    assert main([*argv, "--task-ids-known"]) == 2
    assert "drop --task-ids-known" in capsys.readouterr().err
    assert main(["advise", "--domain-column", "period"]) == 2
    assert "give --data" in capsys.readouterr().err
