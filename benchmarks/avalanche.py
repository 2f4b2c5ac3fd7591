"""Side by side with Avalanche 0.6.0 and a hand-written loop: train seconds per epoch, evaluation, ACC.

Split Fashion-MNIST (``class_incremental``, 5 experiences x 2 classes), one epoch per experience,
boundary work included; the same uint8 tensors on every side (Avalanche gets them as float32 scaled
by 1/255 once, before the clock starts: per-sample transforms in its data loader would cost it
more), the same initial weights (one MLP state dict per protocol and repeat, loaded by every side),
the same seed (the repeat's index) and torch thread count. Each (side, method, repeat) runs in its
own process, sides in rotating order per repeat. The protocols, hyper-parameters and hand-written
loops are those of ``benchmarks/overhead.py``, imported from it: batch10 (MLP 100-100, SGD lr 0.03,
batch 10) and batch128 (MLP 400-400, lr 0.05, batch 128).

What each run measures: train seconds per epoch (Avalanche: wall time of ``strategy.train(exp)``
over every experience / (epochs x experiences); lifelong: the Learner's ``train_seconds``, also the
wall time of ``learn``; hand: the whole loop of ``overhead.hand_written``), process CPU seconds of
training, evaluation seconds of the 10k test images (Avalanche: ``strategy.eval(test_stream)`` with
one experience-accuracy metric and no logger; lifelong: ``Learner.evaluate``; hand: a plain
forward; batches of 1024 everywhere), final ACC (mean test accuracy over the experiences after the
last), peak RSS of the process. The summary per protocol x method gives the median over repeats of
each side's seconds per epoch, the median of the paired ratios Avalanche / lifelong and lifelong /
hand with their min and max, ACC per side and the evaluation ratio Avalanche / lifelong. A run
whose weights end non-finite says ``finite: false`` (lifelong's also ``diverged``); its seconds and
ACC are those of a diverged run. Avalanche's RSS includes its float32 copy of the data (about
220 MB at full size; lifelong keeps uint8).

Methods and how they are matched (Avalanche's own strategies from ``avalanche.training``):

- naive: ``Naive``. Same loop on every side.
- replay: ``Replay(mem_size=500)``, replay batch = training batch on every side. Not matched:
  Avalanche's memory is experience-balanced and filled at each boundary (its default storage
  policy); lifelong's and the hand-written one are reservoirs updated every step.
- ewc: ``EWC(mode="separate")``. The library's EWC in Avalanche's configuration (its estimator:
  empirical Fisher from squared mini-batch gradients over the whole experience, ``fisher=
  "empirical", fisher_batch_size=batch``), lifelong ``lam`` 100 (its default) and Avalanche
  ``ewc_lambda`` 50: Avalanche's penalty has no 1/2. No hand side: overhead.py's hand-written EWC
  uses per-sample gradients of 500 samples at ``lam`` 10, another configuration. Not matched: the
  Fisher's mini-batches. Avalanche's ``nc_benchmark`` orders each experience by class and its
  Fisher loader does not shuffle, so its batches hold one class and their squared mean gradients
  come out about 5x larger than lifelong's over mixed batches (measured after the first experience
  of the batch10 smoke run: classifier weights sum 14.4 against 3.0, max 1.26 against 0.27); at
  batch 10, ``lam`` 100, lr 0.03 Avalanche's EWC diverged in the 300-samples-per-experience smoke
  runs (3 seeds); at full size (``avalanche.json``) it stayed finite.
- derpp: Avalanche's ``DER(alpha=0.2, beta=0.5, mem_size=500)`` is DER++ (``beta > 0`` adds the
  cross-entropy on memory labels, see ``avalanche/training/supervised/der.py``), so it is compared
  with lifelong's ``DERPP(500, alpha=0.2, beta=0.5)``. Not matched (Avalanche's own list of its
  differences from the authors' code): one memory batch serves both terms (the authors and lifelong
  draw two), joint forward of memory and incoming samples, logits stored at the boundary by the
  trained model in eval mode (lifelong: from the training forward, at the step), a class-balanced
  memory filled at boundaries (lifelong: reservoir per step).
- derpp-rows: the same Avalanche run against lifelong's ``DERPP`` with memory batches of half the
  training batch, so both sides forward the same rows per step (batch + 2 x batch/2 against batch +
  batch): equal work, where ``derpp`` gives lifelong the authors' two full memory batches.
- lwf: ``LwF(alpha=4, temperature=2)`` against lifelong ``LwF(alpha=1, temperature=2)``: lifelong
  scales the KL term by T^2 (van de Ven), Avalanche does not; the same loss.
- agem: ``AGEM(patterns_per_exp=500, sample_size=256)`` against lifelong ``AGEM(500, batch_size=
  256)``: the same 256-sample reference batch. Avalanche draws ``256 // k`` samples from each of
  its k per-experience memories, and a memory smaller than that share shrinks the batch (measured
  with 100 per experience: 100, then 200, and remainder batches of 45 or 144), so each experience
  keeps 500; the memories cannot match: Avalanche's grows by 500 per experience (2,000 while
  training the fifth), lifelong keeps one 500-sample reservoir over all past experiences.
- gem: ``GEM(patterns_per_exp=100, memory_strength=0.5)`` against lifelong ``GEM(margin=0.5,
  per_experience=100)``: the same memory, 100 samples of each experience kept whole (the authors'
  ``n_memories``), so both sides' constraint gradients see 100 to 400 memory samples per step.
  (Before ``per_experience`` existed lifelong ran ``GEM(500)``, which splits 500 among the past
  experiences and so constrains with 500 samples per step: ``avalanche.json``.) Avalanche adds a
  fixed 1e-3 ridge to the QP; lifelong a relative one. No hand side.
- icarl (batch128 only by default, as in issue 10): ``ICaRL(memory_size=500, fixed_memory=True)``
  with the MLP's ``features`` as feature extractor and its ``classifier`` as the training head,
  against lifelong ``ICaRL(500)``. Not matched: Avalanche's loss is the BCE averaged over all 10
  outputs (unseen classes included), lifelong's summed over the seen classes per sample; Avalanche
  herds with the authors' iterative rule (at most 1000 iterations) and averages each class mean with
  that of horizontally flipped exemplars. The hand-written loop predicts the test sets by nearest
  mean inside its timed loop and keeps its class means to itself, so its seconds include that
  prediction (lifelong / hand compares lifelong's train + evaluation seconds with it) and it has
  no ACC here.

Hand sides exist where overhead.py's hand-written loop has the configuration used here (naive,
replay, derpp, lwf, agem, icarl); ``overhead.hand_written`` builds its model through the module's
``MLP`` name, which the child process points at a factory loading the shared state dict.

Run with Avalanche's environment (avalanche-lib 0.6.0 is not a dependency of the project), on a
quiet machine, with 2 threads as in issue 10's table. The environment: a venv that sees the
project's (a ``.pth`` line), torchvision without its dependencies (its PyPI wheel links CUDA, so
``torchvision_cpu_shim.py`` declares the two op schemas its import needs), then Avalanche::

    python -m venv /work/avl && SP=/work/avl/lib/python3.11/site-packages
    echo "$PWD/.venv/lib/python3.11/site-packages" > $SP/project_venv.pth
    /work/avl/bin/pip install torchvision==0.28.0 --no-deps && /work/avl/bin/pip install avalanche-lib==0.6.0
    cp benchmarks/torchvision_cpu_shim.py $SP/ && echo "import torchvision_cpu_shim" > $SP/zz_shim.pth

    PYTHONPATH=$PWD/src /work/avl/bin/python benchmarks/avalanche.py --threads 2 \\
        --out benchmarks/results/avalanche.json

Smoke run (seconds: startup-dominated; ACC: seed noise dominates at this size):
``--train-per-experience 300 --repeats 1 --protocols batch128 --out /tmp/avalanche-smoke.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

# This file shares its name with the package it measures: the script's directory goes last on the
# path, so ``import avalanche`` finds the library and ``import overhead`` still finds the sibling.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
import overhead  # noqa: E402  (a sibling script, not a package)
from lifelong.data import fashion_mnist  # noqa: E402
from lifelong.data.dataset import Dataset  # noqa: E402
from lifelong.data.scenarios import Scenario, class_incremental  # noqa: E402
from lifelong.learn import Learner  # noqa: E402
from lifelong.learn.models import MLP  # noqa: E402
from lifelong.metrics.costs import peak_rss_mb  # noqa: E402
from lifelong.strategies import AGEM, DERPP, EWC, GEM, ICaRL, LwF, Naive, Replay  # noqa: E402
from overhead import ALPHA, BETA, BUFFER, PROTOCOLS, T  # noqa: E402

METHODS = ("naive", "replay", "ewc", "derpp", "derpp-rows", "lwf", "agem", "gem", "icarl")
SIDES = ("avalanche", "lifelong", "hand")
# methods whose hand-written loop in overhead.py has the configuration used here
HAND = frozenset({"naive", "replay", "derpp", "lwf", "agem", "icarl"})
EXPERIENCES = 5
EWC_LAM = 100.0  # lifelong's default; Avalanche's penalty has no 1/2, so it gets half
# Avalanche's GEM memory per experience: the 500-sample budget over 5 experiences
PER_EXPERIENCE = BUFFER // EXPERIENCES
AGEM_REF = overhead.AGEM_REF
EVAL_BATCH = 1024


def scenario(train_per_experience: int | None) -> Scenario:
    return overhead.subset(
        class_incremental(fashion_mnist(), n_experiences=EXPERIENCES), train_per_experience
    )


def lifelong_strategies(method: str, batch: int) -> list[Any]:
    return {
        "naive": lambda: [Naive()],
        "replay": lambda: [Replay(BUFFER)],
        "ewc": lambda: [
            EWC(lam=EWC_LAM, fisher="empirical", fisher_batch_size=batch, penalty_step="gradient")
        ],
        "derpp": lambda: [DERPP(BUFFER, alpha=ALPHA, beta=BETA)],
        # Avalanche's row count per step: two memory batches of half a batch share its one batch's rows
        "derpp-rows": lambda: [DERPP(BUFFER, batch_size=max(1, batch // 2), alpha=ALPHA, beta=BETA)],
        "lwf": lambda: [LwF(alpha=1.0, temperature=T)],
        "agem": lambda: [AGEM(BUFFER, batch_size=AGEM_REF)],
        "gem": lambda: [GEM(margin=0.5, per_experience=PER_EXPERIENCE)],
        "icarl": lambda: [ICaRL(BUFFER)],
    }[method]()


def accuracies(model: nn.Module, sc: Scenario) -> list[float]:
    """Hand-written evaluation: test accuracy per experience with a plain forward."""
    model.eval()
    out = []
    with torch.inference_mode():
        for exp in sc:
            test, right = exp.test, 0
            for i in range(0, len(test), EVAL_BATCH):
                x = test.x[i : i + EVAL_BATCH].float().mul_(test.scale)
                right += int((model(x).argmax(1) == test.y[i : i + EVAL_BATCH]).sum())
            out.append(right / len(test))
    return out


def finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``'s result, wall seconds and process CPU seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def run_lifelong(
    sc: Scenario, method: str, proto: dict[str, Any], seed: int, state: dict[str, Tensor]
) -> dict[str, Any]:
    model = MLP(hidden=proto["hidden"])
    model.load_state_dict(state)
    learner = Learner(model, lifelong_strategies(method, proto["batch"]), lr=proto["lr"],
                      batch_size=proto["batch"], seed=seed, eval_batch_size=EVAL_BATCH)  # fmt: skip
    _, wall, cpu = timed(lambda: [learner.learn(exp) for exp in sc])
    accs, eval_s, eval_cpu = timed(lambda: learner.evaluate(sc))
    return {"train_s": learner.train_seconds, "learn_wall_s": wall, "cpu_s": cpu, "eval_s": eval_s,
            "eval_cpu_s": eval_cpu, "accs": accs, "finite": finite(model), "diverged": learner.diverged}  # fmt: skip


def run_hand(
    sc: Scenario, method: str, proto: dict[str, Any], seed: int, state: dict[str, Tensor]
) -> dict[str, Any]:
    built: list[nn.Module] = []

    def mlp(**kwargs: Any) -> nn.Module:  # overhead.hand_written builds its model through this name
        model = MLP(**kwargs)
        model.load_state_dict(state)
        built.append(model)
        return model

    overhead.MLP = mlp  # this process runs one hand-written loop only
    wall, cpu = overhead.hand_written(sc, method, proto, seed, torch.device("cpu"))
    out: dict[str, Any] = {"train_s": wall, "learn_wall_s": wall, "cpu_s": cpu, "finite": finite(built[0])}
    if method == "icarl":  # nearest-mean prediction already inside the timed loop; its means stay there
        out.update(eval_s=None, eval_cpu_s=None, accs=None, includes_eval=True)
    else:
        out["accs"], out["eval_s"], out["eval_cpu_s"] = timed(lambda: accuracies(built[0], sc))
    return out


def run_avalanche(
    sc: Scenario, method: str, proto: dict[str, Any], seed: int, state: dict[str, Tensor]
) -> dict[str, Any]:
    from avalanche.benchmarks import nc_benchmark
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training import AGEM as AvAGEM
    from avalanche.training import DER as AvDER
    from avalanche.training import EWC as AvEWC
    from avalanche.training import GEM as AvGEM
    from avalanche.training import ICaRL as AvICaRL
    from avalanche.training import LwF as AvLwF
    from avalanche.training import Naive as AvNaive
    from avalanche.training import Replay as AvReplay
    from avalanche.training.determinism.rng_manager import RNGManager
    from avalanche.training.plugins import EvaluationPlugin

    class Tensors(torch.utils.data.TensorDataset):
        """Float inputs and labels with the ``targets`` attribute Avalanche's generators read."""

        def __init__(self, parts: list[Dataset]) -> None:
            x = torch.cat([p.x for p in parts]).float().mul_(parts[0].scale)
            super().__init__(x, torch.cat([p.y for p in parts]))
            self.targets = self.tensors[1].tolist()

    order = [c for exp in sc for c in exp.classes]
    bench = nc_benchmark(Tensors([e.train for e in sc]), Tensors([e.test for e in sc]), EXPERIENCES,
                         task_labels=False, fixed_class_order=order)  # fmt: skip
    RNGManager.set_random_seeds(seed)
    model = MLP(hidden=proto["hidden"])
    model.load_state_dict(state)
    opt = torch.optim.SGD(model.parameters(), lr=proto["lr"])
    # one experience-accuracy metric (for ACC) and no logger: the cheapest evaluator that reports ACC
    common = {"train_mb_size": proto["batch"], "train_epochs": 1, "eval_mb_size": EVAL_BATCH, "device": "cpu",
              "evaluator": EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])}  # fmt: skip
    ce = {"model": model, "optimizer": opt, "criterion": nn.CrossEntropyLoss(), **common}
    strategy = {
        "naive": lambda: AvNaive(**ce),
        "replay": lambda: AvReplay(mem_size=BUFFER, **ce),
        "ewc": lambda: AvEWC(ewc_lambda=EWC_LAM / 2, mode="separate", **ce),
        "derpp": lambda: AvDER(mem_size=BUFFER, alpha=ALPHA, beta=BETA, **ce),
        "derpp-rows": lambda: AvDER(mem_size=BUFFER, alpha=ALPHA, beta=BETA, **ce),
        "lwf": lambda: AvLwF(alpha=T * T, temperature=T, **ce),
        "agem": lambda: AvAGEM(patterns_per_exp=BUFFER, sample_size=AGEM_REF, **ce),  # 256 // k per memory
        "gem": lambda: AvGEM(patterns_per_exp=PER_EXPERIENCE, memory_strength=0.5, **ce),
        "icarl": lambda: AvICaRL(
            feature_extractor=model.features,
            classifier=model.classifier,
            optimizer=opt,
            memory_size=BUFFER,
            buffer_transform=None,
            fixed_memory=True,
            **common,
        ),
    }[method]()
    _, wall, cpu = timed(lambda: [strategy.train(exp) for exp in bench.train_stream])
    metrics, eval_s, eval_cpu = timed(lambda: strategy.eval(bench.test_stream))
    accs = [metrics[f"Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp{i:03d}"] for i in range(EXPERIENCES)]
    return {"train_s": wall, "learn_wall_s": wall, "cpu_s": cpu, "eval_s": eval_s, "eval_cpu_s": eval_cpu,
            "accs": accs, "finite": finite(model)}  # fmt: skip


