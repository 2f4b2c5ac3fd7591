import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifelong.cli import main


def test_list_shows_benchmarks_and_strategies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "split-fmnist" in out and "split-digits" in out and "replay" in out and "er-ace" in out


@pytest.mark.parametrize("args", [["--strategies", "naive,bogus"], ["--benchmark", "split-nothing"]])
def test_unknown_names_exit_2_listing_valid_ones(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert "valid" in err and ("naive" in err or "split-fmnist" in err)


def test_dry_run_shows_what_each_run_would_use_and_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lifelong.strategies import tuned

    out = tmp_path / "never"
    argv = ["bench", "--benchmark", "split-fmnist,split-digits", "--strategies", "derpp,naive", "--buffer", "200",
            "--dry-run", "--log-json", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["benchmark"], d["strategy"]) for d in shown] == [
        ("split-fmnist", "derpp"), ("split-fmnist", "naive"), ("split-digits", "derpp"), ("split-digits", "naive"),
    ]  # fmt: skip
    for d in shown:  # exactly what Python users get from tuned()
        strategy, lr = tuned(
            d["strategy"], "class", d["benchmark"], **({"buffer_size": 200} if d["params"] else {})
        )
        assert (d["params"], d["lr"]) == (strategy.get_params(), lr)
    assert (
        shown[0]["params"]["buffer_size"] == 200 and shown[0]["lr"] != shown[2]["lr"]
    )  # searched per benchmark
    assert not out.exists()
    assert main([*argv[:-3], "--lr", "0.2", "--out", str(out)]) == 0  # one rate for all
    text = capsys.readouterr().out
    assert text.count("lr 0.2 ") == 4 and "derpp" in text and "no hyper-parameters" in text


