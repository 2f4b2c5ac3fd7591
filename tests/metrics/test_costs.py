"""``peak_rss_mb``: the process's peak memory, in MB whatever unit the OS reports it in."""

import re
import sys
from pathlib import Path

import pytest

from lifelong.metrics.costs import peak_rss_mb


@pytest.mark.skipif(sys.platform != "linux", reason="reads the kernel's own figure from /proc")
def test_the_peak_is_the_kernels_high_water_mark_in_mb() -> None:
    status = Path("/proc/self/status").read_text()
    hwm_kb = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    assert peak_rss_mb() == pytest.approx(hwm_kb / 1024, abs=2.0)


def test_the_peak_never_falls_and_covers_what_was_touched() -> None:
    before = peak_rss_mb()
    block = bytearray(64 << 20)  # 64 MB, every page written by the zero fill
    assert peak_rss_mb() >= max(before, 64) and block[-1] == 0
