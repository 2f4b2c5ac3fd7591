"""`lifelong bench`, `lifelong demo` and `lifelong report`: thin commands over the runner."""

from __future__ import annotations

import argparse
import functools
import json
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from lifelong.bench import runner
from lifelong.bench.advise import add_command as add_advise
from lifelong.bench.benchmarks import BENCHMARKS, Benchmark, from_file, get
from lifelong.cli import NON_NEGATIVE_INT, POSITIVE_INT, POSITIVE_REAL, add_drop_columns, real
from lifelong.errors import ConfigError, DataError, StrategyMismatchError
from lifelong.logs import Reporter
from lifelong.metrics.result import strict_json

DEMO_STRATEGIES = ["naive", "ewc", "lwf", "replay", "joint"]


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _names(value: str) -> list[str]:
    """An argparse ``type``: comma-separated names, at least one (an empty grid runs nothing)."""
    names = _csv(value)
    if not names:
        raise argparse.ArgumentTypeError(f"give at least one name, comma-separated; got {value!r}")
    _once(names)
    return names


def _once(values: list[Any]) -> None:
    """A value given twice would run twice and show as a spread of zero over independent runs."""
    twice = sorted({str(v) for v in values if values.count(v) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{', '.join(twice)} given twice; list each once")


def _seeds(value: str) -> list[int]:
    """An argparse ``type``: comma-separated seeds, at least one, each a whole number >= 0."""
    try:
        seeds = [NON_NEGATIVE_INT(s) for s in _csv(value)]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated whole numbers >= 0, e.g. 0,1,2; got {value!r}"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"give at least one seed, e.g. 0,1,2; got {value!r}")
    _once(seeds)
    return seeds


def add_commands(sub: Any) -> None:
    p = sub.add_parser("bench", help="run benchmarks x strategies x seeds; write results.json and plots")
    p.add_argument(
        "--benchmark",
        type=_names,
        default=None,
        help="comma-separated names (see --list; default split-fmnist)",
    )
    p.add_argument(
        "--strategies",
        type=_names,
        default="naive,replay,ewc,lwf,joint,cumulative",
        help="comma-separated names (default naive,replay,ewc,lwf,joint,cumulative); a hybrid joins methods "
        "with +, e.g. replay+lwf (trained together, at the smaller of their tuned rates)",
    )
    p.add_argument(
        "--seeds", type=_seeds, default="0,1,2", help="comma-separated whole numbers >= 0 (default 0,1,2)"
    )
    p.add_argument(
        "--epochs", type=POSITIVE_INT, default=None, help="passes per experience (default: the benchmark's)"
    )
    p.add_argument("--fresh", action="store_true",
                   help="run every run again (default: reuse the finished runs --out's runs.jsonl holds)")  # fmt: skip
    p.add_argument("--model", default="mlp", help="registered model name (mlp, cnn or a plugin's)")
    p.add_argument(
        "--model-kwargs", default=None, help="JSON keyword arguments of the model, e.g. '{\"hidden\": [64]}'"
    )
    p.add_argument(
        "--plugin", action="append", default=[], help="module to import first (registers models, strategies)"
    )
    p.add_argument(
        "--params", default=None, metavar="JSON",
        help="hyper-parameters per strategy over the tuned values, e.g. '{\"ewc\": {\"lam\": 10}}' (default: "
             "the tuned values, or the paper's)",
    )  # fmt: skip
    p.add_argument("--data", default=None, help="your own .npz/.csv/.parquet file instead of --benchmark")
    p.add_argument(
        "--label-column", default="label", help="label column of a CSV/Parquet --data file (default label)"
    )
    add_drop_columns(p)
    p.add_argument("--input-shape", default=None,
                   help="reshape each --data sample to this, e.g. 1,8,8 for images stored as rows of pixels")  # fmt: skip
    p.add_argument(
        "--domain-column", default=None, help="column naming each sample's domain (--scenario domain)"
    )
    p.add_argument(
        "--task-column",
        default=None,
        help="column naming each sample's task (--scenario task); without "
        "one, the task scenario splits the classes into tasks",
    )
    p.add_argument(
        "--scenario",
        default="class",
        choices=["class", "domain", "task"],
        help="how --data is cut (default class)",
    )
    p.add_argument(
        "--buffer",
        type=NON_NEGATIVE_INT,
        default=500,
        help="memory size of every memory-based method (default 500)",
    )
    p.add_argument(
        "--lr",
        type=POSITIVE_REAL,
        default=None,
        help="learning rate (default: the strategy's tuned SGD rate for the benchmark, else 0.03; 0.001 under "
        "adam or adamw)",
    )
    p.add_argument(
        "--optimizer",
        default="sgd",
        choices=["sgd", "adam", "adamw"],
        help="adam often suits models the tuned SGD rates do not (an embedding of token ids)",
    )
    p.add_argument("--batch-size", type=POSITIVE_INT, default=10, help="samples per step (default 10)")
    p.add_argument(
        "--train-fraction",
        type=real(0.0, 1.0, open_min=True),
        default=1.0,
        help="share of each experience's training data, in (0, 1]",
    )
    p.add_argument("--out", default="runs/bench", help="results folder (default runs/bench)")
    p.add_argument(
        "--threads",
        type=POSITIVE_INT,
        default=1,
        help="torch intra-op threads (1 is fastest for small models)",
    )
    p.add_argument("--device", default="cpu", help="where to train: cpu, cuda, cuda:N, mps")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument(
        "--tracking-uri", default=None, help="log every run to MLflow here (e.g. sqlite:///mlflow.db)"
    )
    p.add_argument(
        "--experiment", default=os.environ.get("MLFLOW_EXPERIMENT_NAME") or "lifelong",
        help="MLflow experiment of the runs (default: MLFLOW_EXPERIMENT_NAME, else lifelong)",
    )  # fmt: skip
    add_log_flags(p)
    p.add_argument("--list", action="store_true", help="show benchmarks and strategies, then exit")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print each strategy's hyper-parameters and learning rate as the run would use them; train nothing",
    )
    p.set_defaults(func=bench)

    d = sub.add_parser("demo", help="a short real comparison of naive, EWC, LwF, replay and joint")
    d.add_argument("--out", default="runs/demo", help="results folder (default runs/demo)")
    d.add_argument("--seed", type=NON_NEGATIVE_INT, default=0)
    d.add_argument("--threads", type=POSITIVE_INT, default=1, help="torch intra-op threads")
    add_log_flags(d)
    d.set_defaults(func=demo)

    r = sub.add_parser("report", help="print the table of a results.json")
    r.add_argument("results", help="path to results.json or its directory")
    r.add_argument("--markdown", action="store_true")
    r.set_defaults(func=report)
    add_advise(sub)


def add_log_flags(p: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--log-json``: shared by every command that trains (see :mod:`lifelong.logs`)."""
    p.add_argument("--quiet", action="store_true", help="print only where the results are")
    p.add_argument("--log-json", action="store_true", help="one JSON object per line instead of text")


def _validate(benchmarks: list[str], strategies: list[str]) -> None:
    for b in benchmarks:
        get(b)
    valid = runner.strategy_names()
    unknown = [n for s in strategies for n in runner.parts(s) if n not in valid]
    if unknown:
        raise ConfigError(
            f"unknown strategies {', '.join(unknown)}; valid: {', '.join(valid)}. A strategy of your own is "
            "a lifelong.learn.Strategy subclass with a `name`, in a module given as --plugin module.path (or "
            "LIFELONG_PLUGINS=module.path)"
        )


def run_grid(benchmarks: list[str], strategies: list[str], seeds: list[int], settings: runner.Settings,
             out: Path, progress: bool = True, plots: bool = True, threads: int = 1,
             reporter: Reporter | None = None, tracking_uri: str | None = None,
             resume: bool = True, experiment: str = "lifelong") -> list[dict[str, Any]]:  # fmt: skip
    """Every benchmark x seed x strategy. Each finished run is appended to ``out/runs.jsonl`` at once;
    with ``resume`` a run of the same benchmark (and data file), strategy, seed, values and settings
    found there is reused, so a grid that was interrupted goes on where it stopped."""
    import torch

    from lifelong.bench.report import plot, rich_table

    if threads < 1:  # torch would raise a bare RuntimeError
        raise ConfigError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    log = reporter or Reporter()
    runs: list[dict[str, Any]] = []
    _module_source.cache_clear()  # files read afresh by each grid: a plugin edited between two in one process
    benches = [b if isinstance(b, Benchmark) else get(b) for b in benchmarks]
    first = {bench.name: build_all(bench, strategies, seeds[0], settings) for bench in benches}
    for bench in benches:  # what was read: a file's rows, features and classes, and how they were split
        split = " ".join("[" + ",".join(map(str, e.classes)) + "]" for e in first[bench.name].experiences)
        few = runner.few_steps(first[bench.name], settings.batch_size, settings.epochs or bench.epochs)
        log.emit("benchmark", f"{bench.name}: {bench.description}; experiences (classes): {split}"
                 f"{'; ' + few if few else ''}",
                 benchmark=bench.name, description=bench.description)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "runs.jsonl"
    done = _finished_runs(journal) if resume else {}  # --fresh: these run again; the journal keeps the others
    data = {bench.name: _data_sha256(bench) for bench in benches}  # a file hashed once, not once per run
    keys = {(bench.name, s, seed): _run_key(bench, s, seed, replace(settings, epochs=settings.epochs or bench.epochs),
                                            data[bench.name])
            for bench in benches for s in strategies for seed in seeds}  # fmt: skip
    reused = sum(k in done for k in keys.values())
    if reused:
        log.emit("resume", f"reusing {reused} of {len(keys)} runs from {journal} (same benchmark, strategy, seed, "
                 "values and settings); --fresh runs them again", reused=reused, runs=len(keys))  # fmt: skip
    try:
        _run_all(benches, strategies, seeds, settings, first, keys, done, journal, runs, log, progress,
                 tracking_uri, experiment)  # fmt: skip
    except KeyboardInterrupt:
        log.emit("interrupted", f"interrupted: {len(runs)} of {len(keys)} runs finished and kept in {journal}; "
                 "the same command goes on from there", runs=len(runs), journal=str(journal))  # fmt: skip
        raise
    runner.add_intransigence(runs)  # needs every seed's cumulative run: once all have run
    rows = runner.summarize(runs)
    (out / "results.json").write_text(strict_json({"runs": runs, "summary": rows}, indent=1))
    log.table(rich_table(rows))
    log.emit(
        "summary", f"results: {out / 'results.json'}", final=True, path=str(out / "results.json"), rows=rows
    )
    if plots:
        try:
            written = plot(runs, out)
            log.emit("plots", f"plots: {len(written)} PNG files in {out}/", files=[str(w) for w in written])
        except ImportError:
            log.emit("plots", "plots skipped: install matplotlib (pip install 'lifelong[plots]')")
    return runs


def build_all(bench: Benchmark, strategies: list[str], seed: int, settings: runner.Settings) -> Any:
    """Build ``seed``'s scenario and every strategy's learner on it before anything trains, so that a
    strategy refusing the model (no ``.features``, batch norm under GPM) or the scenario (PackNet in a
    class-incremental one) stops the grid before the
    strategies listed ahead of it train, not after (with no results written). Returns the scenario."""
    settings = replace(settings, epochs=settings.epochs or bench.epochs)
    scenario = runner._subsample(bench.build(seed), settings.train_fraction, seed)
    for s in strategies:
        try:
            runner.build_learner(bench.name, s, seed, settings, scenario).check_scenario(scenario)
        except StrategyMismatchError as e:  # the strategy's refusal: say which (a bad model is the model's)
            e.args = (f"{s} on {bench.name}: {e}",)
            raise
    return scenario


def _model_kwargs(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"--model-kwargs is not valid JSON ({e}): {text!r}; e.g. '{{\"hidden\": [64]}}'"
        ) from e
    if not isinstance(value, dict):
        raise ConfigError(f"--model-kwargs must be a JSON object of keyword arguments, got {text!r}")
    return value


def _strategy_params(text: str | None, strategies: list[str]) -> dict[str, dict[str, Any]]:
    """``--params``: a JSON object of strategy name -> its hyper-parameters, for strategies in the grid."""
    if text is None:
        return {}
    example = 'e.g. \'{"ewc": {"lam": 10}, "replay": {"buffer_size": 200}}\''
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--params is not valid JSON ({e}): {text!r}; {example}") from e
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigError(
            f"--params must map each strategy name to an object of its values, got {text!r}; {example}"
        )
    if hybrids := sorted(k for k in value if runner.HYBRID in k):  # its methods take their values by name
        parts = " and ".join(repr(n) for n in runner.parts(hybrids[0]))
        raise ConfigError(f"--params names the hybrid {hybrids[0]}; a hybrid's methods take their values by "
                          f"method name: key them {parts}")  # fmt: skip
    if unknown := sorted(set(value) - {n for s in strategies for n in runner.parts(s)}):
        raise ConfigError(
            f"--params names {', '.join(unknown)}, not in --strategies ({', '.join(strategies)}): add "
            f"{'it' if len(unknown) == 1 else 'them'} there, or fix the name"
        )
    return value


def _device(name: str) -> str:
    """Refuse, before any training, a device torch does not know or this machine lacks."""
    from lifelong.learn.devices import resolve_device

    resolve_device(name)
    return name


def bench(args: argparse.Namespace) -> int:
    from lifelong.learn.models import get_factory, model_names
    from lifelong.learn.plugins import load_plugins

    load_plugins([m for p in args.plugin for m in _csv(p)])
    model_kwargs = _model_kwargs(args.model_kwargs)
    if args.list:
        print("benchmarks:")
        for b in BENCHMARKS.values():
            print(f"  {b.name:<20} {b.description}")
        print("strategies:\n  " + ", ".join(runner.strategy_names()))
        print("models:\n  " + ", ".join(model_names()))
        return 0
    get_factory(args.model)
    if args.data and args.benchmark:  # one of them would be ignored
        raise ConfigError("--data and --benchmark each name what to train on; give one of them")
    benchmarks: list[Any] = args.benchmark or ["split-fmnist"]
    strategies = args.strategies
    _validate([] if args.data else benchmarks, strategies)
    file_only = [f"--{k.replace('_', '-')}" for k in ("domain_column", "task_column", "input_shape")
                 if getattr(args, k) is not None] + (["--scenario"] if args.scenario != "class" else [])  # fmt: skip
    if file_only and not args.data:  # a named benchmark fixes its own scenario and columns
        one = len(file_only) == 1
        raise ConfigError(f"{', '.join(file_only)} {'applies' if one else 'apply'} to a --data file only (a named "
                          f"benchmark fixes its own scenario); give --data, or drop {'it' if one else 'them'}")  # fmt: skip
    if args.data:  # the user's own file, split 80/20 with each seed
        from lifelong.data.files import parse_shape

        shape = parse_shape(args.input_shape)
        benchmarks = [
            from_file(
                args.data,
                args.label_column,
                args.scenario,
                args.domain_column,
                input_shape=shape,
                drop_columns=args.drop_columns,
                model=args.model,
                model_kwargs=model_kwargs,
                task_column=args.task_column,
            )
        ]
    settings = runner.Settings(
        args.model,
        args.epochs,
        args.lr,
        args.batch_size,
        args.buffer,
        args.train_fraction,
        model_kwargs=model_kwargs,
        device=_device(args.device),
        optimizer=args.optimizer,
        strategy_params=_strategy_params(args.params, strategies),
    )
    if args.dry_run:
        _show_configured(benchmarks, strategies, settings, Reporter.from_flags(False, args.log_json))
        return 0
    run_grid(
        benchmarks,
        strategies,
        args.seeds,
        settings,
        Path(args.out),
        not args.no_progress,
        not args.no_plots,
        args.threads,
        Reporter.from_flags(args.quiet, args.log_json),
        args.tracking_uri,
        resume=not args.fresh,
        experiment=args.experiment,
    )
    return 0


def _run_all(benches: list[Benchmark], strategies: list[str], seeds: list[int], settings: runner.Settings,
             first: dict[str, Any], keys: dict[tuple[str, str, int], str], done: dict[str, dict[str, Any]],
             journal: Path, runs: list[dict[str, Any]], log: Reporter, progress: bool,
             tracking_uri: str | None, experiment: str = "lifelong") -> None:  # fmt: skip
    """The grid's runs in order, each reused from ``done`` or trained and appended to ``journal``."""
    for bench in benches:
        settings = replace(settings, epochs=settings.epochs or bench.epochs)
        for seed in seeds:
            scenario = first.pop(bench.name, None) if seed == seeds[0] else None
            for s in strategies:
                key = keys[(bench.name, s, seed)]
                if key in done:
                    runs.append(done[key])
                    continue
                if scenario is None:
                    scenario = runner._subsample(bench.build(seed), settings.train_fraction, seed)
                bar = (
                    log.progress(f"{bench.name} {s} seed {seed}", benchmark=bench.name, strategy=s, seed=seed)
                    if progress
                    else None
                )
                callbacks = [bar] if bar else []
                if tracking_uri:  # first, so its set-up is not counted in the progress line's seconds
                    from lifelong.tracking import MLflowLogger

                    callbacks.insert(0, MLflowLogger(tracking_uri, experiment, run_name=f"{bench.name} {s} seed {seed}",
                                                     params=_tracked(key)))  # fmt: skip
                with warnings.catch_warnings():  # said on the run's line instead, for every run
                    warnings.filterwarnings("ignore", "training diverged", RuntimeWarning)
                    run = runner.run_one(bench, s, seed, settings, callbacks, scenario=scenario)
                m = run["metrics"]
                figures = (f"diverged ({run.get('divergence_hint') or 'non-finite loss'})" if m.get("diverged")
                           else f"ACC {m['acc']:.3f}  BWT {m['bwt']:+.3f}")  # fmt: skip
                log.emit("run", f"{bench.name:>18} {s:>18} seed {seed}: {figures}  "
                         f"{m['train_seconds_per_epoch']:.2f} s/epoch", benchmark=bench.name, strategy=s, seed=seed,
                         metrics=m)  # fmt: skip
                runs.append(run)
                with journal.open("a") as f:  # a line per finished run: an interruption loses the current one
                    f.write(strict_json({"key": key, "run": run}) + "\n")


def _tracked(key: str) -> dict[str, Any]:
    """What tells runs apart in MLflow, from the run's key: the registered model and its arguments, the
    data file and its hash, the code's (two runs of one plugin model at other sizes logged equal params)."""
    k = json.loads(key)
    return {"benchmark": k["benchmark"], "strategy": k["strategy"], "seed": k["seed"],
            "model_name": k["settings"]["model"], "model_kwargs": json.dumps(k["settings"]["model_kwargs"]),
            "data": k["description"].split(": ")[0] if k["data_sha256"] else k["benchmark"],
            "data_sha256": k["data_sha256"], "code_sha256": k["code_sha256"], "model_sha256": k["model_sha256"]}  # fmt: skip


def _run_key(
    bench: Benchmark, strategy: str, seed: int, settings: runner.Settings, data_sha256: str | None
) -> str:
    """What makes two runs the same run: benchmark (``data_sha256``: its file's bytes), strategy, seed,
    values, settings, and the code of the strategy and the model."""
    from lifelong.learn.models import MODELS

    strats, lr = runner.configured_run(strategy, bench.name, settings)
    code = [_source_sha256(type(s)) for s in strats]  # a hybrid's: its methods', comma-separated
    return strict_json(
        {"benchmark": bench.name, "description": bench.description, "strategy": strategy, "seed": seed,
         "params": runner.run_params(strats, strategy), "settings": runner.run_settings(settings, lr),
         "data_sha256": data_sha256, "code_sha256": code[0] if len(code) == 1 else ",".join(map(str, code)),
         "model_sha256": _source_sha256(MODELS.get(settings.model))},
        sort_keys=True,
    )  # fmt: skip


def _data_sha256(bench: Benchmark) -> str | None:
    """The hash of a file benchmark's data (None for a built-in one)."""
    from lifelong.learn.checkpoint import sha256

    data = Path(bench.dataset)
    return sha256(data) if data.is_file() else None


def _source_sha256(obj: Any) -> str | None:
    """One hash of the files defining a strategy class or a model factory and of the modules they
    import (every import statement, in functions too), followed outside the standard library and
    installed packages: a plugin edited since a run (its penalty x1000, its ReLU made Tanh, in its own
    file, a constant it imports by name or a helper imported inside a function) is a new run."""
    import hashlib

    name = getattr(obj, "__module__", None)
    files: dict[str, str] = {}
    todo, seen = [name] if name else [], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found = _module_source(name)
        if found is not None:
            files[name], imported = found
            todo.extend(imported)
    if not files:
        return None
    return hashlib.sha256(strict_json(files, sort_keys=True).encode()).hexdigest()


@functools.cache
def _module_source(name: str) -> tuple[str, tuple[str, ...]] | None:
    """``(sha256 of its file, the modules its import statements may name)`` for a module of one's own
    (a .py file outside the standard library and installed packages), else None. Once per process."""
    import ast
    import importlib.util
    import sys

    from lifelong.learn.checkpoint import sha256

    try:
        module = sys.modules.get(name)
        spec = None if module is not None else importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):  # "pkg.Name" where Name is a class, not a module
        return None
    file = getattr(module, "__file__", None) if module is not None else getattr(spec, "origin", None)
    if not file or not file.endswith(".py") or str(Path(file).resolve()).startswith(_installed_roots()):
        return None
    path = Path(file)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported: list[str] = []
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            try:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            except (ImportError, ValueError):
                continue
            imported += [base, *(f"{base}.{a.name}" for a in node.names)]  # a name may be a submodule
    return sha256(path), tuple(imported)


@functools.cache
def _installed_roots() -> tuple[str, ...]:
    """The standard library's and installed packages' directories, whose modules a run key leaves out."""
    import sysconfig

    return tuple({str(Path(sysconfig.get_paths()[k]).resolve()) for k in ("stdlib", "purelib", "platlib")})


def _finished_runs(journal: Path) -> dict[str, dict[str, Any]]:
    """The runs ``journal`` holds, by key; a line cut by an interruption (the last) is ignored."""
    done: dict[str, dict[str, Any]] = {}
    if journal.is_file():
        for line in journal.read_text().splitlines():
            try:
                entry = json.loads(line)
                done[entry["key"]] = entry["run"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return done


def demo(args: argparse.Namespace) -> int:
    benchmark, log = "split-fmnist", Reporter.from_flags(args.quiet, args.log_json)
    try:
        get(benchmark).build(args.seed)
    except DataError as e:
        log.emit("notice", f"notice: Fashion-MNIST is not available ({str(e).splitlines()[0]}); "
                 "running Split Digits instead", benchmark="split-digits")  # fmt: skip
        benchmark = "split-digits"
    settings = runner.Settings(epochs=0)
    run_grid([benchmark], DEMO_STRATEGIES, [args.seed], settings, Path(args.out), threads=args.threads,
             reporter=log, resume=False)  # fmt: skip
    return 0


def _show_configured(
    benchmarks: list[Any], strategies: list[str], settings: runner.Settings, log: Reporter
) -> None:
    """What ``bench`` would run: per benchmark and strategy, the values (tuned or the paper's) and the rate."""
    for b in benchmarks:
        bench = b if isinstance(b, Benchmark) else get(b)
        name = bench.name
        build_all(bench, strategies, 0, settings)  # what a run would refuse, refused here too
        for s in strategies:
            strats, lr = runner.configured_run(s, name, settings)
            params = runner.run_params(strats, s)
            own = [p for p in strats if "lr" in p.get_params()]
            shown = "; ".join(f"{n}: " * (len(strats) > 1) + (", ".join(f"{k}={v!r}" for k, v in p.get_params().items())
                                                          or "no hyper-parameters")
                              for n, p in zip(runner.parts(s), strats, strict=True))  # fmt: skip
            rate = "lr (its own)" if own else f"lr {lr:<7g}"  # GDumb trains with its own optimizer
            log.emit("configured", f"{name:<18} {s:<18} {rate:<10} {shown}", benchmark=name, strategy=s, lr=lr,
                     params=params)  # fmt: skip


def report(args: argparse.Namespace) -> int:

    from lifelong.bench.report import markdown_table, rich_table

    path = Path(args.results)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise ConfigError(f"no results file at {path}; run `lifelong bench --out DIR` first")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not JSON ({e}); give the results.json `lifelong bench` wrote") from e
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not isinstance(runs, list) or not all(
        isinstance(r, dict)
        and {"benchmark", "strategy", "metrics"} <= r.keys()
        and isinstance(r["metrics"], dict)
        # a number or null (NaN, as strict JSON writes it): "x" ended in float()'s ValueError (a trial)
        and all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool))
            for v in r["metrics"].values()
        )
        for r in runs
    ):
        one = isinstance(doc, dict) and "accuracy_matrix" in doc
        raise DataError(
            f'{path} is not a `lifelong bench` results file (a "runs" list of runs with benchmark, strategy and '
            "metrics)"
            + ("; it is one Result: print it with Result.from_json(text).table() in Python" if one else "")
        )
    rows = runner.summarize(runs)
    if args.markdown:
        print(markdown_table(rows))
    else:
        Reporter().table(rich_table(rows))  # piped: 150 columns, as bench's own table (80 cut the cells)
    return 0
