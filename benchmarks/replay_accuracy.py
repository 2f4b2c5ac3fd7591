"""Replay's accuracy against a hand-written replay on the same tensors, seeds and protocol.

Split Fashion-MNIST, default protocol (MLP 784-100-100-10, SGD lr 0.03, batch 10, one epoch,
500-sample reservoir, as many replayed as incoming samples). Prints ACC per seed and the mean.

    PYTHONPATH=src python benchmarks/replay_accuracy.py --seeds 0,1,2,3
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from lifelong.data import fashion_mnist
from lifelong.data.scenarios import class_incremental
from lifelong.learn import Learner
from lifelong.learn.models import MLP
from lifelong.strategies import Replay

LR, BATCH, BUFFER = 0.03, 10, 500


def _acc(model: torch.nn.Module, scenario) -> float:
    model.eval()
    with torch.no_grad():
        accs = [float((model(e.test.features()).argmax(1) == e.test.y).float().mean()) for e in scenario]
    return sum(accs) / len(accs)


def hand_written(scenario, seed: int) -> float:
    torch.manual_seed(seed)
    model, g = MLP(), torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    mem_x, mem_y = torch.zeros(BUFFER, 1, 28, 28, dtype=torch.uint8), torch.zeros(BUFFER, dtype=torch.long)
    size = seen = 0
    for exp in scenario:
        data = exp.train
        order = torch.randperm(len(data), generator=g)
        for i in range(0, len(data), BATCH):
            idx = order[i : i + BATCH]
            x, y = data.x[idx].float().mul_(1 / 255), data.y[idx]
            if size:
                j = torch.randperm(size, generator=g)[:BATCH]
                x, y = torch.cat([x, mem_x[j].float().mul_(1 / 255)]), torch.cat([y, mem_y[j]])
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            for k in range(len(idx)):  # sequential reservoir sampling
                slot = size if size < BUFFER else int(torch.randint(seen + 1, (1,), generator=g))
                size = min(size + 1, BUFFER)
                if slot < BUFFER:
                    mem_x[slot], mem_y[slot] = data.x[idx[k]], data.y[idx[k]]
                seen += 1
    return _acc(model, scenario)


def library(scenario, seed: int) -> float:
    torch.manual_seed(seed)
    return Learner(MLP(), [Replay(BUFFER)], lr=LR, batch_size=BATCH, seed=seed).fit(scenario).metrics["acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scenario = class_incremental(fashion_mnist(), n_experiences=5)
    lib, hand = [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        lib.append(library(scenario, seed))
        hand.append(hand_written(scenario, seed))
        print(f"seed {seed}: library {lib[-1]:.4f}, hand-written {hand[-1]:.4f}", flush=True)
    print(f"mean: library {statistics.fmean(lib):.4f} ± {statistics.pstdev(lib):.4f}, "
          f"hand-written {statistics.fmean(hand):.4f} ± {statistics.pstdev(hand):.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