def test_params_set_a_strategys_values_over_the_tuned_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plugin strategy always ran at its defaults and a built-in at its tuned values: the CLI had no way
    to set them (a trial)."""
    base = ["bench", "--benchmark", "split-digits", "--strategies", "ewc,replay", "--dry-run", "--log-json"]
    assert main([*base, "--params", '{"ewc": {"lam": 7}, "replay": {"buffer_size": 123}}']) == 0
    shown = {d["strategy"]: d["params"] for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert shown["ewc"]["lam"] == 7 and shown["replay"]["buffer_size"] == 123
    for params, said in [
        (
            '{"ewc": {"lamb": 7}}',
            "ewc takes no lamb; its hyper-parameters are: lam, ",
        ),  # was dropped silently
        ('{"si": {"c": 1}}', "--params names si, not in --strategies (ewc, replay)"),
        ('{"ewc": 7}', "--params must map each strategy name to an object of its values"),
        ("{ewc", "--params is not valid JSON"),
    ]:
        assert main([*base, "--params", params]) == 2
        assert said in capsys.readouterr().err
    from lifelong.bench import runner
    from lifelong.bench.benchmarks import get
    from lifelong.bench.cli import _run_key

    settings = runner.Settings()
    tuned = _run_key(get("split-digits"), "ewc", 0, settings, None)
    mine = _run_key(get("split-digits"), "ewc", 0, runner.Settings(strategy_params={"ewc": {"lam": 7}}), None)
    assert tuned != mine  # a finished run at other values is not reused


def test_a_hybrid_joins_methods_with_plus_each_at_its_values_and_the_smaller_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """bench could not run a hybrid (a trial): `replay+lwf` trains both, each with its tuned values and
    --params by method name, at the smaller tuned rate (replay's 0.3 on split-digits collapsed the pair)."""
    from lifelong.strategies import tuned

    base = ["bench", "--benchmark", "split-digits", "--strategies", "replay+lwf", "--log-json"]
    assert main([*base, "--dry-run", "--params", '{"lwf": {"alpha": 2}}']) == 0
    (shown,) = map(json.loads, capsys.readouterr().out.splitlines())
    replay, lwf = (
        tuned("replay", "class", "split-digits", buffer_size=500),
        tuned("lwf", "class", "split-digits"),
    )
    assert shown["params"] == {
        "replay": replay.strategy.get_params(),
        "lwf": {**lwf.strategy.get_params(), "alpha": 2},
    }
    assert shown["lr"] == min(replay.lr, lwf.lr) and replay.lr != lwf.lr
    assert (
        main([*base, "--dry-run", "--params", '{"replay+lwf": {"alpha": 2}}']) == 2
    )  # a trial: "not in --strategies"
    assert (
        "a hybrid's methods take their values by method name: key them 'replay' and 'lwf'"
        in capsys.readouterr().err
    )
    assert main(["bench", "--strategies", "replay+bogus", "--dry-run"]) == 2
    assert "unknown strategies bogus" in capsys.readouterr().err
    out = tmp_path / "hybrid"
    argv = [*base, "--strategies", "replay+lwf,replay", "--seeds", "0", "--epochs", "1", "--buffer", "50",
            "--out", str(out), "--no-progress", "--no-plots"]  # fmt: skip
    assert main(argv) == 0
    runs = {r["strategy"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert (
        runs["replay+lwf"]["params"]["lwf"]["alpha"] == 1.0
        and runs["replay+lwf"]["params"]["replay"]["buffer_size"] == 50
    )
    assert (
        runs["replay+lwf"]["metrics"]["extra_parameters"] > 0 == runs["replay"]["metrics"]["extra_parameters"]
    )  # LwF's teacher
    assert runs["replay+lwf"]["accuracy_matrix"] != runs["replay"]["accuracy_matrix"]
    capsys.readouterr()
    assert main(argv) == 0  # its key is stable: resumed
    assert {"event": "resume", "reused": 2, "runs": 2}.items() <= json.loads(
        capsys.readouterr().out.splitlines()[1]
    ).items()


def test_bench_writes_results_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--benchmark", "split-digits", "--strategies", "naive,replay", "--seeds", "0,1",
                 "--epochs", "1", "--buffer", "50", "--out", str(tmp_path), "--no-progress"])  # fmt: skip
    assert code == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert len(doc["runs"]) == 4
    run = doc["runs"][0]
    assert run["benchmark"] == "split-digits" and len(run["accuracy_matrix"]) == 5
    for key in ("acc", "bwt", "fwt", "forgetting", "negative_flip_rate", "train_seconds_per_epoch",
                "samples_per_second", "extra_parameters", "buffer_bytes", "peak_rss_mb"):  # fmt: skip
        assert key in run["metrics"]
    replay = [r for r in doc["runs"] if r["strategy"] == "replay"][0]
    assert replay["metrics"]["buffer_bytes"] > 0
    assert (tmp_path / "matrix-split-digits-replay.png").stat().st_size > 1000
    assert (tmp_path / "acc-split-digits.png").exists()
    assert main(["report", str(tmp_path), "--markdown"]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path)]) == 0
    assert "split-digits" in (out := capsys.readouterr().out) and "…" not in out  # piped: cut at 80 columns


# -- the user's own data and model --------------------------------------------------------------
TAB_PLUGIN = """
from torch import nn
from lifelong.learn.models import register_model


@register_model("llbench-tab")
class Tab(nn.Module):
    def __init__(self, in_features: int, n_classes: int, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, width), nn.ReLU())
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, x):
        return self.classifier(self.body(x))
"""


def test_bench_on_a_csv_file_by_domain_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.data._tabular import frame

    frame().to_csv(tmp_path / "plants.csv", index=False)
    code = main(["bench", "--data", str(tmp_path / "plants.csv"), "--label-column", "species",
                 "--domain-column", "site", "--scenario", "domain", "--strategies", "naive,replay", "--epochs", "5",
                 "--seeds", "0", "--out", str(tmp_path / "out"), "--no-progress"])  # fmt: skip
    assert code == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["benchmark"] for r in doc["runs"]] == ["plants-domain"] * 2
    matrix = doc["runs"][0]["accuracy_matrix"]
    assert len(matrix) == 2 and len(matrix[0]) == 2
    assert matrix[0][0] > 0.8  # the first site is learned (chance is 1/3)
    assert (tmp_path / "out" / "acc-plants-domain.png").exists()
    assert "plants-domain" in capsys.readouterr().out


