"""Self-supervised pretraining of a feature extractor on unlabelled data, before any strategy runs.

SimSiam (Chen & He, 2021, "Exploring Simple Siamese Representation Learning"): two augmented
views of each input go through the extractor and a projector; a predictor maps one view's
projection onto the other's, whose gradient is stopped; the loss is the negative cosine
similarity, symmetrised. No negatives, no momentum encoder: the stop-gradient prevents collapse.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data.dataset import Dataset
from lifelong.errors import ConfigError, TrainingError
from lifelong.learn.params import check_param


def augment(
    x: Tensor, generator: torch.Generator, noise: float = 0.1, shift: int = 2, drop: float = 0.1
) -> Tensor:
    """A random view of ``x``: shift images, drop pixels, add noise.

    ``x`` is [B, C, H, W] (images: each shifted by up to ``shift`` pixels along both axes with
    wrap-around, a random crop of the tiled image; then pixel dropout and noise) or [B, D]
    (vectors: dropout and noise only). ``noise`` is relative to the batch's standard deviation.
    """
    b = len(x)
    if x.ndim == 4 and shift > 0:
        h, w = x.shape[-2:]
        dy, dx = torch.randint(-shift, shift + 1, (2, b, 1), generator=generator)  # [B, 1] each
        rows = (torch.arange(h) + dy) % h  # [B, H]
        cols = (torch.arange(w) + dx) % w  # [B, W]
        x = x[torch.arange(b)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None],
              rows[:, None, :, None], cols[:, None, None, :]]  # fmt: skip
    if drop > 0:
        keep = torch.rand(x.shape, generator=generator) >= drop
        x = x * keep.to(x)
    if noise > 0:
        x = x + noise * x.std() * torch.randn(x.shape, generator=generator).to(x)
    return x


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(d_in, d_hidden), nn.BatchNorm1d(d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out)
    )


def _inputs(data: Any) -> Tensor:
    """Samples [N, ...] as floats: a Dataset's features (scaled), a float tensor or array as it is, uint8
    pixels scaled to [0, 1] as a Dataset scales them."""
    if isinstance(data, Dataset):
        return data.features()
    if (
        hasattr(data, "experiences")
        or hasattr(data, "train")
        or (isinstance(data, (tuple, list)) and any(isinstance(d, Dataset) for d in data))
    ):  # a Scenario, a Split or a (train, test) pair
        raise ConfigError(
            "simsiam: give one Dataset or tensor of inputs (e.g. scenario[0].train), not a scenario"
        )
    try:
        x = torch.as_tensor(data)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"simsiam: data must be a Dataset or a numeric tensor of inputs: {e}") from e
    if x.ndim < 2 or not (x.dtype.is_floating_point or x.dtype == torch.uint8):
        raise ConfigError(
            f"simsiam: data must be samples [N, features...] of numbers, got {x.dtype} {list(x.shape)}"
        )
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    if not bool(torch.isfinite(x).all()):
        raise ConfigError("simsiam: data holds NaN or infinite values; clean them first")
    return x


def simsiam(
    model_features: nn.Module,
    data: Dataset | Tensor,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 0.05,
    dim: int = 64,
    pred_dim: int = 16,
    augmentation: dict[str, Any] | None = None,
    seed: int = 0,
) -> list[float]:
    """Pretrain ``model_features`` in place with SimSiam on unlabelled ``data``; return the loss per epoch.

    Parameters
    ----------
    model_features : the extractor to train (e.g. ``model.features`` of an MLP or CNN).
    data : a :class:`Dataset` (labels are ignored) or a float tensor of inputs.
    epochs, batch_size, lr : SGD (momentum 0.9) over shuffled mini-batches.
    dim, pred_dim : width of the projector's output and of the predictor's bottleneck.
    augmentation : keyword arguments of :func:`augment` (``noise``, ``shift``, ``drop``).
    seed : drives the shuffling, the augmentations and the heads' initialisation.

    Returns
    -------
    Mean loss of each epoch (negative cosine similarity, in [-1, 1]: lower is better).
    """
    for name, value, low in (("epochs", epochs, 0), ("batch_size", batch_size, 2), ("dim", dim, 1),
                             ("pred_dim", pred_dim, 1), ("seed", seed, 0)):  # fmt: skip
        check_param("simsiam", name, value, int, low=low)
    check_param("simsiam", "lr", lr, low=0, low_open=True)
    unknown = sorted(set(augmentation or {}) - {"noise", "shift", "drop"})
    if unknown:
        raise ConfigError(f"simsiam: unknown augmentation {unknown}; valid: noise, shift, drop")
    x = _inputs(data)
    if len(x) < 2:
        raise ConfigError(f"simsiam: need at least 2 samples, got {len(x)}")
    first = next(model_features.parameters(), None)
    if first is None:
        raise ConfigError(f"simsiam: {type(model_features).__name__} has no parameters to pretrain")
    g = torch.Generator().manual_seed(seed)
    device = first.device
    dtype = first.dtype if first.dtype.is_floating_point else torch.float32  # heads and inputs alike
    x = x.to(dtype)
    try:
        with torch.no_grad():
            d_feat = math.prod(model_features(x[:2].to(device)).shape[1:])
    except (RuntimeError, TypeError, ValueError) as e:  # shapes or dtypes the extractor cannot take
        raise ConfigError(
            f"simsiam: {type(model_features).__name__} cannot take inputs of shape {list(x.shape[1:])}: "
            f"{str(e).splitlines()[0]}"
        ) from e
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        projector = _mlp(d_feat, dim, dim).to(device, dtype)  # in the extractor's dtype (float64 too)
        predictor = _mlp(dim, pred_dim, dim).to(device, dtype)
    params = [*model_features.parameters(), *projector.parameters(), *predictor.parameters()]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    aug = augmentation or {}
    was_training = model_features.training
    model_features.train()
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        total = 0.0
        for i in range(0, len(x) - 1, batch_size):
            xb = x[order[i : i + batch_size]]
            if len(xb) < 2:  # batch norm needs two samples
                continue
            v1, v2 = augment(xb, g, **aug).to(device), augment(xb, g, **aug).to(device)
            z1, z2 = projector(model_features(v1).flatten(1)), projector(model_features(v2).flatten(1))
            p1, p2 = predictor(z1), predictor(z2)
            # symmetric negative cosine; detach() is the stop-gradient
            loss = (
                -(F.cosine_similarity(p1, z2.detach()).mean() + F.cosine_similarity(p2, z1.detach()).mean())
                / 2
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(xb)
        history.append(total / len(x))
        if not math.isfinite(history[-1]):
            raise TrainingError(
                f"simsiam diverged in epoch {len(history)} (loss {history[-1]}); lower lr ({lr}) and check the "
                "data for NaN or infinite values"
            )
    model_features.train(was_training)
    return history
