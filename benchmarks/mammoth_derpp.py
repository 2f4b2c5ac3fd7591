"""Standalone, mammoth-faithful DER++ on lifelong's split-fmnist tensors.

Reproduced from aimagelab/mammoth (read from the code index):
  * backbone/MNISTMLP.py: Linear(784,100) ReLU Linear(100,100) ReLU Linear(100,10); reset_parameters
    applies backbone.xavier: weight ~ U(-a, a), a = sqrt(3) * sqrt(2 / (fan_in + fan_out)), bias = 0.
  * models/derpp.py observe(): CE(net(x), y).backward(); if buffer not empty:
    draw 1 -> alpha * mse_loss(net(buf_x), buf_logits).backward();
    draw 2 (independent) -> beta * CE(net(buf_x), buf_y).backward(); opt.step();
    buffer.add_data(examples=not_aug_inputs, labels=labels, logits=outputs.data).
  * utils/buffer.py: reservoir() with np.random.randint(0, seen + 1); get_data():
    np.random.choice(min(seen, buffer_size), size=min(size, ...), replace=False).
  * ContinualModel optimizer: SGD(lr, momentum=0, weight_decay=0) (re-built per task: no state, no effect).
  * seq-mnist: ToTensor only (pixels in [0,1]), batch 10, 1 epoch, class-il evaluation on all 10 logits,
    accuracy per task test set, ACC = mean over tasks after the last one.
  * utils/best_args.py seq-mnist derpp 500: lr 0.03, minibatch_size 10, alpha 1.0, beta 0.5, batch 10.
Seeding as mammoth's set_random_seed: random, numpy, torch all seeded with the seed.
Data: lifelong.bench.benchmarks.get("split-fmnist").build(seed) (uint8 * 1/255, classes 0..9 in pairs).
Per-experience sample order: torch.randperm with a torch.Generator seeded with the seed (the first
experience's order equals ours; later ones differ because our learner's generator also drives replay).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def xavier(m: nn.Module) -> None:
    if m.__class__.__name__ == "Linear":
        fan_in = m.weight.data.size(1)
        fan_out = m.weight.data.size(0)
        std = 1.0 * math.sqrt(2.0 / (fan_in + fan_out))
        a = math.sqrt(3.0) * std
        m.weight.data.uniform_(-a, a)
        if m.bias is not None:
            m.bias.data.fill_(0.0)


class MNISTMLP(nn.Module):
    def __init__(self, input_size: int = 784, output_size: int = 10, init: str = "xavier") -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_size, 100)
        self.fc2 = nn.Linear(100, 100)
        self._features = nn.Sequential(self.fc1, nn.ReLU(), self.fc2, nn.ReLU())
        self.classifier = nn.Linear(100, output_size)
        self.net = nn.Sequential(self._features, self.classifier)
        if init == "xavier":
            self.net.apply(xavier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.shape[0], -1)
        return self.classifier(self._features(x))


def reservoir(num_seen_examples: int, buffer_size: int) -> int:
    if num_seen_examples < buffer_size:
        return num_seen_examples
    rand = np.random.randint(0, num_seen_examples + 1)
    if rand < buffer_size:
        return rand
    return -1


class Buffer:
    def __init__(self, buffer_size: int) -> None:
        self.buffer_size = buffer_size
        self.num_seen_examples = 0

    def is_empty(self) -> bool:
        return self.num_seen_examples == 0

    def add_data(self, examples, labels, logits=None) -> None:
        if not hasattr(self, "examples"):
            self.examples = torch.zeros((self.buffer_size, *examples.shape[1:]), dtype=torch.float32)
            self.labels = torch.zeros((self.buffer_size, *labels.shape[1:]), dtype=torch.int64)
            self.logits = (
                None
                if logits is None
                else torch.zeros((self.buffer_size, *logits.shape[1:]), dtype=torch.float32)
            )
        for i in range(examples.shape[0]):
            index = reservoir(self.num_seen_examples, self.buffer_size)
            self.num_seen_examples += 1
            if index >= 0:
                self.examples[index] = examples[i]
                self.labels[index] = labels[i]
                if self.logits is not None:
                    self.logits[index] = logits[i]

    def get_data(self, size: int):
        num_avail = min(self.num_seen_examples, self.examples.shape[0])
        size = min(size, num_avail)
        choice = np.random.choice(num_avail, size=size, replace=False)
        if self.logits is None:  # ER-ACE's memory keeps no logits
            return self.examples[choice], self.labels[choice]
        return self.examples[choice], self.labels[choice], self.logits[choice]


def load(seed: int):
    from lifelong.bench.benchmarks import get

    scenario = get("split-fmnist").build(seed)
    out = []
    for e in scenario.experiences:
        tr, te = e.train, e.test
        out.append(
            (
                tr.x.to(torch.float32) * tr.scale,
                tr.y.long(),
                te.x.to(torch.float32) * te.scale,
                te.y.long(),
            )
        )
    return out


@torch.no_grad()
def evaluate(net: nn.Module, tasks) -> list[float]:
    was = net.training
    net.eval()
    accs = []
    for _, _, xte, yte in tasks:
        correct = 0
        for i in range(0, len(yte), 1000):
            out = net(xte[i : i + 1000])
            correct += (out.argmax(1) == yte[i : i + 1000]).sum().item()
        accs.append(correct / len(yte))
    net.train(was)
    return accs


def seeded(seed: int, init: str, buf: int) -> tuple[torch.Generator, MNISTMLP, Buffer]:
    """mammoth's set_random_seed (random, numpy, torch), then the sample-order generator, net, memory."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed), MNISTMLP(init=init), Buffer(buf)


