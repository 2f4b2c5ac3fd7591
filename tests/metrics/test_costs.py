"""``peak_rss_mb``: the process's peak memory, in MB whatever unit the OS reports it in."""

import re
import sys
from pathlib import Path

import pytest

from lifelong.metrics.costs import peak_rss_mb

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads the kernel's own figures from /proc")


def _status_mb(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) / 1024


@linux_only
def test_the_peak_is_the_kernels_high_water_mark_in_mb() -> None:
    assert peak_rss_mb() == pytest.approx(_status_mb("VmHWM"), abs=2.0)


@linux_only
def test_the_peak_never_falls_and_covers_pages_just_touched() -> None:
    before = peak_rss_mb()
    block = bytearray(64 << 20)
    block[:: 1 << 12] = b"\x01" * len(range(0, len(block), 1 << 12))  # write every page: now resident
    assert peak_rss_mb() >= max(before, _status_mb("VmRSS") - 1.0)
    del block
    assert peak_rss_mb() >= _status_mb("VmRSS")  # a peak stays a peak once the memory is freed
