"""Write the example's data: ``data.csv`` to bootstrap the first champion, ``stream.csv`` for the client.

30 numeric features on very different scales (as raw tabular columns are: amounts, counts, ratios;
hence ``--standardize``) and a ``label`` column with 3 classes. The label is a noisy linear rule of
the standardised features. ``stream.csv`` continues the same rule for its first half (or up to
``--drift-at``), then a concept drift: a new rule, with the inputs shifted by one standard deviation (covariate shift).

    python make_data.py                      # data.csv (3000 rows), stream.csv (4000 rows, drift at 2000)
    python make_data.py --rows 1200 --stream-rows 1600 --drift-at 400 --out /tmp/small
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

N_FEATURES, N_CLASSES = 30, 3
NOISE = 0.5  # Gumbel noise on the class scores: about 1 label in 10 disagrees with the rule


def rule(seed: int) -> np.ndarray:
    """Weights [classes, features] of one labelling rule."""
    return np.random.default_rng(seed).normal(size=(N_CLASSES, N_FEATURES))


def rows(
    n: int, weights: np.ndarray, shift: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples: standard-normal features shifted by ``shift``, labels from ``weights``, then raw scales."""
    z = rng.normal(loc=shift, size=(n, N_FEATURES))
    scores = z @ weights.T + NOISE * rng.gumbel(size=(n, N_CLASSES))
    y = scores.argmax(1)
    scale_rng = np.random.default_rng(1234)  # fixed column scales: the same "units" in every file
    scale = 10.0 ** scale_rng.uniform(-1, 3, N_FEATURES)
    offset = scale_rng.uniform(-5, 5, N_FEATURES) * scale
    return offset + scale * z, y


def write(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    header = ",".join([*(f"f{i:02d}" for i in range(N_FEATURES)), "label"])
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header=header, comments="",
               fmt=["%.6g"] * N_FEATURES + ["%d"])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("."), help="directory for data.csv and stream.csv")
    p.add_argument("--rows", type=int, default=3000, help="rows of data.csv (the bootstrap)")
    p.add_argument("--stream-rows", type=int, default=4000, help="rows of stream.csv")
    p.add_argument(
        "--drift-at", type=int, default=None, help="first drifted row of stream.csv (default: halfway)"
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    before, after = rule(args.seed + 1), rule(args.seed + 2)
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "data.csv", *rows(args.rows, before, 0.0, rng))
    half = args.stream_rows // 2 if args.drift_at is None else args.drift_at
    x1, y1 = rows(half, before, 0.0, rng)
    x2, y2 = rows(args.stream_rows - half, after, 1.0, rng)
    write(args.out / "stream.csv", np.concatenate([x1, x2]), np.concatenate([y1, y2]))
    print(f"wrote {args.out / 'data.csv'} ({args.rows} rows) and {args.out / 'stream.csv'} "
          f"({args.stream_rows} rows; concept drift at row {half})")  # fmt: skip


if __name__ == "__main__":
    main()
