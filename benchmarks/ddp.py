"""Data-parallel training under torch.distributed against the same run in one process.

Split Fashion-MNIST (Split digits where Debian's Fashion-MNIST is not installed), five
class-incremental experiences, replay + EWC, MLP 400-400, SGD lr 0.05, global batch 128
(each of the N ranks takes 128/N samples and 500/N memory slots, so a step sees as many new and
replayed samples as the single process's). Rank 0 then trains the single-process baseline
with the same seed and initial weights, after the process group is gone.

    torchrun --standalone --nproc-per-node 2 benchmarks/ddp.py --out benchmarks/results/ddp.json

Samples per second count the experiences' training samples (replayed ones aside) over the wall
time of ``learner.learn`` (boundary work included), for all ranks together.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from lifelong.data import digits, fashion_mnist
from lifelong.data.scenarios import Scenario, class_incremental
from lifelong.errors import DataError
from lifelong.learn import Learner
from lifelong.learn.models import MLP
from lifelong.strategies import EWC, Replay


def scenario() -> tuple[str, Scenario]:
    """Split Fashion-MNIST where a copy is found (Debian's package, LIFELONG_DATA), else Split digits."""
    try:
        return "split-fmnist", class_incremental(fashion_mnist(download=False), n_experiences=5)
    except DataError:
        return "split-digits", class_incremental(digits(), n_experiences=5)


def train(stream: Scenario, world: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train replay + EWC on ``stream``; each of ``world`` ranks gets 1/world of batch, memory and Fisher samples.

    The memory is given at its global size: the learner keeps a share per rank.
    """
    torch.manual_seed(args.seed)
    x0 = stream.experiences[0].train.x
    model = MLP(in_features=x0[0].numel(), hidden=(400, 400), n_classes=stream.n_classes)
    strategies = [
        Replay(args.buffer),
        EWC(lam=args.lam, fisher_samples=args.fisher_samples // world, penalty_step="gradient"),
    ]
    learner = Learner(model, strategies, lr=args.lr, batch_size=args.batch_size // world, seed=args.seed)
    assert learner.world_size == world, (learner.world_size, world)
    elapsed = 0.0
    for exp in stream:
        start = time.perf_counter()
        learner.learn(exp)
        elapsed += time.perf_counter() - start
    accuracy = learner.evaluate(stream)
    n = sum(len(e.train) for e in stream)
    return {"acc": sum(accuracy) / len(accuracy), "accuracy": accuracy, "seconds": elapsed, "samples": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/ddp.json")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (split across ranks)")
    parser.add_argument("--buffer", type=int, default=500, help="global memory (split across ranks)")
    parser.add_argument("--lam", type=float, default=10.0, help="the tuned value (hparams/ewc.json)")
    parser.add_argument("--fisher-samples", type=int, default=1024, help="global, split across ranks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if "WORLD_SIZE" not in os.environ:
        parser.error("run under torchrun: torchrun --standalone --nproc-per-node 2 benchmarks/ddp.py")
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    name, stream = scenario()
    run = train(stream, world, args)
    # the slowest rank sets the wall time
    seconds = torch.tensor([run["seconds"]], dtype=torch.float64)
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    dist.destroy_process_group()
    if rank != 0:  # done; its interpreter's teardown can abort in gloo (exit -6: "terminate called without an
        # active exception"), and torchrun then SIGTERMed rank 0 and its single-process baseline, losing
        # the whole result (a trial): leave without that teardown
        os._exit(0)
    single = train(stream, 1, args)
    results = {
        "benchmark": name,
        "protocol": f"replay {args.buffer} + EWC lam {args.lam} (Fisher on {args.fisher_samples} samples), "
        f"MLP 400-400, SGD lr {args.lr}, global batch {args.batch_size}, 1 epoch, gloo on CPU",
        "threads_per_process": args.threads,
        "world_size": world,
        "acc": run["acc"],
        "single_process_acc": single["acc"],
        "accuracy_per_experience": run["accuracy"],
        "single_process_accuracy_per_experience": single["accuracy"],
        "samples_per_second": run["samples"] / float(seconds),
        "single_process_samples_per_second": single["samples"] / single["seconds"],
        "train_seconds": float(seconds),
        "single_process_train_seconds": single["seconds"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if "per_experience" not in k}, indent=1))


if __name__ == "__main__":
    main()
