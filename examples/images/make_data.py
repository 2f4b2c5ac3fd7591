"""Write the example's images: scikit-learn's handwritten digits as 1x8x8 arrays in [0, 1].

- ``boot.npz``: 60% of the images, digits 0-6 only (the first champion never sees a 7, 8 or 9);
- ``stream.npz``: the other 40%, all ten digits in random order (production traffic: three new classes);
- ``all.npz``: every image, for ``lifelong bench --data all.npz --scenario class``.

Each file holds arrays ``x`` ([N, 1, 8, 8] float32) and ``y`` (int labels).

    python make_data.py                 # into this directory
    python make_data.py --out /tmp/img
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

KNOWN = 7  # digits 0..KNOWN-1 are in the bootstrap file


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("."), help="directory for the .npz files")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # [N, 1, 8, 8]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(args.seed).permutation(len(y))
    boot, stream = order[: int(0.6 * len(y))], order[int(0.6 * len(y)) :]
    boot = boot[y[boot] < KNOWN]
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "boot.npz", x=x[boot], y=y[boot])
    np.savez(args.out / "stream.npz", x=x[stream], y=y[stream])
    np.savez(args.out / "all.npz", x=x, y=y)
    print(f"boot.npz {len(boot)} images (digits 0-{KNOWN - 1}), stream.npz {len(stream)} (all ten), "
          f"all.npz {len(y)} in {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
