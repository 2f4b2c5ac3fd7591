"""Token-id inputs for models that start with an embedding (text, categorical codes).

The learner's data path carries inputs as floats (it casts every batch, memory sample and
prediction input to the model's floating dtype, and strategies call the model on such tensors
directly), which ``nn.Embedding`` and ``nn.EmbeddingBag`` refuse. Rather than teach every path
about integers, each embedding takes its input back as int64 ids here. Ids travel in a dtype that
holds them exactly (:func:`carrier_dtype`: float32, float64 beyond 2**24 rows; never a half-precision
model's own), and any id that is not a whole number in ``[0, num_embeddings)`` is refused with a
DataError instead of torch's index error or a silent truncation.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from lifelong.errors import DataError

EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)
_MARK = "_lifelong_token_ids"  # set on an embedding once its hook is registered


def accept_token_ids(model: nn.Module) -> bool:
    """Let every embedding of ``model`` take float-carried token ids (idempotent); whether it has any."""
    found = False
    for module in model.modules():
        if isinstance(module, EMBEDDINGS):
            found = True
            if not getattr(module, _MARK, False):
                module.register_forward_pre_hook(_as_ids)
                setattr(module, _MARK, True)
    return found


def input_embedding(model: nn.Module) -> nn.Module | None:
    """The embedding ``model`` starts with (its first module holding parameters), or None: the layer
    whose ids the learner can check before any training step, so that bad ids change nothing."""
    for module in model.modules():
        if next(module.parameters(recurse=False), None) is not None:
            return module if isinstance(module, EMBEDDINGS) else None
    return None


def carrier_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype that carries ``model``'s input token ids exactly (None: inputs are not ids):
    float32 up to 2**24 rows, float64 beyond, whatever the model's own dtype. A bfloat16 or float16
    model must not get its ids in its dtype: bfloat16 holds whole numbers exactly only to 256, so id
    29999 would arrive as 29952."""
    embedding = input_embedding(model)
    if embedding is None:
        return None
    return torch.float32 if int(getattr(embedding, "num_embeddings", 0)) <= 2**24 else torch.float64


def check_ids(embedding: nn.Module, x: Tensor, where: str, *, for_client: bool = False) -> None:
    """A DataError unless ``x`` holds whole numbers in ``[0, num_embeddings)`` of ``embedding``.

    ``for_client``: the message says what is wrong in a request (which sample, which value) and how
    to send it, without the library's advice (``from_tensors``, ``num_embeddings``) that a client
    of the HTTP API cannot act on."""
    n = int(getattr(embedding, "num_embeddings", 0))
    name = type(embedding).__name__
    fractional = x != x.round() if x.dtype.is_floating_point else None
    if fractional is not None and bool(fractional.any()):
        value = x[fractional].flatten()[0].item()
        if for_client:
            i = int(fractional.reshape(len(x), -1).any(1).nonzero()[0])
            raise DataError(
                f"{where}: the model takes token ids, which are whole numbers, but sample {i} holds "
                f"{value:g}; send each id as an integer, as it is (not scaled or normalised)"
            )
        raise DataError(
            f"{where}: {name} takes token ids, but received fractional values (e.g. "
            f"{value:g}); give the ids as integers, unscaled: "
            "from_tensors scales uint8 inputs by 1/255 unless given scale=1"
        )
    outside = (x < 0) | (x >= n)
    if len(x) and bool(outside.any()):
        negative = bool((x < 0).any())
        if for_client:
            i = int(outside.reshape(len(x), -1).any(1).nonzero()[0])
            raise DataError(
                f"{where}: the model takes token ids 0..{n - 1}, but sample {i} holds "
                f"{_id_text(x[i][outside[i]].flatten()[0].item())}"
                + ("; ids are never negative" if negative else "")
                + "; send an unknown token as the id the model reserves for it"
            )
        raise DataError(
            f"{where}: {name}({n}, ...) takes token ids 0..{n - 1}, but received ids in "
            f"{int(x.min())}..{int(x.max())}; "
            + (
                "ids are never negative: map unknown tokens to a reserved id"
                if negative
                else "map unknown tokens to a reserved id"
                # a vocabulary that grew a little, not a stray id of 2**25 (a table that size is no fix)
                + (
                    f", or build the embedding with num_embeddings > {int(x.max())}"
                    if x.max() < 2 * n
                    else ""
                )
            )
        )


def _id_text(value: float) -> str:
    """An id as a client wrote it: whole numbers as integers, never '1.23457e+06' for 1234567 (from 2**24
    on, float32 carries them rounded: said so); fractional or huge values as ``%g``."""
    if not (abs(value) < 2**53 and value == int(value)):  # NaN fails the first test, before int() could raise
        return f"{value:g}"
    return str(int(value)) + (
        " (rounded in transit: ids this large are not exact)" if abs(value) >= 2**24 else ""
    )


def _as_ids(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Forward pre-hook: the first argument as int64 ids, checked against the embedding's size."""
    if not args or not isinstance(args[0], Tensor):
        return None
    x = args[0]
    with contextlib.suppress(RuntimeError):  # under torch.func.vmap (EWC's Fisher) data-dependent checks fail
        check_ids(module, x, "forward")
    if x.dtype in (torch.int64, torch.int32):
        return None
    return (x.long(), *args[1:])
