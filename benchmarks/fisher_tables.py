"""Seconds of EWC's Fisher and MAS's importance on a text model, embedding tables row-wise or dense.

A bag-of-words classifier (``EmbeddingBag`` of 30,000 ids x 64, mean, padding id 0, then a linear
layer to 4 classes) on 500 synthetic documents of 30 ids padded to 40. Each estimate runs with
the tables' per-sample gradients computed row by row (the default) and dense (every row of the
table for every sample, as ``vmap`` gives them), alternating, ``--repeats`` times; the ratio is
the median of the paired ratios, with their range. Run:
``python benchmarks/fisher_tables.py [--repeats 3] [--out benchmarks/results/fisher-tables.json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lifelong.data import from_tensors
from lifelong.learn import Learner
from lifelong.strategies import _importance
from lifelong.strategies.mas import _squared_output_norm

VOCABULARY, DIM, CLASSES, DOCUMENTS = 30_000, 64, 4, 500


class BagOfWords(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(VOCABULARY, DIM, mode="mean", padding_idx=0)
        self.out = nn.Linear(DIM, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.bag(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fisher-tables.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, VOCABULARY, (DOCUMENTS, 40), generator=g)
    x[:, 30:] = 0
    data = from_tensors(x, torch.randint(0, CLASSES, (DOCUMENTS,), generator=g))
    torch.manual_seed(0)
    learner = Learner(BagOfWords(), [], allow_new_classes=False)
    index = torch.arange(DOCUMENTS)
    estimates: dict[str, Callable[[bool], dict[str, torch.Tensor]]] = {
        f"fisher {kind}": lambda row_wise, kind=kind: _importance._per_sample_fisher(
            learner, data, index, kind, 1 << 24, row_wise
        )
        for kind in ("empirical", "true")
    }
    estimates["mas"] = lambda row_wise: _importance.mean_abs_gradient(
        learner, data, _squared_output_norm, row_wise=row_wise
    )
    rows: list[dict[str, Any]] = []
    for name, estimate in estimates.items():
        seconds: dict[bool, list[float]] = {True: [], False: []}
        found: dict[bool, dict[str, torch.Tensor]] = {}
        for _ in range(args.repeats):
            for row_wise in (False, True):
                start = time.perf_counter()
                found = estimate(row_wise)
                seconds[row_wise].append(time.perf_counter() - start)
            results = found, estimate(False)
        differ = max(
            float((a - results[1][k]).abs().max() / results[1][k].abs().max()) for k, a in results[0].items()
        )
        ratios = [d / r for d, r in zip(seconds[False], seconds[True])]
        rows.append({
            "estimate": name, "dense_seconds": seconds[False], "row_wise_seconds": seconds[True],
            "speedup_median": statistics.median(ratios), "speedup_range": [min(ratios), max(ratios)],
            "max_relative_difference": differ,
        })  # fmt: skip
        print(f"{name:16s} dense {statistics.median(seconds[False]):6.2f} s  row-wise "
              f"{statistics.median(seconds[True]):5.2f} s  speed-up x{statistics.median(ratios):.0f} "
              f"({min(ratios):.0f}-{max(ratios):.0f}), largest relative difference {differ:.1e}", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    setup = {
        "vocabulary": VOCABULARY,
        "dim": DIM,
        "classes": CLASSES,
        "documents": DOCUMENTS,
        "ids_per_document": 30,
    }
    args.out.write_text(json.dumps({"setup": setup, "machine": platform.platform(), "torch": torch.__version__,
                                    "threads": 1, "rows": rows}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
