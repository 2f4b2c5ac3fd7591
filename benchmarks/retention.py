"""Bounded storage under a long stream: does the database stop growing once retention runs?

Streams ``--samples`` predictions (default 1,000,000) through the store's serving write path
(:meth:`Store.record_served`, one transaction per micro-batch of ``--batch`` inputs with their
predictions, as the server group-commits them) and labels a ``--feedback`` share of them
(:meth:`Store.add_feedback`, one transaction each, as ``POST /v1/feedback`` does). Beside the writer,
a second connection applies ``RetentionPolicy(max_samples=--keep-samples)`` every
``--retention-every`` seconds, as the worker's housekeeping does (default 60 s, the worker's).

Every ``--report-every`` samples it records the database file and WAL sizes, the rows kept and the
write throughput of that interval; the JSON says whether size and throughput plateau.

    python benchmarks/retention.py --out benchmarks/results/retention.json
    python benchmarks/retention.py --samples 200000 --retention-every 5 --out /tmp/retention.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
import torch

from lifelong.system.settings import Settings
from lifelong.system.store import RetentionPolicy, Store, prediction_ids, predictions, samples


def _count(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _size(db: Path) -> tuple[int, int]:
    wal = db.with_name(db.name + "-wal")
    return db.stat().st_size, wal.stat().st_size if wal.exists() else 0


class Housekeeper(threading.Thread):
    """Apply retention every ``every`` seconds on its own connection, like the worker; time each pass."""

    def __init__(self, data_dir: Path, url: str | None, policy: RetentionPolicy, every: float) -> None:
        super().__init__(name="housekeeper", daemon=True)
        self.store = Store(url, data_dir=data_dir)
        self.policy, self.every = policy, every
        self.stop = threading.Event()
        self.passes: list[dict[str, float]] = []

    def run(self) -> None:
        while not self.stop.wait(self.every):
            start = time.perf_counter()
            deleted = self.store.apply_retention(self.policy)
            self.passes.append(
                {"at": time.time(), "deleted": deleted, "seconds": time.perf_counter() - start}
            )


def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    # the server's store: its background checkpointer, never a checkpoint inside a serving commit
    store = Store(
        args.db_url, data_dir=data_dir, checkpoint_every=Settings.model_fields["checkpoint_seconds"].default
    )
    db = data_dir / "lifelong.db"
    keeper = Housekeeper(
        data_dir, args.db_url, RetentionPolicy(max_samples=args.keep_samples), args.retention_every
    )
    keeper.start()
    x = rng.normal(size=(args.batch, args.features)).astype(np.float32)
    scores = np.full((args.batch, 10), 0.1).tolist()
    labels = rng.integers(0, 10, size=args.batch).tolist()
    timeline: list[dict[str, Any]] = []
    written = labelled = 0
    pending: list[str] = []  # predictions to label once the next batch is written (a short label delay)
    start = last_t = time.perf_counter()
    last_n, stall = 0, 0.0  # stall: the longest serving write of the interval (waits for the write lock)
    while written < args.samples:
        n = min(args.batch, args.samples - written)
        pids = prediction_ids(n)  # as the server makes them
        t = time.perf_counter()
        store.record_served(x[:n], pids, pids, [1] * n, ["champion"] * n, labels[:n], scores[:n])
        stall = max(stall, time.perf_counter() - t)
        for pid in pending:
            store.add_feedback(pid, 3)
        labelled += len(pending)
        pending = pids[: int(round(n * args.feedback))]
        written += n
        if written % args.report_every < args.batch or written == args.samples:
            now = time.perf_counter()
            db_bytes, wal_bytes = _size(db) if db.exists() else (0, 0)
            point = {"samples_written": written, "seconds": round(now - start, 2),
                     "samples_per_second": round((written - last_n) / (now - last_t), 1),
                     "samples_kept": _count(store, samples), "predictions_kept": _count(store, predictions),
                     "db_mb": round(db_bytes / 2**20, 2), "wal_mb": round(wal_bytes / 2**20, 2),
                     "retention_passes": len(keeper.passes), "max_write_seconds": round(stall, 3)}  # fmt: skip
            timeline.append(point)
            print(json.dumps(point), flush=True)
            last_t, last_n, stall = now, written, 0.0
    keeper.stop.set()
    keeper.join()
    keeper.store.close()
    store.close()
    total = [round(p["db_mb"] + p["wal_mb"], 2) for p in timeline]
    half = len(timeline) // 2
    rates = [p["samples_per_second"] for p in timeline]
    return {
        "benchmark": "retention",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": _cpus()},
        "samples_written": written,
        "feedback_written": labelled,
        "seconds": timeline[-1]["seconds"],
        "mean_samples_per_second": round(written / timeline[-1]["seconds"], 1),
        "max_db_plus_wal_mb_first_half": max(total[:half] or total),
        "max_db_plus_wal_mb_second_half": max(total[half:]),
        "final_db_plus_wal_mb": total[-1],
        "size_plateaued": max(total[half:]) <= 1.1 * max(total[:half] or total),
        # the WAL is sampled at arbitrary moments between checkpoints; the database file is the trend
        "max_db_mb_first_half": max(p["db_mb"] for p in timeline[: max(1, half)]),
        "max_db_mb_second_half": max(p["db_mb"] for p in timeline[half:]),
        "max_wal_mb": max(p["wal_mb"] for p in timeline),
        "samples_per_second_first_quarter": round(float(np.median(rates[: max(1, len(rates) // 4)])), 1),
        "samples_per_second_last_quarter": round(float(np.median(rates[-max(1, len(rates) // 4) :])), 1),
        "max_write_seconds": max(p["max_write_seconds"] for p in timeline),
        "retention_passes": len(keeper.passes),
        "retention_pass_seconds_max": round(max((p["seconds"] for p in keeper.passes), default=0.0), 3),
        "retention_pass_seconds_median": round(
            float(np.median([p["seconds"] for p in keeper.passes] or [0])), 3
        ),
        "timeline": timeline,
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=64, help="inputs per transaction (the server's micro-batch)")
    p.add_argument("--features", type=int, default=64, help="float32 features per sample (digits: 64)")
    p.add_argument("--feedback", type=float, default=0.1, help="share of predictions that get a label")
    p.add_argument("--keep-samples", type=int, default=100_000, help="RetentionPolicy.max_samples")
    p.add_argument("--retention-every", type=float, default=60.0, help="seconds between retention passes")
    p.add_argument("--report-every", type=int, default=50_000)
    p.add_argument("--db-url", default=None, help="default: SQLite in a temporary directory")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="default: a temporary directory, removed after"
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/retention.json"))
    args = p.parse_args()
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        result = run(args, args.data_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="lifelong-retention-") as tmp:
            result = run(args, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k not in ("timeline", "config", "machine")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
