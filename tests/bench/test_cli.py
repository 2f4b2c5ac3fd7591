import json
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


def test_bench_writes_results_and_plots(tmp_path: Path) -> None:
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
