"""ER-ACE on a task-free stream: scikit-learn's digits, five experiences of two classes, each sample
seen once in batches of 10 with no boundary announced (``task_free``); memory 100, lr 0.05, seeds
0-2. Naive fine-tuning and reservoir replay beside it. Run: ``python benchmarks/task_free_digits.py
[--out PATH]`` (about 20 s on one core)."""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from lifelong.data import digits
from lifelong.data.scenarios import class_incremental, task_free
from lifelong.learn import Learner, Strategy
from lifelong.learn.models import MLP
from lifelong.strategies import ERACE, Replay

METHODS: dict[str, Callable[[], list[Strategy]]] = {
    "naive": lambda: [],
    "replay": lambda: [Replay(100)],
    "er-ace": lambda: [ERACE(100)],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results/task_free_digits.json")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    stream = task_free(class_incremental(digits(), n_experiences=5), batch_size=10)
    rows = {}
    for name, make in METHODS.items():
        accs = []
        for seed in seeds:
            torch.manual_seed(seed)
            learner = Learner(MLP(in_features=64, n_classes=10), make(), lr=0.05, seed=seed, task_free=True)
            accs.append(learner.fit(stream).metrics["acc"])
        rows[name] = {"acc": accs, "mean": statistics.mean(accs), "std": statistics.stdev(accs)}
        print(f"{name:>7}: " + " ".join(f"{a:.3f}" for a in accs) + f"  mean {rows[name]['mean']:.3f}")
    Path(args.out).write_text(
        json.dumps({"seeds": seeds, "memory": 100, "lr": 0.05, "methods": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
