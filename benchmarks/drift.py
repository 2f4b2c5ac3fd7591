"""Drift detection benchmark: detection delay and false alarms of lifelong's monitors.

Two parts:

1. River's synthetic streams with known abrupt drifts (SEA concepts 0->1->2->3 and random
   Hyperplanes chained with ``ConceptDriftStream``, plus a stationary SEA stream). An online
   classifier learns prequentially (predict, then learn); its 0/1 errors feed ADWIN, DDM and
   Page-Hinkley through :class:`lifelong.monitor.PerformanceMonitor`.
2. The Fashion-MNIST drifting stream (digits when Fashion-MNIST is missing): a fixed MLP trained
   on the base phase's distribution; its errors feed the same detectors, and KS (pixels),
   MMD (pixels and the MLP's hidden embedding) and PSI (embedding) compare consecutive windows.

A detection in ``[t, t + tolerance)`` after a true drift ``t`` counts for that drift (the first
gives the delay, later ones are "redundant"); any other detection is a false alarm, reported per
10,000 samples of the stationary remainder. Run: ``python benchmarks/drift.py [--out PATH]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from river import linear_model, naive_bayes, preprocessing
from river.datasets import synth
from torch import nn

from lifelong.data.streams import make_stream
from lifelong.monitor import DETECTORS, DataDriftMonitor, KSDrift, MMDDrift, PerformanceMonitor, PSIDrift

WARMUP = 1000  # samples the online classifier learns from before its errors are monitored
SEGMENT = 10_000  # samples between drifts in the River streams
WIDTH = 100  # ConceptDriftStream transition width: the drift point is exact to about +-WIDTH/2


def score(detections: Sequence[int], drifts: Sequence[int], n: int, tolerance: int) -> dict[str, Any]:
    """Delays per true drift (None when missed), false alarms and their rate per 10,000 stationary samples."""
    delays: list[int | None] = []
    claimed: set[int] = set()
    for t in drifts:
        hits = [d for d in detections if t <= d < t + tolerance]
        delays.append(hits[0] - t if hits else None)
        claimed.update(hits)
    false_alarms = [d for d in detections if d not in claimed]
    stationary = n - sum(min(tolerance, n - t) for t in drifts)
    return {
        "detections": list(detections),
        "delays": delays,
        "missed": sum(d is None for d in delays),
        "false_alarms": len(false_alarms),
        "false_alarms_per_10k": round(len(false_alarms) / stationary * 10_000, 2) if stationary else None,
        "redundant": len(detections) - len(false_alarms) - sum(d is not None for d in delays),
        "stationary_samples": stationary,
    }


def detect(errors: Iterable[bool], detector: str) -> list[int]:
    monitor = PerformanceMonitor(detector)
    for e in errors:
        monitor.update(e)
    return monitor.detections


# --- Part 1: River synthetic streams -------------------------------------------------------------


def chain(concepts: Sequence[Any], seed: int) -> Any:
    """Concepts one after the other: WARMUP + SEGMENT samples of the first, SEGMENT of each next."""
    stream = concepts[-1]
    for i in range(len(concepts) - 2, -1, -1):
        position = SEGMENT + (WARMUP if i == 0 else 0)
        stream = synth.ConceptDriftStream(concepts[i], stream, position=position, width=WIDTH, seed=seed + i)
    return stream


def river_streams(seed: int) -> dict[str, tuple[Any, int]]:
    """name -> (stream, number of concepts)."""
    sea = [synth.SEA(variant=v, noise=0.1, seed=seed * 10 + v) for v in range(4)]
    planes = [synth.Hyperplane(seed=seed * 10 + k, n_features=10, noise_percentage=0.05) for k in range(3)]
    return {
        "sea-abrupt": (chain(sea, seed), 4),
        "hyperplane-abrupt": (chain(planes, seed), 3),
        "sea-stationary": (synth.SEA(variant=0, noise=0.1, seed=seed * 10), 4),
    }


def prequential_errors(stream: Any, n: int, model_name: str) -> list[bool]:
    """Predict-then-learn over WARMUP + n samples; the errors of the last n."""
    if model_name == "nb":
        model: Any = naive_bayes.GaussianNB()
    else:
        model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    errors = []
    for x, y in stream.take(WARMUP + n):
        errors.append(model.predict_one(x) != y)
        model.learn_one(x, y)
    return errors[WARMUP:]


def bench_river(seeds: int, model_name: str, tolerance: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for seed in range(seeds):
        for name, (stream, k) in river_streams(seed).items():
            n = SEGMENT * k
            drifts = [] if name.endswith("stationary") else [SEGMENT * i for i in range(1, k)]
            errors = prequential_errors(stream, n, model_name)
            entry = results.setdefault(
                name, {"n": n, "drifts": drifts, "error_rate_per_segment": [], "runs": {}}
            )
            entry["error_rate_per_segment"].append(
                [round(float(np.mean(errors[i : i + SEGMENT])), 4) for i in range(0, n, SEGMENT)]
            )
            for detector in DETECTORS:
                run = score(detect(errors, detector), drifts, n, tolerance)
                entry["runs"].setdefault(detector, []).append(run)
    for entry in results.values():
        entry["detectors"] = {d: summarise(runs) for d, runs in entry.pop("runs").items()}
    return results


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean/median delay over all seeds and drifts, misses and false-alarm rate."""
    delays = [d for r in runs for d in r["delays"] if d is not None]
    rates = [r["false_alarms_per_10k"] for r in runs if r["false_alarms_per_10k"] is not None]
    return {
        "mean_delay": round(statistics.mean(delays), 1) if delays else None,
        "median_delay": statistics.median(delays) if delays else None,
        "detected": f"{len(delays)}/{sum(len(r['delays']) for r in runs)}",
        "false_alarms_per_10k": round(statistics.mean(rates), 2) if rates else None,
        "per_seed": runs,
    }


