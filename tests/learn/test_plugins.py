import sys
from pathlib import Path

import pytest

from lifelong.errors import ConfigError
from lifelong.learn import models
from lifelong.learn.plugins import load_plugins
from lifelong.learn.strategy import REGISTRY, get_strategy

PLUGIN = """
from torch import nn
from lifelong.learn.models import register_model
from lifelong.learn.strategy import Strategy

IMPORTS = globals().get("IMPORTS", 0) + 1


@register_model("{model}")
def make(in_features: int = 4, n_classes: int = 2) -> nn.Module:
    return nn.Sequential(nn.Linear(in_features, n_classes))


class Mine(Strategy):
    name = "{strategy}"
"""


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("llplug_")]:
        del sys.modules[name]
    for name in [n for n in REGISTRY if n.startswith("llplug-")]:
        del REGISTRY[name]


def _write(d: Path, module: str) -> None:
    tag = module.replace("_", "-")
    (d / f"{module}.py").write_text(PLUGIN.format(model=tag, strategy=tag))


def test_modules_named_or_in_the_environment_are_imported_once(
    plugin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(plugin_dir, "llplug_a")
    _write(plugin_dir, "llplug_b")
    monkeypatch.setenv("LIFELONG_PLUGINS", " llplug_b , ")
    assert load_plugins(["llplug_a"], entry_points=False) == ["llplug_a", "llplug_b"]
    assert "llplug-a" in models.MODELS and "llplug-b" in models.MODELS
    assert get_strategy("llplug-a").__name__ == "Mine"
    assert load_plugins(["llplug_a"], entry_points=False) == ["llplug_a", "llplug_b"]
    assert sys.modules["llplug_a"].IMPORTS == 1  # idempotent: not run again
    assert load_plugins(env=False, entry_points=False) == []


def test_entry_points_of_installed_packages_are_loaded(plugin_dir: Path) -> None:
    _write(plugin_dir, "llplug_ep")
    info = plugin_dir / "llplug_dist-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llplug-dist\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lifelong.models]\ntab = llplug_ep\n")
    assert "llplug_ep" in load_plugins(env=False)
    assert "llplug-ep" in models.MODELS


def test_a_broken_plugin_names_itself_and_the_cause(plugin_dir: Path) -> None:
    (plugin_dir / "llplug_broken.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(ConfigError, match="llplug_broken.*not_a_module_anywhere"):
        load_plugins(["llplug_broken"], env=False, entry_points=False)
    with pytest.raises(ConfigError, match="'llplug_missing'.*ModuleNotFoundError"):
        load_plugins(["llplug_missing"], env=False, entry_points=False)


def test_builtin_strategies_are_found_by_name() -> None:
    assert get_strategy("replay").name == "replay"
    with pytest.raises(ConfigError, match="unknown strategy 'nope'.*--plugin.*lifelong.strategies"):
        get_strategy("nope")