def test_bench_on_an_npz_file_with_a_plugin_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from lifelong.learn import models
    from tests.data._tabular import tabular

    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "llbench_tab.py").write_text(TAB_PLUGIN)
    x, y = tabular(400)
    np.savez(tmp_path / "tab.npz", x=x, y=y)
    code = main(["bench", "--data", str(tmp_path / "tab.npz"), "--scenario", "class", "--plugin", "llbench_tab",
                 "--model", "llbench-tab", "--model-kwargs", '{"width": 8}', "--strategies", "replay",
                 "--seeds", "0", "--epochs", "2", "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"])  # fmt: skip
    assert code == 0
    run = json.loads((tmp_path / "out" / "results.json").read_text())["runs"][0]
    assert run["benchmark"] == "tab-class" and len(run["accuracy_matrix"]) == 3  # one class per experience
    assert run["settings"]["model"] == "llbench-tab" and run["settings"]["model_kwargs"] == {"width": 8}
    assert run["metrics"]["acc"] > 0.5  # replay keeps the old classes well above 1/3


CNN_PLUGIN = """
from torch import nn
from lifelong.learn.models import register_model

@register_model("llbench-cnn")
class Cnn(nn.Module):
    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.classifier = nn.Linear(4 * 8 * 8, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x))
"""


