"""Plugins: modules that register models and strategies when imported.

Three ways to name them, all explicit: ``--plugin module.path`` on the command line, the
``LIFELONG_PLUGINS=a.b,c.d`` environment variable, and the entry-point groups
``lifelong.models`` / ``lifelong.strategies`` of installed packages. A checkpoint or a request
never causes an import: it can only name a model or strategy that is already registered.

A package declares its entry point in ``pyproject.toml``::

    [project.entry-points."lifelong.models"]
    tabular = "mypackage.models"
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Sequence

from lifelong.errors import ConfigError

ENV = "LIFELONG_PLUGINS"
GROUPS = ("lifelong.models", "lifelong.strategies")


def env_plugins() -> list[str]:
    """Module names listed in ``LIFELONG_PLUGINS`` (comma-separated)."""
    return [m.strip() for m in os.environ.get(ENV, "").split(",") if m.strip()]


def load_plugins(modules: Sequence[str] = (), *, env: bool = True, entry_points: bool = True) -> list[str]:
    """Import ``modules`` (plus ``LIFELONG_PLUGINS`` and installed entry points); return the names imported.

    Importing is what registers a plugin's models (``@register_model``) and strategies
    (subclasses of ``Strategy`` with a ``name``). Idempotent: a module already imported is
    not run again. A module that cannot be imported raises ConfigError naming it and the cause.
    """
    if isinstance(modules, str):
        modules = [m.strip() for m in modules.split(",") if m.strip()]
    names = list(modules) + (env_plugins() if env else [])
    if names and "" not in sys.path and os.getcwd() not in sys.path:
        # as `python -m` and uvicorn do: a plugin module in the working directory is importable
        # (the `lifelong` console script, unlike `python -m lifelong`, does not put it on the path)
        sys.path.insert(0, os.getcwd())
    imported: list[str] = []
    for name in dict.fromkeys(names):
        try:
            importlib.import_module(name)
        except Exception as e:  # any failure inside the plugin's own import is the plugin's error
            raise ConfigError(
                f"plugin {name!r} could not be imported ({type(e).__name__}: {e}); check that the module "
                "is installed or on PYTHONPATH and that it imports on its own"
            ) from e
        imported.append(name)
    if entry_points:
        for group in GROUPS:
            for ep in importlib.metadata.entry_points(group=group):
                try:
                    ep.load()
                except Exception as e:
                    raise ConfigError(
                        f"plugin entry point {ep.name!r} ({ep.value}, group {group}) could not be loaded "
                        f"({type(e).__name__}: {e}); reinstall or uninstall the package that declares it"
                    ) from e
                if ep.module not in imported:
                    imported.append(ep.module)
    return imported
