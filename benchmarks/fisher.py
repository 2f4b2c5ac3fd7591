"""Seconds of EWC's Fisher pass on one Split Fashion-MNIST experience (12,000 samples, MLP 784-100-100-10).

PYTHONPATH=src python benchmarks/fisher.py
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from lifelong.data import fashion_mnist
from lifelong.data.scenarios import class_incremental
from lifelong.learn import Learner
from lifelong.learn.models import MLP
from lifelong.strategies._importance import fisher_diagonal


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, not a 40 s run
    torch.set_num_threads(1)
    data = class_incremental(fashion_mnist(), n_experiences=5).experiences[0].train
    torch.manual_seed(0)
    learner = Learner(MLP(), [], batch_size=10)
    for kind, batch in (("empirical", 1), ("sampled", 1), ("true", 1), ("empirical", 10), ("sampled", 128)):
        start = time.perf_counter()
        fisher_diagonal(learner, data, kind, None, batch)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{kind:9s} fisher_batch_size {batch:3d}: {time.perf_counter() - start:.2f} s for {len(data)} samples; "
              f"peak RSS {rss:.0f} MB", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
