"""The one configuration object of the serving system, read from ``LIFELONG_*`` environment variables.

Every knob of the server, the Python API (:class:`lifelong.system.service.System`) and the CLI lives
here, so a deployment is described by its environment alone (twelve-factor style).

The bearer token comes from ``LIFELONG_TOKEN`` or, failing that, from the file ``<data_dir>/token``
(mode 0600) that :meth:`Settings.with_token` creates once, so a restarted server keeps its token.
The token never appears in a message, a log line or a ``repr``.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lifelong.errors import ConfigError, SettingError
from lifelong.system.policy import CanaryRule

log = logging.getLogger(__name__)
TOKEN_FILE = "token"  # inside data_dir
MIN_TOKEN = 16


class Settings(BaseSettings):
    """Configuration of a serving replica; every field reads ``LIFELONG_<FIELD>`` from the environment.

    Examples
    --------
    >>> s = Settings(data_dir="/tmp/x", auth=False)
    >>> s.max_batch, s.canary_min_labelled
    (256, 50)
    """

    # hide_input_in_errors: a rejected token must never be echoed in a validation message
    model_config = SettingsConfigDict(
        env_prefix="LIFELONG_", extra="forbid", validate_default=True, hide_input_in_errors=True
    )

    data_dir: Path = Field(
        default=Path("lifelong-data"), description="SQLite file and model artifacts live here"
    )
    db_url: str | None = Field(
        default=None, description="SQLAlchemy URL (LIFELONG_DB_URL); default SQLite in data_dir"
    )
    token: SecretStr | None = Field(
        default=None, description="bearer token (LIFELONG_TOKEN); default: the file <data_dir>/token"
    )
    auth: bool = Field(default=True, description="False (the --no-auth dev flag) serves without any token")
    public_reads: bool = Field(
        default=False,
        description="GET endpoints answer without a token (/healthz, /readyz, /metrics always do)",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    max_batch: int = Field(default=256, ge=1, description="samples per request, at most")
    max_body_bytes: int = Field(
        default=8_000_000, ge=1024, description="request body size limit (HTTP 413 beyond)"
    )
    store_inputs: bool = Field(
        default=True, description="store predicted inputs as samples, so feedback trains on them"
    )
    require_named_inputs: bool = Field(
        default=False,
        description="where the deployment has feature names, refuse samples sent as plain lists (a list in "
        "another column order is answered, wrongly): clients send objects by feature name",
    )

    # the canary rule's four parts; lifelong.system.policy.CanaryRule checks them (see canary_rule)
    canary_min_labelled: int = Field(
        default=50, description="judged predictions per variant before a decision"
    )
    canary_margin: float = Field(default=0.05, description="threshold: the accuracy deficit that rolls back")
    canary_test: Literal["threshold", "ab"] = Field(
        default="threshold", description="threshold (safety check) or ab (fixed-horizon significance test)"
    )
    canary_alpha: float = Field(default=0.05, description="ab: the significance level")
    poll_seconds: float = Field(
        default=1.0, gt=0.0, description="how often the server re-reads the aliases table"
    )
    max_batch_wait_ms: float = Field(
        default=0.0, ge=0.0, description="extra wait to grow a micro-batch (0: none)"
    )
    checkpoint_seconds: float | None = Field(
        default=0.1,
        gt=0.0,
        description="SQLite: copy the WAL into the database this often on a background thread, "
        "never inside a request's commit (None: SQLite's own checkpoint at commit); the WAL grows "
        "by about this long's writes between rewinds",
    )
    max_new_classes: int = Field(
        default=100,
        ge=1,
        description="with --allow-new-classes, how far past the deployment's classes a new class index may "
        "be: the trainer grows the head to the largest label, so one stray label must not add a thousand outputs",
    )
    unrecorded_backlog: int = Field(
        default=10_000,
        ge=0,
        description="predictions answered while the store cannot write, kept (rows, journaled to disk) and "
        "recorded once it can, so their feedback still lands; the oldest beyond are dropped",
    )
    shadow_queue: int = Field(
        default=64, ge=1, description="mirrored batches waiting for the shadow before dropping"
    )
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="intra-op threads for a server process (1 suits small models on few cores)",
    )
    device: str = Field(default="cpu", description="where models predict: cpu, cuda, cuda:N or mps")
    verify_artifacts: bool = Field(default=True, description="re-hash an artifact before loading it")
    recheck_seconds: float = Field(
        default=300.0,
        ge=0.0,
        description="re-hash the served versions' artifacts on disk this often (0: never); a damaged one is "
        "reported by /readyz and a server event while the loaded copy keeps serving",
    )
    worker_stale_seconds: float = Field(
        default=30.0,
        gt=0.0,
        description="/readyz fails when the heartbeat of the worker holding a live lease is older than this "
        "(a stuck worker; a killed one fails it once its lease expires)",
    )
    metrics_window: int = Field(
        default=500,
        ge=1,
        description="latest labelled predictions per variant behind the live-accuracy gauge",
    )

    @model_validator(mode="before")
    @classmethod
    def _deprecated_admin_token(cls, data: Any) -> Any:
        """``LIFELONG_ADMIN_TOKEN`` is an old name: honoured when ``LIFELONG_TOKEN`` is absent, with a warning."""
        old = os.environ.get("LIFELONG_ADMIN_TOKEN")
        if old is None or not isinstance(data, dict):
            return data
        if data.get("token") is None:
            msg = "LIFELONG_ADMIN_TOKEN is deprecated; rename it to LIFELONG_TOKEN (the one documented name)"
            warnings.warn(msg, DeprecationWarning, stacklevel=2)
            log.warning(msg)
            return {**data, "token": old}
        if isinstance(data["token"], str | SecretStr) and _secret(data["token"]) != old:
            raise ConfigError("LIFELONG_TOKEN and the deprecated LIFELONG_ADMIN_TOKEN differ; unset one")
        return data

    @field_validator("data_dir")
    @classmethod
    def _data_dir_is_a_directory(cls, path: Path) -> Path:
        if path.exists() and not path.is_dir():  # was: "cannot read the token file x/token: Not a directory"
            raise ValueError(f"{path} is a file; give a directory (it is created if missing)")
        return path

    @model_validator(mode="after")
    def _token_strength(self) -> Settings:
        if self.token is not None:
            _check_token(self.token.get_secret_value(), "LIFELONG_TOKEN")
        return self

    @model_validator(mode="after")
    def _device_present(self) -> Settings:
        """A device this machine lacks (``cuda`` without CUDA) is refused at start-up, not at a request."""
        if self.device != "cpu":
            from lifelong.learn.devices import resolve_device

            resolve_device(self.device, "--device (LIFELONG_DEVICE)")
        return self

    @model_validator(mode="after")
    def _canary_rule_valid(self) -> Settings:
        try:
            self.canary_rule  # noqa: B018 (CanaryRule raises a SettingError naming the bad option)
        except SettingError as err:  # name where the value came from
            part = err.option
            raise ConfigError(
                f"--canary-{part.replace('_', '-')} (LIFELONG_CANARY_{part.upper()}): {err}"
            ) from None
        return self

    @property
    def canary_rule(self) -> CanaryRule:
        """The rule the server's evaluate button and a supervised worker judge canaries by."""
        return CanaryRule(self.canary_min_labelled, self.canary_margin, self.canary_test, self.canary_alpha)

    @property
    def token_path(self) -> Path:
        return Path(self.data_dir) / TOKEN_FILE

    def with_token(self) -> tuple[Settings, str | None]:
        """Settings that carry a token, and the token if it was generated just now (else None).

        The token is ``LIFELONG_TOKEN`` if set, else the one stored in ``<data_dir>/token``, else a new
        one written there (mode 0600) so that a restart keeps it. ``lifelong up`` calls this; with
        ``auth=False`` nothing changes. A ``LIFELONG_TOKEN`` other than the stored one replaces it in the
        file, so the file always holds the token in force (a rotated token left the old one there: clients
        reading the file got 403, and a restart without the variable went back to it).
        """
        if not self.auth:
            return self, None
        if self.token is not None:
            given = self.token.get_secret_value()
            if self.token_path.parent.is_dir() and self._stored_token_or_none() != given:
                _write_secret(self.token_path, given)
                log.info("%s now holds the token set by LIFELONG_TOKEN", self.token_path)
            return self, None
        stored = self._stored_token()
        if stored is not None:
            return self.model_copy(update={"token": SecretStr(stored)}), None
        token = secrets.token_urlsafe(32)
        path = self.token_path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two processes starting at once agree on the first token written
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.with_token()
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        log.info("generated a bearer token in %s", path)
        return self.model_copy(update={"token": SecretStr(token)}), token

    def require_token(self) -> str | None:
        """The token the server checks, or None without auth; refuses auth enabled with no token."""
        if not self.auth:
            return None
        if self.token is not None:
            return self.token.get_secret_value()
        stored = self._stored_token()
        if stored is None:
            raise ConfigError(
                f"auth is on but no token is set: export LIFELONG_TOKEN=..., create {self.token_path} "
                "with `lifelong up` (which generates one) or pass --no-auth for local development"
            )
        return stored

    def _stored_token_or_none(self) -> str | None:
        """The stored token, or None where there is none or it could not be used."""
        try:
            return self._stored_token()
        except ConfigError:
            return None

    def _stored_token(self) -> str | None:
        path = self.token_path
        try:
            mode = path.stat().st_mode
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ConfigError(f"cannot read the token file {path}: {err.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("token file %s is readable by others; run: chmod 600 %s", path, path)
        _check_token(text, f"the token in {path}")
        return text


def _write_secret(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, readable by its owner only (mode 0600 from creation)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """The environment variable ``name`` as one of ``choices`` (case-insensitive), for the few read
    outside :class:`Settings`; any other value is a ConfigError naming the variable, the value and the
    allowed ones (a server must refuse it at start-up in one line, not with a traceback)."""
    value = os.environ.get(name, default)
    if value.upper() not in choices:
        raise ConfigError(f"{name}={value!r} is not valid; use one of {', '.join(choices)}")
    return value.upper()


def _secret(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _check_token(token: str, what: str) -> None:
    """Refuse a weak token without ever echoing it (not even its length)."""
    if len(token) < MIN_TOKEN or not token.isprintable() or token != token.strip():
        raise ConfigError(
            f"{what} must be at least {MIN_TOKEN} printable characters without spaces around it; "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
