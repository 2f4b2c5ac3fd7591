"""The serving system's one configuration object: environment variables, refusals that name their
source, and a token that never shows (the CLI's handling is in test_cli.py, token files in test_auth.py)."""

from pathlib import Path

import pytest

from lifelong.errors import ConfigError
from lifelong.system.settings import Settings, env_choice

TOKEN = "s3cret-token-for-tests-only"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIFELONG_TOKEN", "LIFELONG_ADMIN_TOKEN", "LIFELONG_MAX_BATCH", "LIFELONG_CANARY_MARGIN",
                 "LIFELONG_CANARY_TEST", "LIFELONG_POLL_SECONDS"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_every_field_reads_its_lifelong_variable_and_arguments_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFELONG_MAX_BATCH", "7")
    monkeypatch.setenv("LIFELONG_CANARY_TEST", "ab")
    s = Settings(data_dir=tmp_path, auth=False)
    assert (s.max_batch, s.canary_rule.test) == (7, "ab")
    assert Settings(data_dir=tmp_path, auth=False, max_batch=3).max_batch == 3


def test_a_bad_canary_part_names_its_flag_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFELONG_CANARY_MARGIN", "1.5")
    with pytest.raises(ConfigError, match=r"--canary-margin \(LIFELONG_CANARY_MARGIN\): .*\[0, 1\], got 1.5"):
        Settings(data_dir=tmp_path, auth=False)
    with pytest.raises(ConfigError, match=r"--canary-alpha \(LIFELONG_CANARY_ALPHA\)"):
        Settings(data_dir=tmp_path, auth=False, canary_alpha=1.0, canary_margin=0.1)


def test_a_field_nobody_declared_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_batches"):  # pydantic's ValidationError; the CLI words it
        Settings(data_dir=tmp_path, auth=False, max_batches=3)  # type: ignore[call-arg]


def test_the_token_never_shows_in_repr_or_a_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(data_dir=tmp_path, token=TOKEN)
    assert TOKEN not in repr(s) and TOKEN not in str(s.model_dump())
    assert s.require_token() == TOKEN
    monkeypatch.setenv("LIFELONG_ADMIN_TOKEN", "another-token-of-enough-length")
    with pytest.raises(ConfigError, match="differ; unset one") as refused:
        Settings(data_dir=tmp_path, token=TOKEN)
    assert TOKEN not in str(refused.value) and "another-token" not in str(refused.value)


def test_env_choice_is_case_insensitive_and_names_variable_value_and_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIFELONG_X_MODE", "fast")
    assert env_choice("LIFELONG_X_MODE", ("FAST", "SAFE"), "SAFE") == "FAST"
    monkeypatch.delenv("LIFELONG_X_MODE")
    assert env_choice("LIFELONG_X_MODE", ("FAST", "SAFE"), "safe") == "SAFE"
    monkeypatch.setenv("LIFELONG_X_MODE", "quick")
    with pytest.raises(ConfigError, match=r"LIFELONG_X_MODE='quick' is not valid; use one of FAST, SAFE"):
        env_choice("LIFELONG_X_MODE", ("FAST", "SAFE"), "SAFE")


def test_a_rotated_token_replaces_the_stored_one(tmp_path: Path) -> None:
    """LIFELONG_TOKEN was served, but <data_dir>/token kept the old one: clients reading the file got 403,
    and a restart without the variable went back to the old token."""
    generated = Settings(data_dir=tmp_path).with_token()[1]
    assert generated is not None and (tmp_path / "token").read_text().strip() == generated
    Settings(data_dir=tmp_path, token=TOKEN).with_token()
    assert (tmp_path / "token").read_text().strip() == TOKEN
    assert (tmp_path / "token").stat().st_mode & 0o077 == 0  # the owner's alone
    assert Settings(data_dir=tmp_path).with_token()[0].require_token() == TOKEN  # a restart keeps it
