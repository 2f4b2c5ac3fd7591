"""`lifelong advise`: which continual-learning methods fit your constraints, with this project's own evidence.

The rules are the field's usual guidance (for example De Lange et al., 2021, "A continual learning
survey: defying forgetting in classification tasks"): start with a regularization baseline; if any
past data may be kept, a memory (replay) is the strongest family; with no memory at all,
architectural methods (when task ids are known) or gradient projection; hybrids of a memory and
distillation often win. The figures (ACC, forgetting, seconds per epoch, memory) are never typed in:
they are read from a results file written by ``benchmarks/strategies.py`` (mean over its seeds), and
``--data FILE`` measures the shortlist again on the user's own samples.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifelong.cli import POSITIVE_INT, add_drop_columns
from lifelong.errors import ConfigError, DataError, LifelongError
from lifelong.logs import Reporter

if TYPE_CHECKING:
    from lifelong.data.files import Table

# What each method keeps, which decides the constraints it can meet.
FAMILIES = {
    "regularization": ("ewc", "online-ewc", "si", "mas", "rwalk", "l2", "scp", "lwf"),
    "memory": ("replay", "er-ace", "gdumb", "mer", "gem", "agem"),
    "prototype": ("ncm",),  # one running mean per class, no samples
    "hybrid": ("der", "derpp", "icarl"),  # a memory plus distillation (and, for iCaRL, nearest-mean)
    "generative": ("generative-replay",),
    "projection": ("gpm", "ogd"),
    "architectural": ("pnn", "packnet", "hat", "cpg", "multihead", "den", "adapters", "per-experience"),
    "reference": ("naive", "joint", "cumulative"),
}
FAMILY = {m: f for f, methods in FAMILIES.items() for m in methods}
NEEDS_RAW_DATA = {"memory", "hybrid"}
BUDGET = {"low": 2.0, "medium": 5.0, "high": math.inf}  # seconds per epoch, at most this many times naive's
REASON = {
    "regularization": "keeps no data, one penalty term",
    "memory": "past data may be kept: rehearsing a small memory is the strongest single family",
    "hybrid": "a memory plus distillation of the old model's outputs: hybrids often win",
    "generative": "keeps no raw data: rehearses samples drawn from a generator it trains alongside",
    "prototype": "keeps one mean feature vector per class, no samples; learning is a running average",
    "projection": "keeps no samples: updates are projected away from directions that old tasks use",
    "architectural": "parameters are isolated per task, so nothing is overwritten",
    "reference": "retrains on every past sample: the upper bound when all data may be kept",
}
BASELINE = "start here: keeps no data, one penalty term; the baseline every other method must beat"
DEFAULT_RESULTS = ("benchmarks/results/strategies/results.json",)


@dataclass(frozen=True)
class Constraints:
    """What the user's deployment allows.

    store_data : may past samples be kept at all.
    memory : how many past samples may be kept (None: all of them).
    task_ids_known : is the task id given at prediction time.
    budget : compute per update, ``low`` (up to 2x plain fine-tuning), ``medium`` (5x) or ``high``.
    private : no raw data may be kept, not even inside a model of the data (a generator).
    """

    store_data: bool = True
    memory: int | None = 500
    task_ids_known: bool = False
    budget: str = "medium"
    private: bool = False

    def __post_init__(self) -> None:
        if self.budget not in BUDGET:
            raise ConfigError(f"budget must be one of {', '.join(BUDGET)}, got {self.budget!r}")
        if self.memory is not None and self.memory < 0:
            raise ConfigError(f"memory must be >= 0 samples (or 'all'), got {self.memory}")

    @property
    def keeps_samples(self) -> bool:
        return self.store_data and not self.private and self.memory != 0


@dataclass(frozen=True)
class Advice:
    """One recommended method with the figures measured for it."""

    rank: int
    method: str  # as in the results file, e.g. ``replay-500``
    strategy: str  # registry name, e.g. ``replay``
    buffer: int | None
    family: str
    acc: float
    forgetting: float
    seconds_per_epoch: float
    memory_bytes: float
    reason: str


def split_name(method: str) -> tuple[str, int | None]:
    """``replay-500`` -> (``replay``, 500); ``er-ace`` -> (``er-ace``, None)."""
    head, _, tail = method.rpartition("-")
    return (head, int(tail)) if head and tail.isdigit() else (method, None)


def find_results(path: str | None = None) -> Path:
    """The results file: ``path``, else the repository's own (from the working directory or the source tree)."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"no results file at {p}; run benchmarks/strategies.py or pass --results PATH")
        return p
    roots = [Path.cwd(), Path(__file__).resolve().parents[3]]
    for root in roots:
        for rel in DEFAULT_RESULTS:
            if (root / rel).is_file():
                return root / rel
    raise ConfigError(
        f"no results file found ({DEFAULT_RESULTS[0]} under {' or '.join(map(str, roots))}); "
        "run `python benchmarks/strategies.py` in a checkout, or pass --results PATH"
    )


