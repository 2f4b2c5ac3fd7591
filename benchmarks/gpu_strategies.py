"""Device check: the strategies changed for issue 9 train on CUDA with finite losses; herding matches the CPU.

PYTHONPATH=src python3 benchmarks/gpu_strategies.py   (says so and exits 0 without a GPU)
"""

import math
import sys
import time

import torch

if not torch.cuda.is_available():
    print("no CUDA device: nothing to check")
    sys.exit(0)
from lifelong.checks import toy_model, toy_scenario
from lifelong.learn import Callback, Learner
from lifelong.strategies import AGEM, EWC, SCP, GDumb, ICaRL, LwF, MultiHead, OnlineEWC, Replay, RWalk
from lifelong.strategies._herding import herding
from lifelong.strategies._importance import fisher_diagonal


class Losses(Callback):
    def __init__(self):
        self.v = []

    def on_step_end(self, s, c):
        self.v.append(s.loss_tensor)


cases = [
    ("class", [EWC(lam=10.0)]),
    ("domain", [EWC(fisher="sampled")]),
    ("domain", [OnlineEWC(fisher="empirical", fisher_batch_size=8)]),
    ("task", [LwF()]),
    ("task", [MultiHead(), LwF()]),
    ("class", [AGEM(40)]),
    ("class", [GDumb(40, epochs=3)]),
    ("class", [ICaRL(40)]),
    ("task", [ICaRL(40, distillation="kd")]),
    ("domain", [RWalk(lam=10.0)]),
    ("domain", [SCP()]),
    ("class", [Replay(40)]),
]
ok = True
for kind, strategies in cases:
    cb = Losses()
    t = time.perf_counter()
    r = Learner(toy_model(), strategies, lr=0.1, batch_size=8, device="cuda", callbacks=[cb]).fit(
        toy_scenario(kind)
    )
    finite = all(math.isfinite(float(v)) for v in cb.v)
    ok &= finite and not r.diverged
    print(
        f"{kind:6s} {strategies}: acc {r.metrics['acc']:.3f} finite {finite} diverged {r.diverged} boundary {r.boundary_seconds:.3f}s wall {time.perf_counter() - t:.2f}s"
    )
g = torch.Generator().manual_seed(0)
f = torch.relu(torch.randn(6000, 100, generator=g) @ torch.randn(100, 400, generator=g))
t = time.perf_counter()
cpu = herding(f, 250)
t1 = time.perf_counter()
gpu = herding(f.cuda(), 250)
torch.cuda.synchronize()
t2 = time.perf_counter()
print(
    f"herding 6000x400, 250 picks: cpu {t1 - t:.3f}s, cuda {t2 - t1:.3f}s (incl. warm-up), same picks {torch.equal(cpu, gpu)}"
)
from lifelong.learn.models import MLP

learner = Learner(MLP(), [], device="cuda")
from lifelong.data.dataset import Dataset

data = Dataset(torch.rand(12000, 1, 28, 28), torch.randint(0, 10, (12000,)))
for kind in ("empirical", "true"):
    fisher_diagonal(learner, data, kind, 256)
    torch.cuda.synchronize()
    t = time.perf_counter()
    fisher_diagonal(learner, data, kind)
    torch.cuda.synchronize()
    print(f"fisher {kind} on 12000 samples (MLP 784-100-100-10), cuda: {time.perf_counter() - t:.2f}s")
print("ALL OK" if ok else "FAILURES")
sys.exit(0 if ok else 1)
