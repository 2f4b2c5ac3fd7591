"""Standalone, mammoth-faithful ER-ACE on lifelong's split-fmnist tensors (the counterpart of
``mammoth_derpp.py``, whose MLP, reservoir memory, data and evaluation it reuses).

Reproduced from aimagelab/mammoth ``models/er_ace.py`` observe() (read from the code index):
  present = labels.unique(); seen_so_far = unique(seen_so_far + present);
  mask[:, present] = 1; if seen_so_far.max() < num_classes - 1: mask[:, seen_so_far.max():] = 1;
  from the second task on, the incoming logits outside the mask are filled with finfo.min;
  loss = CE(masked logits, labels) + (second task on) CE(net(buf_x), buf_y) over every logit,
  one memory draw of minibatch_size; one backward, opt.step(); buffer.add_data(inputs, labels).
mammoth's ``best_args.py`` has no ER-ACE entry for seq-mnist; ER's (the method ER-ACE changes) at
memory 500 is lr 0.1, minibatch 10, batch 10: the defaults here. SGD re-built per task, no momentum.
``--side lifelong`` runs the library's ErACE through the strategy table's runner, at the same lr and
memory batch, its cosine head off unless ``--cosine-head``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from mammoth_derpp import load, model_name, run_seeds, seeded, train_tasks


def run(seed: int, lr: float, mb: int, batch: int, buf: int, init: str, tasks) -> dict:
    order_gen, net, buffer = seeded(seed, init, buf)
    num_classes = 10
    seen_so_far = torch.tensor([], dtype=torch.long)

    def step(
        task: int, opt: torch.optim.Optimizer, inputs: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        nonlocal seen_so_far
        present = labels.unique()
        seen_so_far = torch.cat([seen_so_far, present]).unique()
        logits = net(inputs)
        mask = torch.zeros_like(logits)
        mask[:, present] = 1
        opt.zero_grad()
        if seen_so_far.max() < (num_classes - 1):
            mask[:, seen_so_far.max() :] = 1
        if task > 0:
            logits = logits.masked_fill(mask == 0, torch.finfo(logits.dtype).min)
        loss = F.cross_entropy(logits, labels)
        if task > 0:
            buf_inputs, buf_labels = buffer.get_data(mb)
            loss = loss + F.cross_entropy(net(buf_inputs), buf_labels)
        loss.backward()
        opt.step()
        buffer.add_data(examples=inputs, labels=labels)
        return loss

    t0 = time.perf_counter()
    matrix, diverged = train_tasks(net, tasks, lr, batch, order_gen, step)
    acc = float(np.mean(matrix[-1]))
    return {"seed": seed, "side": "mammoth", "lr": lr, "minibatch_size": mb, "batch_size": batch,
            "buffer": buf, "init": init, "acc": acc, "diverged": diverged or not math.isfinite(acc),
            "final_row": matrix[-1], "matrix": matrix, "seconds": time.perf_counter() - t0}  # fmt: skip


def run_lifelong(seed: int, lr: float, mb: int, init: str, cosine_head: bool) -> dict:
    """lifelong's ErACE as the strategy table runs it, at the given lr and memory batch."""
    from lifelong.bench import runner

    t0 = time.perf_counter()
    settings = runner.Settings(model=model_name(init), buffer=500, lr=lr)
    r = runner.run_one("split-fmnist", "er-ace", seed, settings,
                       params={"batch_size": mb, "cosine_head": cosine_head})  # fmt: skip
    return {"seed": seed, "side": "lifelong", "lr": lr, "minibatch_size": mb, "init": init,
            "cosine_head": cosine_head, "acc": r["metrics"]["acc"], "diverged": bool(r["metrics"]["diverged"]),
            "final_row": r["accuracy_matrix"][-1], "seconds": time.perf_counter() - t0}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--side", default="mammoth", choices=["mammoth", "lifelong"])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--mb", type=int, default=10)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--buffer", type=int, default=500)
    p.add_argument("--init", default="xavier", choices=["xavier", "torch"])
    p.add_argument("--cosine-head", action="store_true", help="lifelong side only")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.side == "lifelong":
        one = lambda s: run_lifelong(s, a.lr, a.mb, a.init, a.cosine_head)  # noqa: E731
    else:
        one = lambda s: run(s, a.lr, a.mb, a.batch, a.buffer, a.init, load(s))  # noqa: E731
    run_seeds(a.seeds, one, a.out, f"{a.side} lr {a.lr} mb {a.mb} init {a.init}")


if __name__ == "__main__":
    sys.exit(main())