# --- Part 2: the Fashion-MNIST drifting stream -----------------------------------------------------


def train_mlp(x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int = 8) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 128), nn.ReLU(), nn.Linear(128, 10))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(128):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimiser.step()
    return model.eval()


def windowed(
    monitor_fn: Callable[[], DataDriftMonitor], data: np.ndarray, window: int
) -> tuple[list[int], list[float]]:
    """Compare each window with the one before; detections at the last index of a flagged window."""
    detections, scores = [], []
    for start in range(window, len(data) - window + 1, window):
        report = monitor_fn().fit(data[start - window : start]).test(data[start : start + window])
        scores.append(round(report.score, 5))
        if report.drift:
            detections.append(start + window - 1)
    return detections, scores


def image_run(seed: int, phase_length: int, window: int, tolerance: int) -> dict[str, Any]:
    """One seed of the drifting image stream: a fixed model's errors and windowed data-drift tests."""
    stream = make_stream("fmnist-drift", seed=seed, phase_length=phase_length)
    # The model sees an independent draw of the base phase's distribution (another seed).
    base = make_stream(stream.name, seed=seed + 1000, phase_length=phase_length * 3).phase_data(0)
    model = train_mlp(base.features(), base.y, seed)
    x = torch.cat([stream.phase_data(i).features() for i in range(len(stream.phases))])
    y = torch.cat([stream.phase_data(i).y for i in range(len(stream.phases))])
    with torch.no_grad():
        embedding = model[:3](x)  # [n, 128] hidden ReLU features
        errors = (model[3](embedding).argmax(1) != y).tolist()
        tests = [stream.test_set(i) for i in range(len(stream.phases))]
        accuracy = [round(float((model(t.features()).argmax(1) == t.y).float().mean()), 4) for t in tests]
    n, drifts = len(stream), stream.boundaries[1:]
    run: dict[str, Any] = {
        "stream": stream.describe(),
        "test_accuracy_per_phase": dict(zip([p.name for p in stream.phases], accuracy)),
        "error_rate_per_phase": [
            round(float(np.mean(errors[b : b + phase_length])), 4) for b in stream.boundaries
        ],
        "performance": {d: score(detect(errors, d), drifts, n, tolerance) for d in DETECTORS},
        "data_drift": {},
    }
    pixels, emb = x.flatten(1).numpy(), embedding.numpy()
    monitors: dict[str, tuple[Callable[[], DataDriftMonitor], np.ndarray]] = {
        "ks-pixels (bh)": (lambda: KSDrift(alpha=0.05, correction="bh"), pixels),
        "mmd-pixels": (lambda: MMDDrift(alpha=0.05, n_permutations=200, seed=seed), pixels),
        "mmd-embedding": (lambda: MMDDrift(alpha=0.05, n_permutations=200, seed=seed), emb),
        "psi-embedding (max)": (lambda: PSIDrift(threshold=0.25), emb),
    }
    for name, (factory, features) in monitors.items():
        started = time.perf_counter()
        detections, scores = windowed(factory, features, window)
        run["data_drift"][name] = {
            **score(detections, drifts, n, tolerance),
            "seconds_per_test": round((time.perf_counter() - started) / len(scores), 4),
            "scores": scores,
        }
    return run