def test_bench_reshapes_rows_of_pixels_for_a_cnn_that_takes_n_classes_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Digit images stored as CSV rows of 64 pixels: refused for a CNN with a message that says how,
    then trained once --input-shape 1,8,8 gives their shape."""
    import numpy as np
    from sklearn.datasets import load_digits

    from lifelong.learn import models

    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "llbench_cnn.py").write_text(CNN_PLUGIN)
    digits = load_digits()
    x, y = digits.data[:600] / 16.0, digits.target[:600]
    header = ",".join([*(f"p{i}" for i in range(64)), "label"])
    np.savetxt(tmp_path / "pixels.csv", np.column_stack([x, y]), delimiter=",", header=header, comments="")
    argv = ["bench", "--data", str(tmp_path / "pixels.csv"), "--plugin", "llbench_cnn", "--model", "llbench-cnn",
            "--strategies", "replay", "--seeds", "0", "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"]  # fmt: skip
    assert main(argv) == 2
    assert "--input-shape C,H,W" in capsys.readouterr().err
    assert main([*argv, "--input-shape", "1,8,8"]) == 0
    run = json.loads((tmp_path / "out" / "results.json").read_text())["runs"][0]
    assert run["settings"]["model"] == "llbench-cnn" and run["metrics"]["acc"] > 0.5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model-kwargs", "{hidden: 3"], "--model-kwargs is not valid JSON"),
        (["--model-kwargs", "[1]"], "JSON object"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--plugin", "no_such_plugin_module"], "plugin 'no_such_plugin_module'"),
        (["--scenario", "domain"], "domain"),
        (["--label-column", "target"], "no label column 'target'"),
        (["--input-shape", "1,2,2"], "--input-shape 1,2,2 holds 4 values per sample"),
        (["--input-shape", "a,b"], "--input-shape must be integers"),
        (["--model", "cnn"], "model cnn needs image inputs"),  # the built-in CNN on table rows
    ],
)
def test_bad_data_flags_exit_2_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    from tests.data._tabular import frame

    frame(40).drop(columns="site").rename(columns={"species": "label"}).to_csv(
        tmp_path / "a.csv", index=False
    )
    code = main(["bench", "--data", str(tmp_path / "a.csv"), "--seeds", "0", "--out", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "results.json").exists()


SMALL = ["bench", "--benchmark", "split-digits", "--strategies", "naive", "--seeds", "0", "--epochs", "1",
         "--train-fraction", "0.3", "--no-plots"]  # fmt: skip


def test_piped_output_is_one_line_per_experience_without_blank_lines(tmp_path: Path) -> None:
    # a real pipe, as in `lifelong bench ... > log`: no progress bar redraws, no blank lines
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.run([sys.executable, "-m", "lifelong.cli", *SMALL, "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines and all(line.strip() for line in lines), proc.stdout
    assert "\r" not in proc.stdout and "\x1b[" not in proc.stdout  # no redraws, no terminal codes
    experience = [line for line in lines if " exp " in line]
    assert [line.split(" exp ")[1].split(":")[0] for line in experience] == ["0", "1", "2", "3", "4"]
    assert all("acc on seen" in line for line in experience)
    assert lines[-1] == f"results: {tmp_path / 'results.json'}"


def test_log_json_is_one_object_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SMALL, "--out", str(tmp_path), "--log-json"]) == 0
    read, *events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert read["event"] == "benchmark" and read["description"].startswith("scikit-learn 8x8 digits")
    kinds = [e["event"] for e in events]
    assert kinds == ["experience"] * 5 + ["run", "summary"]
    assert [e["experience"] for e in events[:5]] == [0, 1, 2, 3, 4]
    assert events[0]["strategy"] == "naive" and 0 <= events[4]["acc_seen"] <= 1
    run = json.loads((tmp_path / "results.json").read_text())["runs"][0]
    assert events[5]["metrics"]["acc"] == pytest.approx(run["metrics"]["acc"])
    assert events[6]["path"] == str(tmp_path / "results.json")


def test_quiet_prints_only_where_the_results_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SMALL, "--out", str(tmp_path), "--quiet"]) == 0
    assert capsys.readouterr().out == f"results: {tmp_path / 'results.json'}\n"


def test_tracking_uri_logs_each_run_to_mlflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mlflow", reason="MLflow is not installed; pip install 'lifelong[tracking]'")
    pytest.importorskip(
        "alembic", reason="MLflow's SQL store needs alembic; pip install 'lifelong[tracking]'"
    )
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*SMALL, "--strategies", "naive,replay", "--buffer", "20", "--out", str(tmp_path), "--quiet"]
    assert main([*args, "--tracking-uri", uri]) == 0
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("lifelong").experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {"split-digits naive seed 0", "split-digits replay seed 0"}
    replay = by_name["split-digits replay seed 0"]
    assert (
        replay.data.params["replay.buffer_size"] == "20" and replay.data.params["benchmark"] == "split-digits"
    )
    measured = json.loads((tmp_path / "results.json").read_text())["runs"][1]["metrics"]
    assert replay.data.metrics["acc"] == pytest.approx(measured["acc"])
    # what tells runs apart (two runs of one plugin model at other sizes logged equal params: a trial)
    assert replay.data.params["model_name"] == "mlp" and replay.data.params["model_kwargs"] == "{}"
    assert len(replay.data.params["code_sha256"]) == 64
    # the experiment chosen (MLFLOW_EXPERIMENT_NAME was ignored: every run went to "lifelong")
    assert main([*args, "--tracking-uri", uri, "--fresh", "--experiment", "study-a"]) == 0
    study = client.get_experiment_by_name("study-a")
    assert study is not None and len(client.search_runs([study.experiment_id])) == 2


def test_bench_device_is_checked_before_training() -> None:
    import torch

    from lifelong.bench.cli import _device
    from lifelong.errors import ConfigError

    assert _device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="--device"):
        _device("not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            _device("cuda")


def test_a_diverged_run_is_written_as_strict_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its NaN metrics are null in results.json and in --log-json lines (Python writes NaN, which jq
    and JavaScript refuse), and ``report`` reads them back as diverged."""
    import math

    from lifelong.bench import runner

    real = runner.run_one

    def diverged(*args: object, **kwargs: object) -> dict:
        run = real(*args, **kwargs)  # type: ignore[arg-type]
        run["metrics"].update(diverged=1.0, acc=math.nan, bwt=math.nan)
        run["accuracy_matrix"][0][0] = math.inf
        return run

    monkeypatch.setattr(runner, "run_one", diverged)

    def refuse(word: str) -> None:
        raise ValueError(f"not JSON: {word}")

    assert main([*SMALL, "--out", str(tmp_path), "--log-json"]) == 0
    events = [json.loads(line, parse_constant=refuse) for line in capsys.readouterr().out.splitlines()]
    (run,) = [e for e in events if e["event"] == "run"]
    assert run["metrics"]["acc"] is None
    doc = json.loads((tmp_path / "results.json").read_text(), parse_constant=refuse)
    assert doc["runs"][0]["metrics"]["acc"] is None and doc["runs"][0]["accuracy_matrix"][0][0] is None
    assert main(["report", str(tmp_path), "--markdown"]) == 0
    assert "diverged" in capsys.readouterr().out
    assert main([*SMALL, "--out", str(tmp_path / "plain")]) == 0  # its line says so, not "ACC nan"
    assert "seed 0: diverged (" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--train-fraction", "0"), ("--train-fraction", "-1"), ("--train-fraction", "1.5"), ("--threads", "0"),
     ("--lr", "nan"), ("--lr", "0"), ("--lr", "-0.1"), ("--epochs", "0"), ("--batch-size", "0"),
     ("--buffer", "-1"), ("--strategies", ""), ("--strategies", " , "), ("--benchmark", ""), ("--seeds", ""),
     ("--seeds", "0,-1"), ("--seeds", "0,a")],
)  # fmt: skip
def test_meaningless_numbers_and_empty_lists_exit_2_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    argv = ["bench", "--benchmark", "split-digits", "--strategies", "naive", "--seeds", "0", "--epochs", "1",
            "--out", str(tmp_path), "--no-plots", flag, value]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: argument {flag}: ") and captured.err.count("\n") == 1
    assert captured.out == "" and not (tmp_path / "results.json").exists()


