"""The system commands: `lifelong up` as a real process on a fresh data dir, and the registry commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from lifelong.cli import build_parser, main
from tests.system._serve import free_port


def made_store(data_dir: Path) -> Path:
    """An empty store, as `lifelong up` leaves before its first champion: what serve and worker need."""
    from lifelong.system.store import Store

    Store(None, data_dir=data_dir).close()
    return data_dir


@pytest.fixture
def up_without_serving(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`lifelong up` that bootstraps or notes and returns: no worker, no server, its signal handlers undone."""
    import uvicorn

    from lifelong.system import cli as system_cli

    class NoWorker:
        def __init__(self, *args: object, **kwargs: object) -> None: ...
        def start(self) -> None: ...
        def stop(self) -> None: ...

    monkeypatch.setattr(system_cli, "Supervisor", NoWorker)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def test_commands_are_registered_without_heavy_imports() -> None:
    code = ("import sys, argparse; from lifelong.system.cli import add_commands; "
            "add_commands(argparse.ArgumentParser().add_subparsers()); "
            "print(sorted(m for m in ('torch', 'fastapi', 'uvicorn') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"serve", "worker", "up", "models", "promote", "rollback", "simulate"} <= set(sub)


def test_up_serves_a_bootstrapped_champion_on_a_fresh_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "lifelong.cli", "up", "--data-dir", str(tmp_path / "data"), "--port", str(port),
           "--bootstrap", "digits", "--no-auth", "--poll", "0.2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline, health = time.monotonic() + 300, None
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]  # type: ignore[union-attr]
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert health is not None and health.status_code == 200, "the server never became healthy"
        assert health.json()["live"]["champion"]["version"] == 1
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/predict", json={"inputs": [[0.5] * 64, [0.0] * 64]}, timeout=10
        )
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert len(preds) == 2 and all(0 <= p["label"] < 10 for p in preds)
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/samples", json={"inputs": [[0.1] * 64], "labels": [3]}, timeout=10
        )
        assert r.status_code == 201, r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(60) == 0
        finally:
            proc.kill()
    # the registry commands work on the same directory once it is down
    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["models", *data]) == 0
    shown = (
        capsys.readouterr().out
    )  # when each version was made and from which model (a trial's registry view)
    assert "created (UTC)" in shown and re.search(r"│ 1 +│ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d │", shown), shown
    assert main(["promote", "1", *data]) == 0
    assert main(["rollback", *data]) == 2  # nothing earlier to roll back to: a LifelongError, exit code 2


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--policy", "sometimes"],
        ["simulate", "--compare", "--policy", "bogus"],  # ignored before, a typo included
        ["simulate", "--policy-json", '{"forget_on_concept_drif": false}'],  # a typo, named before any run
        ["simulate", "--policy-json", '{"epochs": "two"}'],  # a wrong type, named, not a traceback
        ["up", "--bootstrap", "none"],
        ["up", "--canary-test", "ab", "--canary-alpha", "1.5"],  # a significance level above 1
        # candidates deployed as canaries taking all traffic, which an A/B test can never judge
        [
            "up",
            "--canary-test",
            "ab",
            "--gate-json",
            '{"promote_to": "canary", "canary_share": 1}',
            "--port",
            "17391",
        ],
    ],
)
def test_bad_configuration_exits_2(argv: list[str], tmp_path: Path) -> None:
    assert main([*argv, "--data-dir", str(tmp_path)] if argv[0] == "up" else argv) == 2


