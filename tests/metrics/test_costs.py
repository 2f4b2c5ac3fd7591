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


@linux_only
def test_a_fit_reports_its_own_peak_not_the_largest_before_it_in_the_process() -> None:
    """A bench grid's runs reported the process's peak so far: only ever up, in run order (a trial: naive's
    second seed carried EWC's peak)."""
    from lifelong.checks import toy_model, toy_scenario
    from lifelong.learn import Learner
    from lifelong.metrics.costs import reset_peak_rss

    block = bytearray(256 << 20)
    block[:: 1 << 12] = b"\x01" * len(range(0, len(block), 1 << 12))
    high = peak_rss_mb()
    del block
    result = Learner(toy_model(), lr=0.1).fit(toy_scenario())
    assert result.peak_rss_mb < high - 128 and "peak_rss" not in result.info
    assert result.peak_rss_mb >= _status_mb("VmRSS") - 1.0  # still a peak: at least what is resident now
    assert reset_peak_rss() and peak_rss_mb() == pytest.approx(_status_mb("VmRSS"), abs=2.0)