def test_model_kwargs_the_model_refuses_are_one_line_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*SMALL, "--out", str(tmp_path), "--model-kwargs", '{"hidden": [-3]}']
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: MLP: hidden must be") and "[-3]" in err and err.count("\n") == 1
    assert not (tmp_path / "results.json").exists()


def test_bench_drops_the_columns_named_by_drop_columns(tmp_path: Path) -> None:
    from tests.data._tabular import frame

    df = frame(60).drop(columns="site").rename(columns={"species": "label"})
    df["ticket"] = [f"T{i}" for i in range(60)]
    df.to_csv(tmp_path / "a.csv", index=False)
    argv = ["bench", "--data", str(tmp_path / "a.csv"), "--strategies", "naive", "--seeds", "0", "--no-plots",
            "--no-progress", "--out", str(tmp_path / "out"), "--drop-columns", "ticket"]  # fmt: skip
    assert main(argv) == 0
    assert main([*argv[:-2], "--drop-columns", ","]) == 2  # names no column


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_strategy_refusing_the_model_stops_bench_before_anything_trains(
    dry_run: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """iCaRL after naive and replay: both trained, then exit 2 with no results.json, and --dry-run said
    nothing. The model has no .features, which building iCaRL's learner finds."""
    import numpy as np

    from lifelong.learn import models
    from tests.data._tabular import tabular

    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / f"llbench_tab_refused{dry_run:d}.py").write_text(TAB_PLUGIN)
    x, y = tabular(200)
    np.savez(tmp_path / "tab.npz", x=x, y=y)
    argv = ["bench", "--data", str(tmp_path / "tab.npz"), "--scenario", "class", "--plugin", f"llbench_tab_refused{dry_run:d}",
            "--model", "llbench-tab", "--strategies", "naive,replay,icarl", "--seeds", "0", "--epochs", "1",
            "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"]  # fmt: skip
    assert main([*argv, *(["--dry-run"] if dry_run else [])]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: icarl on tab-class: Tab has no .features module") and "ACC" not in out
    assert not (tmp_path / "out").exists()


def test_bench_reports_fwt_and_intransigence_against_the_cumulative_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The field's intransigence needs a reference run; with cumulative in the grid it is one."""
    import numpy as np

    from lifelong.metrics import intransigence
    from tests.data._tabular import tabular

    x, y = tabular(200)
    np.savez(tmp_path / "tab.npz", x=x, y=y)
    argv = ["bench", "--data", str(tmp_path / "tab.npz"), "--scenario", "class", "--strategies", "naive,cumulative",
            "--seeds", "0", "--epochs", "1", "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"]  # fmt: skip
    assert main(argv) == 0
    runs = {r["strategy"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())["runs"]}
    reference = [row[j] for j, row in enumerate(runs["cumulative"]["accuracy_matrix"])]
    naive = runs["naive"]
    assert naive["metrics"]["intransigence"] == pytest.approx(
        intransigence(naive["accuracy_matrix"], reference)
    )
    assert runs["cumulative"]["metrics"]["intransigence"] == 0.0
    # what FWT and intransigence came from is in the file, so both can be recomputed from it
    from lifelong.metrics import fwt

    assert naive["reference_accuracy"] == reference
    assert naive["metrics"]["fwt"] == pytest.approx(
        fwt(naive["accuracy_matrix"], naive["untrained_accuracy"])
    )
    assert len(naive["flips"]) == len(naive["accuracy_matrix"]) - 1
    out = capsys.readouterr().out
    assert "FWT" in out and "Intransigence" in out
    alone_argv = [a.replace("naive,cumulative", "naive") for a in argv]
    alone_argv[alone_argv.index("--out") + 1] = str(tmp_path / "alone")
    assert main(alone_argv) == 0
    (alone,) = json.loads((tmp_path / "alone" / "results.json").read_text())["runs"]
    assert "intransigence" not in alone["metrics"]  # no reference, no figure


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_strategy_refusing_the_scenario_stops_bench_before_anything_trains(
    dry_run: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PackNet in a class-incremental grid: naive trained first, then exit 2 with no results.json;
    --dry-run listed it and exited 0."""
    import numpy as np

    from tests.data._tabular import tabular

    x, y = tabular(200)
    np.savez(tmp_path / "tab.npz", x=x, y=y)
    argv = ["bench", "--data", str(tmp_path / "tab.npz"), "--scenario", "class", "--strategies", "naive,packnet",
            "--seeds", "0", "--epochs", "1", "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"]  # fmt: skip
    assert main([*argv, *(["--dry-run"] if dry_run else [])]) == 2
    out, err = capsys.readouterr()
    assert (
        err.startswith("error: packnet on tab-class: PackNet does not support class scenarios")
        and "ACC" not in out
    )
    assert not (tmp_path / "out").exists()


def test_bench_on_the_users_file_runs_each_class_default_at_lr_0_03(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README promises the papers' defaults there; the hparams files' old ``default`` block ran
    instead (SI c=0.1, EWC lam=10 on 1000 samples, DER++ alpha 0.3 beta 1.0)."""
    from lifelong.learn.strategy import get_strategy
    from tests.data._tabular import frame

    frame(60).to_csv(tmp_path / "plants.csv", index=False)
    names = ["si", "ewc", "derpp", "rwalk", "mas"]
    argv = ["bench", "--data", str(tmp_path / "plants.csv"), "--label-column", "species", "--drop-columns",
            "site", "--strategies", ",".join(names), "--dry-run", "--log-json"]  # fmt: skip
    assert main(argv) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["strategy"] for d in shown] == names
    for d in shown:
        assert d["lr"] == 0.03 and d["params"] == get_strategy(d["strategy"])().get_params(), d


@pytest.mark.parametrize(
    ("argv", "words"),
    [(["bench", "--data", "x.csv", "--benchmark", "split-digits"], "--data and --benchmark each name"),
     (["advise", "--private", "--store-data"], "--store-data and --private contradict each other"),
     (["bench", "--seeds", "0,1,0"], "argument --seeds: 0 given twice"),  # shown as a spread of 0 over seeds
     (["bench", "--strategies", "naive,ewc,naive"], "argument --strategies: naive given twice")],
)  # fmt: skip
def test_flags_that_contradict_or_would_be_ignored_are_refused(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--benchmark was silently ignored beside --data, and advise took --private with --store-data."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {words}") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "says"),
    [("{}", "not a `lifelong bench` results file"), ("[1]", "not a `lifelong bench` results file"),
     ("nope", "is not JSON"), ('{"accuracy_matrix": [[1.0]]}', "it is one Result: print it with Result.from_json"),
     ('{"runs": [{"benchmark": "b", "strategy": "s", "metrics": {"acc": "x"}}]}', "not a `lifelong bench` results")],
)  # fmt: skip
def test_report_on_a_file_bench_did_not_write_says_so(
    text: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was a raw KeyError, TypeError or JSONDecodeError (exit 1)."""
    (tmp_path / "r.json").write_text(text)
    assert main(["report", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "extra", [["--task-column", "shop"], ["--domain-column", "site"], ["--scenario", "task"]]
)
def test_file_flags_without_data_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             extra: list[str]) -> None:  # fmt: skip
    """They were ignored: `bench --scenario task` ran the default class-incremental Split FMNIST."""
    code = main(["bench", "--strategies", "naive", "--seeds", "0", "--out", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert code == 2 and f"{extra[0]} applies to a --data file only" in err
    assert not (tmp_path / "results.json").exists()


def test_results_name_each_experience_of_a_files_tasks(tmp_path: Path) -> None:
    """results.json did not say which task each accuracy-matrix column was."""
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    from tests.data.test_scenarios import _two_tasks_one_label_set

    _two_tasks_one_label_set(120).to_csv(tmp_path / "r.csv", index=False)
    argv = ["bench", "--data", str(tmp_path / "r.csv"), "--label-column", "returned", "--scenario", "task",
            "--task-column", "shop", "--strategies", "naive", "--seeds", "0", "--epochs", "1",
            "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"]  # fmt: skip
    assert main(argv) == 0
    run = json.loads((tmp_path / "out" / "results.json").read_text())["runs"][0]
    assert [(e["name"], e["task_id"], e["classes"]) for e in run["experiences"]] == [
        ("task-outlet", 1, [0, 1]),
        ("task-flagship", 0, [0, 1]),
    ]


def test_an_interrupted_grid_resumes_from_its_finished_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bench` wrote results only at the end: a grid stopped at its last run kept nothing."""
    grid = ["bench", "--benchmark", "split-digits", "--strategies", "naive,replay", "--seeds", "0,1", "--epochs", "1",
            "--train-fraction", "0.3", "--buffer", "50", "--no-plots", "--no-progress", "--out", str(tmp_path)]  # fmt: skip
    assert main(grid) == 0
    whole = json.loads((tmp_path / "results.json").read_text())["runs"]
    journal = tmp_path / "runs.jsonl"
    lines = journal.read_text().splitlines()
    assert len(lines) == 4
    journal.write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])  # stopped while writing the third
    capsys.readouterr()
    assert main(grid) == 0
    assert "reusing 2 of 4 runs" in capsys.readouterr().out
    again = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert [r["accuracy_matrix"] for r in again] == [
        r["accuracy_matrix"] for r in whole
    ]  # same runs, same order
    assert main([*grid[:-2], "--buffer", "60", "--out", str(tmp_path)]) == 0  # other settings: nothing reused
    assert "reusing" not in capsys.readouterr().out
    assert main([*grid[:4], "naive", *grid[5:], "--fresh"]) == 0  # a subset again: the others stay
    assert "reusing" not in capsys.readouterr().out
    assert main(grid) == 0
    assert "reusing 4 of 4 runs" in capsys.readouterr().out


