"""scikit-learn's 8x8 handwritten digits: a real dataset small enough for tests and quick examples."""

from __future__ import annotations

import numpy as np
import torch

from lifelong.data.dataset import Dataset, Split
from lifelong.errors import ConfigError, DataError


def digits(test_size: float = 0.25, seed: int = 0) -> Split:
    """The 1,797 UCI digit images, split train/test with every class in the same proportion in both.

    Images are uint8 ``[N, 1, 8, 8]`` with values 0..16, scaled by 1/16 when batches are
    drawn. The split is stratified and fixed by ``seed``, so results are comparable across runs.

    Examples
    --------
    >>> train, test = digits()
    >>> len(train), len(test), train.input_shape
    (1347, 450, (1, 8, 8))
    """
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"digits: test_size must be a fraction in (0, 1), got {test_size!r}")
    try:  # scikit-learn is an optional dependency, imported only when digits are asked for
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise DataError("digits() needs scikit-learn: pip install 'lifelong[data]'") from e
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    return Split(_dataset(x_train, y_train, "train"), _dataset(x_test, y_test, "test"))


def _dataset(x: np.ndarray, y: np.ndarray, split: str) -> Dataset:
    # load_digits gives float64 [N, 64] holding integers 0..16: uint8 stores them exactly, 8x smaller.
    images = torch.from_numpy(x.astype(np.uint8).reshape(-1, 1, 8, 8))
    return Dataset(images, torch.from_numpy(y).long(), scale=1 / 16, name=f"digits-{split}")
