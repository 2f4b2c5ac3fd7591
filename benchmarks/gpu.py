"""Training on a GPU: samples per second and overhead ratios against the hand-written loop.

The overhead benchmark (``benchmarks/overhead.py``: same methods, same hand-written equivalents,
alternating pairs) run with ``--device cuda``. Without a CUDA device it says so and exits 0.

    python benchmarks/gpu.py --out benchmarks/results/gpu.json [--repeats 5 --methods naive,replay]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import overhead  # noqa: E402  (a sibling script, not a package)


def main() -> int:
    if {"-h", "--help"} & set(sys.argv[1:]):  # the overhead benchmark's options, run on cuda
        return overhead.main(["--help"], device_default="cuda") or 0  # argparse exits after printing
    if not torch.cuda.is_available():
        print(f"no CUDA device (torch {torch.__version__}, cuda {torch.version.cuda}): nothing to measure")
        return 0
    argv = sys.argv[1:]
    if "--out" not in argv:
        argv += ["--out", "benchmarks/results/gpu.json"]
    print(f"device: {torch.cuda.get_device_name()}")
    results = overhead.main(argv, device_default="cuda")
    for key, r in results["results"].items():
        print(f"{key:20} library {r['library_samples_per_s']:9.0f} samples/s, hand {r['hand_samples_per_s']:9.0f}"
              f" samples/s, ratio {r['ratio_median']:.3f} [{r['ratio_min']:.3f}-{r['ratio_max']:.3f}]")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
