"""SimSiam pretraining: the loss falls, and the features it learns separate classes random ones do not."""

import re

import pytest
import torch
import torch.nn.functional as F

from lifelong.data.dataset import Dataset
from lifelong.errors import ConfigError
from lifelong.learn.models import MLP
from lifelong.learn.pretrain import augment, simsiam


def bars(n: int, seed: int, side: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal (class 0) or vertical (class 1) bars at random positions, plus noise.

    Raw pixels are not linearly separable: sum_rows w.x = sum_cols w.x for any w.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(2).repeat(n // 2)
    pos = torch.randint(side, (n,), generator=g)
    x = torch.zeros(n, 1, side, side)
    rows, cols = (y == 0).nonzero().squeeze(1), (y == 1).nonzero().squeeze(1)
    x[rows, 0, pos[rows], :] = 1.0
    x[cols, 0, :, pos[cols]] = 1.0
    return x + 0.1 * torch.randn(x.shape, generator=g), y


def ncm_accuracy(features: torch.nn.Module, x, y, xt, yt) -> float:
    with torch.no_grad():
        f, ft = (F.normalize(features(v).flatten(1), dim=1) for v in (x, xt))
    means = F.normalize(torch.stack([f[y == c].mean(0) for c in range(2)]), dim=1)
    return float((torch.cdist(ft, means).argmin(1) == yt).float().mean())


def test_simsiam_loss_falls_and_features_beat_random_ones() -> None:
    x, y = bars(256, seed=0)
    xt, yt = bars(200, seed=1)
    torch.manual_seed(0)
    model = MLP(in_features=64, hidden=(64,), n_classes=2)
    random_acc = ncm_accuracy(model.features, x, y, xt, yt)
    history = simsiam(model.features, Dataset(x, y), epochs=25, lr=0.2, augmentation={"shift": 4}, seed=0)
    assert len(history) == 25 and history[-1] < history[0] - 0.3
    pretrained_acc = ncm_accuracy(model.features, x, y, xt, yt)
    assert pretrained_acc > max(0.9, random_acc + 0.1)


def test_augment_is_seeded_and_does_not_mutate() -> None:
    x, _ = bars(4, seed=0)
    before = x.clone()
    a = augment(x, torch.Generator().manual_seed(3), shift=3)
    b = augment(x, torch.Generator().manual_seed(3), shift=3)
    assert torch.equal(a, b) and torch.equal(x, before) and not torch.equal(a, x)
    # a pure shift moves the bar but keeps it whole: wrap-around loses no pixel
    shifted = augment(x, torch.Generator().manual_seed(3), noise=0.0, shift=3, drop=0.0)
    assert torch.allclose(shifted.sum((1, 2, 3)), x.sum((1, 2, 3)))
    vectors = augment(torch.ones(5, 7), torch.Generator().manual_seed(0))  # flat inputs: dropout and noise
    assert vectors.shape == (5, 7)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [({"lr": -1.0}, "lr=-1.0 is invalid"), ({"dim": 0}, "dim=0 is invalid"), ({"epochs": 1.5}, "epochs=1.5"),
     ({"augmentation": {"rotate": 1}}, "unknown augmentation ['rotate']"),
     ({"data": torch.full((8, 784), float("nan"))}, "NaN or infinite"),
     ({"data": torch.zeros(8, 3)}, "cannot take inputs of shape [3]")],
)  # fmt: skip
def test_bad_arguments_are_refused_by_name_before_training(kwargs: dict, says: str) -> None:
    """Each was a raw torch or Python error, or (lr=nan, NaN data) a run returning [nan]."""
    model = MLP()
    before = [p.clone() for p in model.features.parameters()]
    data = kwargs.pop("data", torch.rand(8, 784))
    with pytest.raises(ConfigError, match=re.escape(says)):
        simsiam(model.features, data, **{"epochs": 1, **kwargs})
    assert all(torch.equal(a, b) for a, b in zip(before, model.features.parameters()))


def test_uint8_pixels_are_scaled_as_a_dataset_scales_them_and_float64_extractors_train() -> None:
    pixels = torch.randint(0, 256, (16, 784), dtype=torch.uint8)
    torch.manual_seed(0)
    a = simsiam(MLP().features, pixels, epochs=1, seed=1)
    torch.manual_seed(0)
    b = simsiam(MLP().features, pixels.float() / 255, epochs=1, seed=1)
    assert a == b
    assert len(simsiam(MLP().double().features, pixels, epochs=1)) == 1  # heads in the extractor's dtype
