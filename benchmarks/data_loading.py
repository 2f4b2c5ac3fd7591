"""Time loading the real Fashion-MNIST (gzip decompress + MD5 + IDX parse) and write the median as JSON.

Run: ``python benchmarks/data_loading.py [--out PATH] [--repeats N]``. The files must be present
(Debian's ``dataset-fashion-mnist``, ``$LIFELONG_DATA`` or the cache); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from lifelong.data import fashion_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/data_loading.json"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        train, test = fashion_mnist(download=False)
        seconds.append(time.perf_counter() - start)
    result = {
        "fashion_mnist_load_seconds": round(statistics.median(seconds), 4),
        "runs_seconds": [round(s, 4) for s in seconds],
        "samples": len(train) + len(test),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
