"""Benchmark grids: scenarios x strategies x seeds, tables and plots."""
