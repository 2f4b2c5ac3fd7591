"""Property-based fuzzing of every operation in the OpenAPI description (schemathesis): whatever a
client sends that the schema allows, or nearly allows, the answer is never a 5xx, and every 4xx
carries the JSON error body."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed: pip install 'lifelong[dev]'"
)
import httpx  # noqa: E402
import requests  # noqa: E402  (schemathesis calls through it)
from hypothesis import HealthCheck, given, settings  # noqa: E402  (installed with schemathesis)
from hypothesis import strategies as st  # noqa: E402

from lifelong.system.app import create_app  # noqa: E402
from lifelong.system.service import System  # noqa: E402
from lifelong.system.settings import Settings  # noqa: E402
from tests.system._models import trained  # noqa: E402
from tests.system._serve import running  # noqa: E402

TOKEN = "fuzz-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_EXAMPLES = 200  # per mode, over ~19 operations: a light fuzz (10-20 s on 2 cores)


def operations(url: str) -> list[object]:
    spec = httpx.get(f"{url}/openapi.json", timeout=10).json()
    return [result.ok() for result in schemathesis.openapi.from_dict(spec).get_all_operations()]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    with System(Settings(data_dir=data_dir, token=TOKEN, max_batch=16)) as system:
        system.bootstrap(trained(0))
        system.bootstrap(trained(1))
        with running(create_app(system=system)) as url:
            yield url
    torch.set_num_threads(threads)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_operation_answers_5xx(base_url: str, mode: str) -> None:
    """Schema-valid (positive) and schema-violating (negative) requests for every operation."""
    ops = operations(base_url)
    assert len(ops) >= 15
    strategy = st.one_of(*(op.as_strategy(schemathesis.GenerationMode(mode)) for op in ops))
    session = requests.Session()
    seen: dict[tuple[str, int], int] = {}

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)  # fmt: skip
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, headers=AUTH, timeout=30)
        key = (f"{case.method} {case.path}", response.status_code)
        seen[key] = seen.get(key, 0) + 1
        where = f"{case.method} {case.formatted_path} {case.query} {str(case.body)[:200]}"
        ready = case.formatted_path == "/readyz" and response.status_code == 503  # no worker runs here
        assert response.status_code < 500 or ready, f"{where}: {response.text[:300]}"
        if 400 <= response.status_code < 500:
            body = response.json()
            assert set(body) == {"error"} and body["error"]["type"] and body["error"]["message"], where

    check()
    statuses = {status for _, status in seen}
    assert len({op for op, _ in seen}) >= 12, seen  # most operations were reached
    if mode == "positive":  # (negative cases also negate the credentials)
        assert 401 not in statuses and 403 not in statuses, seen  # the token was sent: handlers ran
        assert any(200 <= status < 300 for status in statuses), seen
