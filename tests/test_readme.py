"""The README's Python quick starts run as written, on data that is not the demo's (scikit-learn's digits)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block(containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [b for b in blocks if containing in b]
    return block


def test_the_service_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.datasets import load_digits

    from lifelong.system.registry import Registry
    from lifelong.system.store import Store

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)  # the block's model is drawn from the global generator: 1 seed in 60 gates v2 out
    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target
    scope = {"x_old": x[:1000], "y_old": y[:1000], "x_new": x[1000:1200], "y_new": y[1000:1200]}
    exec(compile(_python_block("Worker(system.store"), str(README), "exec"), scope)  # noqa: S102
    with Store(data_dir=tmp_path / "lifelong-data") as store:
        registry = Registry(store)
        assert registry.alias("champion") == 2  # trained from v1 on the feedback, gated and promoted
        assert registry.get(2).parent == 1


def test_your_own_model_and_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin block, then the block that loads data.csv and trains the plugin model on it."""
    from lifelong.learn import models

    monkeypatch.chdir(tmp_path)
    # the README's "tabnet" stays in this test; one the examples' plugin registered in this process is not
    # the README's class, so it is left out (was: "'tabnet' is already registered by mymodels.TabNet")
    monkeypatch.setattr(models, "MODELS", {k: v for k, v in models.MODELS.items() if k != "tabnet"})
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    x = rng.normal(size=(400, 30)) + np.eye(3)[y] @ rng.normal(size=(3, 30))
    header = ",".join([*(f"f{i}" for i in range(30)), "label"])
    np.savetxt("data.csv", np.column_stack([x, y]), delimiter=",", header=header, comments="", fmt="%.5g")
    # the plugin block is the user's mymodels.py; the data block runs on its own, as a separate script
    # (it ran in the plugin block's scope, and so never needed the `import mymodels` a user does)
    (tmp_path / "mymodels.py").write_text(_python_block('@register_model("tabnet")'))
    monkeypatch.syspath_prepend(str(tmp_path))
    examples = sys.modules.pop("mymodels", None)  # the examples' plugin has the same name
    try:
        exec(compile(_python_block('load_table("data.csv"'), str(README), "exec"), {})  # noqa: S102
    finally:  # later tests import the examples' mymodels again, not this one
        sys.modules.pop("mymodels", None)
        if examples is not None:
            sys.modules["mymodels"] = examples
    assert (tmp_path / "ckpt").is_dir()


def test_the_tuned_strategy_snippet() -> None:
    from lifelong.learn import Learner
    from lifelong.learn.models import MLP
    from lifelong.strategies import tuned

    scope = {"Learner": Learner, "MLP": MLP}
    exec(compile(_python_block('tuned("er-ace"'), str(README), "exec"), scope)  # noqa: S102
    assert scope["lr"] == 0.1 and scope["strategy"].get_params()["buffer_size"] == 500
    assert scope["learner"].lr == 0.1
    assert scope["small"].lr == 0.005 and scope["small"].strategy.get_params()["buffer_size"] == 200
    assert tuned("er-ace", "class", buffer_size=200).lr == 0.1  # searched on split-fmnist, not family-wide


def test_the_written_strategy_passes_the_checks_and_trains_beside_multihead() -> None:
    """Was: the README's L2Anchor summed over every parameter, so beside MultiHead, which adds a head per
    task after the anchor is taken, it failed with a bare KeyError 'task_heads.1.weight' (a user trial)."""
    from lifelong.checks import run_checks, toy_model, toy_scenario
    from lifelong.learn import Learner
    from lifelong.strategies import MultiHead

    scope: dict[str, object] = {}
    exec(compile(_python_block("class L2Anchor(Strategy)"), str(README), "exec"), scope)  # noqa: S102
    anchor = scope["L2Anchor"]
    assert "fit_resume" in run_checks(anchor(lam=0.5))  # type: ignore[operator]
    result = Learner(toy_model(), [MultiHead(), anchor(lam=0.5)], lr=0.1).fit(toy_scenario("task"))  # type: ignore[operator]
    assert np.isfinite(result.accuracy_matrix).all()