def train_tasks(net: nn.Module, tasks, lr: float, batch: int, order_gen: torch.Generator,
                step: Callable[[int, torch.optim.Optimizer, torch.Tensor, torch.Tensor], torch.Tensor],
                ) -> tuple[list[list[float]], bool]:  # fmt: skip
    """mammoth's training loop: SGD re-built per task, each task's samples in batches in a seeded order,
    ``step(task, opt, inputs, labels)`` per batch (its returned loss must stay finite), then every
    task evaluated. Returns the accuracy matrix and whether a loss was non-finite."""
    matrix, diverged = [], False
    for task, (xtr, ytr, _, _) in enumerate(tasks):
        opt = torch.optim.SGD(net.parameters(), lr=lr)  # mammoth reloads the optimizer per task
        net.train()
        order = torch.randperm(len(ytr), generator=order_gen)
        for i in range(0, len(ytr), batch):
            idx = order[i : i + batch]
            loss = step(task, opt, xtr[idx], ytr[idx])
            if not math.isfinite(loss.item()):
                diverged = True
        matrix.append(evaluate(net, tasks))
    return matrix, diverged


def run(seed: int, lr: float, mb: int, alpha: float, beta: float, batch: int, buf: int, init: str,
        tasks) -> dict:  # fmt: skip
    order_gen, net, buffer = seeded(seed, init, buf)

    def step(
        task: int, opt: torch.optim.Optimizer, inputs: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        not_aug_inputs = inputs  # no augmentation on seq-mnist
        opt.zero_grad()
        outputs = net(inputs)
        loss = F.cross_entropy(outputs, labels)
        loss.backward()
        if not buffer.is_empty():
            buf_inputs, _, buf_logits = buffer.get_data(mb)
            buf_outputs = net(buf_inputs)
            loss2 = alpha * F.mse_loss(buf_outputs, buf_logits)
            loss2.backward()
            buf_inputs, buf_labels, _ = buffer.get_data(mb)
            buf_outputs = net(buf_inputs)
            loss3 = beta * F.cross_entropy(buf_outputs, buf_labels)
            loss3.backward()
        opt.step()
        buffer.add_data(examples=not_aug_inputs, labels=labels, logits=outputs.data)
        return loss

    t0 = time.perf_counter()
    matrix, diverged = train_tasks(net, tasks, lr, batch, order_gen, step)
    acc = float(np.mean(matrix[-1]))
    return {"seed": seed, "lr": lr, "minibatch_size": mb, "alpha": alpha, "beta": beta, "batch_size": batch,
            "buffer": buf, "init": init, "acc": acc, "diverged": diverged or not math.isfinite(acc),
            "final_row": matrix[-1], "matrix": matrix, "seconds": time.perf_counter() - t0}  # fmt: skip


def model_name(init: str) -> str:
    """The registered model the lifelong side trains: the table's MLP, or it with mammoth's Xavier init."""
    from lifelong.learn.models import MLP, MODELS, register_model

    if init == "xavier" and "mlp-xavier" not in MODELS:

        @register_model("mlp-xavier")
        def mlp_xavier(in_features: int = 784, n_classes: int = 10) -> nn.Module:
            net = MLP(in_features, (100, 100), n_classes)
            net.apply(xavier)
            return net

    return "mlp-xavier" if init == "xavier" else "mlp"


def run_lifelong(seed: int, init: str) -> dict:
    """lifelong's DerPP as the strategy table runs it (class-family values), the MLP's init the only switch."""
    from lifelong.bench import runner

    t0 = time.perf_counter()
    r = runner.run_one(
        "split-fmnist",
        "derpp",
        seed,
        runner.Settings(model=model_name(init), buffer=500),
    )
    return {"seed": seed, "side": "lifelong", "init": init, "acc": r["metrics"]["acc"],
            "diverged": bool(r["metrics"]["diverged"]), "final_row": r["accuracy_matrix"][-1],
            "seconds": time.perf_counter() - t0}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--side",
        default="mammoth",
        choices=["mammoth", "lifelong"],
        help="mammoth: this file's transcription; lifelong: the library's DerPP (only --init applies)",
    )
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--mb", type=int, default=10)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--buffer", type=int, default=500)
    p.add_argument("--init", default="xavier", choices=["xavier", "torch"])
    p.add_argument("--out", default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.side == "lifelong":
        one = lambda s: run_lifelong(s, a.init)  # noqa: E731
    else:
        one = lambda s: run(s, a.lr, a.mb, a.alpha, a.beta, a.batch, a.buffer, a.init, load(s))  # noqa: E731
    run_seeds(a.seeds, one, a.out, f"lr {a.lr} mb {a.mb} alpha {a.alpha} beta {a.beta} init {a.init}")


def run_seeds(seeds: str, one: Callable[[int], dict], out: str | None, label: str) -> list[dict]:
    """Run ``one(seed)`` for each of the comma-separated ``seeds``; print each, append it to ``out``."""
    results = []
    for s in [int(x) for x in seeds.split(",")]:
        r = one(s)
        results.append(r)
        print(f"seed {s}: ACC {r['acc']:.4f} final row {[round(v, 3) for v in r['final_row']]} "
              f"diverged={r['diverged']} ({r['seconds']:.0f}s)", flush=True)  # fmt: skip
        if out:
            with open(out, "a") as f:
                f.write(json.dumps(r) + "\n")
    accs = [r["acc"] for r in results]
    sd = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
    print(f"mean ACC {np.mean(accs):.4f} +- {sd:.4f} (sample std, n={len(accs)}) [{label}]")
    return results


if __name__ == "__main__":
    sys.exit(main())