def load_summary(path: Path) -> list[dict[str, Any]]:
    try:
        rows = json.loads(path.read_text())["summary"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is not a results file with a 'summary' list ({e})") from e
    return rows


def needs_task_ids(name: str) -> bool:
    """Whether the registered strategy ``name`` cannot predict without a task id."""
    from lifelong.bench.runner import strategy_names
    from lifelong.learn.strategy import REGISTRY

    return name in strategy_names() and "task_labels" in REGISTRY[name].needs


def exclusion(method: str, c: Constraints, ratio: float) -> str | None:
    """Why ``method`` does not fit ``c`` (None when it does); ``ratio`` is its time over naive's."""
    name, buffer = split_name(method)
    family = FAMILY.get(name, "other")
    if name in ("naive", "joint"):
        return "a reference, not a method"
    if family in NEEDS_RAW_DATA or name == "cumulative":
        if not c.store_data or c.memory == 0:
            return "keeps past samples"
        if c.private:
            return "keeps raw samples"
        if name == "cumulative" and c.memory is not None:
            return "keeps every past sample"
        if buffer is not None and c.memory is not None and buffer > c.memory:
            return f"measured with {buffer} samples, more than {c.memory}"
    if not c.task_ids_known and needs_task_ids(name):
        return "needs the task id at prediction time"
    if family == "generative" and c.private:
        return "its generator can reproduce training samples"
    if ratio > BUDGET[c.budget]:
        return f"{ratio:.1f}x the time of plain fine-tuning, over the {c.budget} budget"
    return None


def recommend(c: Constraints, rows: list[dict[str, Any]], benchmark: str, top: int = 5) -> list[Advice]:
    """Methods in the order to try them: a regularization baseline first, then the best that fit.

    Among memory variants only the largest buffer within ``c.memory`` is kept. Task-id methods
    appear only when ``c.task_ids_known``, since they cannot predict without one.
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top: how many methods to list, a whole number >= 1; got {top!r}")
    known = list(dict.fromkeys(str(r.get("benchmark")) for r in rows))
    rows = [r for r in rows if r["benchmark"] == benchmark]
    if not rows:
        raise ConfigError(
            f"the results file has no rows for benchmark {benchmark!r}; --benchmark is one of: "
            f"{', '.join(known) or 'none (the file is empty)'}"
        )
    naive = next((r for r in rows if r["strategy"] == "naive"), None)
    base_time = naive["train_seconds_per_epoch"] if naive else min(r["train_seconds_per_epoch"] for r in rows)
    fits: dict[str, dict[str, Any]] = {}
    for r in rows:
        if exclusion(r["strategy"], c, r["train_seconds_per_epoch"] / max(base_time, 1e-9)) is None:
            name, buffer = split_name(r["strategy"])
            kept = fits.get(name)
            if kept is None or (split_name(kept["strategy"])[1] or 0) < (buffer or 0):
                fits[name] = r
    if not c.task_ids_known and benchmark.endswith("-task"):
        raise ConfigError(f"{benchmark} gives task ids at test time; pick a benchmark without them")
    by_acc = sorted(fits.values(), key=lambda r: r["acc"], reverse=True)
    baseline = next((r for r in by_acc if FAMILY.get(split_name(r["strategy"])[0]) == "regularization"), None)
    ordered = ([baseline] if baseline else []) + [r for r in by_acc if r is not baseline]
    advice = []
    for rank, r in enumerate(ordered[:top], start=1):
        name, buffer = split_name(r["strategy"])
        family = FAMILY.get(name, "other")
        reason = BASELINE if r is baseline else REASON.get(family, "fits the constraints")
        if family == "architectural" and not c.keeps_samples:
            reason = "no memory possible: " + reason
        if r is baseline and naive is not None and r["acc"] <= naive["acc"] + 0.02:
            reason += f"; here it forgets about as much as naive fine-tuning (ACC {naive['acc']:.3f})"
        if family == "memory" and c.memory is not None and buffer is not None and buffer < c.memory:
            reason += f" (measured with {buffer} samples; you allow {c.memory})"
        if family == "generative":
            reason += "; check that a generative model of the data is allowed"
        advice.append(Advice(rank, r["strategy"], name, buffer, family, r["acc"], r["forgetting"],
                             r["train_seconds_per_epoch"], r["buffer_bytes"] + 4 * r["extra_parameters"], reason))  # fmt: skip
    return advice


def notes(c: Constraints, rows: list[dict[str, Any]], benchmark: str, advice: list[Advice]) -> list[str]:
    """What the figures say about the constraints themselves: when nothing allowed beats naive
    fine-tuning (judged on every method that fits, not only the ``advice`` listed), and what the
    smallest measured memory would buy."""
    everything = recommend(c, rows, benchmark, top=max(1, len(rows)))  # not only the --top listed
    rows = [r for r in rows if r["benchmark"] == benchmark]
    naive = next((r for r in rows if r["strategy"] == "naive"), None)
    out = []
    best = max(everything, key=lambda a: a.acc, default=None)  # the listed advice is its first part
    if naive is not None and best is not None and best.acc < naive["acc"] + 0.05:
        out.append(f"on {benchmark} no method that fits beats naive fine-tuning (ACC {naive['acc']:.3f}) by 0.05 "
                   f"or more; the best is {best.method} at {best.acc:.3f}")  # fmt: skip
    memory = [r for r in rows if FAMILY.get(split_name(r["strategy"])[0]) in NEEDS_RAW_DATA
              and split_name(r["strategy"])[1] is not None]  # fmt: skip
    if memory:
        smallest = min(split_name(r["strategy"])[1] or 0 for r in memory)
        top = max((r for r in memory if split_name(r["strategy"])[1] == smallest), key=lambda r: r["acc"])
        reaches = (f"with a memory of {smallest} samples {top['strategy']} reaches ACC {top['acc']:.3f} "
                   f"(forgetting {top['forgetting']:.3f})")  # fmt: skip
        if not c.keeps_samples:
            out.append(reaches)
        elif c.memory is not None and c.memory < smallest:  # every memory method dropped, silently
            out.append(f"no memory method was measured with as few as {c.memory} samples (the smallest is "
                       f"{smallest}), so none is listed; {reaches}; measure yours with lifelong bench --buffer "
                       f"{c.memory} --strategies replay,derpp (--data FILE for your own rows)")  # fmt: skip
    return out


def default_benchmark(c: Constraints) -> str:
    return "split-fmnist-task" if c.task_ids_known else "split-fmnist"


# -- the user's own data -----------------------------------------------------------------------------
def load_data(
    path: str,
    label_column: str,
    seed: int = 0,
    drop_columns: Sequence[str] = (),
    task_column: str | None = None,
    domain_column: str | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Table:
    """The user's file for :func:`compare_on_data`, refused (DataError) if it cannot be compared on;
    ``advise`` reads it before printing anything, so a bad file is the only thing said. The split and
    the experiences are made once here too (a class without test samples, say, is refused now, not
    after the advice is printed). With ``task_column`` the experiences are the file's tasks, with
    ``domain_column`` its domains (periods of a drifting stream, sources, sites)."""
    from lifelong.data import scenarios
    from lifelong.data.files import load_table

    table = load_table(path, label_column, domain_column, task_column, drop_columns).reshaped(input_shape)
    if domain_column is not None:
        assert table.domains is not None
        if len(set(table.domains.tolist())) < 2:
            raise DataError(
                f"{path}: column {domain_column!r} holds one domain; a comparison needs at least 2"
            )
        try:
            scenarios.domains_from_column(table, seed=seed)
        except LifelongError as e:  # a domain without test samples
            raise DataError(f"{path}: {len(table)} rows cannot be compared on: {e}") from e
        return table
    if task_column is not None:
        try:
            tasks = scenarios.tasks_from_column(table, seed=seed)
        except LifelongError as e:  # a task of one sample, or without test samples
            raise DataError(f"{path}: {len(table)} rows cannot be compared on: {e}") from e
        if len(tasks) < 2:
            raise DataError(f"{path}: column {task_column!r} holds one task; a comparison needs at least 2")
        return table
    if len(table.classes) < 2:
        raise DataError(
            f"{path}: {len(table.classes)} class; a class-incremental comparison needs at least 2 "
            "(two experiences of one class)"
        )
    try:
        scenarios.class_incremental(table.split(0.2, seed), seed=seed)  # task_incremental cuts alike
    except LifelongError as e:  # ScenarioError: an experience without test samples
        raise DataError(f"{path}: {len(table)} rows cannot be compared on: {e}") from e
    return table


def compare_on_data(advice: list[Advice], path: str, label_column: str, c: Constraints, *, epochs: int = 1,
                    seed: int = 0, threads: int = 1, reporter: Reporter | None = None,
                    table: Table | None = None, model: str = "mlp",
                    model_kwargs: dict[str, Any] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Train the shortlisted methods (and naive, for reference) on the user's file; return measured rows.

    The file's classes are split by :func:`~lifelong.data.scenarios.default_classes_per_experience`
    (as ``lifelong bench --data``; class-incremental, or task-incremental when task ids are known),
    or into the file's own tasks when ``table`` has a task column and task ids are known, or its
    domains (domain-incremental) when it has a domain column; features are standardised with the training
    split's statistics, unless ``model`` (a registered name, a plugin's) takes token ids. ``table``: the
    file already read by :func:`load_data`.
    """
    import torch

    from lifelong.bench import runner
    from lifelong.data import scenarios
    from lifelong.data.dataset import Dataset
    from lifelong.learn.learner import Learner
    from lifelong.learn.models import for_input
    from lifelong.learn.params import check_param

    for option, value, low in (("epochs", epochs, 1), ("seed", seed, 0), ("threads", threads, 1)):
        check_param("compare_on_data", option, value, int, low=low)  # torch.set_num_threads(0) aborts
    if table is None:
        table = load_data(path, label_column)
    from lifelong.bench.benchmarks import _takes_ids

    model_kwargs = model_kwargs or {}
    ids = _takes_ids(model, model_kwargs, table)  # a text model's ids are not scaled into fractions
    split = table.split(0.2, seed)
    train, test = split.train, split.test
    x = train.x.reshape(len(train.x), -1).float()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)

    def standard(d: Dataset) -> Dataset:
        if ids:
            return d
        z = (d.x.reshape(len(d.x), -1).float() - mean) / std
        return Dataset(z.reshape(d.x.shape), d.y, d.t, 1.0, d.name)  # a signal's or image's shape kept

    torch.set_num_threads(threads)
    build = scenarios.task_incremental if c.task_ids_known else scenarios.class_incremental
    log = reporter or Reporter()
    names = [a.strategy for a in advice] + ["naive"]
    if table.domains is not None or (table.tasks is not None and c.task_ids_known):
        from lifelong.bench.benchmarks import standardised  # scaled by the experiences' train data

        own = scenarios.domains_from_column if table.domains is not None else scenarios.tasks_from_column
        scenario = own(table, seed=seed) if ids else standardised(own(table, seed=seed))
    else:  # the default split, one for all methods
        scenario = build((standard(train), standard(test)), seed=seed)
    batch = 10
    if few := runner.few_steps(scenario, batch, epochs):  # as bench says: a barely trained table ranks noise
        log.emit("note", f"note: {few}", final=True, text=few)
    measured = []
    for name in dict.fromkeys(names):  # keeps order, drops a repeated naive
        torch.manual_seed(seed)
        buffer = c.memory if c.memory is not None else 500
        strat = runner.make_strategy(name, "default", buffer)
        net = for_input(model, scenario.input_shape, scenario.n_classes, **model_kwargs)
        bar = log.progress(f"{name}", strategy=name)
        learner = Learner(
            net,
            [strat],
            lr=0.03,
            batch_size=batch,
            epochs=epochs,
            seed=seed,
            callbacks=[bar] if bar else [],
        )
        start = time.perf_counter()
        result = learner.fit(scenario)
        m = result.metrics
        row: dict[str, Any] = {"method": name, "family": FAMILY.get(name, "other"), "acc": m["acc"], "forgetting": m["forgetting"],
               "plasticity": m["plasticity"],
               "seconds": time.perf_counter() - start, "memory_bytes": m["buffer_bytes"] + 4 * m["extra_parameters"]}  # fmt: skip
        measured.append(row)
        log.emit(
            "measured",
            f"{name}: ACC {m['acc']:.3f}, forgetting {m['forgetting']:.3f}, {row['seconds']:.1f} s",
            **row,
        )
    measured.sort(key=lambda r: r["acc"], reverse=True)
    return measured


