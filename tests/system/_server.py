"""What the HTTP tests share: the token, the served versions, named classes and features, inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.system._models import DATA

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Server:
    url: str
    good: int
    other: int
    bad: int
    data_dir: Path

    def client(self, auth: bool = True) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=AUTH if auth else {}, timeout=10)


FEATURES = tuple(f"x{i}" for i in range(8))


NAMES = ("barbera", "barolo", "dolcetto", "nebbiolo")


def sample(n: int = 1) -> list[list[float]]:
    return DATA.test.x[:n].tolist()
