"""Per-step overhead of the Learner against the loop a user would write by hand.

Split Fashion-MNIST, default protocol (MLP 784-100-100-10, SGD lr 0.03, batch 10, one epoch per
experience, five experiences). Both sides draw the same batches in the same order from the same
uint8 tensors, so the ratio measures only what the library adds. Repeats alternate library and
baseline so that machine noise hits both; we report medians and their ratio.

    python benchmarks/overhead.py --out benchmarks/results/overhead.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lifelong.data import fashion_mnist
from lifelong.data.scenarios import class_incremental
from lifelong.learn import Learner
from lifelong.learn.models import MLP
from lifelong.strategies import Naive, Replay

LR, BATCH, BUFFER = 0.03, 10, 500


def hand_written(scenario, replay: bool, seed: int) -> float:
    """Seconds for one pass over every experience with a minimal PyTorch loop (and hand-written reservoir replay)."""
    torch.manual_seed(seed)
    model = MLP()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    g = torch.Generator().manual_seed(seed)
    mem_x = torch.zeros(BUFFER, 1, 28, 28, dtype=torch.uint8)
    mem_y = torch.zeros(BUFFER, dtype=torch.long)
    size = seen = 0
    elapsed = 0.0
    for exp in scenario:
        data = exp.train
        start = time.perf_counter()
        order = torch.randperm(len(data), generator=g)
        for i in range(0, len(data), BATCH):
            idx = order[i : i + BATCH]
            x, y = data.x[idx].float().mul_(1 / 255), data.y[idx]
            if replay and size:
                j = torch.randperm(size, generator=g)[:BATCH]
                xb = torch.cat([x, mem_x[j].float().mul_(1 / 255)])
                yb = torch.cat([y, mem_y[j]])
            else:
                xb, yb = x, y
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if replay:  # reservoir sampling
                for k in range(len(y)):
                    if size < BUFFER:
                        slot = size
                        size += 1
                    else:
                        slot = int(torch.randint(seen + 1, (1,), generator=g))
                    if slot < BUFFER:
                        mem_x[slot], mem_y[slot] = data.x[idx[k]], y[k]
                    seen += 1
        elapsed += time.perf_counter() - start
    return elapsed


def library(scenario, replay: bool, seed: int) -> float:
    torch.manual_seed(seed)
    learner = Learner(MLP(), [Replay(BUFFER) if replay else Naive()], lr=LR, batch_size=BATCH, seed=seed)
    for exp in scenario:
        learner.learn(exp)
    return learner.train_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both sides")
    parser.add_argument("--out", default="benchmarks/results/overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scenario = class_incremental(fashion_mnist(), n_experiences=5)
    results: dict[str, object] = {"protocol": "split-fmnist, MLP 784-100-100-10, SGD 0.03, batch 10, 1 epoch",
                                  "threads": args.threads, "repeats": args.repeats}  # fmt: skip
    for name, replay in (("naive", False), ("replay", True)):
        lib, hand = [], []
        for r in range(args.repeats):
            pair = [("lib", library), ("hand", hand_written)]
            for label, fn in pair if r % 2 == 0 else pair[::-1]:
                (lib if label == "lib" else hand).append(fn(scenario, replay, seed=r) / len(scenario))
        results[f"{name}_library_s_per_epoch"] = statistics.median(lib)
        results[f"{name}_hand_s_per_epoch"] = statistics.median(hand)
        results[f"{name}_ratio"] = statistics.median(lib) / statistics.median(hand)
        results[f"{name}_samples"] = {"library": lib, "hand": hand}
        print(f"{name}: library {statistics.median(lib):.3f} s/epoch, hand {statistics.median(hand):.3f} s/epoch, "
              f"ratio {results[f'{name}_ratio']:.3f}")  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
