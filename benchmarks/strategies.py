"""Every strategy on every benchmark: the table in the README.

Two steps, honest about tuning: ``tune`` runs a small hyper-parameter search per scenario
family (class-, task-, domain-incremental) on seeds of its own (10 and 11; a setting is scored on
their mean) with a validation split carved out of each experience's training data, and writes the
chosen values per family into ``src/lifelong/strategies/hparams/<name>.json`` (``tune --rate`` then
searches every method's learning rate alone, its other values kept); ``table`` then reports
other seeds (0, 1, 2 by default) on the test sets with those values. Diverged runs are recorded as diverged, never chosen. Runs go to
worker processes (one torch thread each) and every finished run is appended to a JSONL file,
so an interrupted grid resumes where it stopped.

    python benchmarks/strategies.py tune  --out benchmarks/results/tune
    python benchmarks/strategies.py table --out benchmarks/results/strategies
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

# A small search per method and scenario family; values follow each paper's reported ranges.
SEARCH: dict[str, dict[str, list[Any]]] = {
    # the true Fisher is ~8x the empirical one; SGD at lr 0.03 needs lr * lam * sum_k F_k < 2
    "ewc": {"lam": [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]},
    "online-ewc": {"lam": [0.1, 1.0, 10.0, 100.0, 1000.0]},
    "l2": {"lam": [0.1, 1.0, 10.0]},
    "si": {"c": [0.1, 1.0, 10.0]},
    "mas": {"lam": [0.001, 0.01, 0.1, 1.0]},
    "rwalk": {"lam": [1.0, 10.0, 100.0]},  # importances min-max normalised to [0, 2]
    "scp": {"lam": [0.1, 1.0, 10.0]},
    "lwf": {"alpha": [0.5, 1.0, 3.0]},
    "der": {"alpha": [0.1, 0.3, 1.0]},
    "derpp": {"alpha": [0.1, 0.3], "beta": [0.5, 1.0]},
    "agem": {},
    "gem": {"margin": [0.0, 0.5]},
}

#: family-specific grids (replacing SEARCH's there). Class-incremental replay follows mammoth's seq-mnist
#: best_args (buffer 500, batch 10, lr 0.03): DER++ alpha 1.0, beta 0.5, memory batch 10; DER memory batch 128
FAMILY_SEARCH: dict[str, dict[str, dict[str, list[Any]]]] = {
    "class": {
        # lr: the learner's SGD rate, searched as the DER paper searches it per method
        # tune12: five validation seeds; strengths beyond the authors' 1.0 (tune11's best sat at alpha = beta = 1)
        # tune13: tune12's best sat at lr 0.03, the grid's lowest (0.1 lost everywhere): lower rates, and the
        # memory batch the DER paper also searched
        # tune14: tune13's best (alpha 2, memory batch 32, lr 0.05) sat at three edges of its grid (its record:
        # benchmarks/results/tune13-class): each pushed outwards around it; every tune13 setting left out scored lower
        "derpp": {
            "alpha": [1.0, 2.0, 4.0],
            "beta": [1.0, 2.0],
            "batch_size": [32, 64],
            "lr": [0.05, 0.1],
        },
        "er-ace": {
            "batch_size": [10, 32, 64],
            "cosine_head": [False, True],
            "lr": [0.05, 0.1, 0.2],
        },  # 128 lost to 32 (tune9); tune11's best sat at lr 0.1, the grid's edge
        # SCP's default strength diverged on every seed here (the table, seeds 0-2): pick a stable one
        "scp": {"lam": [0.01, 0.1, 1.0]},
        # tune15: the learning rate of every other method that learns from the stream, as the DER authors
        # search it per method (mammoth's seq-mnist ER at 500: lr 0.1; before, only DER++ and ER-ACE had theirs
        # searched, the rest ran at 0.03), the upper bounds included so that the gaps to them stay fair. The
        # first round (replay memory batch 10 / 32, lr 0.01 / 0.03 / 0.1; DER lr 0.03 / 0.05 / 0.1; MER beta
        # 0.03 / 0.1 / 0.3, lr 0.03 / 0.1; the others lr 0.01 / 0.03 / 0.1) chose edges for all but DER's
        # alpha and memory batch: the second pushed each past its edge, a third A-GEM's and MER's rates again
        # (record: benchmarks/results/tune15-class)
        "replay": {"batch_size": [10, 32, 64], "lr": [0.01, 0.03, 0.1, 0.2]},
        "der": {"alpha": [1.0, 2.0], "batch_size": [10, 32], "lr": [0.02, 0.03, 0.05, 0.1]},
        "agem": {"lr": [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1]},
        "gem": {"margin": [0.5], "lr": [0.003, 0.01, 0.03, 0.1]},  # margin 0.5 chosen by tune10 (0 / 0.5)
        "icarl": {"lr": [0.01, 0.03, 0.1, 0.2, 0.3]},
        # the learner's rate is MER's inner one; beta keeps that share of the inner steps (the paper's 0.03)
        "mer": {"beta": [0.03, 0.1, 0.3, 1.0], "lr": [0.03, 0.1, 0.2, 0.3]},
        "joint": {"lr": [0.01, 0.03, 0.1, 0.2, 0.3]},
        "cumulative": {"lr": [0.01, 0.03, 0.1, 0.2, 0.3]},
    },
    # task-incremental: each task has its own head, so only the shared trunk needs protecting and far
    # stronger penalties pay off (the proximal step keeps them stable)
    "task": {
        "ewc": {
            "lam": [1.0, 10.0, 100.0, 1000.0, 10000.0],
            "online": [False, True],
            "penalty_step": ["proximal"],
        },
        "si": {"c": [0.1, 1.0, 10.0, 100.0], "penalty_step": ["proximal"]},
        "mas": {"lam": [0.1, 1.0, 10.0, 100.0], "penalty_step": ["proximal"]},
        "scp": {"lam": [0.1, 1.0, 10.0, 100.0]},
        "lwf": {"alpha": [0.5, 1.0, 3.0, 10.0]},
    },
    # the proximal penalty step is stable for any strength (a gradient step diverged from lam 100 / c 1 here)
    "domain": {
        # online: one anchor (the latest) with the summed Fisher (Huszar 2018; mammoth's perm-mnist ewc_on, gamma 1)
        # tune18: strength and rate searched together on four seeds (tune9 searched the strength at lr 0.03,
        # tune16 the rate at that strength: a coordinate step whose close calls did not hold on the test seeds).
        # tune20 searched the Fisher's estimator too (true / sampled / empirical: van de Ven 2025 finds the
        # choice can matter) and sampled led by 0.02, but the exact Fisher with the same label draws made and
        # thrown away scored level with it (benchmarks/fisher_control.py): the lead was the data order the
        # draws shift, not the estimator, so the reference default stays and the key is not searched
        "ewc": {
            "lam": [1.0, 3.0, 10.0, 30.0, 100.0],
            "online": [False, True],
            "penalty_step": ["proximal"],
            "lr": [0.01, 0.03, 0.1],
        },
        "si": {"c": [0.03, 0.1, 0.3, 1.0], "penalty_step": ["proximal"], "lr": [0.01, 0.03, 0.1]},
        "mas": {"lam": [0.003, 0.01, 0.03, 0.1], "penalty_step": ["proximal"], "lr": [0.01, 0.03, 0.1]},
    },
}

#: grids at memory sizes other than the one the family's values were searched at (tuning.SEARCH_MEMORY),
#: as the DER authors tune each size: mammoth's seq-mnist DER++ at 200 is lr 0.03, memory batch 128,
#: alpha 0.2, beta 1.0 (at 500: lr 0.03, memory batch 10, alpha 1.0, beta 0.5); its ER at 200 uses lr 0.01
#: The first search at 200 (alpha 0.2 / 0.5 / 1 / 2, beta 0.5 / 1, memory batch 32 / 128, lr 0.03 / 0.05; ER-ACE
#: memory batch 10 / 32 / 128, lr 0.03 / 0.05 / 0.1; record: benchmarks/results/tune14-class-200) chose the lowest
#: rate for both; a second round (lr 0.01 / 0.02 / 0.03 with alpha 0.2 / 0.5 / 1, beta 0.5 / 1, memory batch 32;
#: ER-ACE memory batch 10 / 32) chose lr 0.01 and DER++ alpha 1, edges again: the grids below push both further
#: (every setting left out scored lower than the best kept)
MEMORY_SEARCH: dict[int, dict[str, dict[str, dict[str, list[Any]]]]] = {
    200: {
        "class": {
            "derpp": {"alpha": [1.0, 2.0], "beta": [0.5, 1.0], "batch_size": [32], "lr": [0.005, 0.01, 0.02]},
            # DER (memory 500: alpha 1, the learner's batch and rate) with mammoth's axes at 200: alpha, memory batch, rate
            # (first round: alpha 0.3 / 1 / 2, lr 0.01 / 0.03 chose lr 0.03, the highest: pushed upwards)
            "der": {"alpha": [1.0, 2.0], "batch_size": [10, 32], "lr": [0.03, 0.05, 0.1]},
            # third round: lr 0.005 won again (0.776, against 0.773 at 0.01): a fourth pushes it lower still
            "er-ace": {"batch_size": [32], "cosine_head": [True], "lr": [0.001, 0.002, 0.005, 0.01]},
            # tune15 at 200: the rate of the other memory methods, around their memory-500 choice (their other
            # values kept: replay memory batch 32, GEM margin 0.5, MER beta 0.1); GEM's, iCaRL's and MER's lowest
            # rates won the first round and were pushed lower
            "replay": {"batch_size": [32], "lr": [0.01, 0.03, 0.1, 0.2]},
            "agem": {"lr": [0.0003, 0.001, 0.003, 0.01]},
            "gem": {"margin": [0.5], "lr": [0.001, 0.003, 0.01, 0.03]},
            "icarl": {"lr": [0.01, 0.03, 0.1, 0.2]},
            "mer": {"beta": [0.1], "lr": [0.03, 0.05, 0.1, 0.2, 0.3]},
        }
    }
}

#: searches on a family's other benchmarks (``tune --benchmark``): the learning rate alone, each method's own
#: values staying the family's, since the best rate follows the stream's length (split-digits: five epochs of
#: about 290 samples per experience, against one of 12,000 on split-fmnist); 1.0 added by tune17, after
#: tune15 chose the grid's top, 0.6, for four methods
BENCHMARK_SEARCH: dict[str, dict[str, list[Any]]] = {"split-digits": {"lr": [0.01, 0.03, 0.1, 0.3, 0.6, 1.0]}}
#: ``tune --rate``: the learner's rate alone, on a family's own benchmark, for every method that learns from
#: the stream (its other values staying the family's: a coordinate step after their search at lr 0.03), so
#: that no method's row gains from a rate the others did not get to search (``--lr`` widens it past an edge)
RATE_SEARCH: list[float] = [0.01, 0.03, 0.1]
#: whose learner's rate trains nothing (GDumb trains from its memory with its own schedule; NCM's frozen trunk)
NO_LEARNER_RATE = ("gdumb", "ncm")

REGULARIZERS = ("ewc", "online-ewc", "l2", "si", "mas", "rwalk", "scp", "lwf")
#: where each family is tuned, on a validation split of the training data
TUNE_BENCHMARKS = {"class": "split-fmnist", "task": "split-fmnist-task", "domain": "permuted-fmnist"}

# 60,000 training samples per experience (all classes): 5x a class split, so a CPU grid trains on a fraction
DOMAIN_BENCHMARKS = ("permuted-fmnist", "rotated-fmnist")
TABLE_BENCHMARKS = ["split-fmnist", "split-fmnist-task", "permuted-fmnist", "rotated-fmnist", "split-digits"]


@functools.lru_cache(maxsize=1)
def _scenario(benchmark: str, seed: int, train_fraction: float, validation: float = 0.0) -> Any:
    """Jobs arrive benchmark by benchmark, so a worker builds each scenario once (rotations are not free).

    With ``validation`` > 0 that share of each experience's training data replaces its test set.
    """
    from lifelong.bench import runner
    from lifelong.bench.benchmarks import get

    scenario = get(benchmark).build(seed)
    if validation > 0:
        scenario = runner.validation_split(scenario, validation, seed)
    return runner._subsample(scenario, train_fraction, seed)


def _run(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from lifelong.bench import runner
    from lifelong.bench.benchmarks import get
    from lifelong.errors import StrategyMismatchError

    params = dict(job.get("params", {}))
    lr = params.pop("lr", None)  # the learner's, searched beside the method's own values
    settings = runner.Settings(epochs=job["epochs"] or get(job["benchmark"]).epochs, buffer=job["buffer"],
                               train_fraction=job["train_fraction"], lr=lr)  # fmt: skip
    strategy = runner.make_strategy(job["strategy"], job["benchmark"], job["buffer"], **params)
    scenario = _scenario(job["benchmark"], job["seed"], job["train_fraction"], job.get("validation", 0.0))
    kind = scenario.kind
    if kind not in strategy.supports or ("task_labels" in strategy.needs and kind != "task"):
        return {**job, "skipped": f"{job['strategy']} does not support {kind} scenarios"}
    start = time.perf_counter()
    try:
        run = runner.run_one(job["benchmark"], job["strategy"], job["seed"], settings, scenario=scenario,
                             params=params)  # fmt: skip
    except StrategyMismatchError as e:
        return {**job, "skipped": str(e)}
    if lr is not None:
        run["params"]["lr"] = lr
    wall = time.perf_counter() - start
    return {**run, "buffer": job["buffer"], "overrides": job.get("params", {}), "wall_seconds": wall}


def _grid(jobs: list[dict[str, Any]], log: Path, workers: int) -> list[dict[str, Any]]:
    from lifelong.metrics.result import strict_json

    done = []
    if log.exists():
        done = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def key(j: dict[str, Any]) -> str:
        return json.dumps(
            [j["benchmark"], j["strategy"], j["seed"], j["buffer"], j.get("overrides", j.get("params"))]
        )

    finished = {key(j) for j in done}
    todo = [j for j in jobs if key(j) not in finished]
    print(f"{len(done)} runs already in {log}, {len(todo)} to go")
    log.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool, log.open("a") as f:
        futures = {pool.submit(_run, j): j for j in todo}
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                run = fut.result()
            except Exception as e:  # a failing method must not sink the grid; the failure is recorded
                run = {**job, "error": f"{type(e).__name__}: {e}"}
            run.setdefault("overrides", job.get("params", {}))
            f.write(strict_json(run) + "\n")
            f.flush()
            done.append(run)
            m = run.get("metrics", {})
            status = (
                run.get("skipped")
                or run.get("error")
                or ("diverged" if m.get("diverged") else f"ACC {m.get('acc', 0):.3f}")
            )
            print(
                f"{job['benchmark']:>18} {job['strategy']:>18} buf {job['buffer']} seed {job['seed']}: {status}"
            )
    return done


def search_space(
    name: str,
    family: str,
    buffer: int | None = None,
    benchmark: str | None = None,
    rates: list[float] | None = None,
) -> dict[str, list[Any]]:
    """The grid searched for ``name`` in ``family`` at memory ``buffer``: on a family's other benchmark its
    rate grid (``BENCHMARK_SEARCH``); with ``rates`` (``tune --rate``) those rates alone; else the memory
    size's own grid (``MEMORY_SEARCH``), else the family's, else the default one."""
    if benchmark is not None and benchmark != TUNE_BENCHMARKS.get(family) and benchmark in BENCHMARK_SEARCH:
        return BENCHMARK_SEARCH[benchmark]
    if rates:
        return {"lr": list(rates)}
    for grids in (MEMORY_SEARCH.get(buffer, {}).get(family, {}), FAMILY_SEARCH.get(family, {}), SEARCH):
        if name in grids:
            return grids[name]
    return {}


def choose(runs: list[dict[str, Any]], keys: list[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Validation ACC per setting (mean over seeds; "diverged" if any seed diverged) and the best setting.

    A setting with a diverged seed is never chosen: its mean would hide a run that blew up.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(json.dumps({k: r["params"][k] for k in keys}), []).append(r)
    scores: dict[str, Any] = {}
    best, best_acc = None, float("-inf")
    for setting, rs in groups.items():
        if any(r["metrics"].get("diverged") for r in rs):
            scores[setting] = "diverged"
            continue
        acc = sum(r["metrics"]["acc"] for r in rs) / len(rs)
        scores[setting] = round(acc, 4)
        if acc > best_acc:
            best, best_acc = json.loads(setting), acc
    return scores, best


def _same_setting(job: dict[str, Any], run: dict[str, Any]) -> bool:
    """Whether ``run`` already trained ``job``'s setting: its full hyper-parameters hold the job's values
    (a run from before a key joined the grid ran that key's default)."""
    return (
        "params" in run and "metrics" in run
        and all(run.get(k) == job[k] for k in ("benchmark", "strategy", "seed", "buffer"))
        and set(run.get("overrides", {})) <= set(job["params"])
        and all(run["params"].get(k) == v for k, v in job["params"].items())
    )  # fmt: skip


def _searches(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """(family, benchmark, methods) to search: each family on its own benchmark, or ``--benchmark`` alone."""
    from lifelong.bench.runner import FAMILIES, strategy_names

    only = set(args.strategies.split(",")) if args.strategies else None
    learners = [n for n in strategy_names() if n not in NO_LEARNER_RATE and (only is None or n in only)]
    if args.benchmark and args.rate:
        raise SystemExit("--benchmark already searches the learning rate alone (on that benchmark); "
                         "--rate searches it on each family's own: give one")  # fmt: skip
    if args.benchmark:  # the learning rate on one of a family's other benchmarks
        if args.benchmark not in BENCHMARK_SEARCH:
            raise SystemExit(f"no grid for {args.benchmark}; searchable: {', '.join(BENCHMARK_SEARCH)}")
        return [(FAMILIES[args.benchmark], args.benchmark, learners)]
    if args.rate:  # every method that learns from the stream, on each family's own benchmark
        return [(family, TUNE_BENCHMARKS[family], learners) for family in args.families.split(",")]
    searches = []
    for family in args.families.split(","):
        names = []
        for name in {**SEARCH, **FAMILY_SEARCH.get(family, {})}:
            if only is not None and name not in only:
                continue
            if family != "class" and name not in REGULARIZERS:
                continue  # memory methods are searched in the class family; elsewhere they run their papers' values
            if family == "class" and name in REGULARIZERS and name not in FAMILY_SEARCH["class"]:
                continue  # every regularizer collapses to fine-tuning there whatever its strength
            names.append(name)
        searches.append((family, TUNE_BENCHMARKS[family], names))
    return searches


def tune(args: argparse.Namespace) -> None:
    """Search each method per scenario family on a validation split (never the test sets)."""
    from lifelong.strategies.tuning import HPARAMS_DIR, SEARCH_MEMORY

    seeds = [int(s) for s in args.seeds.split(",")]
    rates = args.lr if args.rate else None
    searches = _searches(args)
    jobs = []
    for family, benchmark, names in searches:
        fraction = args.domain_fraction if benchmark in DOMAIN_BENCHMARKS else args.train_fraction
        for name in names:
            space = search_space(name, family, args.buffer, benchmark, rates)
            keys = sorted(space)
            for seed, values in itertools.product(seeds, itertools.product(*(space[k] for k in keys))):
                jobs.append({"benchmark": benchmark, "strategy": name, "seed": seed, "buffer": args.buffer, "epochs": 0,
                             "train_fraction": fraction, "validation": args.validation,
                             "params": dict(zip(keys, values))})  # fmt: skip
    log = Path(args.out) / "runs.jsonl"
    earlier = (
        [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    )
    jobs = [
        j for j in jobs if not any(_same_setting(j, r) for r in earlier)
    ]  # a grid grown by a key reuses runs
    runs = [r for r in _grid(jobs, log, args.workers) if "metrics" in r]
    choices: dict[str, str] = {}  # "name [searched]" -> its line, written to choices.txt
    for family, benchmark, names in searches:
        own = benchmark == TUNE_BENCHMARKS[family] and args.buffer == SEARCH_MEMORY  # the family's own values
        for name in names:
            space = search_space(name, family, args.buffer, benchmark, rates)
            keys = sorted(space)
            mine = [r for r in runs if r["strategy"] == name and r["benchmark"] == benchmark and r["seed"] in seeds
                    and r["buffer"] == args.buffer
                    and set(r.get("overrides", {})) <= set(keys)
                    and all(r["params"].get(k) in space[k] for k in keys)]  # fmt: skip
            if not mine:
                continue
            path = HPARAMS_DIR / f"{name}.json"
            table = json.loads(path.read_text()) if path.exists() else {}
            if "benchmark" in table.get("_tuning", {}):  # the earlier single search: the class family's
                table["_tuning"] = {"class": table["_tuning"]}
            scores, best = choose(mine, keys)
            # values searched elsewhere go beside the family's, for that benchmark and memory size only
            searched = ", ".join(
                [family]
                + ([benchmark] if benchmark != TUNE_BENCHMARKS[family] else [])
                + ([f"memory {args.buffer}"] if args.buffer != SEARCH_MEMORY else [])
                + (["lr"] if rates else [])
            )
            label = f"{name} [{searched}]"
            table.setdefault("_tuning", {})[searched] = {
                "benchmark": benchmark, "seeds": seeds, "validation_fraction": args.validation,
                "train_fraction": mine[0]["settings"]["train_fraction"], "search": space,
                "validation_acc": scores,
            }  # fmt: skip
            if best is not None:
                if own:  # a rate searched alone joins the values searched before it
                    families = table.setdefault("families", {})
                    families[family] = {**families.get(family, {}), **best} if rates else best
                else:
                    table.setdefault("memory", {}).setdefault(benchmark, {})[str(args.buffer)] = best
                choices[label] = f"chose {best} (validation ACC {scores[json.dumps(best)]:.3f})"
            else:
                choices[label] = "every setting diverged; nothing chosen"
            print(f"{label}: {choices[label]}")
            path.write_text(json.dumps(table, indent=1) + "\n")
    _record_choices(Path(args.out) / "choices.txt", choices)


def _record_choices(path: Path, choices: dict[str, str]) -> None:
    """This search's choices into ``path``, replacing the lines of the same method and search (an earlier
    round's) and keeping the rest: the record beside runs.jsonl of what the hparams files now hold."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept = dict(line.split(": ", 1) for line in lines if ": " in line)  # a label holds no ": "
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}: {value}\n" for key, value in {**kept, **choices}.items()))


def table(args: argparse.Namespace) -> None:
    from lifelong.bench.report import markdown_table, pivot_table
    from lifelong.bench.runner import strategy_names, summarize
    from lifelong.metrics.result import strict_json

    strategies = args.strategies.split(",") if args.strategies else strategy_names()
    unknown = set(strategies) - set(strategy_names())  # strategy_names() also fills the registry
    if unknown:
        raise SystemExit(f"unknown strategies: {', '.join(sorted(unknown))}")
    benchmarks = args.benchmarks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    buffers = [int(b) for b in args.buffers.split(",")]
    from lifelong.learn.strategy import REGISTRY

    jobs = []
    for seed, b, s in itertools.product(
        seeds, benchmarks, strategies
    ):  # seed-major: a partial grid covers all cells
        memory = "buffer_size" in REGISTRY[s]().get_params()
        for buf in buffers if memory else [buffers[-1]]:
            fraction = args.domain_fraction if b in DOMAIN_BENCHMARKS else args.train_fraction
            jobs.append({"benchmark": b, "strategy": s, "seed": seed, "buffer": buf, "epochs": 0,
                         "train_fraction": fraction, "params": {}})  # fmt: skip
    out = Path(args.out)
    # every run in the log counts: grids run into one directory (other benchmarks, buffers) add up
    runs = [r for r in _grid(jobs, out / "runs.jsonl", args.workers) if "metrics" in r]
    for r in runs:  # memory methods get one row per buffer size
        if "buffer_size" in r.get("params", {}):
            r["strategy"] = f"{r['strategy']}-{r['buffer']}"
    order = benchmarks + [b for b in dict.fromkeys(r["benchmark"] for r in runs) if b not in benchmarks]
    rows = sorted(summarize(runs), key=lambda r: (order.index(r["benchmark"]), -r["acc"]))
    (out / "results.json").write_text(strict_json({"runs": runs, "summary": rows}, indent=1))
    present = [b for b in order if any(r["benchmark"] == b for r in rows)]
    sections = [f"#### ACC (mean ± std over seeds {args.seeds})\n\n" + pivot_table(rows, present)]
    for b in present:
        sections.append(f"#### {b}\n\n" + markdown_table([r for r in rows if r["benchmark"] == b]))
    (out / "table.md").write_text("\n\n".join(sections) + "\n")
    print("\n\n".join(sections))


def _rates(text: str) -> list[float]:
    try:
        return [float(r) for r in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give comma-separated rates, e.g. 0.01,0.03,0.1"
        ) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tune")
    t.add_argument("--families", default="task,domain", help="of class, task, domain")
    t.add_argument("--seeds", default="10,11", help="comma-separated; disjoint from the table's seeds")
    t.add_argument("--strategies", default="", help="comma-separated; default: every searched method")
    t.add_argument(
        "--buffer", type=int, default=500, help="memory size searched at (500: the family's own values)"
    )
    t.add_argument(
        "--benchmark",
        default="",
        help="search the learning rate on this benchmark (its family's other values kept)",
    )
    t.add_argument(
        "--rate",
        action="store_true",
        help="search the learning rate alone, of every method learning from the stream, per family",
    )
    t.add_argument(
        "--lr", type=_rates, default=RATE_SEARCH, help="the rates --rate searches, comma-separated"
    )
    t.add_argument("--validation", type=float, default=0.1, help="share of training data held out")
    t.add_argument("--domain-fraction", type=float, default=0.2, help="training share for permuted-fmnist")
    t.add_argument("--out", default="benchmarks/results/tune")
    t.set_defaults(func=tune)
    g = sub.add_parser("table")
    g.add_argument("--benchmarks", default=",".join(TABLE_BENCHMARKS))
    g.add_argument("--strategies", default="")
    g.add_argument("--seeds", default="0,1,2")
    g.add_argument("--buffers", default="200,500")
    g.add_argument("--out", default="benchmarks/results/strategies")
    g.add_argument("--domain-fraction", type=float, default=0.2, help="training share for permuted/rotated")
    g.set_defaults(func=table)
    for p in (t, g):
        p.add_argument("--train-fraction", type=float, default=1.0)
        p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)))
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
