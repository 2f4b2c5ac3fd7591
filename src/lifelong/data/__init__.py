"""Datasets (real and user-supplied) and the scenarios that cut them into experiences."""

from lifelong.data.dataset import Batch, Dataset, Split, as_split, concat, from_tensors, from_torch
from lifelong.data.digits import digits
from lifelong.data.files import Table, load_table
from lifelong.data.idx_datasets import fashion_mnist, mnist

__all__ = [
    "Batch",
    "Dataset",
    "Split",
    "Table",
    "as_split",
    "concat",
    "digits",
    "fashion_mnist",
    "from_tensors",
    "from_torch",
    "load_table",
    "mnist",
]
