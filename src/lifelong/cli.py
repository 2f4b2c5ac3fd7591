"""The `lifelong` command: bench | demo | report, and the system commands (serve, worker, up, ...)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lifelong.errors import LifelongError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifelong", description="Continual learning, from benchmark to production."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    from lifelong.bench.cli import add_commands as add_bench

    add_bench(sub)
    try:
        from lifelong.system.cli import add_commands as add_system
    except ImportError:  # the system extra is not installed
        pass
    else:
        add_system(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LifelongError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
