"""Tables and plots of benchmark results (matplotlib imported only when plotting)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = [
    ("acc", "ACC"),
    ("bwt", "BWT"),
    ("fwt", "FWT"),
    ("forgetting", "Forgetting"),
    ("plasticity", "Plasticity"),  # accuracy just after learning each experience: 0 on one learns nothing new
    ("intransigence", "Intransigence"),  # only with a cumulative run of the same seeds (the reference)
    ("train_seconds_per_epoch", "s/epoch"),
]


def columns(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """The metrics any row has (a results.json from before FWT was reported has none of it)."""
    return [(k, name) for k, name in COLUMNS if any(k in r for r in rows)]


def _cell(row: dict[str, Any], key: str) -> str:
    if key == "train_seconds_per_epoch":
        return f"{row[key]:.2f}"
    return _fmt(row, key) if key in row else "-"


def _fmt(row: dict[str, Any], key: str) -> str:
    if row.get("diverged"):  # a diverged seed makes the mean meaningless: never print it as a score
        return "diverged"
    if row.get("seeds", 2) == 1:  # one seed: no spread was measured, so none is printed (not "± 0.000")
        return f"{row[key]:.3f}"
    return f"{row[key]:.3f} ± {row[key + '_std']:.3f}"


def rich_table(rows: Sequence[dict[str, Any]]) -> Any:
    from rich.table import Table

    one_seed = all(r.get("seeds", 2) == 1 for r in rows)
    table = Table(title="one seed each (no spread measured)" if one_seed else "mean ± std over seeds")
    shown = columns(rows)
    for col in ["benchmark", "strategy", *(c[1] for c in shown), "extra params", "buffer bytes"]:
        table.add_column(col, justify="left" if col in ("benchmark", "strategy") else "right")
    for r in rows:
        cells = [_cell(r, k) for k, _ in shown]
        table.add_row(r["benchmark"], r["strategy"], *cells, f"{r['extra_parameters']:.0f}",
                      f"{r['buffer_bytes']:.0f}")  # fmt: skip
    return table


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    shown = columns(rows)
    head = ["benchmark", "strategy", *(name for _, name in shown), "extra params", "buffer bytes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["benchmark"], r["strategy"], *(_cell(r, k) for k, _ in shown),
                 f"{r['extra_parameters']:.0f}", f"{r['buffer_bytes']:.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """Accuracy-matrix heatmap per (benchmark, strategy) and ACC after each experience per benchmark."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    out.mkdir(parents=True, exist_ok=True)
    written = []
    groups: dict[tuple[str, str], list[np.ndarray]] = {}
    for r in runs:
        groups.setdefault((r["benchmark"], r["strategy"]), []).append(np.asarray(r["accuracy_matrix"]))
    for (bench, strat), mats in groups.items():
        m = np.mean(mats, axis=0)
        fig, ax = plt.subplots(figsize=(4, 3.4))
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
        seeds = "one seed" if len(mats) == 1 else f"mean of {len(mats)} seeds"  # a cell is no one run's
        ax.set(xlabel="evaluated on experience", ylabel="after training experience",
               title=f"{bench}: {strat}\n({seeds})")  # fmt: skip
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        path = out / f"matrix-{bench}-{strat}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    for bench in sorted({b for b, _ in groups}):
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for (b, strat), mats in groups.items():
            if b != bench:
                continue
            m = np.mean(mats, axis=0)
            # ACC after experience i: mean accuracy over the experiences seen so far
            acc = [m[i, : i + 1].mean() for i in range(min(m.shape))]
            ax.plot(range(1, len(acc) + 1), acc, marker="o", label=strat)
        ax.set(
            xlabel="experiences trained",
            ylabel="average accuracy on seen experiences",
            ylim=(0, 1),
            title=f"{bench} (mean over seeds)",
        )
        locator = ax.xaxis.get_major_locator()  # the default AutoLocator is a MaxNLocator
        if isinstance(locator, MaxNLocator):
            locator.set_params(integer=True)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"acc-{bench}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def pivot_table(rows: Sequence[dict[str, Any]], benchmarks: Sequence[str], metric: str = "acc") -> str:
    """One row per strategy, one column per benchmark: ``metric`` as mean ± std ("-" where unsupported)."""
    cells: dict[str, dict[str, str]] = {}
    for r in rows:
        cells.setdefault(r["strategy"], {})[r["benchmark"]] = _fmt(r, metric)
    lines = ["| strategy | " + " | ".join(benchmarks) + " |", "|---|" + "---|" * len(benchmarks)]
    for strategy in sorted(cells):
        lines.append(f"| {strategy} | " + " | ".join(cells[strategy].get(b, "-") for b in benchmarks) + " |")
    return "\n".join(lines)
