"""Stream rows of a CSV (or .npz) file to a running ``lifelong`` server, as production traffic would arrive.

Each batch of rows goes to ``POST /v1/predict``; the true label of a row is sent ``--label-delay``
rows later with ``POST /v1/feedback`` (batch form), as labels arrive late in real life. Every
``--every`` rows it prints the accuracy of the answers in that window and the model versions that
gave them, so you see the drift hit and the worker's new version take over.

    python client.py stream.csv --data-dir lifelong-data            # token from lifelong-data/token
    LIFELONG_TOKEN=... python client.py stream.csv --url http://127.0.0.1:8000

Exit code 0 after the whole file; 1 with the server's message when it refuses a request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def token_of(args: argparse.Namespace) -> str | None:
    """``--token``, else ``LIFELONG_TOKEN``, else the file ``lifelong up`` keeps in its data directory."""
    if args.token:
        return str(args.token)
    if os.environ.get("LIFELONG_TOKEN"):
        return os.environ["LIFELONG_TOKEN"]
    path = args.data_dir / "token"
    return path.read_text().strip() if path.is_file() else None


def read_rows(path: Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and labels: an ``.npz`` with arrays ``x`` (any sample shape) and ``y``, or a CSV with a
    header row whose other columns are the features."""
    if path.suffix == ".npz":
        with np.load(path) as arrays:
            return arrays["x"], arrays["y"].astype(int)
    header = path.open().readline().strip().split(",")
    if label_column not in header:
        sys.exit(f"{path}: no column {label_column!r}; columns are {', '.join(header)}")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    j = header.index(label_column)
    return np.delete(table, j, axis=1), table[:, j].astype(int)


def call(client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    """POST ``body``; on a refusal print the server's message (``{"error": {"type", "message"}}``) and exit."""
    try:
        r = client.post(path, json=body)
    except httpx.TransportError as err:
        sys.exit(f"cannot reach {client.base_url}{path} ({err}); is `lifelong up` running there?")
    if r.status_code >= 400:
        try:
            error = r.json()["error"]
            message = f"{error['type']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            message = r.text[:500]
        sys.exit(f"{path} answered {r.status_code}: {message}")
    return r.json() if r.content else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", type=Path, help="rows to stream: a CSV with a label column, or an .npz (x, y)")
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument(
        "--data-dir", type=Path, default=Path("lifelong-data"), help="where to find the token file"
    )
    p.add_argument(
        "--token", default=None, help="bearer token (default: LIFELONG_TOKEN, then DATA_DIR/token)"
    )
    p.add_argument("--label-column", default="label")
    p.add_argument("--label-delay", type=int, default=100, help="rows between a prediction and its label")
    p.add_argument("--batch", type=int, default=20, help="rows per predict request")
    p.add_argument("--rate", type=float, default=50.0, help="rows per second (0: as fast as possible)")
    p.add_argument("--every", type=int, default=250, help="rows per printed accuracy window")
    p.add_argument("--summary", type=Path, default=None, help="also write the windows as JSON here")
    args = p.parse_args(argv)

    x, y = read_rows(args.csv, args.label_column)
    token = token_of(args)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    correct: list[bool] = []
    versions: list[int] = []
    pending: deque[tuple[int, str, int]] = deque()  # (row index its label is due at, prediction id, label)
    windows: list[dict[str, Any]] = []
    print(f"{'rows':>11}  {'accuracy':>8}  versions that answered", flush=True)
    start = time.monotonic()
    with httpx.Client(base_url=args.url, headers=headers, timeout=60) as client:
        for i in range(0, len(x), args.batch):
            answer = call(client, "/v1/predict", {"inputs": x[i : i + args.batch].tolist()})
            for k, pred in enumerate(answer["predictions"]):
                correct.append(pred["label"] == y[i + k])
                versions.append(pred["version"])
                pending.append((i + k + args.label_delay, pred["id"], int(y[i + k])))
            done = len(correct)
            due = []
            while pending and (pending[0][0] < done or done == len(x)):  # the last labels arrive at the end
                _, pid, label = pending.popleft()
                due.append({"prediction_id": pid, "label": label})
            if due:
                call(client, "/v1/feedback", {"feedback": due})
            while len(correct) >= (len(windows) + 1) * args.every or (
                done == len(x) and len(windows) * args.every < done
            ):
                a, b = len(windows) * args.every, min(done, (len(windows) + 1) * args.every)
                served = sorted(set(versions[a:b]))
                windows.append(
                    {"start": a, "end": b, "accuracy": float(np.mean(correct[a:b])), "versions": served}
                )
                print(f"{a:>5}-{b - 1:<5}  {windows[-1]['accuracy']:8.3f}  "
                      f"{', '.join(f'v{v}' for v in served)}", flush=True)  # fmt: skip
            if args.rate > 0:  # pace the stream: the worker learns in wall-clock time, as in production
                ahead = done / args.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    summary = {"rows": len(correct), "accuracy": float(np.mean(correct)), "versions": sorted(set(versions)),
               "windows": windows}  # fmt: skip
    print(f"{len(correct)} rows, accuracy {summary['accuracy']:.3f}, versions {summary['versions']}")
    if args.summary is not None:
        args.summary.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
