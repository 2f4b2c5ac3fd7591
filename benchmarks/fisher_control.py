"""Does EWC's Fisher estimator matter on permuted Fashion-MNIST, or only the random stream it uses?

``fisher="sampled"`` draws one label per sample from the learner's generator, which then shuffles the
next experiences differently from ``fisher="true"`` (no draws). The control runs the exact Fisher
with the same draws made and discarded: if it scores like ``sampled``, a gap between the two
estimators is the data order's, not the estimator's. Validation split, the tuning's seeds and
settings (tune20's best: online EWC, lambda 10, lr 0.03, proximal step).

python benchmarks/fisher_control.py --out benchmarks/results/fisher_control.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import lifelong.strategies._importance as importance
from strategies import _run

_targets = importance._targets


def _targets_with_discarded_draw(
    learner: Any, model: Any, x: Tensor, y: Tensor, mask: Tensor, kind: str
) -> Any:
    """The exact Fisher's targets, after the draw ``sampled`` makes (its labels thrown away)."""
    _targets(learner, model, x, y, mask, "sampled")
    return _targets(learner, model, x, y, mask, kind)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="10,11,12,13")
    p.add_argument("--out", default="benchmarks/results/fisher_control.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    for variant in ("true", "sampled", "true + discarded draw"):
        importance._targets = _targets_with_discarded_draw if variant.endswith("draw") else _targets
        for seed in (int(s) for s in args.seeds.split(",")):
            params = {"lam": 10.0, "online": True, "penalty_step": "proximal", "lr": 0.03,
                      "fisher": variant.split()[0]}  # fmt: skip
            job = {"benchmark": "permuted-fmnist", "strategy": "ewc", "seed": seed, "buffer": 500, "epochs": 0,
                   "train_fraction": 0.2, "validation": 0.1, "params": params}  # fmt: skip
            acc = _run(job)["metrics"]["acc"]
            rows.append({"variant": variant, "seed": seed, "validation_acc": acc})
            print(f"{variant:22s} seed {seed}: validation ACC {acc:.4f}", flush=True)
    summary = {
        v: round(statistics.mean(r["validation_acc"] for r in rows if r["variant"] == v), 4)
        for v in dict.fromkeys(r["variant"] for r in rows)
    }
    print(json.dumps(summary))
    Path(args.out).write_text(json.dumps({"runs": rows, "mean": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