# -- command line ----------------------------------------------------------------------------------------
def add_command(sub: Any) -> None:
    a = sub.add_parser("advise", help="recommend methods for your constraints, with measured evidence")
    a.add_argument("--store-data", action=argparse.BooleanOptionalAction, default=None,
                   help="may past samples be kept (default: yes, unless --private)")  # fmt: skip
    a.add_argument(
        "--memory",
        type=_memory,
        default="500",
        help="how many past samples may be kept, or 'all' (default 500)",
    )
    a.add_argument("--task-ids-known", action="store_true", help="the task id is given at prediction time")
    a.add_argument("--input-shape", default=None,
                   help="reshape each --data sample to this, e.g. 3,64 for signals stored as rows (row-major: "
                        "the file's columns channel by channel)")  # fmt: skip
    a.add_argument("--task-column", default=None,
                   help="column of --data naming each sample's task: the comparison's experiences are those "
                        "tasks (implies --task-ids-known)")  # fmt: skip
    a.add_argument("--domain-column", default=None,
                   help="column of --data naming each sample's domain (a period of drift, a source): the "
                        "comparison's experiences are those domains, and the figures rotated-fmnist's")  # fmt: skip
    a.add_argument(
        "--budget", choices=list(BUDGET), default="medium", help="compute per update (default medium)"
    )
    a.add_argument(
        "--private", action="store_true", help="no raw data kept, not even a generative model of it"
    )
    a.add_argument(
        "--benchmark", default=None, help="whose figures to read (default: split-fmnist, or its task variant)"
    )
    a.add_argument(
        "--results", default=None, help="results file (default: benchmarks/results/strategies/results.json)"
    )
    a.add_argument("--top", type=POSITIVE_INT, default=5, help="how many methods to list (default 5)")
    a.add_argument(
        "--data", default=None, help="also compare the shortlist on this .npz / .csv / .parquet file"
    )
    a.add_argument(
        "--label-column", default="label", help="label column of a CSV or Parquet --data file (default label)"
    )
    add_drop_columns(a)
    a.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="module to import first (registers your models)")  # fmt: skip
    a.add_argument(
        "--model", default="mlp", help="registered model the --data comparison trains (default mlp)"
    )
    a.add_argument(
        "--model-kwargs", default=None, help="its keyword arguments as JSON (default: sized for the data)"
    )
    a.add_argument(
        "--epochs",
        type=POSITIVE_INT,
        default=1,
        help="passes per experience in the --data comparison (default 1)",
    )
    a.add_argument(
        "--threads", type=POSITIVE_INT, default=1, help="torch intra-op threads for the --data comparison"
    )
    a.add_argument("--quiet", action="store_true", help="print only the tables")
    a.add_argument("--log-json", action="store_true", help="one JSON object per line instead of text")
    a.set_defaults(func=advise)


