"""A 30-feature, 3-class tabular problem in two domains, as a user's own file would hold it."""

import numpy as np


def tabular(n: int = 300, seed: int = 0, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 30)) + shift
    for c in range(3):
        x[y == c, 10 * c : 10 * c + 10] += 1.5
    return x, y


def frame(n: int = 300, seed: int = 0):
    import pandas as pd

    x, y = tabular(n, seed)
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(30)])
    df["species"] = np.array(["setosa", "versicolor", "virginica"])[y]
    df["site"] = np.where(np.arange(n) < n // 2, "north", "south")
    df.loc[df["site"] == "south", "f0":"f29"] += 2.0  # the second site is shifted
    return df
