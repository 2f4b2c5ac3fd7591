from pathlib import Path

import numpy as np
import pytest

from lifelong.bench.benchmarks import from_file
from lifelong.errors import DataError


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
