"""Does every built-in strategy keep the ranks' replicas identical under torch.distributed?

Each registered strategy (default hyper-parameters) learns two experiences of Split digits
(task-incremental for task-only methods) in every rank of a torchrun job, MLP 64-64, batch 16,
2 epochs; the ranks then compare their parameters. Each strategy ends ``identical``, ``diverged``
(a bug: DDP averages gradients, so anything else that differs must be pooled at the boundary or
the step) or ``refused: <message>`` (the learner refuses it in a group, as for strategies with
their own forward, which would bypass DistributedDataParallel).

    torchrun --standalone --nproc-per-node 2 benchmarks/ddp_replicas.py --out benchmarks/results/ddp_replicas.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from lifelong.data import digits
from lifelong.data.scenarios import class_incremental, task_incremental
from lifelong.errors import LifelongError
from lifelong.learn import Learner
from lifelong.learn.models import MLP
from lifelong.learn.strategy import get_strategy, strategy_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/ddp_replicas.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if "WORLD_SIZE" not in os.environ:
        parser.error(
            "run under torchrun: torchrun --standalone --nproc-per-node 2 benchmarks/ddp_replicas.py"
        )
    dist.init_process_group("gloo")
    data = digits()
    streams = {
        "class": class_incremental(data, n_experiences=5),
        "task": task_incremental(data, n_experiences=5),
    }
    outcome: dict[str, str] = {}
    for name in strategy_names():
        if name == "joint":  # trains once on everything: nothing continual to compare
            continue
        cls = get_strategy(name)
        stream = streams["class" if "class" in cls.supports else "task"]
        torch.manual_seed(0)
        try:
            learner = Learner(MLP(64, (64,), 10), [cls()], lr=0.1, batch_size=16, epochs=2, seed=0)
        except LifelongError as e:  # raised alike on every rank, before any collective
            outcome[name] = f"refused: {e}"
            continue
        for experience in stream.experiences[:2]:
            learner.learn(experience)
        mine = torch.cat([p.detach().flatten() for p in learner.model.parameters()])
        every = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(every, mine)
        outcome[name] = "identical" if all(torch.equal(every[0], o) for o in every) else "diverged"
    if dist.get_rank() == 0:
        result = {"world_size": dist.get_world_size(), "strategies": outcome}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(json.dumps({k: v[:40] for k, v in outcome.items()}, indent=1))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