def test_an_interrupted_grid_says_what_it_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lifelong.bench import runner

    real, calls = runner.run_one, []

    def stopped(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second run
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "run_one", stopped)
    assert main([*SMALL, "--strategies", "naive,replay", "--buffer", "50", "--out", str(tmp_path)]) == 130
    said = capsys.readouterr().out
    assert f"interrupted: 1 of 2 runs finished and kept in {tmp_path / 'runs.jsonl'}" in said


def test_a_run_is_redone_when_a_module_its_plugin_imports_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run key hashed the plugin's own file only: an edited helper it imports reused stale runs."""
    import numpy as np

    from lifelong.learn import models
    from tests.data._tabular import tabular

    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "llbench_keyed_helper.py").write_text("from torch import nn\nACTIVATION = nn.ReLU\n")
    (tmp_path / "llbench_keyed_width.py").write_text("WIDTH = 16\n")
    (tmp_path / "llbench_keyed_lazy.py").write_text("SCALE = 1.0\n")
    (tmp_path / "llbench_keyed.py").write_text(
        TAB_PLUGIN.replace("llbench-tab", "llbench-keyed")
        .replace(
            "from torch import nn",
            "from torch import nn\nimport llbench_keyed_helper\nfrom llbench_keyed_width import WIDTH",
        )
        .replace(
            "        super().__init__()",
            "        super().__init__()\n        import llbench_keyed_lazy  # noqa",
        )
    )
    x, y = tabular(300)
    np.savez(tmp_path / "tab.npz", x=x, y=y)
    argv = ["bench", "--data", str(tmp_path / "tab.npz"), "--scenario", "class", "--plugin", "llbench_keyed",
            "--model", "llbench-keyed", "--strategies", "naive", "--seeds", "0", "--epochs", "1",
            "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"]  # fmt: skip
    try:
        assert main(argv) == 0 and main(argv) == 0
        assert "reusing 1 of 1 runs" in capsys.readouterr().out
        for file, text in (("llbench_keyed_helper.py", "from torch import nn\nACTIVATION = nn.Tanh\n"),
                           ("llbench_keyed_width.py", "WIDTH = 4\n"),  # a constant imported by name
                           ("llbench_keyed_lazy.py", "SCALE = 2.0\n")):  # imported inside a function  # fmt: skip
            (tmp_path / file).write_text(text)
            assert main(argv) == 0
            assert "reusing" not in capsys.readouterr().out, file
    finally:
        for name in ("llbench_keyed", "llbench_keyed_helper", "llbench_keyed_width", "llbench_keyed_lazy"):
            sys.modules.pop(name, None)


def test_a_grid_whose_experiences_train_a_few_steps_says_so() -> None:
    """One epoch on a wine-sized file: 4-5 steps per experience, naive scored a class before training
    on it (FWT > 0, BWT 0) and the table read as a method that forgets nothing."""
    from lifelong.bench.runner import few_steps
    from lifelong.checks import toy_data
    from lifelong.data.scenarios import class_incremental

    small = class_incremental(toy_data(per_class=30), n_experiences=2)  # 60 training samples each
    note = few_steps(small, batch_size=10, epochs=1)
    assert note.startswith("only 6 training steps in experience 0 (60 samples, batch 10, 1 epoch)")
    assert note.endswith("raise --epochs") and few_steps(small, batch_size=10, epochs=6) == ""
