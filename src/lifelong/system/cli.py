"""System commands of ``lifelong``: serve, worker, up, models, promote, rollback, simulate.

Thin on purpose: each command parses flags into the typed configuration (``Settings``, ``Policy``,
``Gate``, ``SimConfig``) and calls the library. Heavy modules (torch, FastAPI, uvicorn) are imported
inside the command functions, so ``lifelong --help`` stays instant.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from lifelong.errors import ConfigError

BOOTSTRAPS = ("digits", "fmnist", "none")


def add_commands(sub: Any) -> None:
    """Register the system commands on the top-level ``lifelong`` subparsers."""
    p = sub.add_parser("serve", help="serve the HTTP API (the worker runs separately)")
    _server_args(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="monitor, decide and train: the process that keeps the model learning")
    worker_arguments(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("up", help="server + worker on SQLite in one command, bootstrapping a champion")
    worker_arguments(p)
    _server_args(p)
    p.add_argument("--bootstrap", choices=BOOTSTRAPS, default="digits",
                   help="train a first champion on this dataset when none exists (default digits)")  # fmt: skip
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("models", help="list registered versions and the aliases pointing at them")
    _store_args(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("promote", help="make VERSION the champion (the server swaps within a poll)")
    _store_args(p)
    p.add_argument("version", type=int)
    p.add_argument("--alias", default="champion", help="champion (default), canary or shadow")
    p.add_argument("--share", type=float, default=None, help="traffic share of a canary or shadow")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="move an alias back to its previous version")
    _store_args(p)
    p.add_argument("--alias", default="champion")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("simulate", help="replay a drifting stream through the real system, per policy")
    p.add_argument(
        "--stream", default="fmnist-drift", help="fmnist-drift (falls back to digits-drift) | digits-drift"
    )
    p.add_argument(
        "--policy", default="continual", help="manual | scheduled-retrain | scheduled-finetune | continual"
    )
    p.add_argument("--strategy", default="replay", help="strategy of the continual policy")
    p.add_argument("--compare", action="store_true", help="run all four policies on the same stream")
    p.add_argument("--out", type=Path, default=Path("runs/simulate"))
    p.add_argument("--samples", type=int, default=9000, help="stream length (six equal phases)")
    p.add_argument("--label-delay", type=int, default=100, help="samples between a prediction and its label")
    p.add_argument(
        "--rate", type=float, default=150.0, help="samples per second sent (0: as fast as possible)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_simulate)


def worker_arguments(p: argparse.ArgumentParser) -> None:
    """Worker options, shared by ``lifelong worker``, ``lifelong up`` and ``python -m``."""
    p.add_argument(
        "--data-dir", type=Path, default=None, help="store and artifacts (default ./lifelong-data)"
    )
    p.add_argument("--db-url", default=None, help="SQLAlchemy URL (default SQLite in --data-dir)")
    p.add_argument(
        "--policy", default="continual", help="manual | scheduled-retrain | scheduled-finetune | continual"
    )
    p.add_argument("--strategy", default=None, help="strategy of the continual policy (default replay)")
    p.add_argument(
        "--every", type=int, default=None, help="scheduled policies: train every N labelled samples"
    )
    p.add_argument("--policy-json", default=None, help="more Policy fields as JSON, e.g. '{\"epochs\": 3}'")
    p.add_argument("--gate-json", default=None, help='Gate fields as JSON, e.g. \'{"promote_to": "canary"}\'')
    p.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    p.add_argument("--threads", type=int, default=1, help="torch threads (leave cores to the server)")


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir", type=Path, default=None, help="store and artifacts (default ./lifelong-data)"
    )
    p.add_argument("--db-url", default=None, help="SQLAlchemy URL (default SQLite in --data-dir)")


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000)")
    p.add_argument("--no-auth", action="store_true", help="serve without a bearer token (development only)")
    if not any(a.dest == "data_dir" for a in p._actions):
        _store_args(p)


def _settings(args: argparse.Namespace) -> Any:
    from lifelong.system.settings import Settings

    fields = {"data_dir": args.data_dir, "db_url": args.db_url, "host": args.host, "port": args.port}
    fields = {k: v for k, v in fields.items() if v is not None}
    if args.no_auth:
        fields["auth"] = False
    return Settings(**fields)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lifelong.system.app import create_app

    settings = _settings(args)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from lifelong.system.worker import serve_forever

    return serve_forever(args)


def cmd_up(args: argparse.Namespace) -> int:
    """Bootstrap if needed, start the worker as a child process, serve in the foreground."""
    import uvicorn

    from lifelong.system.app import create_app
    from lifelong.system.registry import Registry
    from lifelong.system.store import Store
    from lifelong.system.worker import stop_process

    settings, token = _settings(args).with_token()
    with Store(settings.db_url, data_dir=settings.data_dir) as store:
        registry = Registry(store)
        if registry.alias("champion") is None:
            if args.bootstrap == "none":
                raise ConfigError("no champion yet and --bootstrap none: pass --bootstrap digits or fmnist")
            version = _bootstrap(store, registry, args)
            print(f"bootstrapped champion v{version} on {args.bootstrap}", flush=True)
    if token:
        print(f"LIFELONG_TOKEN={token}  (send it as 'Authorization: Bearer <token>')", flush=True)
    cmd = [sys.executable, "-m", "lifelong.system.worker", "--data-dir", str(settings.data_dir),
           "--policy", args.policy, "--poll", str(args.poll), "--threads", str(args.threads)]  # fmt: skip
    for flag, value in (("--db-url", args.db_url), ("--strategy", args.strategy), ("--every", args.every),
                        ("--policy-json", args.policy_json), ("--gate-json", args.gate_json)):  # fmt: skip
        if value is not None:
            cmd += [flag, str(value)]
    child = subprocess.Popen(cmd)
    # uvicorn shuts down gracefully on SIGTERM / SIGINT, then re-raises the signal to the handler that
    # was installed before it: ours turns it into an exception, so the worker is stopped too.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _raise_stop)
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    except _Stop:
        pass
    finally:
        stop_process(child, 60)
    return 0


class _Stop(Exception):
    """A termination signal reached ``lifelong up``."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signum)


