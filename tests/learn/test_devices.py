"""``resolve_device``: a device this machine lacks is a ConfigError at start-up, naming what to use."""

import re

import pytest
import torch

from lifelong.errors import ConfigError
from lifelong.learn.devices import CHOICES, resolve_device


def test_the_cpu_is_always_there() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("gpu", "--device: Expected one of"),
        ("tpu", "--device: Expected one of"),
        ("meta", f"--device meta: lifelong runs on {CHOICES}"),
    ],
)
def test_names_torch_or_lifelong_cannot_run_on_are_refused_with_the_choices(name: str, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)) as info:
        resolve_device(name)
    assert CHOICES in str(info.value)


def test_cuda_without_a_gpu_says_to_use_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"serve --device cuda: no CUDA device here \(torch .*\); use cpu"):
        resolve_device("cuda", "serve --device")


def test_a_gpu_index_past_the_last_names_the_valid_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(
        ConfigError, match=re.escape("--device cuda:2: this machine has 2 CUDA device(s), cuda:0..cuda:1")
    ):
        resolve_device("cuda:2")
    assert resolve_device("cuda:1") == torch.device("cuda:1")


def test_mps_off_apple_hardware_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="MPS \\(Apple GPU\\) is not available here; use cpu"):
        resolve_device("mps")
