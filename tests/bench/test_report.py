from lifelong.bench.report import markdown_table, pivot_table

ROWS = [
    {"benchmark": "a", "strategy": "naive", "acc": 0.2, "acc_std": 0.01, "bwt": -0.9, "bwt_std": 0.0,
     "forgetting": 0.9, "forgetting_std": 0.0, "train_seconds_per_epoch": 1.0, "extra_parameters": 0,
     "buffer_bytes": 0},
    {"benchmark": "b", "strategy": "replay-500", "acc": 0.78, "acc_std": 0.02, "bwt": -0.2, "bwt_std": 0.0,
     "forgetting": 0.2, "forgetting_std": 0.0, "train_seconds_per_epoch": 1.2, "extra_parameters": 0,
     "buffer_bytes": 400000},
]  # fmt: skip


def test_pivot_puts_each_benchmark_in_a_column_and_marks_missing_cells() -> None:
    table = pivot_table(ROWS, ["a", "b"]).splitlines()
    assert table[0] == "| strategy | a | b |"
    assert "| naive | 0.200 ± 0.010 | - |" in table and "| replay-500 | - | 0.780 ± 0.020 |" in table


def test_markdown_table_has_every_column() -> None:
    table = markdown_table(ROWS)
    assert "| a | naive | 0.200 ± 0.010 | -0.900 ± 0.000 | 0.900 ± 0.000 | 1.00 | 0 | 0 |" in table


def test_one_seed_prints_no_spread() -> None:
    """With one seed nothing was measured about the spread: "± 0.000" would read as zero variance."""
    from rich.console import Console

    from lifelong.bench.report import rich_table

    one = [{**ROWS[0], "seeds": 1}]
    assert "| a | naive | 0.200 | -0.900 | 0.900 | 1.00 | 0 | 0 |" in markdown_table(one)
    console = Console(width=200, record=True)
    console.print(rich_table(one))
    text = console.export_text()
    assert "±" not in text and "one seed each" in text
