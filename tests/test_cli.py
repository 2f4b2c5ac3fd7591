"""The `lifelong` entry point: an argument error is one line on stderr and exit code 2, as every refusal."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lifelong.cli import integer, main, real


def test_an_argument_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--epochs", "two"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "error: argument --epochs: must be a whole number, got 'two' (see `lifelong bench --help`)\n"
    )
    assert main(["advise", "--budget", "lots"]) == 2  # argparse's own choices take the same path
    err = capsys.readouterr().err
    assert err.startswith("error: argument --budget: invalid choice: 'lots'") and err.count("\n") == 1


def test_integer_refuses_fractions_words_and_values_below_its_minimum() -> None:
    assert integer(1)("3") == 3 and integer(0)("0") == 0
    for text in ("0", "-2", "1.5", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            integer(1)(text)


def test_real_refuses_non_finite_values_and_values_out_of_its_range() -> None:
    fraction = real(0.0, 1.0, open_min=True)
    assert fraction("1") == 1.0 and fraction("0.25") == 0.25 and real(0.0)("0") == 0.0
    for text in ("0", "-1", "1.5", "nan", "inf", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be"):
            fraction(text)
    with pytest.raises(argparse.ArgumentTypeError, match="at least 0"):
        real(0.0)("-0.5")


@pytest.mark.parametrize(
    "argv",
    [
        ["events", "--limit", "99999999999999999999999"],  # SQLite's OverflowError
        ["promote", "9223372036854775808"],
        ["bench", "--lr", "1e300", "--dry-run"],  # torch: "value cannot be converted to type float"
        ["worker", "--lease-seconds", "1e300"],  # the lease thread died on time_t
        ["worker", "--keep-samples", "99999999999999999999999"],
    ],
)
def test_numbers_too_large_for_any_setting_are_one_line_refusals_not_tracebacks(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial's fuzzing: each ended in a traceback (exit 1) or a dead thread."""
    data = ["--data-dir", str(tmp_path)] if argv[0] != "bench" else []
    assert main([*argv, *data]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at most" in err, err


def test_a_missing_optional_dependency_names_the_extra_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lifelong up` in the venv `make demo` builds (no system extra) was a ModuleNotFoundError traceback."""
    import lifelong.system.cli as system_cli

    def up(args: object) -> int:
        raise ModuleNotFoundError("No module named 'uvicorn'", name="uvicorn")

    monkeypatch.setattr(system_cli, "cmd_up", up)
    assert main(["up"]) == 2
    assert "pip install 'lifelong[system]'" in capsys.readouterr().err

    def other(args: object) -> int:
        raise ModuleNotFoundError("No module named 'nosuchthing'", name="nosuchthing")

    monkeypatch.setattr(system_cli, "cmd_up", other)
    with pytest.raises(ModuleNotFoundError):  # not an extra's: a real error, passed on
        main(["up"])


@pytest.mark.parametrize(
    "argv", [["simulate", "--out", "/proc/lifelong-x/out"], ["up", "--data-dir", "/proc/lifelong-x"]]
)
def test_a_path_that_cannot_be_made_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Was a PermissionError / FileNotFoundError traceback from mkdir, exit 1 (read-only or /proc)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: /proc/lifelong-x") and "this user can create and write" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_version_says_which_lifelong_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """An operator upgrading had no way to ask."""
    import subprocess

    from lifelong import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    said = capsys.readouterr().out.strip()
    # from a checkout, the commit too: two days' code both said "lifelong 0.1.0" (an upgrade trial)
    import lifelong

    package = str(Path(lifelong.__file__).parent)
    head = subprocess.run(
        ["git", "-C", package, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    commit = f" (git {head.stdout.strip()})" if head.returncode == 0 else ""
    assert done.value.code == 0 and said == f"lifelong {__version__}{commit}"


def test_lifelongs_warnings_print_as_one_line_without_the_librarys_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: `cli.py:779: UserWarning: ...` then the library's source line (`table = load_table(...)`)."""
    import warnings

    rows = "\n".join(f"{i},{i % 7 * 0.5},{(i * 3) % 5},{i % 2}" for i in range(40))
    (tmp_path / "t.csv").write_text("row,a,b,label\n" + rows + "\n")
    shown = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code = main(["bench", "--data", str(tmp_path / "t.csv"), "--strategies", "naive", "--seeds", "0",
                     "--out", str(tmp_path / "out"), "--dry-run"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and "warning: " in err and "['row'] number the rows" in err
    assert "UserWarning" not in err and "load_table(" not in err
    assert warnings.showwarning is shown  # put back: tests and callers in-process keep Python's form
