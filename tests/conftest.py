import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tiny models run faster and reproducibly on one intra-op thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_default_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """`lifelong up` / `serve` in a test listen on a free port, never the default 8000: a server a user
    (or another job) runs there made in-process commands fail with "address already in use" before
    reaching the error a test expects. A test's own --port or LIFELONG_PORT still wins."""
    import socket

    if "LIFELONG_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            monkeypatch.setenv("LIFELONG_PORT", str(s.getsockname()[1]))