def _memory(value: str) -> int | None:
    """An argparse ``type``: a number of samples >= 0, or ``all`` (None)."""
    if value.strip().lower() == "all":
        return None
    try:
        memory = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of samples or 'all', got {value!r}") from None
    if memory < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0 samples (or 'all'), got {memory}")
    return memory


def advise(args: argparse.Namespace) -> int:
    from lifelong.data.files import parse_shape

    if args.input_shape is not None and not args.data:
        raise ConfigError("--input-shape reshapes the samples of a --data file; give --data, or drop it")
    if args.private and args.store_data:
        raise ConfigError("--store-data and --private contradict each other (--private keeps no raw data); "
                          "give one of them")  # fmt: skip
    store = args.store_data if args.store_data is not None else not args.private
    for flag, column in (("--task-column", args.task_column), ("--domain-column", args.domain_column)):
        if column is not None and not args.data:
            raise ConfigError(f"{flag} {column} names a column of a --data file; give --data")
    if args.domain_column is not None and (args.task_column is not None or args.task_ids_known):
        raise ConfigError(
            "--domain-column compares on the file's domains with one head and no task ids; drop "
            + ("--task-column" if args.task_column is not None else "--task-ids-known")
        )
    c = Constraints(store, args.memory, args.task_ids_known or args.task_column is not None, args.budget,
                    args.private)  # fmt: skip
    from lifelong.bench.cli import _model_kwargs
    from lifelong.learn.models import get_factory
    from lifelong.learn.plugins import load_plugins

    load_plugins([m for p in args.plugin for m in p.split(",") if m])
    get_factory(args.model)  # an unknown model is refused before any output
    model_kwargs = _model_kwargs(args.model_kwargs)
    if (args.model != "mlp" or model_kwargs) and not args.data:
        raise ConfigError("--model and --model-kwargs choose the model of the --data comparison; give --data")
    log = Reporter.from_flags(args.quiet, args.log_json)
    path = find_results(args.results)
    benchmark = args.benchmark or ("rotated-fmnist" if args.domain_column else default_benchmark(c))
    advice = recommend(c, load_summary(path), benchmark, args.top)
    table = (
        load_data(
            args.data,
            args.label_column,
            drop_columns=args.drop_columns,
            task_column=args.task_column,
            domain_column=args.domain_column,
            input_shape=parse_shape(args.input_shape),
        )  # fmt: skip
        if args.data
        else None
    )  # refused before any output
    from lifelong.data.scenarios import default_classes_per_experience

    # the file's classes split into experiences (no task or domain column) of one class each
    one_class = (
        table is not None
        and table.tasks is None
        and table.domains is None
        and default_classes_per_experience(len(table.classes)) < 2
    )
    if one_class and c.task_ids_known:  # tasks of one class: nothing to predict
        assert table is not None
        raise DataError(
            f"{args.data}: its {len(table.classes)} classes make tasks of one class each, so with task ids "
            "known every method would score ACC 1.000; name the file's own tasks (--task-column) or drop "
            "--task-ids-known"
        )
    single = one_class and not c.task_ids_known
    if not advice:
        raise ConfigError("no measured method fits these constraints; relax the budget or allow a memory")
    memory = "none" if not c.keeps_samples else "all" if c.memory is None else f"up to {c.memory} samples"
    log.emit("constraints", f"constraints: past samples kept: {memory}; task ids at prediction: "
             f"{'known' if c.task_ids_known else 'unknown'}; budget: {c.budget}"
             f"{'; private' if c.private else ''}", **vars(c) | {"keeps_samples": c.keeps_samples})  # fmt: skip
    log.emit(
        "evidence",
        f"figures: {benchmark} in {path} (mean over seeds)",
        results=str(path),
        benchmark=benchmark,
    )
    if log.mode == "json":
        for a in advice:
            log.emit("advice", a.method, **vars(a))
    else:
        log.table(_advice_table(advice), final=True)
    for note in notes(c, load_summary(path), benchmark, advice):
        log.emit("note", f"note: {note}", final=True, text=note)
    if single:
        assert table is not None
        note = (
            f"{args.data}'s {len(table.classes)} classes make experiences of one class each, where a method "
            f"that learns only the newest class scores 1/{len(table.classes)} and the ranking says little; if "
            "its rows come in periods of drift, compare on those with --domain-column"
        )
        log.emit("note", f"note: {note}", final=True, text=note)
    if args.data:
        rows = compare_on_data(advice, args.data, args.label_column, c, epochs=args.epochs,
                               threads=args.threads, reporter=log, table=table, model=args.model,
                               model_kwargs=model_kwargs)  # fmt: skip
        if log.mode == "json":
            log.emit("comparison", "measured on your data", final=True, data=args.data, rows=rows)
        else:
            log.table(_data_table(rows, args.data, args.model), final=True)
    return 0


