"""The table of benchmarks/mir_reference.py's runs: python benchmarks/results/mir-reference/summarize.py"""

import glob
import json

import numpy as np

keys = [
    "lifelong_mir",
    "authors_mir",
    "authors_mir_noexcl",
    "authors_er",
    "authors_er_noexcl_mean20",
    "lifelong_replay10",
]
for lr in ["0.1", "0.05"]:
    for seeds, name in [((0, 1, 2), "seeds 0-2"), (tuple(range(10)), "seeds 0-9")]:
        runs = []
        for name_ in sorted(glob.glob(f"benchmarks/results/mir-reference/full_s*_lr{lr}.json")):
            with open(name_) as f:
                runs.append(json.load(f))
        rs = [r for r in runs if r["seed"] in seeds]
        print(f"lr={lr} {name} n={len(rs)} max one-step diff={max(r['one_step_maxdiff'] for r in rs):.1e}")
        for k in keys:
            v = np.array([r[k] for r in rs]) * 100
            print(f"  {k:26s} {v.mean():6.2f} ± {v.std(ddof=1):5.2f}   " + " ".join(f"{x:.1f}" for x in v))
        d = np.array([r["lifelong_mir"] - r["authors_mir"] for r in rs]) * 100
        print(
            f"  paired lifelong-authors MIR: {d.mean():+.2f} ± {d.std(ddof=1) / np.sqrt(len(d)):.2f} (s.e.)"
        )
