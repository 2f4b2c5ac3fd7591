"""Cost metrics: memory of the process."""

from __future__ import annotations

import re
import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB: since :func:`reset_peak_rss` where Linux allows
    resetting it (``VmHWM``), else since the process started (``ru_maxrss``, which never goes down)."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", _STATUS.read_text(), re.M)
    except OSError:
        found = None
    if found:
        return int(found.group(1)) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def reset_peak_rss() -> bool:
    """Start the peak over from the memory in use now (Linux: ``5`` to ``/proc/self/clear_refs``), so
    that a fit reports its own peak, not the largest of every fit and array before it in the process
    (a bench grid's runs only ever went up, in run order). False where it cannot be reset."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True