@pytest.mark.parametrize("command", ["serve", "worker", "up"])
def test_a_device_this_machine_lacks_is_a_clear_error(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    data = ["--data-dir", str(tmp_path)]
    assert main([command, "--device", "cuda:99", *data]) == 2  # no such GPU anywhere
    assert "--device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([command, "--device", "cuda", *data]) == 2
        err = capsys.readouterr().err
        assert "no CUDA device here" in err and "Traceback" not in err
    assert not (tmp_path / "lifelong.db").exists()  # refused before anything started


@pytest.mark.parametrize(
    "argv",
    [["simulate", "--samples", "0"], ["simulate", "--rate", "-1"], ["simulate", "--rate", "nan"],
     ["simulate", "--label-delay", "-1"], ["simulate", "--seed", "-1"], ["simulate", "--segments", "0"],
     ["simulate", "--bootstrap", "0"], ["worker", "--poll", "0"], ["worker", "--every", "0"],
     ["worker", "--lease-seconds", "-1"], ["worker", "--keep-days", "0"], ["worker", "--keep-versions", "-1"],
     ["worker", "--keep-versions", "0"],
     ["worker", "--retention-every", "nan"], ["worker", "--threads", "0"], ["up", "--n-classes", "0"],
     ["up", "--keep-samples", "0"], ["events", "--limit", "0"], ["promote", "0"], ["promote", "1", "--share", "1.5"]],
)  # fmt: skip
def test_meaningless_numbers_exit_2_naming_the_flag_before_anything_starts(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`up --every 0` was read as no schedule and `--poll -1` as a busy loop; a bad value `up` passed on
    to its worker would have failed in the child, restarted forever."""
    out = ["--out", str(tmp_path)] if argv[0] == "simulate" else ["--data-dir", str(tmp_path)]
    assert main([*argv, *out]) == 2
    err = capsys.readouterr().err
    flag = next((a for a in argv if a.startswith("--")), "version")
    assert err.startswith(f"error: argument {flag}: must be") and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # no store, no run directory


def test_worker_nproc_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--nproc", "0", "--data-dir", str(tmp_path)]) == 2
    assert "--nproc" in capsys.readouterr().err


def test_a_bad_settings_variable_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIFELONG_CHECKPOINT_SECONDS", "-1")
    assert main(["serve", "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "LIFELONG_CHECKPOINT_SECONDS" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()  # nothing created


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_bad_sqlite_synchronous_is_one_line_naming_it(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: `serve` printed uvicorn's start-up traceback (the store opened inside the app's lifespan)."""
    made_store(tmp_path / "d")
    monkeypatch.setenv("LIFELONG_SQLITE_SYNCHRONOUS", "BOGUS")
    auth = ["--no-auth"] if command == "serve" else []
    assert main([command, "--data-dir", str(tmp_path / "d"), *auth]) == 2
    err = capsys.readouterr().err
    assert err == "error: LIFELONG_SQLITE_SYNCHRONOUS='BOGUS' is not valid; use one of NORMAL, FULL, EXTRA\n"


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_or_worker_on_a_data_dir_without_a_store_is_one_line_not_a_new_empty_store(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: a mistyped --data-dir made a new empty store; the server there answered every prediction
    404 'no champion is deployed; register one with System.bootstrap(learner)', the worker waited."""
    auth = ["--no-auth"] if command == "serve" else []
    assert main([command, "--data-dir", str(tmp_path / "typo"), *auth]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no store in ") and "`lifelong up`" in err and "Traceback" not in err
    assert not (tmp_path / "typo").exists()  # nothing created


def test_a_bad_settings_value_is_shown_but_never_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lifelong.system.cli import _shown

    monkeypatch.setenv("LIFELONG_MAX_BATCH", "lots")
    assert main(["serve", "--data-dir", str(tmp_path / "d")]) == 2
    assert "LIFELONG_MAX_BATCH='lots': Input should be a valid integer" in capsys.readouterr().err
    assert _shown({"loc": ("token",), "input": "a-rejected-secret"}) == ""


def test_canary_flags_override_the_environment_and_reach_the_supervised_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lifelong.cli import build_parser
    from lifelong.system.cli import _settings, _worker_command

    monkeypatch.setenv("LIFELONG_CANARY_TEST", "ab")
    monkeypatch.setenv("LIFELONG_CANARY_ALPHA", "0.01")
    args = build_parser().parse_args(["up", "--data-dir", str(tmp_path), "--canary-min-labelled", "200"])
    settings = _settings(args)  # the server's evaluate button and the worker read one rule
    assert (settings.canary_rule.test, settings.canary_rule.alpha) == ("ab", 0.01)  # from the environment
    assert settings.canary_rule.min_labelled == 200  # the flag
    cmd = _worker_command(args, settings)
    given = dict(zip(cmd, cmd[1:], strict=False))  # each flag and the value after it
    assert given["--canary-test"] == "ab" and given["--canary-alpha"] == "0.01"
    assert given["--canary-min-labelled"] == "200" and given["--canary-margin"] == "0.05"


def test_a_bad_canary_variable_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIFELONG_CANARY_ALPHA", "2")
    assert main(["serve", "--data-dir", str(tmp_path / "d")]) == 2
    assert "error: --canary-alpha (LIFELONG_CANARY_ALPHA): canary alpha is" in capsys.readouterr().err
    monkeypatch.delenv("LIFELONG_CANARY_ALPHA")
    monkeypatch.setenv("LIFELONG_CANARY_TEST", "bayes")
    assert main(["worker", "--data-dir", str(tmp_path / "d")]) == 2
    assert "LIFELONG_CANARY_TEST" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--strategy", "nosuch"], "unknown strategy 'nosuch'; registered strategies:"),
        (["--gate-json", '{"promote_to": "canary", "canary_share": 1.5}'], "gate: canary_share is a traffic"),
        (
            ["--strategy", "ewc", "--policy-json", '{"strategy_params": {"buffer_size": 9}}'],
            "strategy_params {'buffer_size': 9} do not fit ewc",
        ),  # fmt: skip
        # every training under torchrun failed on it, retried for ever
        (
            ["--strategy", "gem", "--nproc", "2"],
            "GEM keeps its per-experience memories whole in every process",
        ),
        (["--strategy", "multihead", "--nproc", "2"], "MultiHead computes logits in its own forward"),
        # ignored: only continual trains with a strategy
        (
            ["--policy", "manual", "--strategy", "ewc"],
            "--strategy ewc: only the continual policy trains with",
        ),
    ],
)
def test_a_worker_setting_that_would_fail_every_training_is_refused_at_start(
    flags: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: the worker started and took the lease; every training then failed (an unknown strategy), or
    published its candidate before the canary share 1.5 was refused (a new version per retry)."""
    for command in ("worker", "up"):
        assert main([command, "--data-dir", str(tmp_path / "d"), "--policy", "continual", *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_train_says_when_no_worker_will_pick_the_request_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: `lifelong train` said the worker starts it at its next poll when no worker ran (/readyz knew)."""
    from lifelong.system.service import System
    from lifelong.system.store import Store
    from tests.system._models import trained

    with System(data_dir=tmp_path, auth=False) as system:
        system.bootstrap(trained(0))
    assert main(["train", "--data-dir", str(tmp_path)]) == 0
    assert "no worker holds the lease" in capsys.readouterr().out
    with Store(data_dir=tmp_path) as store:
        assert store.acquire_lease("worker", "host:1:abc", 30)
        assert len(store.events("train_request")) == 1  # recorded either way: a worker started later takes it
    assert main(["train", "--data-dir", str(tmp_path)]) == 0
    assert "the worker starts it at its next poll" in capsys.readouterr().out
    for reason in ("", "x" * 201):  # as POST /v1/train refuses them (both were stored)
        assert main(["train", "--data-dir", str(tmp_path), "--reason", reason]) == 2
        assert "--reason: must be 1 to 200 characters" in capsys.readouterr().err


def test_up_bootstraps_a_cnn_from_rows_of_pixels_given_their_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lifelong up --bootstrap pixels.csv --input-shape 1,8,8` with a plugin CNN: the contract says
    [1, 8, 8]; without the shape the CNN is refused before anything is registered."""
    import numpy as np
    import uvicorn
    from sklearn.datasets import load_digits

    from lifelong.learn import models
    from lifelong.system import cli
    from lifelong.system.contract import Contract
    from lifelong.system.registry import Registry
    from lifelong.system.store import Store

    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)  # bootstrap only: no server, no worker
    monkeypatch.setattr(cli.Supervisor, "start", lambda self: None)
    monkeypatch.setattr(cli.Supervisor, "stop", lambda self: None)
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "upcnn.py").write_text(
        "from torch import nn\nfrom lifelong.learn.models import register_model\n\n"
        "@register_model('up-cnn')\nclass Cnn(nn.Module):\n"
        "    def __init__(self, n_classes: int) -> None:\n        super().__init__()\n"
        "        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten())\n"
        "        self.classifier = nn.Linear(256, n_classes)\n\n"
        "    def forward(self, x):\n        return self.classifier(self.features(x))\n"
    )
    digits = load_digits()
    header = ",".join([*(f"p{i}" for i in range(64)), "label"])
    rows = np.column_stack([digits.data[:300] / 16.0, digits.target[:300]])
    np.savetxt(tmp_path / "pixels.csv", rows, delimiter=",", header=header, comments="")
    argv = ["up", "--no-auth", "--data-dir", str(tmp_path / "d"), "--bootstrap", str(tmp_path / "pixels.csv"),
            "--plugin", "upcnn", "--model", "up-cnn"]  # fmt: skip
    assert main(argv) == 2
    assert "--input-shape C,H,W" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before anything was registered, and nothing left
    assert main([*argv, "--input-shape", "1,8,8"]) == 0
    with Store(data_dir=tmp_path / "d") as store:
        contract = Contract.load(Registry(store).get(1).path)
    assert contract is not None and contract.input_shape == (1, 8, 8)
    # a later start that forgets --plugin: one line, exit 2 (was: a server answering "no champion is
    # deployed", and a worker that held the lease and failed every training with a traceback)
    del models.MODELS["up-cnn"]
    for command in (["serve", "--no-auth"], ["worker"], ["up", "--no-auth"]):
        assert main([*command, "--data-dir", str(tmp_path / "d")]) == 2
        err = capsys.readouterr().err
        assert "the champion (v1) needs the model 'up-cnn'" in err and "--plugin MODULE" in err, err


def test_a_bootstrap_refused_at_start_leaves_the_data_dir_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: `up --bootstrap bad.csv` refused (no such label column, a model with too few outputs) left
    an empty store, a token and artifacts/ with no version registered."""
    import numpy as np
    import uvicorn
    from sklearn.datasets import make_classification

    from lifelong.system import cli
    from lifelong.system.registry import Registry
    from lifelong.system.store import Store

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)  # bootstrap only: no server, no worker
    monkeypatch.setattr(cli.Supervisor, "start", lambda self: None)
    monkeypatch.setattr(cli.Supervisor, "stop", lambda self: None)
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)
    monkeypatch.delenv("LIFELONG_TOKEN", raising=False)  # auth on: up would write <data-dir>/token
    x, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=0)
    rows = np.column_stack([x, y])
    np.savetxt(tmp_path / "t.csv", rows, delimiter=",", header="a,b,c,d,e,f,target", comments="")
    data = tmp_path / "d"
    argv = ["up", "--data-dir", str(data), "--bootstrap", str(tmp_path / "t.csv")]
    assert main(argv) == 2  # no column 'label'
    err = capsys.readouterr().err
    assert "no label column 'label'" in err and len(err.strip().splitlines()) == 1, err
    assert not data.exists()
    data.mkdir()
    (data / "notes.txt").write_text("mine")  # what was there before stays
    assert main([*argv, "--label-column", "target", "--model-kwargs", '{"n_classes": 2}']) == 2
    assert "2 outputs" in capsys.readouterr().err
    assert sorted(p.name for p in data.iterdir()) == ["notes.txt"]
    assert main([*argv, "--label-column", "target"]) == 0  # fixed: the same directory bootstraps
    assert (data / "token").is_file() and (data / "notes.txt").read_text() == "mine"
    with Store(data_dir=data) as store:
        assert Registry(store).alias("champion") == 1


def test_up_trains_the_first_champion_with_the_given_optimizer_rate_batch_and_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: fixed at SGD lr 0.05, batch 16, 10 epochs, inherited by every later version; a model that
    needs another rate (a text model at 0.5, say) recovered slowly and --policy-json could not change it."""
    import numpy as np
    import uvicorn
    from sklearn.datasets import make_classification

    from lifelong.learn.learner import Learner
    from lifelong.system import cli
    from lifelong.system.registry import Registry
    from lifelong.system.store import Store

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)  # bootstrap only: no server, no worker
    monkeypatch.setattr(cli.Supervisor, "start", lambda self: None)
    monkeypatch.setattr(cli.Supervisor, "stop", lambda self: None)
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)
    x, y = make_classification(n_samples=200, n_features=6, n_informative=4, n_classes=3, random_state=0)
    np.savetxt(
        tmp_path / "t.csv", np.column_stack([x, y]), delimiter=",", header="a,b,c,d,e,f,label", comments=""
    )
    data = tmp_path / "d"
    argv = ["up", "--data-dir", str(data), "--bootstrap", str(tmp_path / "t.csv"), "--no-auth"]
    assert main([*argv, "--optimizer", "adagrad"]) == 2
    assert "optimizer: unknown 'adagrad'; valid: sgd, adam, adamw" in capsys.readouterr().err
    assert main([*argv, "--lr", "0"]) == 2
    assert "--lr: must be a finite number above 0" in capsys.readouterr().err
    assert (
        main([*argv, "--optimizer", "adam", "--lr", "0.002", "--batch-size", "32", "--bootstrap-epochs", "3"])
        == 0
    )
    with Store(data_dir=data) as store:
        champion = Registry(store).get(1)
        learner = Learner.load(champion.path)
    assert (learner.optimizer_name, learner.lr, learner.batch_size) == ("adam", 0.002, 32)
    assert learner.step == 3 * -(-160 // 32)  # 3 passes over the 80% it trains on, 32 a step
    from lifelong.cli import training_kwargs

    args = build_parser().parse_args(["up", "--optimizer", "adamw"])
    assert training_kwargs(args)["lr"] == 1e-3  # an adaptive optimizer's own scale, not SGD's 0.05
    assert training_kwargs(build_parser().parse_args(["up"]))["lr"] == 0.05


def test_up_frees_the_lease_of_its_dead_worker_and_only_that(tmp_path: Path) -> None:
    """A restarted worker used to wait out the dead one's lease (15 s by default) before training."""
    from lifelong.system.cli import _free_lease
    from lifelong.system.settings import Settings
    from lifelong.system.store import Store
    from lifelong.system.worker import LEASE, holder_prefix

    settings = Settings(data_dir=tmp_path, auth=False)
    with Store(settings.db_url, data_dir=tmp_path) as store:
        assert store.acquire_lease(LEASE, holder_prefix(4242) + "abc123", 15.0)
        _free_lease(settings, 4343)  # another process's lease (a worker `up` did not start) stays
        assert store.lease(LEASE) is not None
        _free_lease(settings, 4242)
        assert store.lease(LEASE) is None


@pytest.mark.parametrize("command", [["models"], ["events"], ["train"], ["promote", "1"], ["rollback"]])
def test_registry_commands_refuse_a_data_dir_without_a_store(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: a mistyped --data-dir (or the wrong working directory) made a new empty store and exited 0."""
    typo = tmp_path / "lifelong-dta"
    assert main([*command, "--data-dir", str(typo)]) == 2
    assert "no store in" in capsys.readouterr().err and not typo.exists()


def test_up_on_a_port_in_use_fails_before_bootstrapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: it trained the first champion, then failed to bind (exit 3); with auth it still wrote
    ``<data-dir>/token`` first."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["up", "--data-dir", str(tmp_path / "d"), "--port", str(port), "--no-auth"]) == 2
        assert "pick another --port" in capsys.readouterr().err
        assert not (tmp_path / "d").exists()  # nothing created: no store, no directory
        monkeypatch.delenv("LIFELONG_TOKEN", raising=False)  # auth with no token: up would generate one
        assert main(["up", "--data-dir", str(tmp_path / "d"), "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert "pick another --port" in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "d").exists()  # was: <data-dir>/token


def test_up_names_the_flag_or_value_at_fault(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """--port 70000 was reported as LIFELONG_PORT; --host 256.1.1.1 was told to pick another port; a file
    as --data-dir failed on its token file; a MySQL URL on a missing driver; LIFELONG_TOKN was ignored
    without a word."""
    data = str(tmp_path / "d")
    cases = [
        (["--port", "70000"], "--port=70000: Input should be less than or equal to 65535"),
        (["--host", "256.1.1.1", "--port", str(free_port())], "give --host an address of this machine"),
        (["--data-dir", __file__], "is a file; give a directory"),
        (["--db-url", "mysql://x/y"], "database URL scheme 'mysql' is not supported"),
    ]
    for extra, says in cases:
        assert main(["up", "--data-dir", data, "--no-auth", *extra]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d").exists()
    monkeypatch.setenv("LIFELONG_TOKN", "x" * 20)
    assert main(["up", "--data-dir", data, "--no-auth", "--port", "70000"]) == 2
    assert "LIFELONG_TOKN is not a variable lifelong reads (did you mean LIFELONG_TOKEN?)" in caplog.text


@pytest.mark.parametrize("alias", ["canary", "shadow"])
def test_promote_canary_or_shadow_without_share_takes_the_api_default(tmp_path: Path, alias: str) -> None:
    """`lifelong promote V --alias canary` without --share used to store no share: a canary that got no
    traffic (and a shadow mirroring all of it); it now takes POST /v1/deployments' default, 0.1."""
    from lifelong.learn import Learner, create_model
    from lifelong.system.registry import Registry
    from lifelong.system.service import System
    from lifelong.system.store import Store

    data = tmp_path / "data"
    with System(data_dir=data, auth=False) as system:
        for _ in range(2):
            system.bootstrap(Learner(create_model("mlp", in_features=4, n_classes=2)))
    assert main(["promote", "1", "--alias", alias, "--data-dir", str(data)]) == 0
    with Store(data_dir=data) as store:
        assert Registry(store).aliases()[alias].share == 0.1


def test_promote_an_ab_canary_at_share_1_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: accepted, then the A/B test waited for ever in silence (a canary taking all traffic leaves
    the champion's arm empty)."""
    from lifelong.learn import Learner, create_model
    from lifelong.system.registry import Registry
    from lifelong.system.service import System
    from lifelong.system.store import Store

    monkeypatch.setenv("LIFELONG_CANARY_TEST", "ab")  # the rule when no worker holds the lease
    data = tmp_path / "data"
    with System(data_dir=data, auth=False) as system:
        for _ in range(2):
            system.bootstrap(Learner(create_model("mlp", in_features=4, n_classes=2)))
    capsys.readouterr()
    assert main(["promote", "1", "--alias", "canary", "--share", "1", "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--alias canary" in err and "A/B canary test" in err, err
    assert "give a share below 1" in err and "never reaches its horizon" in err, err
    with Store(data_dir=data) as store:
        assert set(Registry(store).aliases()) == {"champion"}  # nothing deployed
    assert main(["promote", "1", "--alias", "canary", "--share", "0.5", "--data-dir", str(data)]) == 0


def test_promote_says_the_share_and_what_it_replaced_and_undeploy_ends_a_canary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: `promote 5 --alias canary` printed only `canary -> v5` after silently replacing v2 at 20%
    with 10%, and the CLI had no way to end a canary (`rollback --alias canary` revived an older one)."""
    from lifelong.learn import Learner, create_model
    from lifelong.system.registry import Registry
    from lifelong.system.service import System
    from lifelong.system.store import Store

    data = tmp_path / "data"
    with System(data_dir=data, auth=False) as system:
        for _ in range(3):
            system.bootstrap(Learner(create_model("mlp", in_features=4, n_classes=2)))
    at = ["--data-dir", str(data)]
    capsys.readouterr()
    assert main(["promote", "1", "--alias", "canary", "--share", "0.2", *at]) == 0
    assert capsys.readouterr().out.strip() == "canary -> v1 at 20%"
    assert main(["promote", "2", "--alias", "canary", *at]) == 0
    assert capsys.readouterr().out.strip() == "canary -> v2 at 10% (was v1 at 20%)"
    assert main(["promote", "2", "--alias", "canary", "--share", "0.4", *at]) == 0  # a ramp
    assert capsys.readouterr().out.strip() == "canary -> v2 at 40% (was v2 at 10%)"
    assert main(["promote", "2", "--alias", "canary", *at]) == 0  # again, no share: it keeps its 40%
    assert capsys.readouterr().out.strip() == "canary -> v2 at 40% (was v2 at 40%)"
    assert main(["undeploy", "canary", *at]) == 0
    assert capsys.readouterr().out.strip() == "canary v2 ended: the champion serves all traffic"
    with Store(data_dir=data) as store:
        assert set(Registry(store).aliases()) == {"champion"}
    assert main(["undeploy", "canary", *at]) == 0  # idempotent, and says so
    assert "no canary is deployed; nothing to end" in capsys.readouterr().out
    assert main(["undeploy", "champion", *at]) == 2  # the champion always serves


def test_register_publishes_a_learner_trained_offline_serving_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rollout trial had no documented way to register its own offline-trained version without
    promoting it (System.bootstrap made it the champion, skipping any canary)."""
    from lifelong.learn import Learner, create_model
    from lifelong.strategies import MultiHead
    from lifelong.system.contract import Contract
    from lifelong.system.registry import Registry
    from lifelong.system.service import System
    from lifelong.system.store import Store

    data = tmp_path / "data"
    x, y = torch.randn(40, 4), torch.arange(40) % 2
    with System(data_dir=data, auth=False) as system:
        first = Learner(create_model("mlp", in_features=4, n_classes=2))
        first.partial_fit(x, y)
        system.bootstrap(first, contract=Contract.fit(x.numpy(), y.numpy(), class_names=["no", "yes"]))
    offline = Learner(create_model("mlp", in_features=4, n_classes=2), lr=0.1)
    offline.partial_fit(x, y)
    offline.save(tmp_path / "offline")
    at = ["--data-dir", str(data)]
    capsys.readouterr()
    assert main(["register", str(tmp_path / "offline"), *at]) == 0
    assert (
        "v2 registered, serving nothing: roll it out with `lifelong promote 2 --alias canary"
        in capsys.readouterr().out
    )
    with Store(data_dir=data) as store:
        registry = Registry(store)
        assert registry.alias("champion") == 1 and registry.get(2).params["model"] == "mlp"
        assert Contract.load(registry.get(2).path).class_names == ("no", "yes")  # the champion's contract
    other = Learner(
        create_model("mlp", in_features=3, n_classes=2)
    )  # another schema: promote would refuse it
    other.save(tmp_path / "other")
    assert main(["register", str(tmp_path / "other"), *at]) == 0
    assert "note: it would break the clients of champion v1: inputs of shape [3]" in capsys.readouterr().out
    task_aware = Learner(create_model("mlp", in_features=4, n_classes=2), [MultiHead()])
    task_aware.save(tmp_path / "multihead")
    assert main(["register", str(tmp_path / "multihead"), *at]) == 2
    assert "register: MultiHead needs each sample's task id to predict" in capsys.readouterr().err
    assert main(["register", str(tmp_path / "nothing"), *at]) == 2


def test_a_worker_or_up_with_the_ab_test_refuses_a_live_canary_at_share_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: `worker --canary-test ab` (or `up`) started and held the lease while a canary deployed at
    share 1 under the threshold rule waited for ever: the A/B test never judges it."""
    from lifelong.learn import Learner, create_model
    from lifelong.system.registry import Registry
    from lifelong.system.service import System
    from lifelong.system.store import Store

    data = tmp_path / "data"
    with System(data_dir=data, auth=False) as system:
        for _ in range(2):
            system.bootstrap(Learner(create_model("mlp", in_features=4, n_classes=2)))
    assert main(["promote", "1", "--alias", "canary", "--share", "1", "--data-dir", str(data)]) == 0
    capsys.readouterr()
    for command in (["worker"], ["up", "--no-auth", "--port", str(free_port())]):
        assert main([*command, "--data-dir", str(data), "--canary-test", "ab"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "the live canary v1 at share 1" in err, err
        assert "lifelong promote 1 --alias canary --share 0.5" in err, err
    with Store(data_dir=data) as store:
        assert Registry(store).aliases()["canary"].share == 1.0 and store.lease("worker") is None


def test_serve_on_a_port_in_use_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: ``serve`` started uvicorn, which logged the bind error and exited 3 (``up`` said it in one line)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--data-dir", str(tmp_path / "d"), "--port", str(port), "--no-auth"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot listen on 127.0.0.1:") and "pick another --port" in err
    assert len(err.strip().splitlines()) == 1


def test_serve_stopped_by_sigterm_leaks_no_semaphore(tmp_path: Path) -> None:
    """Was: every SIGTERM of `lifelong serve` ended with "resource_tracker: There appear to be 5 leaked
    semaphore objects to clean up at shutdown": the JSON parsing helper's process pool (the locks of its
    two queues) was shut down without waiting, and uvicorn then ends the process by re-raising SIGTERM,
    while the pool's thread still held them, so they were never unlinked."""
    port = free_port()
    cmd = [sys.executable, "-m", "lifelong", "serve", "--data-dir", str(made_store(tmp_path / "d")), "--port", str(port),
           "--no-auth"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the server never answered"
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        big = {"inputs": [[0.5] * 8] * 20_000}  # over OFFLOAD_BYTES: parsed in the helper process
        httpx.post(f"http://127.0.0.1:{port}/v1/samples", json=big, timeout=60)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "Finished server process" in err, err
    assert "leaked semaphore" not in err and "resource_tracker" not in err, err


def test_serve_shows_the_servers_info_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: `lifelong serve` configured no handler for the library's logger, so only warnings showed:
    'took back 100 predictions a stopped server could not record', 'recorded the predictions answered
    while the store could not write' and the store's return never appeared in a replica's log."""
    import logging
    import logging.config

    import uvicorn

    logger = logging.getLogger("lifelong")
    before = list(logger.handlers), logger.level

    def fake_run(app: object, **kwargs: object) -> None:  # uvicorn applies its log_config first
        logging.config.dictConfig(kwargs["log_config"])  # type: ignore[arg-type]
        logging.getLogger("lifelong.system.service").info("recorded the predictions answered while ...")

    monkeypatch.setattr(uvicorn, "run", fake_run)
    try:
        assert (
            main(
                [
                    "serve",
                    "--data-dir",
                    str(made_store(tmp_path / "d")),
                    "--port",
                    str(free_port()),
                    "--no-auth",
                ]
            )
            == 0
        )
    finally:
        logger.handlers[:], logger.level = before
    assert "server INFO recorded the predictions answered while" in capsys.readouterr().err


def test_up_on_a_database_that_has_a_champion_names_the_database_not_the_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], up_without_serving: None
) -> None:
    """Was: `lifelong up --db-url postgresql://... --data-dir fresh --bootstrap data.csv` on a shared store
    said 'note: fresh already has a champion (v7)' (an empty directory) and 'start from a new --data-dir',
    which bootstraps nothing either: the database holds the champion."""
    from lifelong.system.service import System
    from lifelong.system.settings import Settings
    from tests.system._models import trained

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with System(Settings(data_dir=tmp_path / "shared", db_url=url, auth=False)) as system:
        system.bootstrap(trained())

    argv = ["up", "--data-dir", str(tmp_path / "shared"), "--db-url", url, "--bootstrap", "fmnist",
            "--no-auth", "--port", str(free_port())]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "note: Store('sqlite:///" in err and "shared.db') already has a champion (v1)" in err, err
    assert "start from a new database (--db-url)" in err and "shared already has" not in err
    # a fresh --data-dir holds none of the store's artifacts: refused at start (it served 503s and its worker
    # took the store's lease), and nothing is left behind
    argv[argv.index("--data-dir") + 1] = str(tmp_path / "fresh")
    assert main(argv) == 2
    assert (
        "holds none of them: start with the --data-dir the store was served with" in capsys.readouterr().err
    )
    assert not (tmp_path / "fresh").exists()


def test_a_worker_finds_the_store_where_its_store_would_open_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: the store check read only the flags, so `lifelong worker` without --data-dir died with a
    TypeError traceback (Path(None)), and README's PostgreSQL replicas (LIFELONG_DB_URL exported,
    --data-dir the shared artifact volume, no lifelong.db in it) were refused 'no store in ...'."""
    from lifelong.system import cli as system_cli
    from lifelong.system.store import Store
    from lifelong.system.worker import Worker

    ran: list[str] = []
    monkeypatch.setattr(Worker, "run", lambda self: ran.append(str(self.store.engine.url)))
    monkeypatch.setattr(system_cli, "_stop_on_signal_or_orphan", lambda stop, parent: None)
    Store(data_dir=tmp_path / "lifelong-data").close()  # ./lifelong-data, the documented default
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIFELONG_DB_URL", raising=False)
    assert main(["worker"]) == 0, capsys.readouterr().err
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"  # the database is not in --data-dir
    Store(url, data_dir=tmp_path / "elsewhere").close()
    monkeypatch.setenv("LIFELONG_DB_URL", url)
    assert main(["worker", "--data-dir", str(tmp_path / "artifacts")]) == 0, capsys.readouterr().err
    assert len(ran) == 2 and "elsewhere.db" in ran[1]


def test_up_on_a_store_with_a_champion_names_the_first_champion_flags_it_ignores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], up_without_serving: None
) -> None:
    """Was: `lifelong up --lr 0.5 --optimizer adam` on a data dir that had a champion said nothing (the note
    named only --bootstrap, --model and --model-kwargs, and only when one of those was given), so an
    operator restarting with a new rate believed it applied; the flags train the first champion only."""
    from lifelong.system.service import System
    from lifelong.system.settings import Settings
    from tests.system._models import trained

    with System(Settings(data_dir=tmp_path / "d", auth=False)) as system:
        system.bootstrap(trained())

    base = ["up", "--data-dir", str(tmp_path / "d"), "--no-auth", "--port", str(free_port())]
    assert main([*base, "--lr", "0.5", "--optimizer", "adam", "--allow-new-classes"]) == 0
    err = capsys.readouterr().err
    assert "already has a champion (v1); --allow-new-classes, --lr and --optimizer only set up" in err, err
    assert main([*base, "--optimizer", "sgd"]) == 0  # the default typed out is ignored all the same
    assert (
        "already has a champion (v1); --optimizer only sets up an empty store and is ignored"
        in capsys.readouterr().err
    )
    assert main(base) == 0  # nothing given for a first champion: nothing to note
    assert "already has a champion" not in capsys.readouterr().err


def test_simulate_refuses_data_and_stream_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--stream was silently ignored beside --data."""
    argv = [
        "simulate",
        "--data",
        str(tmp_path / "x.csv"),
        "--stream",
        "sea-drift",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: --data and --stream each name what to replay")
    assert main([*argv[:3], "--samples", "600", *argv[5:]]) == 2
    assert capsys.readouterr().err.startswith("error: --samples sets a --stream's length")
    assert not (tmp_path / "o").exists()


def test_a_worker_with_a_tracking_store_mlflow_refuses_stops_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It started and then only warned at every training attempt, logging nothing."""
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = (tmp_path / "mlruns").as_uri()
    assert main(["worker", "--data-dir", str(tmp_path / "d"), "--tracking-uri", uri]) == 2
    assert "MLFLOW_ALLOW_FILE_STORE=true" in capsys.readouterr().err


def test_a_tracking_store_that_cannot_be_opened_is_a_warning_and_requests_are_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A database left half-created by a kill crash-looped every worker start with a traceback, and an
    unreachable server held the worker's loop for minutes per attempt (7 retries with growing waits)."""
    pytest.importorskip("mlflow")
    from lifelong.system.cli import _tracker

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    broken = tmp_path / "mlflow.db"
    broken.write_bytes(b"not a database at all" * 10)
    assert _tracker(f"sqlite:///{broken}") is not None  # the worker starts; each attempt tries again
    assert "cannot be opened" in caplog.text and "training goes on" in caplog.text
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "10"


def test_promote_of_another_schema_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lifelong.learn import Learner, create_model
    from lifelong.system.service import System

    data = tmp_path / "data"
    with System(data_dir=data, auth=False) as system:
        system.bootstrap(Learner(create_model("mlp", in_features=4, n_classes=2)))
        system.bootstrap(Learner(create_model("mlp", in_features=6, n_classes=2)), force=True)
    assert main(["promote", "1", "--data-dir", str(data)]) == 2
    assert (
        "v1 would break the clients of champion v2: inputs of shape [4] instead of [6]"
        in capsys.readouterr().err
    )
    assert main(["promote", "1", "--alias", "shadow", "--data-dir", str(data)]) == 0  # answers no client
    assert main(["promote", "1", "--force", "--data-dir", str(data)]) == 0


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    """`lifelong events --json | head` printed a BrokenPipeError traceback."""
    from lifelong.system.events import EventKind
    from lifelong.system.store import Store

    with Store(data_dir=tmp_path / "d") as store:
        for _ in range(3000):  # more than a pipe holds
            store.add_event(EventKind.TRAIN_REQUEST, {"reason": "x" * 50})
    proc = subprocess.Popen([sys.executable, "-m", "lifelong", "events", "--data-dir", str(tmp_path / "d"), "--json",
                             "--limit", "3000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err and proc.returncode == 1, err


def test_up_refuses_a_tracking_uri_mlflow_refuses_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It served anyway, and restarted its worker (which exited 2 on the URI) every 1, 2, 4 ... s for ever."""
    pytest.importorskip("mlflow", reason="tracking needs lifelong[tracking]")
    from lifelong.cli import main

    assert (
        main(["up", "--data-dir", str(tmp_path / "d"), "--tracking-uri", "bogus://x", "--bootstrap", "none"])
        == 2
    )
    assert "tracking URI 'bogus://x'" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_rollback_to_a_damaged_version_is_refused_and_moves_nothing(tmp_path: Path) -> None:
    """promote verified and loaded its version; rollback pointed the champion at whatever came before."""
    from lifelong.checks import toy_data
    from lifelong.learn import Learner
    from lifelong.system.registry import Registry
    from lifelong.system.store import Store
    from lifelong.system.trainer import bootstrap

    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        bootstrap(
            store, registry, toy_data(per_class=30).train, n_classes=4, epochs=1, lr=0.05, batch_size=16
        )
        with registry.publish(strategy="naive", parent=1) as draft:
            Learner.load(registry.get(1).path).save(draft.path)
            for name in ("contract.json",):
                (draft.path / name).write_bytes((registry.get(1).path / name).read_bytes())
        registry.set_alias("champion", 2)
        manifest = registry.get(1).path / "manifest.json"
        manifest.write_text(manifest.read_text() + " ")
    assert main(["rollback", "--data-dir", str(tmp_path)]) == 2
    with Store(data_dir=tmp_path) as store:
        assert Registry(store).alias("champion") == 2


def test_status_says_what_serves_who_trains_and_how_much_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator had no command for "labels stored" (a load trial read the SQLite file by hand)."""
    from lifelong.system.service import System
    from tests.system._models import DATA, trained
    from tests.system._system import settings

    with System(settings(tmp_path)) as system:
        system.bootstrap(trained())
        answers = system.predict(DATA.test.x[:10])
        system.feedback([(a["id"], int(y)) for a, y in zip(answers[:4], DATA.test.y[:4].tolist())])
    assert main(["status", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "serving: champion v1 (none)" in out and "no worker holds the lease" in out
    assert (
        "data: 10 samples, 4 labelled (0 trained on, 4 new since the last training), 10 predictions, 4 feedback"
        in out
    )
    assert "last training: none yet" in out and "training running" not in out
    # a training without a verdict yet, or ended without one (a trial: after a kill -9 `status` showed
    # only the verdict before, neither the interrupted training nor the one running)
    with System(settings(tmp_path)) as system:
        system.store.add_event(
            "training", {"state": "started", "reason": "requested by hand", "mode": "finetune"}
        )
    assert main(["status", "--data-dir", str(tmp_path)]) == 0
    assert "training running (" in capsys.readouterr().out
    # a worker killed outright leaves its lease to expire: it read as a clean stop (a trial's SIGKILL)
    with System(settings(tmp_path)) as system:
        system.store.acquire_lease("worker", "host:42:abc", 0.01)
    time.sleep(0.05)
    assert main(["status", "--data-dir", str(tmp_path)]) == 0
    assert "worker: the worker host:42:abc is gone: its lease expired 0 s ago" in capsys.readouterr().out
    # a canary's progress: only POST .../canary/evaluate showed it, and that could act (a rollout trial)
    with System(settings(tmp_path)) as system:
        system.bootstrap(trained(1))
        system.deploy(1, "canary", share=0.5)
        answers = system.predict(DATA.test.x[:40], ids=[f"r{i}" for i in range(40)])
        system.feedback([(a["id"], int(y)) for a, y in zip(answers, DATA.test.y[:40].tolist())])
    assert main(["status", "--data-dir", str(tmp_path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("canary: "))
    assert re.fullmatch(r"canary: champion v2 \d+ judged at [\d.]+, canary v1 \d+ judged at [\d.]+ since it was "
                        r"deployed \(threshold rule: 50 each before it decides\)", line), line  # fmt: skip
    monkeypatch.setenv("LIFELONG_CANARY_MIN_LABELLED", "10")  # both arms have their samples: the verdict now
    assert main(["status", "--data-dir", str(tmp_path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("canary: "))
    assert re.search(r"\(threshold rule: now: (promote|rollback|wait \(within the 0.05 margin\))\)$", line), (
        line
    )


def test_serve_without_a_token_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It refused, but only after the registry had made artifacts/.staging and .lock in the data dir."""
    from lifelong.system.store import Store

    monkeypatch.delenv("LIFELONG_TOKEN", raising=False)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with Store(url, data_dir=tmp_path / "made"):
        pass
    assert (
        main(["serve", "--data-dir", str(tmp_path / "other"), "--db-url", url, "--port", str(free_port())])
        == 2
    )
    assert "auth is on but no token is set" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_events_print_text_with_brackets_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A failed job's gloo error ("[/__w/pytorch/.../pair.cc:553] Connection closed") crashed `lifelong events`
    with rich's MarkupError (a trial); a reason a client typed with brackets did the same."""
    from lifelong.system.store import Store

    with Store(data_dir=tmp_path) as store:
        store.add_event(
            "training", {"state": "failed", "error": "[/__w/gloo/pair.cc:553] Connection closed [bold]"}
        )
        store.add_event("train_request", {"reason": "[/red] by hand"})
    assert main(["events", "--data-dir", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "[/__w/gloo/pair.cc:553]" in out and "[/red]" in out