def bench_images(seeds: int, phase_length: int, window: int, tolerance: int) -> dict[str, Any]:
    runs = [image_run(seed, phase_length, window, tolerance) for seed in range(seeds)]
    first = runs[0]["stream"]
    return {
        "stream": first["name"],
        "phases": first["phases"],
        "drifts": first["boundaries"][1:],
        "n": sum(p["length"] for p in first["phases"]),
        "window": window,
        "tolerance": tolerance,
        "model": "MLP 784-128-10 trained on a separate draw of the base phase; hidden layer = embedding",
        "error_rate_per_phase": [r["error_rate_per_phase"] for r in runs],
        "test_accuracy_per_phase": [r["test_accuracy_per_phase"] for r in runs],
        "performance": {d: summarise([r["performance"][d] for r in runs]) for d in DETECTORS},
        "data_drift": {m: summarise([r["data_drift"][m] for r in runs]) for m in runs[0]["data_drift"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/drift.json")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the River streams")
    parser.add_argument(
        "--model", choices=["nb", "lr"], default="nb", help="GaussianNB or LogisticRegression"
    )
    parser.add_argument(
        "--tolerance", type=int, default=2000, help="River streams: samples a detection may lag"
    )
    parser.add_argument("--phase-length", type=int, default=3000)
    parser.add_argument("--window", type=int, default=250)
    args = parser.parse_args()
    torch.set_num_threads(2)

    started = time.perf_counter()
    result = {
        "python": platform.python_version(),
        "config": vars(args) | {"warmup": WARMUP, "segment": SEGMENT, "transition_width": WIDTH},
        "river": bench_river(args.seeds, args.model, args.tolerance),
    }
    result["images"] = bench_images(
        args.seeds, args.phase_length, args.window, tolerance=args.phase_length // 2
    )
    result["seconds"] = round(time.perf_counter() - started, 1)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print_summary(result)
    print(f"\nwrote {out} in {result['seconds']} s")


def print_summary(result: dict[str, Any]) -> None:
    print(f"{'stream':22} {'detector':22} {'detected':>9} {'mean delay':>11} {'median':>8} {'FA/10k':>8}")
    for stream, entry in result["river"].items():
        for detector, s in entry["detectors"].items():
            print(
                f"{stream:22} {detector:22} {s['detected']:>9} {s['mean_delay']!s:>11} "
                f"{s['median_delay']!s:>8} {s['false_alarms_per_10k']!s:>8}"
            )
    images = result["images"]
    name = images["stream"]
    print(
        f"\n{name} (drifts at {images['drifts']}): error rate per phase {images['error_rate_per_phase'][0]}"
    )
    for group in ("performance", "data_drift"):
        for detector, s in images[group].items():
            delays = [r["delays"] for r in s["per_seed"]]
            rate = s["false_alarms_per_10k"]
            print(f"{name:14} {detector:20} {s['detected']:>6} FA/10k {rate!s:>5}  delays {delays}")


if __name__ == "__main__":
    main()
