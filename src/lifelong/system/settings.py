"""The one configuration object of the serving system, read from ``LIFELONG_*`` environment variables.

Every knob of the server, the Python API (:class:`lifelong.system.service.System`) and the CLI lives
here, so a deployment is described by its environment alone (twelve-factor style).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lifelong.errors import ConfigError


class Settings(BaseSettings):
    """Configuration of a serving replica; every field reads ``LIFELONG_<FIELD>`` from the environment.

    Examples
    --------
    >>> s = Settings(data_dir="/tmp/x", auth=False)
    >>> s.max_batch, s.canary_min_labelled
    (256, 50)
    """

    model_config = SettingsConfigDict(env_prefix="LIFELONG_", extra="forbid", validate_default=True)

    data_dir: Path = Field(Path("lifelong-data"), description="SQLite file and model artifacts live here")
    db_url: str | None = Field(
        None, description="SQLAlchemy URL (LIFELONG_DB_URL); default SQLite in data_dir"
    )
    token: SecretStr | None = Field(None, description="bearer token required by mutating endpoints")
    auth: bool = Field(True, description="False (the --no-auth dev flag) serves without any token")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)

    max_batch: int = Field(256, ge=1, description="samples per request, at most")
    max_body_bytes: int = Field(8_000_000, ge=1024, description="request body size limit (HTTP 413 beyond)")
    store_inputs: bool = Field(
        True, description="store predicted inputs as samples, so feedback trains on them"
    )

    canary_min_labelled: int = Field(50, ge=1, description="labelled canary predictions before a decision")
    canary_margin: float = Field(
        0.05, ge=0.0, le=1.0, description="accuracy deficit that rolls a canary back"
    )
    canary_auto: bool = Field(True, description="the poller applies the canary rule by itself")
    poll_seconds: float = Field(1.0, gt=0.0, description="how often the server re-reads the aliases table")
    max_batch_wait_ms: float = Field(0.0, ge=0.0, description="extra wait to grow a micro-batch (0: none)")
    shadow_queue: int = Field(64, ge=1, description="mirrored batches waiting for the shadow before dropping")
    torch_threads: int | None = Field(
        None, ge=1, description="intra-op threads for a server process (1 suits small models on few cores)"
    )
    verify_artifacts: bool = Field(True, description="re-hash an artifact before loading it")

    @model_validator(mode="after")
    def _token_strength(self) -> Settings:
        if self.token is not None and len(self.token.get_secret_value()) < 16:
            raise ValueError("LIFELONG_TOKEN must be at least 16 characters; generate one with `lifelong up`")
        return self

    def with_token(self) -> tuple[Settings, str | None]:
        """Return settings that carry a token, and the token if it was generated just now.

        ``lifelong up`` calls this and prints a generated token once; with ``auth=False`` nothing changes.
        """
        if not self.auth or self.token is not None:
            return self, None
        token = secrets.token_urlsafe(32)
        return self.model_copy(update={"token": SecretStr(token)}), token

    def require_token(self) -> str | None:
        """The token the server checks, or None without auth; refuses auth enabled with no token."""
        if not self.auth:
            return None
        if self.token is None:
            raise ConfigError(
                "auth is on but no token is set: export LIFELONG_TOKEN=..., use `lifelong up` (which "
                "generates one) or pass --no-auth for local development"
            )
        return self.token.get_secret_value()
