"""Latency of the serving path's commit (``Store.record_served``) with SQLite's checkpoint inside the
commit (its default) against the background checkpointer (``Store(checkpoint_every=...)``), and
how large the WAL file grows in each mode (it must stay bounded under steady commits).

One process, alternating rounds of each mode, 4-row micro-batches of 64 float features with 10
scores (the serving benchmark's shape); per-commit wall time, percentiles per mode over all rounds.

    python benchmarks/commit_latency.py --out benchmarks/results/commit_latency.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from lifelong.system.settings import Settings
from lifelong.system.store import Store, prediction_ids


def _round(checkpoint_every: float | None, commits: int, rows: int) -> tuple[list[float], int]:
    """Per-commit milliseconds, and the WAL file's largest size (sampled every 100 commits)."""
    x = np.random.default_rng(0).random((rows, 64), dtype=np.float32)
    scores = [[0.1] * 10] * rows
    lat, wal = [], 0
    with tempfile.TemporaryDirectory() as tmp, Store(data_dir=tmp, checkpoint_every=checkpoint_every) as st:
        for _ in range(commits):
            ids = prediction_ids(rows)  # as the server makes them
            start = time.perf_counter()
            st.record_served(x, ids, ids, [1] * rows, ["champion"] * rows, [1] * rows, scores)
            lat.append((time.perf_counter() - start) * 1000)
            if len(lat) % 100 == 0:
                wal = max(wal, (Path(tmp) / "lifelong.db-wal").stat().st_size)
    return lat, wal


def _percentiles(lat: list[float]) -> dict[str, float]:
    q = np.percentile(lat, [50, 90, 99, 99.9])
    return {
        "p50_ms": q[0],
        "p90_ms": q[1],
        "p99_ms": q[2],
        "p999_ms": q[3],
        "max_ms": max(lat),
        "commits": len(lat),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--commits", type=int, default=6000)
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--out", default="benchmarks/results/commit_latency.json")
    args = p.parse_args()
    modes = {
        "checkpoint_in_commit": None,
        "background_checkpointer": Settings.model_fields["checkpoint_seconds"].default,
    }
    lat: dict[str, list[float]] = {m: [] for m in modes}
    wal = dict.fromkeys(modes, 0)
    for r in range(args.rounds):
        for m in list(modes)[:: 1 if r % 2 == 0 else -1]:
            times, size = _round(modes[m], args.commits, args.rows)
            lat[m] += times
            wal[m] = max(wal[m], size)
    out: dict[str, object] = {
        m: {**{k: round(v, 3) for k, v in _percentiles(v).items()}, "wal_max_mb": round(wal[m] / 1e6, 1)}
        for m, v in lat.items()
    }
    out["config"] = vars(args) | {"checkpoint_seconds": modes["background_checkpointer"]}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
