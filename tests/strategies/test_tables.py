"""Embedding tables' per-sample gradients row by row: the same Fisher and MAS importances as the
dense per-sample gradients, for every way a table is looked up."""

import pytest
import torch
from torch import nn

from lifelong.data import from_tensors
from lifelong.learn.learner import Learner
from lifelong.strategies import _importance
from lifelong.strategies._tables import embedding_tables
from lifelong.strategies.mas import _squared_output_norm


class Tokens(nn.Module):
    """A bag of words and a sequence table, the second looked up twice in one forward pass."""

    def __init__(self, mode: str = "mean", pad: int | None = 0, vocab: int = 30) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, 8, mode=mode, padding_idx=pad)
        self.seq = nn.Embedding(vocab, 4, padding_idx=pad)
        self.out = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.seq(x).sum(1) + self.seq(x[:, :2]).mean(1)
        return self.out(torch.cat([self.bag(x), seq], 1))


def _data(n: int = 40):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 30, (n, 7), generator=g)
    x[:, 5:] = 0  # padding
    x[3] = 0  # a document of padding only
    return from_tensors(x, torch.randint(0, 3, (n,), generator=g))


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-9), k


@pytest.mark.parametrize(("mode", "pad"), [("mean", 0), ("sum", 0), ("mean", None)])
@pytest.mark.parametrize("kind", ["empirical", "true"])
def test_row_wise_fisher_equals_the_dense_one(mode: str, pad: int | None, kind: str) -> None:
    torch.manual_seed(0)
    learner = Learner(Tokens(mode, pad), [], allow_new_classes=False)
    data, index = _data(), torch.arange(40)
    row_wise = _importance._per_sample_fisher(learner, data, index, kind, 1 << 24, row_wise=True)
    dense = _importance._per_sample_fisher(learner, data, index, kind, 1 << 24, row_wise=False)
    _close(row_wise, dense)
    assert float(row_wise["bag.weight"][1:].sum()) > 0  # rows were touched
    if pad is not None:
        assert float(row_wise["bag.weight"][pad].abs().sum()) == 0.0  # the padding row gets no gradient


def test_row_wise_mas_importance_equals_the_dense_one() -> None:
    torch.manual_seed(0)
    learner = Learner(Tokens(), [], allow_new_classes=False)
    row_wise = _importance.mean_abs_gradient(learner, _data(), _squared_output_norm, chunk=16)
    dense = _importance.mean_abs_gradient(learner, _data(), _squared_output_norm, chunk=16, row_wise=False)
    _close(row_wise, dense)


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, 3)
        self.out = nn.Linear(3, 30, bias=False)
        self.out.weight = self.emb.weight  # tied: its gradient is dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.emb(x).mean(1))[:, :3]


def test_tables_left_to_the_dense_path() -> None:
    names = {"bag.weight", "seq.weight", "out.weight"}
    assert set(embedding_tables(Tokens(), names)) == {"bag.weight", "seq.weight"}
    assert set(embedding_tables(Tokens(mode="max"), names)) == {"seq.weight"}
    assert embedding_tables(Tied(), {"emb.weight"}) == {}
    capped = Tokens()
    capped.seq.max_norm = 1.0  # its forward renormalises the rows it looks up
    assert set(embedding_tables(capped, names)) == {"bag.weight"}


class Offsets(nn.Module):
    """A bag of words called the flat way, ids and offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(30, 4, mode="mean")
        self.out = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offsets = torch.arange(0, x.numel(), x.shape[1])
        return self.out(self.bag(x.reshape(-1), offsets))


def test_a_table_called_with_offsets_falls_back_to_dense_gradients() -> None:
    torch.manual_seed(0)
    learner = Learner(Offsets(), [], allow_new_classes=False)
    fisher = _importance.fisher_diagonal(learner, _data(), "empirical")
    dense = _importance._per_sample_fisher(
        learner, _data(), torch.arange(40), "empirical", 1 << 24, row_wise=False
    )
    _close(fisher, dense)
    mas = _importance.mean_abs_gradient(learner, _data(), _squared_output_norm)
    _close(mas, _importance.mean_abs_gradient(learner, _data(), _squared_output_norm, row_wise=False))
