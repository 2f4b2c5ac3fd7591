"""Models whose inputs are token ids: the learner's float-carried inputs reach embeddings as int64."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from lifelong.data import from_tensors
from lifelong.data.scenarios import class_incremental
from lifelong.errors import DataError
from lifelong.learn import Learner
from lifelong.learn.tokens import accept_token_ids, check_ids
from lifelong.strategies import EWC, LwF, Replay

VOCAB, LENGTH, CLASSES = 30, 6, 4


class Bag(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(VOCAB, 8, mode="mean")
        self.classifier = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def tokens(n: int = 160) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % CLASSES
    x = y[:, None] * 7 + torch.randint(0, 7, (n, LENGTH), generator=g)  # each class has its own tokens
    return x, y


@pytest.mark.parametrize("strategy", [Replay(40), EWC(lam=1.0), LwF()], ids=["replay", "ewc", "lwf"])
def test_token_model_trains_on_a_scenario_of_int64_ids(strategy):
    x, y = tokens()
    torch.manual_seed(0)
    learner = Learner(Bag(), [strategy], lr=0.5, epochs=3)
    result = learner.fit(class_incremental(from_tensors(x, y), n_experiences=2, seed=0))
    assert not result.diverged
    assert result.accuracy_matrix[0][0] > 0.9  # the first two classes' own tokens are learned
    assert learner.predict(x[:4].numpy()).shape == (4,)


def test_token_model_takes_partial_fit_and_predict_from_lists():
    x, y = tokens(40)
    learner = Learner(Bag(), lr=0.5)
    for _ in range(5):
        learner.partial_fit(x.tolist(), y.tolist())
    assert (learner.predict(x.tolist()) == y).float().mean() > 0.9


def test_token_ids_outside_the_vocabulary_are_a_data_error_naming_the_size():
    learner = Learner(Bag(), lr=0.1)
    with pytest.raises(
        DataError, match=r"takes token ids 0\.\.29, but received ids in 0\.\.40.*num_embeddings > 40"
    ):
        learner.partial_fit(np.array([[0, 40, 1, 2, 3, 4]]), [0])
    assert learner.samples_trained == 0 and learner.input_shape is None  # refused before any change


def test_scaled_token_ids_are_refused_not_truncated():
    x, y = tokens()
    learner = Learner(Bag(), lr=0.1)
    with pytest.raises(DataError, match="fractional.*scale=1"):  # uint8 ids are scaled by 1/255 by default
        learner.fit(class_incremental(from_tensors(x.to(torch.uint8), y), n_experiences=2))


def test_accept_token_ids_registers_once_and_only_on_embeddings():
    model = Bag()
    assert accept_token_ids(model) and accept_token_ids(model)
    assert len(model.embed._forward_pre_hooks) == 1
    assert not accept_token_ids(nn.Linear(3, 2))
    assert model(torch.tensor([[1.0, 2.0]])).shape == (1, CLASSES)  # float-carried ids are taken as ids


def test_a_negative_token_id_is_not_answered_with_a_bigger_vocabulary():
    """Was: id -1 (an unknown token's usual marker) got "build the embedding with num_embeddings > 3"."""
    learner = Learner(Bag(), lr=0.1)
    with pytest.raises(DataError, match=r"received ids in -1\.\.3; ids are never negative") as e:
        learner.partial_fit(np.array([[0, -1, 1, 2, 3, 3]]), [0])
    assert "num_embeddings" not in str(e.value)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_half_precision_model_gets_its_token_ids_exactly(dtype):
    """Was: ids travelled in the model's dtype, so a bfloat16 model saw id 29999 as 29952 (and
    refused it as outside a vocabulary of 30000, itself rounded to 29952)."""
    model = nn.Sequential(nn.EmbeddingBag(30_000, 8), nn.Linear(8, 2)).to(dtype)
    seen: list[torch.Tensor] = []
    model[0].register_forward_hook(lambda module, args, out: seen.append(args[0]))
    learner = Learner(model, [Replay(8)], lr=0.1)
    x = [[29_999, 12_345, 3], [1, 2, 2_049]] * 4
    learner.partial_fit(x, [0, 1] * 4)
    learner.predict(x[:2])
    assert seen[0][:2].tolist() == x[:2] and seen[-1].tolist() == x[:2]
    assert learner.predict_logits(torch.tensor(x[:2])).dtype == dtype  # the model still computes in its own


@pytest.mark.parametrize("bad", [1_234_567, 10_000_000, 2**24 - 1, -1_000_000])
def test_an_id_outside_the_vocabulary_is_named_as_the_client_sent_it(bad):
    """Was: the HTTP message formatted the id with ``%g``: 'sample 1 holds 1.23457e+06' for id 1234567
    (and '1e+07', '-1e+06'), a number the client never sent and cannot look up. Whole numbers below
    2**24 are exact in the float32 that carries ids, so the message names them as sent."""
    x = torch.tensor([[0.0, 1.0], [2.0, float(bad)]])  # float32, as ids travel
    with pytest.raises(DataError, match=rf"but sample 1 holds {bad};") as e:
        check_ids(nn.EmbeddingBag(5000, 4), x, "inputs", for_client=True)
    assert "e+" not in str(e.value)


def test_an_embedding_declared_after_another_layer_is_named_in_a_warning() -> None:
    """The input embedding is the first layer declared with parameters; a model declaring its head
    first had its ids taken as features without a word (in bfloat16, id 29999 reached it as 29952)."""

    class HeadFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.classifier = nn.Linear(48, 3)
            self.emb = nn.Embedding(50, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.emb(x).flatten(1))

    with pytest.warns(UserWarning, match="first layer it declares with parameters is a Linear"):
        Learner(HeadFirst())
    wide = HeadFirst()
    wide.emb = nn.Embedding(500, 8)  # ids past 100, the inputs' scale warning's bound
    with pytest.warns(UserWarning, match="first layer it declares"):
        learner = Learner(wide, lr=0.1)
    with warnings.catch_warnings():  # and then not told to standardise its ids (a trial: |x| = 1998)
        warnings.simplefilter("error")
        learner.partial_fit(torch.randint(100, 500, (8, 6)).float(), torch.arange(8) % 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Learner(nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(48, 3)))


def test_a_stray_huge_id_is_not_answered_with_a_vocabulary_that_large():
    """A stray id of 2**25 advised num_embeddings > 33554432, and the HTTP message showed 16777217 as
    1.67772e+07."""
    from lifelong.learn.tokens import check_ids

    learner = Learner(Bag(), lr=0.1)
    with pytest.raises(DataError, match=r"map unknown tokens to a reserved id$"):
        learner.partial_fit(np.array([[0, 2**25, 1, 2, 3, 4]]), [0])
    with pytest.raises(DataError, match=r"sample 0 holds 16777216 \(rounded in transit"):
        check_ids(Bag().embed, torch.tensor([[1.0, 16777217.0]]), "inputs", for_client=True)
