from pathlib import Path

import numpy as np
import pytest

from lifelong.bench.benchmarks import from_file
from lifelong.errors import ConfigError, DataError


def _csv(path: Path, n_classes: int) -> Path:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(n_classes), 30)
    x = rng.normal(size=(len(y), 4)) + y[:, None]
    lines = ["f0,f1,f2,f3,label"] + [",".join([*(f"{v:.3f}" for v in xi), str(yi)]) for xi, yi in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_two_class_file_gives_two_experiences(tmp_path: Path) -> None:
    """`lifelong bench --data` on two classes made one experience: nothing to forget."""
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    for scenario in ("class", "task"):
        s = from_file(_csv(tmp_path / "two.csv", 2), scenario=scenario).build(0)
        assert [e.classes for e in s] == [(0,), (1,)]
    assert [len(e.classes) for e in from_file(_csv(tmp_path / "six.csv", 6)).build(0)] == [2, 2, 2]
    with pytest.raises(DataError, match="at least 2"):
        from_file(_csv(tmp_path / "one.csv", 1))


def test_a_domain_column_with_one_value_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    path = _csv(tmp_path / "d.csv", 2)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",site"] + [f"{row},north" for row in lines[1:]]) + "\n")
    with pytest.raises(DataError, match="column 'site' holds one value; .* at least 2 domains"):
        from_file(path, scenario="domain", domain_column="site")
    path.write_text(
        "\n".join([lines[0] + ",site"] + [f"{row},{'ns'[i % 2]}" for i, row in enumerate(lines[1:])]) + "\n"
    )
    assert len(from_file(path, scenario="domain", domain_column="site").build(0)) == 2

    with pytest.raises(ConfigError, match="read by the domain scenario only; add --scenario domain"):
        from_file(path, scenario="class", domain_column="site")


def test_a_token_id_model_gets_its_ids_unstandardised(tmp_path: Path) -> None:
    """Was: `lifelong bench --data` standardised every file, so a plugin model starting with an
    EmbeddingBag was refused at its first batch ('received fractional values (e.g. 0.854011) ...
    from_tensors scales uint8 inputs by 1/255'), with no flag to turn the scaling off."""
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    import torch
    from torch import nn

    from lifelong.learn.models import register_model

    @register_model("test-bench-bag")
    class Bag(nn.Module):
        def __init__(self, n_classes: int) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.EmbeddingBag(50, 4))
            self.classifier = nn.Linear(4, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.features(x))

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 20)
    x = rng.integers(0, 10, size=(len(y), 6)) + 10 * y[:, None]
    lines = ["t0,t1,t2,t3,t4,t5,topic"] + [",".join(map(str, [*xi, yi])) for xi, yi in zip(x, y)]
    (path := tmp_path / "tokens.csv").write_text("\n".join(lines) + "\n")
    ids = torch.cat(
        [e.train.features() for e in from_file(path, model="test-bench-bag", label_column="topic").build(0)]
    )
    assert torch.equal(ids, ids.round()) and ids.min() >= 0 and ids.max() < 50  # the ids themselves
    scaled = torch.cat([e.train.features() for e in from_file(path, label_column="topic").build(0)])
    assert not torch.equal(scaled, scaled.round())  # other models still get standardised features


def test_an_npz_domain_benchmark_reads_its_domain_array_and_refuses_a_column_name(tmp_path: Path) -> None:
    """It asked for --domain-column, then accepted any name and ignored it."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(80, 4)).astype(np.float32), y=np.arange(80) % 2,
             domain=np.repeat([0, 1], 40))  # fmt: skip
    scenario = from_file(tmp_path / "d.npz", scenario="domain").build(0)
    assert len(scenario.experiences) == 2
    with pytest.raises(ConfigError, match=r"an .npz gives each sample's domain in its 'domain' array"):
        from_file(tmp_path / "d.npz", scenario="domain", domain_column="no_such_column")


def test_a_task_column_makes_one_experience_per_task(tmp_path: Path) -> None:
    """`bench --scenario task` read the task column, then re-split the data by class into tasks."""
    pytest.importorskip("pandas", reason="reading CSV needs pandas: pip install 'lifelong[data]'")
    from tests.data.test_scenarios import _two_tasks_one_label_set

    (df := _two_tasks_one_label_set()).assign(store="one").to_csv(
        path := tmp_path / "returns.csv", index=False
    )
    s = from_file(path, "returned", "task", task_column="shop", drop_columns=["store"]).build(0)
    assert [(e.task_id, e.classes) for e in s] == [(1, (0, 1)), (0, (0, 1))]
    with pytest.raises(ConfigError, match="read by the task scenario only; add --scenario task"):
        from_file(path, "returned", "class", task_column="shop", drop_columns=["store"])
    with pytest.raises(DataError, match="column 'store' holds one task"):
        from_file(path, "returned", "task", task_column="store", drop_columns=["shop"])
    assert len(df) == 400


def test_an_npz_task_array_is_read_by_the_task_scenario_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", x=rng.normal(size=(80, 4)).astype(np.float32), y=np.arange(80) % 4,
             task=np.repeat([3, 8], 40))  # fmt: skip
    assert [e.task_id for e in from_file(tmp_path / "t.npz", scenario="task").build(0)] == [3, 8]
    by_class = from_file(tmp_path / "t.npz", scenario="class").build(0)
    assert by_class.kind == "class" and all(e.train.t is None for e in by_class)
    with pytest.raises(ConfigError, match=r"an .npz gives each sample's task in its 'task' array"):
        from_file(tmp_path / "t.npz", scenario="task", task_column="task")
