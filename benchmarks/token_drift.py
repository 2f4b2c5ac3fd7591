"""Data-drift tests on rows of token ids: how often each reports drift, per kind of window pair.

A synthetic corpus (no text corpus ships offline): documents of 10-40 words padded with id 0 to 40,
each written in one of two topics, which rank a vocabulary of 1,999 ids differently and draw words
Zipf-distributed (exponent 1.3). Reference windows hold 200 documents with 20% of topic 1; current
windows hold 200 more of the same corpus ("one corpus": every report is a false alarm), or of
another mix, or shorter documents. Compared: KS per position (BH-corrected, the features' default),
and the token-frequency test with the pad left out (and the lengths tested apart) or counted. Run:
``python benchmarks/token_drift.py [--pairs 200] [--out benchmarks/results/token-drift.json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.monitor import DataDriftMonitor, KSDrift, TokenDrift

VOCABULARY, WIDTH = 2000, 40


def corpus(rng: np.random.Generator, n: int, mix: float, length: tuple[int, int] = (10, 40)) -> np.ndarray:
    topics = [np.random.default_rng(t).permutation(np.arange(1, VOCABULARY)) for t in (0, 1)]
    rows = np.zeros((n, WIDTH))
    for i in range(n):
        k = rng.integers(*length, endpoint=True)
        ranks = np.minimum(rng.zipf(1.3, size=k), VOCABULARY - 1) - 1
        rows[i, :k] = topics[int(rng.random() < mix)][ranks]
    return rows


PAIRS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "one corpus": lambda r: corpus(r, 200, 0.2),
    "topic mix 20% -> 35%": lambda r: corpus(r, 200, 0.35),
    "topic mix 20% -> 50%": lambda r: corpus(r, 200, 0.5),
    "documents 10-40 -> 5-30 words": lambda r: corpus(r, 200, 0.2, (5, 30)),
}
MONITORS: dict[str, Callable[[int], DataDriftMonitor]] = {
    "KS per position": lambda seed: KSDrift(),
    "token frequencies and lengths (pad left out)": lambda seed: TokenDrift(pad_id=0, seed=seed),
    "token frequencies (pad counted)": lambda seed: TokenDrift(seed=seed),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200, help="window pairs per kind")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/token-drift.json"))
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for kind, make in PAIRS.items():
        for name, build in MONITORS.items():
            reports, seconds = [], 0.0
            for pair in range(args.pairs):
                rng = np.random.default_rng([pair, 7])
                reference, current = corpus(rng, 200, 0.2), make(rng)
                start = time.perf_counter()
                reports.append(build(pair).fit(reference).test(current).drift)
                seconds += time.perf_counter() - start
            rows.append({"pairs": kind, "monitor": name, "drift_rate": float(np.mean(reports)),
                         "n": args.pairs, "ms_per_test": round(1000 * seconds / args.pairs, 1)})  # fmt: skip
            print(f"{kind:32s} {name:34s} drift in {rows[-1]['drift_rate']:.1%} of {args.pairs}, "
                  f"{rows[-1]['ms_per_test']} ms a test", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "alpha": 0.05,
        "window": 200,
        "width": WIDTH,
        "vocabulary": VOCABULARY,
        "python": platform.python_version(),
    }
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