def _mb(n: float) -> str:
    return f"{n / 2**20:.2f} MB"


def _advice_table(advice: list[Advice]) -> Any:
    from rich.table import Table

    t = Table(
        title="in the order to try them: a baseline that keeps no data first (the figure to beat), then the best that fit by measured ACC",
        title_justify="left",
    )
    for col in ("#", "method", "family", "ACC", "forgetting", "s/epoch", "memory"):
        t.add_column(
            col, justify="right" if col in ("#", "ACC", "forgetting", "s/epoch", "memory") else "left"
        )
    t.add_column("why", overflow="fold")
    for a in advice:
        t.add_row(str(a.rank), a.method, a.family, f"{a.acc:.3f}", f"{a.forgetting:.3f}", f"{a.seconds_per_epoch:.2f}",
                  _mb(a.memory_bytes), a.reason)  # fmt: skip
    return t


def _data_table(rows: list[dict[str, Any]], data: str, model: str = "mlp") -> Any:
    from rich.table import Table

    title = (f"measured on {data} with the built-in MLP on standardised features (your own model: --plugin "
             "MODULE --model NAME)" if model == "mlp" else f"measured on {data} with model {model!r}")  # fmt: skip
    t = Table(title=title, title_justify="left")
    for col in ("method", "family", "ACC", "forgetting", "plasticity", "seconds", "memory"):
        t.add_column(col, justify="left" if col in ("method", "family") else "right")
    for r in rows:
        t.add_row(r["method"], r["family"], f"{r['acc']:.3f}", f"{r['forgetting']:.3f}", f"{r['plasticity']:.3f}",
                  f"{r['seconds']:.1f}", _mb(r["memory_bytes"]))  # fmt: skip
    return t
