"""Device check: the strategies changed for issue 9 train on CUDA with finite losses; herding matches the CPU.

PYTHONPATH=src python3 benchmarks/gpu_strategies.py   (says so and exits 0 without a GPU)
"""

import argparse
import math
import sys
import time

import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.data.dataset import Dataset
from lifelong.learn import Callback, Learner
from lifelong.learn.models import MLP
from lifelong.strategies import AGEM, EWC, SCP, GDumb, ICaRL, LwF, MultiHead, OnlineEWC, Replay, RWalk
from lifelong.strategies._herding import herding
from lifelong.strategies._importance import fisher_diagonal


class Losses(Callback):
    def __init__(self) -> None:
        self.values: list[torch.Tensor] = []

    def on_step_end(self, state, control) -> None:
        self.values.append(state.loss_tensor)


def main() -> int:
    argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0]).parse_args()  # --help only
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    cases = [
        ("class", [EWC(lam=10.0)]), ("domain", [EWC(fisher="sampled")]),
        ("domain", [OnlineEWC(fisher="empirical", fisher_batch_size=8)]), ("task", [LwF()]),
        ("task", [MultiHead(), LwF()]), ("class", [AGEM(40)]), ("class", [GDumb(40, epochs=3)]),
        ("class", [ICaRL(40)]), ("task", [ICaRL(40, distillation="kd")]), ("domain", [RWalk(lam=10.0)]),
        ("domain", [SCP()]), ("class", [Replay(40)]),
    ]  # fmt: skip
    ok = True
    for kind, strategies in cases:
        losses, start = Losses(), time.perf_counter()
        learner = Learner(toy_model(), strategies, lr=0.1, batch_size=8, device="cuda", callbacks=[losses])
        r = learner.fit(toy_scenario(kind))
        finite = all(math.isfinite(float(v)) for v in losses.values)
        ok &= finite and not r.diverged
        print(f"{kind:6s} {strategies}: acc {r.metrics['acc']:.3f} finite {finite} diverged {r.diverged} "
              f"boundary {r.boundary_seconds:.3f}s wall {time.perf_counter() - start:.2f}s")  # fmt: skip
    g = torch.Generator().manual_seed(0)
    f = torch.relu(torch.randn(6000, 100, generator=g) @ torch.randn(100, 400, generator=g))
    start = time.perf_counter()
    cpu = herding(f, 250)
    middle = time.perf_counter()
    gpu = herding(f.cuda(), 250)
    torch.cuda.synchronize()
    same = torch.equal(cpu, gpu)
    ok &= same
    print(
        f"herding 6000x400, 250 picks: cpu {middle - start:.3f}s, cuda {time.perf_counter() - middle:.3f}s, same {same}"
    )
    learner = Learner(MLP(), [], device="cuda")
    data = Dataset(torch.rand(12000, 1, 28, 28), torch.randint(0, 10, (12000,)))
    for kind in ("empirical", "true"):
        fisher_diagonal(learner, data, kind, 256)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        fisher_diagonal(learner, data, kind)
        torch.cuda.synchronize()
        print(
            f"fisher {kind} on 12000 samples (MLP 784-100-100-10), cuda: {time.perf_counter() - start:.2f}s"
        )
    print("ALL OK" if ok else "FAILURES")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