RUNNERS = {"avalanche": run_avalanche, "lifelong": run_lifelong, "hand": run_hand}


def child(spec: dict[str, Any]) -> None:
    """One (side, method, protocol, repeat) run in this process; the result is written to ``spec["out"]``."""
    torch.set_num_threads(spec["threads"])
    sc = scenario(spec["train_per_experience"])
    state = torch.load(spec["state"])
    proto = PROTOCOLS[spec["protocol"]]
    r = RUNNERS[spec["side"]](sc, spec["method"], proto, spec["seed"], state)
    r["s_per_epoch"] = r["train_s"] / (1 * EXPERIENCES)
    r["acc"] = None if r["accs"] is None else sum(r["accs"]) / len(r["accs"])
    r["peak_rss_mb"] = peak_rss_mb()
    r["load_average"] = os.getloadavg()  # other jobs on the machine at the end of the run (1, 5, 15 min)
    Path(spec["out"]).write_text(json.dumps(r))


def spawn(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    out = tmp / "result.json"
    out.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps({**spec, "out": str(out)})],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0 or not out.exists():
        return {"error": f"exit {proc.returncode}: {proc.stderr[-2000:]}"}
    return json.loads(out.read_text())


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per side: medians over repeats; paired ratios per repeat (median, min, max); failed runs."""
    by: dict[int, dict[str, dict[str, Any]]] = {}
    for r in runs:
        if "error" not in r:
            by.setdefault(r["repeat"], {})[r["side"]] = r
    out: dict[str, Any] = {}
    for side in SIDES:
        rs = [rep[side] for rep in by.values() if side in rep]
        if rs:
            out[side] = {k: statistics.median(v) if (v := [r[k] for r in rs if r.get(k) is not None]) else None
                         for k in ("s_per_epoch", "cpu_s", "eval_s", "acc", "peak_rss_mb")}  # fmt: skip
            out[side].update(
                acc_runs=[r["acc"] for r in rs], finite=all(r["finite"] for r in rs), repeats=len(rs)
            )

    def ratios(a: str, b: str, key: str, extra: str | None = None) -> dict[str, float] | None:
        """``a``'s ``key`` (plus its ``extra``) over ``b``'s, per repeat where both sides ran."""
        pairs = [(rep[a], rep[b]) for rep in by.values() if a in rep and b in rep]
        return spread([(x[key] + (x[extra] if extra else 0.0)) / y[key] for x, y in pairs])

    # iCaRL's hand-written loop predicts the test sets inside its timed loop: add lifelong's evaluation
    icarl = any(rep.get("hand", {}).get("includes_eval") for rep in by.values())
    out["avalanche_over_lifelong"] = ratios("avalanche", "lifelong", "train_s")
    out["avalanche_over_lifelong_cpu"] = ratios("avalanche", "lifelong", "cpu_s")
    out["avalanche_over_lifelong_learn_wall"] = ratios("avalanche", "lifelong", "learn_wall_s")
    out["lifelong_over_hand"] = ratios("lifelong", "hand", "train_s", "eval_s" if icarl else None)
    out["lifelong_over_hand_cpu"] = ratios("lifelong", "hand", "cpu_s", "eval_cpu_s" if icarl else None)
    out["eval_avalanche_over_lifelong"] = ratios("avalanche", "lifelong", "eval_s")
    if icarl:
        out["lifelong_over_hand_note"] = "lifelong train + evaluation against hand train + NME prediction"
    out["failed_runs"] = [f"{r['side']} repeat {r['repeat']}" for r in runs if "error" in r]
    return out


def default_repeats(method: str) -> int:
    return 5 if method in ("naive", "replay") else 1


def measure(
    pname: str, method: str, repeats: int, args: argparse.Namespace, tmp: Path
) -> list[dict[str, Any]]:
    """Every repeat of one (protocol, method): one process per side, sides in rotating order."""
    proto = PROTOCOLS[pname]
    sides = [s for s in SIDES if s != "hand" or method in HAND]
    runs = []
    for rep in range(repeats):
        state = tmp / f"{pname}-{rep}.pt"
        if not state.exists():  # one initial state dict per protocol and seed, loaded by every side
            torch.manual_seed(rep)
            torch.save(MLP(hidden=proto["hidden"]).state_dict(), state)
        first = rep % len(sides)
        for side in sides[first:] + sides[:first]:
            spec = {"side": side, "method": method, "protocol": pname, "seed": rep, "threads": args.threads,
                    "train_per_experience": args.train_per_experience, "state": str(state)}  # fmt: skip
            r = {"protocol": pname, "method": method, "side": side, "repeat": rep, **spawn(spec, tmp)}
            runs.append(r)
            if "error" in r:
                print(f"FAILED {pname} {method} {side} repeat {rep}: {r['error']}", file=sys.stderr)
            else:
                print(json.dumps({key: v for key, v in r.items() if key != "accs"}), flush=True)
    return runs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated, of {','.join(METHODS)} (default: all; icarl only at batch128)")  # fmt: skip
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument(
        "--repeats", type=int, default=None, help="per method (default: 5 naive/replay, 1 others)"
    )
    parser.add_argument("--train-per-experience", type=int, default=0,
                        help="training samples per experience (0: all 12,000; test sets stay whole)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on every side")
    parser.add_argument("--out", default="benchmarks/results/avalanche.json")
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return {}
    protocols = args.protocols.split(",")
    methods = args.methods.split(",") if args.methods else None
    unknown = [p for p in protocols if p not in PROTOCOLS] + [m for m in methods or [] if m not in METHODS]
    if unknown:
        parser.error(
            f"unknown {', '.join(unknown)}; protocols: {', '.join(PROTOCOLS)}; methods: {', '.join(METHODS)}"
        )
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "setup": "split-fmnist class-incremental, 5 experiences x 2 classes, 1 epoch, boundary work included; "
        "one process per (side, method, repeat), sides in rotating order",
        "command": "benchmarks/avalanche.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "train_per_experience": args.train_per_experience or 12000, "threads": args.threads,
        "protocols": {p: PROTOCOLS[p] for p in protocols}, "cpus": os.cpu_count(),
        "load_average_start": os.getloadavg(), "torch": torch.__version__, "runs": [], "summary": {},
    }  # fmt: skip
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        for pname in protocols:
            for method in methods or [m for m in METHODS if m != "icarl" or pname == "batch128"]:
                runs = measure(pname, method, args.repeats or default_repeats(method), args, Path(d))
                results["runs"] += runs
                summary = results["summary"][f"{pname}/{method}"] = summarize(runs)
                results["wall_seconds"] = time.perf_counter() - start
                results["load_average_end"] = os.getloadavg()
                out_path.write_text(
                    json.dumps(results, indent=1)
                )  # after each method: a partial run keeps its data
                print(f"{pname:9} {method:7}", json.dumps(summary), flush=True)
    print(f"wrote {out_path}")
    return results


if __name__ == "__main__":
    main()
