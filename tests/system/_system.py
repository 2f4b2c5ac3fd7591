"""Helpers shared by the system tests: service settings, a stand-in artifact, a database outage switch."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from lifelong.system.registry import Registry
from lifelong.system.service import System
from lifelong.system.settings import Settings


def settings(tmp_path: Path, **kw: object) -> Settings:
    """Service settings for a test: no auth, a canary judged after 20 labels."""
    base = {"data_dir": tmp_path, "auth": False, "canary_min_labelled": 20, "canary_margin": 0.05}
    return Settings(**{**base, **kw})


def publish(registry: Registry, content: bytes = b"weights", **kwargs: object) -> int:
    """Publish a two-file artifact, like a learner checkpoint (manifest + tensors)."""
    kwargs.setdefault("strategy", "ewc")
    with registry.publish(**kwargs) as draft:
        (draft.path / "manifest.json").write_text('{"format": 1}')
        (draft.path / "model.safetensors").write_bytes(content)
    assert draft.version is not None
    return draft.version


def outage(system: System) -> dict[str, bool]:
    """A switch that makes every store transaction fail as a database that went down does."""
    down = {"on": False}

    @sa.event.listens_for(system.store.engine, "begin")
    def _refuse(conn: sa.Connection) -> None:
        if down["on"]:
            raise sa.exc.OperationalError("BEGIN", {}, Exception("connection refused"))

    return down
