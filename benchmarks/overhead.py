"""Training overhead of the Learner against the same method written by hand, one method per family.

Split Fashion-MNIST (five class-incremental experiences; PackNet task-incremental), one epoch per
experience, boundary work included (Fisher, teacher copies, bases, pruning + fine-tuning,
herding), iCaRL's nearest-mean prediction of the test sets included. Two protocols: the default
(MLP 100-100, SGD lr 0.03, batch 10) and batch 128 (MLP 400-400, lr 0.05). Each hand-written side
is the loop a user would write with plain torch for that method, with the same hyper-parameters,
memory sizes and sample counts; both sides draw from the same uint8 tensors.

Repeats alternate the two sides (library first on even repeats, hand first on odd), and each
repeat gives one pair ratio library / hand; we report the median of the pair ratios and their
spread (min, quartiles, max), which machine noise affects far less than a ratio of medians, for
wall-clock time and for process CPU time (``cpu_*``: the one to read on a shared machine, where
other jobs stretch wall-clock time but not this process's CPU seconds).

    python benchmarks/overhead.py --out benchmarks/results/overhead.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from lifelong.data import fashion_mnist
from lifelong.data.scenarios import Scenario, class_incremental, task_incremental
from lifelong.learn import Learner
from lifelong.learn.models import MLP
from lifelong.strategies import AGEM, DERPP, EWC, GPM, ICaRL, LwF, Naive, PackNet, Replay

PROTOCOLS = {
    "batch10": {"hidden": (100, 100), "lr": 0.03, "batch": 10},
    "batch128": {"hidden": (400, 400), "lr": 0.05, "batch": 128},
}
METHODS = ("naive", "replay", "ewc", "lwf", "derpp", "agem", "gpm", "packnet", "icarl")
AGEM_REF = 256  # A-GEM's reference batch (the authors' EPS_MEM_BATCH_SIZE, the library's default)
BUFFER, FISHER, LAM, ALPHA, BETA, T, GPM_SAMPLES, GPM_THRESHOLD, PRUNE = (
    500,
    500,
    10.0,
    0.2,
    0.5,
    2.0,
    125,
    0.97,
    0.5,
)


def strategies(method: str) -> list[Any]:
    return {
        "naive": lambda: [Naive()],
        "replay": lambda: [Replay(BUFFER)],
        "ewc": lambda: [
            EWC(lam=LAM, fisher_samples=FISHER, fisher="empirical", penalty_step="gradient")
        ],  # as the hand-written one
        "lwf": lambda: [LwF(alpha=1.0, temperature=T)],
        "derpp": lambda: [DERPP(BUFFER, alpha=ALPHA, beta=BETA)],
        "agem": lambda: [AGEM(BUFFER, batch_size=AGEM_REF)],
        "gpm": lambda: [GPM(GPM_THRESHOLD, 0.0, GPM_SAMPLES)],
        "packnet": lambda: [PackNet(PRUNE, finetune_epochs=1)],
        "icarl": lambda: [ICaRL(BUFFER)],
    }[method]()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def library(
    scenario: Scenario, method: str, proto: dict[str, Any], seed: int, device: torch.device
) -> tuple[float, float]:
    """(wall, CPU) seconds for ``Learner.learn`` over every experience (boundary work included)."""
    torch.manual_seed(seed)
    model = MLP(hidden=proto["hidden"])
    learner = Learner(
        model, strategies(method), lr=proto["lr"], batch_size=proto["batch"], seed=seed, device=device
    )
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    for exp in scenario:
        learner.learn(exp)
    if method == "icarl":  # nearest-mean-of-exemplars prediction of every test set
        for exp in scenario:
            learner.predict(exp.test.features())
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


class Reservoir:
    """Hand-written reservoir memory: uint8 inputs, labels and (for DER++) logits."""

    def __init__(self, shape: tuple[int, ...], n_out: int) -> None:
        self.x = torch.zeros(BUFFER, *shape, dtype=torch.uint8)
        self.y = torch.zeros(BUFFER, dtype=torch.long)
        self.z = torch.zeros(BUFFER, n_out)
        self.size = self.seen = 0

    def add(self, x: Tensor, y: Tensor, z: Tensor | None, g: torch.Generator) -> None:
        n = len(y)
        fill = min(BUFFER - self.size, n)
        slots = list(range(self.size, self.size + fill))
        src = list(range(fill))
        self.size += fill
        for i, r in enumerate(torch.rand(n - fill, generator=g).tolist(), start=fill):
            j = int(r * (self.seen + i + 1))
            if j < BUFFER:
                slots.append(j)
                src.append(i)
        if slots:
            s, i = torch.tensor(slots), torch.tensor(src)
            self.x[s], self.y[s] = x[i], y[i]
            if z is not None:
                self.z[s] = z[i]
        self.seen += n

    def draw(self, n: int, g: torch.Generator, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        j = torch.randperm(self.size, generator=g)[:n]
        return (self.x[j].float().mul_(1 / 255).to(device), self.y[j].to(device), self.z[j].to(device))


def hand_written(
    scenario: Scenario, method: str, proto: dict[str, Any], seed: int, device: torch.device
) -> tuple[float, float]:
    """(wall, CPU) seconds for the same method as a plain PyTorch loop (what a user would write for it)."""
    torch.manual_seed(seed)
    model = MLP(hidden=proto["hidden"]).to(device)
    lr, bs = proto["lr"], proto["batch"]
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    memory = Reservoir(tuple(scenario.experiences[0].train.x.shape[1:]), 10)
    seen: list[int] = []
    anchors: list[dict[str, Tensor]] = []  # EWC
    fishers: list[dict[str, Tensor]] = []
    teacher: nn.Module | None = None  # LwF, iCaRL
    old_classes: list[int] = []
    bases: dict[nn.Linear, Tensor] = {}  # GPM: [d, k] per layer
    owner = {n: torch.zeros(p.shape, dtype=torch.int16, device=device) for n, p in params.items()}  # PackNet
    frozen: dict[str, Tensor] = {}
    snapshot: dict[str, Tensor] = {}
    task_classes = torch.zeros(len(scenario.experiences) + 1, 10, dtype=torch.bool, device=device)
    ex_x, ex_y = torch.zeros(0, 1, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.long)  # iCaRL
    means: Tensor | None = None

    def features(x: Tensor) -> Tensor:
        return F.normalize(model.features(x), dim=1)

    def step(xr: Tensor, x: Tensor, y: Tensor, t: Tensor | None, current: list[int]) -> None:
        n_new = len(y)
        if method == "replay" and memory.size:
            mx, my, _ = memory.draw(bs, g, device)
            x, y = torch.cat([x, mx]), torch.cat([y, my])
        logits = model(x)
        if t is not None:
            logits = logits.masked_fill(~task_classes[t], float("-inf"))
        if method == "icarl":
            target = F.one_hot(y, 10).float()
            distil = [c for c in old_classes if c not in current]
            if teacher is not None and distil:
                with torch.no_grad():
                    target[:, distil] = torch.sigmoid(teacher(x)[:, distil])
            loss = F.binary_cross_entropy_with_logits(
                logits[:, seen], target[:, seen], reduction="sum"
            ) / len(x)
        else:
            loss = F.cross_entropy(logits, y)
        if method == "ewc" and anchors:
            pen = sum(
                (
                    (f[n] * (p - a[n]).pow(2)).sum()
                    for a, f in zip(anchors, fishers)
                    for n, p in params.items()
                )
            )
            loss = loss + 0.5 * LAM * pen
        if method == "lwf" and teacher is not None:
            with torch.no_grad():
                old = teacher(x)[:, old_classes]
            kd = F.kl_div(F.log_softmax(logits[:, old_classes] / T, 1), F.log_softmax(old / T, 1),
                          reduction="batchmean", log_target=True)  # fmt: skip
            loss = loss + T * T * kd
        if method == "derpp" and memory.size:
            mx, _, mz = memory.draw(bs, g, device)
            loss = loss + ALPHA * F.mse_loss(model(mx), mz)
            mx, my, _ = memory.draw(bs, g, device)
            loss = loss + BETA * F.cross_entropy(model(mx), my)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if method == "agem" and memory.size:  # a reference batch from past experiences only
            mx, my, _ = memory.draw(AGEM_REF, g, device)
            ref = torch.autograd.grad(F.cross_entropy(model(mx), my), list(params.values()))
            g_ref = torch.cat([r.reshape(-1) for r in ref])
            flat = torch.cat([p.grad.reshape(-1) for p in params.values()])
            dot = flat @ g_ref
            if dot < 0:
                flat = flat - dot / (g_ref @ g_ref) * g_ref
                for p, part in zip(params.values(), flat.split([p.numel() for p in params.values()])):
                    p.grad.copy_(part.view_as(p))
        if method == "gpm" and bases:
            for layer, m in bases.items():
                gw = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], 1)  # [out, in + 1]
                rows = old_classes if layer is linears[-1] else slice(None)
                gw[rows] -= (gw[rows] @ m) @ m.T
                layer.weight.grad.copy_(gw[:, :-1])
                layer.bias.grad.copy_(gw[:, -1])
        if method == "packnet" and frozen:
            for n, m in frozen.items():
                params[n].grad.masked_fill_(m, 0.0)
                snapshot.setdefault(n, params[n].detach().clone())
        opt.step()
        if method == "packnet" and frozen:
            with torch.no_grad():
                for n, m in frozen.items():
                    params[n].copy_(torch.where(m, snapshot[n], params[n]))
        if method in ("replay", "derpp"):
            memory.add(xr, y[:n_new].cpu(), logits[:n_new].detach().cpu() if method == "derpp" else None, g)

    def epoch(X: Tensor, Y: Tensor, Tt: Tensor | None, current: list[int]) -> None:
        order = torch.randperm(len(Y), generator=g)
        for i in range(0, len(Y), bs):
            idx = order[i : i + bs]
            xr = X[idx]
            t = None if Tt is None else Tt[idx].to(device)
            step(xr, xr.float().mul_(1 / 255).to(device), Y[idx].to(device), t, current)

    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    for k, exp in enumerate(scenario, start=1):
        data, current = exp.train, list(exp.classes)
        seen = sorted(set(seen) | set(current))
        X, Y, Tt = data.x, data.y, data.t
        if Tt is not None:
            task_classes[exp.task_id, current] = True
        if method == "icarl" and len(ex_y):
            X, Y = torch.cat([X, ex_x]), torch.cat([Y, ex_y])
        if method == "packnet":
            frozen = {n: o != 0 for n, o in owner.items() if bool((o != 0).any())}
            snapshot = {}
            opt = torch.optim.SGD(model.parameters(), lr=lr)
        epoch(X, Y, Tt, current)
        # -- boundary work
        if method == "ewc":
            idx = torch.randperm(len(data), generator=g)[:FISHER]
            p0 = {n: p.detach() for n, p in params.items()}

            def nll(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
                return F.cross_entropy(functional_call(model, p, (x[None],)), y[None])

            fisher = {n: torch.zeros_like(p) for n, p in p0.items()}
            for i in range(0, len(idx), 256):
                x = data.x[idx[i : i + 256]].float().mul_(1 / 255).to(device)
                for n, gr in vmap(grad(nll), in_dims=(None, 0, 0))(
                    p0, x, data.y[idx[i : i + 256]].to(device)
                ).items():
                    fisher[n] += gr.pow(2).sum(0)
            fishers.append({n: f / len(idx) for n, f in fisher.items()})
            anchors.append({n: p.clone() for n, p in p0.items()})
        if method == "agem":  # the memory is offered each experience at its end, as the authors' code does
            memory.add(data.x, data.y, None, g)
        if method in ("lwf", "icarl"):
            teacher = copy.deepcopy(model).eval().requires_grad_(False)
            old_classes = list(seen)
        if method == "gpm":
            idx = torch.randperm(len(data), generator=g)[:GPM_SAMPLES]
            h = data.x[idx].float().mul_(1 / 255).to(device).flatten(1)
            with torch.no_grad():
                for layer in linears:
                    r = torch.cat([h, h.new_ones(len(h), 1)], 1).double()
                    gram = r.T @ r
                    m = bases.get(layer, gram.new_zeros(len(gram), 0)).double()
                    residual = gram - m @ (m.T @ gram)
                    residual = residual - (residual @ m) @ m.T
                    vals, vecs = torch.linalg.eigh((residual + residual.T) / 2)
                    vals, vecs = vals.flip(0).clamp(min=0), vecs.flip(1)
                    need = GPM_THRESHOLD * float(gram.trace()) - float((m.T @ gram @ m).trace())
                    if need > 0:
                        n_new = min(
                            int((vals.cumsum(0) < need).sum()) + 1, int((vals > 1e-10 * gram.trace()).sum())
                        )
                        m = torch.cat([m, vecs[:, :n_new]], 1)
                    bases[layer] = m.float()
                    h = layer(h)
                    if layer is not linears[-1]:
                        h = h.relu()
            old_classes = list(seen)
        if method == "packnet":
            with torch.no_grad():
                for n, p in params.items():
                    free = owner[n] == 0
                    keep = free
                    if p.dim() > 1:
                        n_prune = int(round(PRUNE * int(free.sum())))
                        keep = free & (p.abs() > p.abs()[free].kthvalue(n_prune).values)
                    p.masked_fill_(free & ~keep, 0.0)
                    owner[n][keep] = k
            frozen = {n: o != k for n, o in owner.items()}
            snapshot = {}
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            epoch(data.x, data.y, data.t, current)  # fine-tune the task's kept weights
        if method == "icarl":
            m = BUFFER // len(seen)
            xs, ys, mus = [], [], torch.zeros(10, model.classifier.in_features, device=device)
            model.eval()
            with torch.no_grad():
                for c in seen:
                    cand = torch.cat([ex_x[ex_y == c], data.x[data.y == c]])
                    f = torch.cat([features(cand[i : i + 512].float().mul_(1 / 255).to(device))
                                   for i in range(0, len(cand), 512)]).cpu()  # fmt: skip
                    if (data.y == c).any():  # herding: greedy picks keeping the running mean near mu
                        fd, mu, running = (
                            f.double(),
                            f.double().mean(0),
                            torch.zeros(f.shape[1], dtype=torch.double),
                        )
                        taken, pick = torch.zeros(len(f), dtype=torch.bool), []
                        for j in range(1, min(m, len(f)) + 1):
                            dist = (mu - (running + fd) / j).norm(dim=1)
                            dist[taken] = float("inf")
                            i = int(dist.argmin())
                            pick.append(i)
                            taken[i] = True
                            running += fd[i]
                        pick = torch.tensor(pick)
                    else:
                        pick = torch.arange(min(m, len(f)))
                    xs.append(cand[pick])
                    ys.append(torch.full((len(pick),), c))
                    mus[c] = F.normalize(f[pick].mean(0), dim=0).to(device)
            model.train()
            ex_x, ex_y, means = torch.cat(xs), torch.cat(ys), mus
    if method == "icarl":
        model.eval()
        with torch.no_grad():
            for exp in scenario:
                for i in range(0, len(exp.test), 1024):
                    f = features(exp.test.x[i : i + 1024].float().mul_(1 / 255).to(device))
                    torch.cdist(f, means).argmin(1).cpu()
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def subset(scenario: Scenario, n: int | None) -> Scenario:
    """The first ``n`` training samples of every experience (a fixed, class-balanced-enough cut)."""
    if n:
        g = torch.Generator().manual_seed(0)
        for e in scenario.experiences:
            e.train = e.train.subset(torch.randperm(len(e.train), generator=g)[:n].sort().values)
    return scenario


def summarize(lib: list[float], hand: list[float], prefix: str = "") -> dict[str, Any]:
    """Pair ratios ``lib[i] / hand[i]``: median, quartiles and extremes; also the ratio of the minima
    (noise on a shared machine only adds time, so each side's fastest repeat is its least disturbed)."""
    ratios = sorted(a / b for a, b in zip(lib, hand))
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    out = {
        "ratio_median": statistics.median(ratios), "ratio_min": ratios[0], "ratio_q1": q[0], "ratio_q3": q[2],
        "ratio_max": ratios[-1], "ratio_of_minima": min(lib) / min(hand),
        "library_s_median": statistics.median(lib), "hand_s_median": statistics.median(hand),
        "library_s": lib, "hand_s": hand,
    }  # fmt: skip
    return {prefix + k: v for k, v in out.items()}


def measure(
    scenarios: dict[str, Scenario], methods: list[str], protocols: list[str], repeats: int, device: torch.device,
    done: Callable[[dict[str, Any]], None] = lambda out: None, warmup: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """Alternating repeats for every (protocol, method): pair ratios, their median and spread.

    ``done(results so far)`` is called after each method, so an interrupted run keeps what it measured.
    """
    out: dict[str, Any] = {}
    for pname in protocols:
        proto = PROTOCOLS[pname]
        for method in methods:
            scenario = scenarios["task" if method == "packnet" else "class"]
            for _ in range(warmup):  # unmeasured: lazy imports and first-call kernels of this method
                library(scenario, method, proto, 0, device), hand_written(scenario, method, proto, 0, device)
            lib, hand = [], []  # (wall, cpu) seconds per repeat
            for r in range(repeats):
                sides = [("lib", library), ("hand", hand_written)]
                for label, fn in sides if r % 2 == 0 else sides[::-1]:
                    (lib if label == "lib" else hand).append(fn(scenario, method, proto, r, device))
            samples = sum(len(e.train) for e in scenario) * (2 if method == "packnet" else 1)
            e = out[f"{pname}/{method}"] = {}
            for k, clock in enumerate(("wall", "cpu")):
                e.update(
                    summarize([s[k] for s in lib], [s[k] for s in hand], "" if clock == "wall" else "cpu_")
                )
            e["library_samples_per_s"] = samples / e["library_s_median"]
            e["hand_samples_per_s"] = samples / e["hand_s_median"]
            done(out)
            print(f"{pname:9} {method:8} wall {e['ratio_median']:.3f} [{e['ratio_min']:.3f}-{e['ratio_max']:.3f}] "
                  f"cpu {e['cpu_ratio_median']:.3f} [{e['cpu_ratio_min']:.3f}-{e['cpu_ratio_max']:.3f}] "
                  f"(lib {e['cpu_library_s_median']:.3f}s hand {e['cpu_hand_s_median']:.3f}s cpu)", flush=True)  # fmt: skip
    return out


def main(argv: list[str] | None = None, device_default: str = "cpu") -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both sides")
    parser.add_argument(
        "--warmup", type=int, default=1, help="unmeasured pairs per method before the repeats"
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--train-per-experience", type=int, default=2000,
                        help="training samples per experience (0: all 12,000); test sets stay whole")  # fmt: skip
    parser.add_argument("--device", default=device_default)
    parser.add_argument("--out", default="benchmarks/results/overhead.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = fashion_mnist()
    scenarios = {
        "class": subset(class_incremental(data, n_experiences=5), args.train_per_experience),
        "task": subset(task_incremental(data, n_experiences=5), args.train_per_experience),
    }
    methods, protocols = args.methods.split(","), args.protocols.split(",")
    start = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(measured: dict[str, Any]) -> None:
        results["results"] = measured
        results["wall_seconds"] = time.perf_counter() - start
        results["load_average_end"] = os.getloadavg()  # other jobs on the machine (1, 5, 15 min)
        out.write_text(json.dumps(results, indent=1))

    results: dict[str, Any] = {
        "setup": "split-fmnist, 5 experiences (PackNet task-incremental), 1 epoch, boundary work included",
        "train_per_experience": args.train_per_experience or 12000,
        "protocols": {p: PROTOCOLS[p] for p in protocols},
        "load_average_start": os.getloadavg(), "cpus": os.cpu_count(),
        "threads": args.threads, "repeats": args.repeats, "warmup": args.warmup, "device": str(device),
        "command": "python benchmarks/overhead.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "ratio": "library seconds / hand-written seconds, per alternating pair (ratio_*: wall clock, "
        "cpu_ratio_*: process CPU time, robust to other jobs on a shared machine)",
    }  # fmt: skip
    save(measure(scenarios, methods, protocols, args.repeats, device, save, args.warmup))
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
