"""Tokens: where they come from, that they survive restarts, and that they never leak."""

from __future__ import annotations

import logging
import os
import stat
import traceback
import warnings
from pathlib import Path

import httpx
import pytest
import torch

from lifelong.errors import ConfigError
from lifelong.system.api.auth import TokenGuard, check_bearer
from lifelong.system.api.errors import AuthError, ForbiddenError
from lifelong.system.app import create_app
from lifelong.system.service import System
from lifelong.system.settings import Settings
from tests.system._models import DATA, trained
from tests.system._serve import running
from tests.system.api._asgi import call, echo, status_and_error


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIFELONG_TOKEN", "LIFELONG_ADMIN_TOKEN", "LIFELONG_PUBLIC_READS"):
        monkeypatch.delenv(name, raising=False)


def test_a_generated_token_is_stored_0600_and_reused_after_a_restart(tmp_path: Path) -> None:
    first, generated = Settings(data_dir=tmp_path).with_token()
    assert generated is not None and first.token is not None and first.token.get_secret_value() == generated
    path = tmp_path / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text().strip() == generated
    again, new = Settings(data_dir=tmp_path).with_token()  # a restart of `lifelong up`
    assert new is None and again.token is not None and again.token.get_secret_value() == generated
    assert Settings(data_dir=tmp_path).require_token() == generated  # a `lifelong serve` replica
    assert Settings(data_dir=tmp_path, token="x" * 20).with_token()[0].token.get_secret_value() == "x" * 20


def test_no_token_anywhere_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LIFELONG_TOKEN"):
        Settings(data_dir=tmp_path).require_token()
    assert Settings(data_dir=tmp_path, auth=False).require_token() is None


@pytest.mark.parametrize("where", ["argument", "environment", "file"])
def test_a_weak_token_is_refused_without_echoing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    secret = "hunter2-SECRET"  # 14 characters: too short
    try:
        if where == "argument":
            Settings(data_dir=tmp_path, token=secret)
        elif where == "environment":
            monkeypatch.setenv("LIFELONG_TOKEN", secret)
            Settings(data_dir=tmp_path)
        else:
            (tmp_path / "token").write_text(secret)
            Settings(data_dir=tmp_path).require_token()
    except ConfigError as err:
        shown = "".join(traceback.format_exception(err)) + repr(err)
        assert "at least 16" in str(err) and secret not in shown and "hunter2" not in shown
    else:
        pytest.fail("a 14-character token was accepted")


def test_the_deprecated_variable_is_honoured_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFELONG_ADMIN_TOKEN", "a" * 24)
    with pytest.warns(DeprecationWarning, match="LIFELONG_TOKEN"):
        settings = Settings(data_dir=tmp_path)
    assert settings.require_token() == "a" * 24
    monkeypatch.setenv("LIFELONG_TOKEN", "b" * 24)
    with pytest.raises(ConfigError, match="differ"):
        Settings(data_dir=tmp_path)
    monkeypatch.setenv("LIFELONG_TOKEN", "a" * 24)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Settings(data_dir=tmp_path).require_token() == "a" * 24


def test_public_reads_open_get_only_and_no_token_reaches_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    token = "pr-token-0123456789abcdef"
    settings = Settings(data_dir=tmp_path, token=token, public_reads=True)
    caplog.set_level(logging.DEBUG)
    try:
        with System(settings) as system:
            system.bootstrap(trained(0))
            with running(create_app(system=system)) as url, httpx.Client(base_url=url, timeout=10) as c:
                assert c.get("/v1/models").status_code == 200 and c.get("/v1/events").status_code == 200
                assert c.post("/v1/predict", json={"inputs": DATA.test.x[:1].tolist()}).status_code == 401
                wrong = {"Authorization": "Bearer wrong-token-0123456789"}
                assert c.post("/v1/train", headers=wrong).status_code == 403
                ok = {"Authorization": f"Bearer {token}"}
                assert (
                    c.post("/v1/predict", headers=ok, json={"inputs": DATA.test.x[:1].tolist()}).status_code
                    == 200
                )
    finally:
        torch.set_num_threads(threads)
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert token not in logged and "wrong-token" not in logged
    assert token not in repr(settings) and token not in str(settings.model_dump())
    assert os.environ.get("LIFELONG_TOKEN") is None


# The middleware alone, driven by hand: what it answers from the headers, and that it reads no body.


def test_the_guard_answers_401_and_403_from_the_headers_without_reading_the_body() -> None:
    guard = TokenGuard(echo, "s3cret")
    for headers, status, kind in [
        ({}, 401, "AuthError"),
        ({"Authorization": "Basic s3cret"}, 401, "AuthError"),
        ({"Authorization": "Bearer "}, 401, "AuthError"),
        ({"Authorization": "Bearer n0t-it"}, 403, "ForbiddenError"),
    ]:
        sent, read = call(guard, headers=headers, chunks=(b"x" * 1000,))
        got, error = status_and_error(sent)
        assert (got, error["type"]) == (status, kind) and read == []
        assert "s3cret" not in error["message"] and "n0t-it" not in error["message"]  # never echoes a token
        assert ((b"www-authenticate", b"Bearer") in sent[0]["headers"]) == (status == 401)


def test_the_guard_lets_the_token_open_paths_and_public_reads_through() -> None:
    guard = TokenGuard(echo, "s3cret")
    assert call(guard, headers={"Authorization": "bearer  s3cret "})[0][0]["status"] == 200  # scheme any case
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert call(guard, path=path, method="GET")[0][0]["status"] == 200
    assert call(guard, path="/models", method="GET")[0][0]["status"] == 401
    public = TokenGuard(echo, "s3cret", public_reads=True)
    assert call(public, path="/models", method="GET")[0][0]["status"] == 200
    assert (
        call(public, path="/models/1/promote", method="POST")[0][0]["status"] == 401
    )  # writes still need it
    assert call(TokenGuard(echo, None))[0][0]["status"] == 200  # --no-auth


def test_check_bearer_needs_nothing_without_a_token() -> None:
    check_bearer(None, None)
    with pytest.raises(ForbiddenError):
        check_bearer("Bearer a", "b")
    with pytest.raises(AuthError, match="Authorization: Bearer <LIFELONG_TOKEN>"):
        check_bearer(None, "b")


def test_credentials_of_another_scheme_are_named_as_such_not_as_missing() -> None:
    token = "s3cret-token-of-enough-length"
    with pytest.raises(AuthError, match=r"^missing credentials"):
        check_bearer(None, token)
    with pytest.raises(
        AuthError, match=r"credentials of scheme 'Basic', not a bearer token: send the header"
    ):
        check_bearer("Basic dXNlcjpwYXNz", token)
    with pytest.raises(ForbiddenError):
        check_bearer("Bearer wrong", token)


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "bearer    "])
def test_an_empty_bearer_token_is_named_as_such(header: str) -> None:
    """It read "credentials of scheme 'Bearer', not a bearer token"."""
    with pytest.raises(AuthError, match=r"^an empty bearer token: send the header"):
        check_bearer(header, "s3cret-token-of-enough-length")