def _bootstrap(store: Any, registry: Any, args: argparse.Namespace) -> int:
    from lifelong.system.policy import preset
    from lifelong.system.trainer import bootstrap

    if args.bootstrap == "fmnist":
        import torch

        from lifelong.data import fashion_mnist

        data = fashion_mnist().train.subset(torch.arange(5000), "fmnist-5000")
    else:
        from lifelong.data import digits

        data = digits().train
    policy = preset(args.policy, **({"strategy": args.strategy} if args.strategy else {}))
    return bootstrap(store, registry, data, n_classes=10, strategies=policy.strategies,
                     strategy_params=policy.strategy_params)  # fmt: skip


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    from lifelong.system.registry import Registry
    from lifelong.system.store import Store

    store = Store(args.db_url or os.environ.get("LIFELONG_DB_URL"), data_dir=args.data_dir)
    return store, Registry(store)


def cmd_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    store, registry = _open(args)
    with store:
        by_version: dict[int, list[str]] = {}
        for name, state in registry.aliases().items():
            by_version.setdefault(state.version, []).append(name)
        t = Table(title=f"model versions in {store!r}")
        for col in ("version", "parent", "strategy", "window", "aliases", "new acc", "flip rate"):
            t.add_column(col)
        for v in registry.versions():
            m = v.metrics
            t.add_row(str(v.version), str(v.parent or "-"), v.strategy, str(v.window or "-"),
                      ", ".join(sorted(by_version.get(v.version, []))) or "-",
                      _fmt(m.get("new_accuracy")), _fmt(m.get("negative_flip_rate")))  # fmt: skip
        Console().print(t)
    return 0


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def cmd_promote(args: argparse.Namespace) -> int:
    store, registry = _open(args)
    with store:
        registry.verify(args.version)  # never point an alias at a modified or missing artifact
        registry.set_alias(args.alias, args.version, share=args.share)
        if args.alias == "champion" and registry.alias("canary") == args.version:
            registry.remove_alias("canary")
    print(f"{args.alias} -> v{args.version}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    store, registry = _open(args)
    with store:
        restored = registry.rollback(args.alias)
    print(f"{args.alias} -> {'unset' if restored is None else f'v{restored}'}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lifelong.system.policy import KINDS
    from lifelong.system.simulate import SimConfig, simulate, table

    if not args.compare and args.policy not in KINDS:
        raise ConfigError(f"--policy: unknown {args.policy!r}; choose one of {', '.join(KINDS)}")
    cfg = SimConfig(stream=args.stream, strategy=args.strategy, samples=args.samples,
                    label_delay=args.label_delay, rate=args.rate, seed=args.seed)  # fmt: skip
    results = simulate(list(KINDS) if args.compare else [args.policy], cfg, args.out)
    Console(width=160).print(table(results))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'prequential.png'}")
    return 0
