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
