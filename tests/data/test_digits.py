import sys

import pytest
import torch

from lifelong.data import digits
from lifelong.errors import ConfigError, DataError

pytest.importorskip("sklearn")


def test_shapes_dtype_and_scale() -> None:
    train, test = digits()
    assert (len(train), len(test)) == (1347, 450)
    assert train.x.shape == (1347, 1, 8, 8) and train.x.dtype == torch.uint8
    assert int(train.x.max()) == 16 and train.scale == 1 / 16
    assert float(train.features().max()) == 1.0
    assert train.y.dtype == torch.int64
    assert (train.name, test.name) == ("digits-train", "digits-test")


def test_split_is_stratified() -> None:
    train, test = digits(test_size=0.2)
    assert train.classes == test.classes == list(range(10))
    train_share = torch.bincount(train.y) / len(train)
    test_share = torch.bincount(test.y) / len(test)
    assert torch.allclose(train_share, test_share, atol=0.01)


def test_split_is_fixed_by_seed() -> None:
    a, b, c = digits(seed=1), digits(seed=1), digits(seed=2)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, c.train.x)


@pytest.mark.parametrize("test_size", [0.0, 1.0, 1.5])
def test_rejects_test_size_outside_unit_interval(test_size: float) -> None:
    with pytest.raises(ConfigError, match="test_size"):
        digits(test_size=test_size)


def test_missing_sklearn_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn...` raise ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError, match=r"pip install 'lifelong\[data\]'"):
        digits()
