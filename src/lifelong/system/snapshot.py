"""What a server last served, kept beside the artifacts so a replica can start while the store is down.

A server reads its aliases from the store; a replica started during a database outage (an autoscaler
adding capacity, a restart after a crash) would otherwise have nothing to serve until the database
returns. Every swap writes ``<data_dir>/serving.json``: for each alias the version, its traffic share,
and the artifact's path and registered sha256. A replica that cannot reach the store serves exactly
that set (each artifact re-hashed against the registered sha256 first) and takes the registry's
aliases as soon as the store answers. The file only ever describes versions the registry already
registered; the registry stays the one owner of the aliases.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifelong.errors import RegistryError
from lifelong.system.registry import hash_artifact

log = logging.getLogger(__name__)
FILE = "serving.json"


@dataclass(frozen=True)
class ServedAlias:
    """One alias as it was served: the version, its share, and where its artifact is."""

    version: int
    share: float | None
    path: Path
    sha256: str


def verify_served(served: ServedAlias) -> None:
    """Raise RegistryError unless the artifact is where it was and unchanged since it was registered."""
    if not served.path.is_dir():
        raise RegistryError(f"the artifact of v{served.version} is missing at {served.path}")
    if hash_artifact(served.path) != served.sha256:
        raise RegistryError(
            f"the artifact of v{served.version} at {served.path} does not match its registered sha256"
        )


def snapshot_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / FILE


def write_snapshot(data_dir: str | os.PathLike[str], served: dict[str, ServedAlias]) -> None:
    """Replace the snapshot atomically (a crash leaves the old file or the new one, never half)."""
    path = snapshot_path(data_dir)
    body = {
        "written": time.time(),
        "aliases": {
            alias: {
                "version": s.version,
                "share": s.share,
                "path": _portable(s.path, data_dir),
                "sha256": s.sha256,
            }
            for alias, s in served.items()
        },
    }
    # a unique name: replicas on several hosts may share the directory (and a process id)
    fd, tmp = tempfile.mkstemp(prefix=f".{FILE}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide it from replicas running as another user
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(body, indent=1))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _portable(path: Path, data_dir: str | os.PathLike[str]) -> str:
    """The artifact's path relative to the data directory (the same on every host that mounts it at a
    different place, and from any working directory), or absolute when it lies outside."""
    path = path.resolve()
    try:
        return path.relative_to(Path(data_dir).resolve()).as_posix()
    except ValueError:
        return str(path)


def read_snapshot(data_dir: str | os.PathLike[str]) -> dict[str, ServedAlias] | None:
    """The aliases last served from ``data_dir``, or None when there is no usable snapshot."""
    path = snapshot_path(data_dir)
    try:
        body: Any = json.loads(path.read_text())
        aliases = body["aliases"]
        served = {
            str(alias): ServedAlias(
                version=int(a["version"]),
                share=None if a["share"] is None else float(a["share"]),
                path=Path(data_dir) / a["path"],
                sha256=str(a["sha256"]),
            )
            for alias, a in aliases.items()
        }
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        log.warning("ignoring %s: it cannot be read (%s)", path, err)
        return None
    return served if "champion" in served else None
