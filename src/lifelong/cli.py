"""The `lifelong` command: bench | demo | report, and the system commands (serve, worker, up, ...)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from lifelong.errors import ConfigError, LifelongError


class Parser(argparse.ArgumentParser):
    """An argument error takes the LifelongError path of :func:`main`: one line on stderr, exit
    code 2, as every other refusal (argparse would print the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


#: the largest whole number a flag takes (a count, a size, a version, a limit), as the HTTP API: larger
#: ones ended in tracebacks (SQLite's integers, C's ssize_t) instead of this one-line refusal (a trial)
MAX_INT = 2**31 - 1
#: the largest real one takes (a rate, a period in seconds: 31 years): 1e300 overflowed float32 in the
#: optimizer and the time_t of a lease
MAX_REAL = 1e9


def integer(minimum: int, maximum: int = MAX_INT) -> Callable[[str], int]:
    """An argparse ``type``: a whole number in ``[minimum, maximum]`` (a count, a size, a seed)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {text}")
        return value

    return parse


def real(
    minimum: float = -math.inf, maximum: float = MAX_REAL, *, open_min: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in ``[minimum, maximum]`` (``(minimum, maximum]`` with
    ``open_min``); NaN and infinities are refused, since no setting means them."""
    low = f"above {minimum:g}" if open_min else f"at least {minimum:g}"
    wanted = low if maximum == math.inf else f"{low} and at most {maximum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (open_min and value == minimum) or value > maximum:
            raise argparse.ArgumentTypeError(f"must be a finite number {wanted}, got {text}")
        return value

    return parse


def column_names(text: str) -> tuple[str, ...]:
    """An argparse ``type``: comma-separated column names (``id,timestamp``), at least one."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"must name at least one column, got {text!r}")
    return names


def add_drop_columns(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--drop-columns``: the file's columns that are not features (an id, a timestamp, free text)."""
    parser.add_argument(
        "--drop-columns", type=column_names, default=(), metavar="A,B",
        help="columns of a CSV/Parquet file that are not features (ids, timestamps, text): left out",
    )  # fmt: skip


def add_standardize_exclude(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--standardize-exclude``: columns ``--standardize`` leaves as sent (``up`` and ``simulate``)."""
    parser.add_argument("--standardize-exclude", type=column_names, default=(), metavar="A,B",
                        help="with --standardize: columns kept as sent (integer codes an embedding looks up)")  # fmt: skip


POSITIVE_INT = integer(1)  # epochs, batch sizes, threads: counts of something that must happen
NON_NEGATIVE_INT = integer(0)  # memory sizes, seeds, delays
POSITIVE_REAL = real(0.0, open_min=True)  # a learning rate or a period in seconds


def add_training_args(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """How the first champion trains (``up``, ``simulate``); every later version inherits its optimizer,
    learning rate and batch size through the checkpoint (the policy's ``epochs`` sets their passes).

    Their defaults are None, so ``up`` can tell a flag typed at its default value (``--optimizer sgd``)
    from one not given: on a store that has a champion it names every one it ignores."""
    parser.add_argument(
        "--lr",
        type=POSITIVE_REAL,
        default=None,
        help="learning rate (default 0.05 for sgd, 0.001 for adam/adamw)",
    )
    parser.add_argument(
        "--optimizer",
        default=None,
        metavar="{sgd,adam,adamw}",
        help="sgd (default, momentum 0.9), adam or adamw",
    )
    parser.add_argument("--batch-size", type=POSITIVE_INT, default=None, help="samples per step (default 16)")
    parser.add_argument(
        "--bootstrap-epochs",
        type=POSITIVE_INT,
        default=None,
        help="passes over the bootstrap data (default 10)",
    )


def training_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`add_training_args` values as ``lifelong.system.trainer.bootstrap`` takes them, its own
    defaults where a flag was not given (the learning rate as it picks it for the optimizer)."""
    import inspect

    from lifelong.system.trainer import bootstrap, default_lr

    defaults = inspect.signature(bootstrap).parameters
    given = {"optimizer": args.optimizer, "batch_size": args.batch_size, "epochs": args.bootstrap_epochs}
    out = {k: defaults[k].default if v is None else v for k, v in given.items()}
    return {"lr": default_lr(out["optimizer"]) if args.lr is None else args.lr, **out}


def _checkout() -> str:
    """`` (git afe72a0)`` when lifelong runs from a git checkout: the release number alone told two
    days' code apart for no operator upgrading from one checkout to another (a trial)."""
    import subprocess
    from pathlib import Path

    try:
        found = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                               capture_output=True, text=True, timeout=2)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return f" (git {found.stdout.strip()})" if found.returncode == 0 and found.stdout.strip() else ""


class _Version(argparse.Action):
    """``--version``, asking git only when it is given (not at every command's start)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from lifelong import __version__

        print(f"lifelong {__version__}{_checkout()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lifelong", description="Continual learning, from benchmark to production.")
    parser.add_argument(
        "--version", action=_Version, nargs=0, help="show the version (and git commit) and exit"
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


#: top-level module -> the pyproject extra that installs it
EXTRAS = {
    **dict.fromkeys(
        ("sqlalchemy", "fastapi", "uvicorn", "httpx", "river", "scipy", "pydantic_settings"), "system"
    ),
    **dict.fromkeys(("sklearn", "pandas", "pyarrow"), "data"),
    "matplotlib": "plots",
    "quadprog": "methods",
    "psycopg": "postgres",
    **dict.fromkeys(("mlflow", "alembic"), "tracking"),
}


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:  # fmt: skip
    """lifelong's own warnings as one ``warning: ...`` line on stderr: the file, line number and source
    line of the library (``cli.py:779: UserWarning: ...  table = load_table(...)``) are nothing a
    command's user can act on. Other libraries' warnings keep Python's form."""
    if os.path.abspath(filename).startswith(_PACKAGE):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _DEFAULT_SHOW(message, category, filename, lineno, file, line)


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_DEFAULT_SHOW = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        return _main(argv)
    finally:
        warnings.showwarning = shown


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except LifelongError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as e:  # an optional dependency this command needs is not installed
        extra = EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"error: {e}; this command needs lifelong's '{extra}' extra: pip install 'lifelong[{extra}]' "
              "(make demo installs data and plots only; `make test` installs everything)", file=sys.stderr)  # fmt: skip
        return 2
    except BrokenPipeError:  # `lifelong events --json | head`: the reader left (Python's documented way)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 1
    except OSError as e:  # a path the user gave that cannot be made or written (read-only, /proc, full)
        if e.filename is None:
            raise
        print(f"error: {e.filename}: {e.strerror or e}; give a folder or file this user can create and write "
              "(--data-dir, --out, ...)", file=sys.stderr)  # fmt: skip
        return 2


if __name__ == "__main__":
    sys.exit(main())
