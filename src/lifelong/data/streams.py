"""Synthetic drifting streams built from a labelled image split, with known drift points.

A :class:`DriftingStream` is a sequence of :class:`Phase` s. Each phase draws ``length``
training images from a class subset and passes them through a transform (identity, rotation,
Gaussian noise, contrast). Samples arrive phase after phase, in chunks; ``boundaries`` gives
the index where each phase starts, so a detector's delay can be measured, and
``test_set(phase)`` builds that phase's test data from the test split with the same transform.

>>> stream = make_stream("digits-drift", seed=0, phase_length=100)
>>> [p.name for p in stream.phases]
['base', 'new-classes', 'rotation', 'noise', 'contrast', 'recurring']
>>> stream.boundaries[:3]
[0, 100, 200]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong.data.dataset import Dataset, Split
from lifelong.errors import ConfigError, DataError

log = logging.getLogger(__name__)


class Transform(Protocol):
    """Maps float images ``[N, 1, H, W]`` with values in ``[0, vmax]`` to the same shape and range."""

    def __call__(self, x: Tensor, vmax: float, generator: torch.Generator) -> Tensor: ...


@dataclass(frozen=True)
class Identity:
    def __call__(self, x: Tensor, vmax: float, generator: torch.Generator) -> Tensor:
        return x


@dataclass(frozen=True)
class Rotate:
    """Rotate every image counter-clockwise by ``degrees`` about its centre (bilinear, zero fill)."""

    degrees: float

    def __call__(self, x: Tensor, vmax: float, generator: torch.Generator) -> Tensor:
        a = math.radians(self.degrees)
        theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
        grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass(frozen=True)
class GaussianNoise:
    """Add N(0, (std * vmax)²) noise to every pixel."""

    std: float

    def __call__(self, x: Tensor, vmax: float, generator: torch.Generator) -> Tensor:
        return x + torch.randn(x.shape, generator=generator) * (self.std * vmax)


@dataclass(frozen=True)
class Contrast:
    """Scale each image's deviations from its own mean by ``factor`` (< 1 flattens it)."""

    factor: float

    def __call__(self, x: Tensor, vmax: float, generator: torch.Generator) -> Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return mean + self.factor * (x - mean)


@dataclass(frozen=True)
class Phase:
    """A stationary stretch of the stream: ``length`` samples of ``classes`` under ``transform``."""

    name: str
    classes: tuple[int, ...]
    transform: Transform
    length: int

    def describe(self) -> dict[str, object]:
        t = self.transform
        params = asdict(t) if hasattr(t, "__dataclass_fields__") else {}  # type: ignore[call-overload]
        return {
            "name": self.name,
            "classes": list(self.classes),
            "length": self.length,
            "transform": type(t).__name__,
            **params,
        }


class Chunk(NamedTuple):
    """Consecutive samples of one phase: images ``x`` (uint8), labels ``y``, index of the first sample."""

    x: Tensor
    y: Tensor
    phase: int
    start: int


class DriftingStream:
    """Samples of ``split.train`` arriving phase by phase, deterministic under ``seed``.

    Within a phase, samples are drawn without replacement while the class subset has enough
    of them. Iterating yields :class:`Chunk` s of at most ``chunk_size`` samples; a chunk
    never spans two phases.
    """

    def __init__(
        self,
        split: Split,
        phases: Sequence[Phase],
        *,
        seed: int = 0,
        chunk_size: int = 100,
        name: str = "drift",
    ) -> None:
        if not phases:
            raise ConfigError(f"{name}: a drifting stream needs at least one phase")
        if chunk_size < 1:
            raise ConfigError(f"{name}: chunk_size must be >= 1, got {chunk_size}")
        available = set(split.train.classes)
        for p in phases:
            if p.length < 1:
                raise ConfigError(f"{name}: phase {p.name!r} has length {p.length}; it must be >= 1")
            if missing := set(p.classes) - available:
                raise ConfigError(
                    f"{name}: phase {p.name!r} asks for classes {sorted(missing)} absent from the data"
                )
        _image_shape(split.train)  # fail now, not at the first chunk
        self.split = split
        self.phases = list(phases)
        self.seed = seed
        self.chunk_size = chunk_size
        self.name = name
        self._data: list[Dataset] | None = None

    @property
    def boundaries(self) -> list[int]:
        """Index of the first sample of each phase in arrival order (after 0, the true drift points)."""
        return [0, *np.cumsum([p.length for p in self.phases])[:-1].tolist()]

    def __len__(self) -> int:
        return sum(p.length for p in self.phases)

    def phase_at(self, index: int) -> int:
        """The phase that sample ``index`` belongs to."""
        if not 0 <= index < len(self):
            raise DataError(f"{self.name}: sample index {index} is outside [0, {len(self)})")
        return int(np.searchsorted(self.boundaries, index, side="right")) - 1

    def phase_data(self, phase: int | str) -> Dataset:
        """All training samples of ``phase`` (index or name) in arrival order."""
        if self._data is None:
            self._data = [self._draw(self.split.train, i, p.length) for i, p in enumerate(self.phases)]
        return self._data[self._index(phase)]

    def __iter__(self) -> Iterator[Chunk]:
        for i, start in enumerate(self.boundaries):
            data = self.phase_data(i)
            for j in range(0, len(data), self.chunk_size):
                yield Chunk(data.x[j : j + self.chunk_size], data.y[j : j + self.chunk_size], i, start + j)

    def test_set(self, phase: int | str, size: int | None = None) -> Dataset:
        """Test samples of ``phase`` (index or name) under its transform; all that match unless ``size``."""
        i = self._index(phase)
        pool = _class_index(self.split.test, self.phases[i].classes)
        return self._draw(self.split.test, i, size or len(pool), kind=1)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "seed": self.seed,
            "boundaries": self.boundaries,
            "phases": [p.describe() for p in self.phases],
        }

    def _index(self, phase: int | str) -> int:
        names = [p.name for p in self.phases]
        if isinstance(phase, str):
            if phase not in names:
                raise ConfigError(f"{self.name}: no phase named {phase!r}; phases are {names}")
            return names.index(phase)
        if not 0 <= phase < len(self.phases):
            raise ConfigError(f"{self.name}: phase index {phase} outside [0, {len(self.phases)})")
        return phase

    def _draw(self, data: Dataset, i: int, n: int, kind: int = 0) -> Dataset:
        """``n`` samples of phase ``i`` from ``data``; ``kind`` separates train and test randomness."""
        phase = self.phases[i]
        g = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, i, kind]).generate_state(1)[0])
        )
        pool = _class_index(data, phase.classes)
        if kind == 1 and n == len(pool):
            index = pool  # the whole test subset, in its original order
        else:
            reps = -(-n // len(pool))
            index = torch.cat([pool[torch.randperm(len(pool), generator=g)] for _ in range(reps)])[:n]
        x = _apply(phase.transform, data, data.x[index], g)
        return Dataset(x, data.y[index], None, data.scale, f"{self.name}/{phase.name}")


def default_phases(base: Sequence[int], full: Sequence[int], length: int) -> list[Phase]:
    """Base classes; all classes; rotation 30°; noise; lower contrast; the base phase again."""
    base, full = tuple(base), tuple(full)
    return [
        Phase("base", base, Identity(), length),
        Phase("new-classes", full, Identity(), length),
        Phase("rotation", full, Rotate(30.0), length),
        Phase("noise", full, GaussianNoise(0.25), length),
        Phase("contrast", full, Contrast(0.4), length),
        Phase("recurring", base, Identity(), length),
    ]


def fmnist_drift(seed: int = 0, phase_length: int = 2000, chunk_size: int = 100) -> DriftingStream:
    """Fashion-MNIST under :func:`default_phases`: classes 0-5, then 0-9, then covariate shifts."""
    from lifelong.data import fashion_mnist

    split = fashion_mnist()
    return DriftingStream(
        split,
        default_phases(range(6), range(10), phase_length),
        seed=seed,
        chunk_size=chunk_size,
        name="fmnist-drift",
    )


def digits_drift(seed: int = 0, phase_length: int = 300, chunk_size: int = 50) -> DriftingStream:
    """scikit-learn's 8x8 digits under :func:`default_phases` (small, always available)."""
    from lifelong.data import digits

    split = digits()
    return DriftingStream(
        split,
        default_phases(range(6), range(10), phase_length),
        seed=seed,
        chunk_size=chunk_size,
        name="digits-drift",
    )


STREAMS = ("fmnist-drift", "digits-drift")


def make_stream(name: str, seed: int = 0, **kwargs: int) -> DriftingStream:
    """Build a named stream; ``fmnist-drift`` falls back to ``digits-drift`` when Fashion-MNIST is missing."""
    if name == "fmnist-drift":
        try:
            return fmnist_drift(seed, **kwargs)
        except DataError as e:
            log.warning("fmnist-drift: Fashion-MNIST could not be loaded (%s); using digits-drift instead", e)
            return digits_drift(seed, **kwargs)
    if name == "digits-drift":
        return digits_drift(seed, **kwargs)
    raise ConfigError(f"unknown stream {name!r}; choose one of {', '.join(STREAMS)}")


def _class_index(data: Dataset, classes: Sequence[int]) -> Tensor:
    index = torch.nonzero(torch.isin(data.y, torch.tensor(list(classes)))).flatten()
    if len(index) == 0:
        raise DataError(f"{data.name}: no samples of classes {list(classes)}")
    return index


def _image_shape(data: Dataset) -> tuple[int, int]:
    """Height and width of the images in ``data``: ``[N, H, W]``, ``[N, 1, H, W]`` or square ``[N, H*W]``."""
    shape = data.input_shape
    if len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]:
        return math.isqrt(shape[0]), math.isqrt(shape[0])
    if len(shape) == 2 or (len(shape) == 3 and shape[0] == 1):
        return shape[-2], shape[-1]
    raise DataError(
        f"{data.name}: expected grey images [N, H, W] or [N, 1, H, W], got inputs of shape {shape}"
    )


def _apply(transform: Transform, data: Dataset, x: Tensor, generator: torch.Generator) -> Tensor:
    """Run ``transform`` on raw inputs ``x`` in pixel units; return them in their shape and dtype."""
    if isinstance(transform, Identity):
        return x.clone()
    h, w = _image_shape(data)
    # Pixel range in storage units: uint8 images scaled by 1/16 (digits) hold 0..16, by 1/255 hold 0..255.
    vmax = round(1 / data.scale) if data.scale != 1.0 else (255.0 if x.dtype == torch.uint8 else 1.0)
    out = transform(x.reshape(len(x), 1, h, w).float(), float(vmax), generator).clamp_(0, vmax)
    if not x.dtype.is_floating_point:
        out = out.round_()
    return out.to(x.dtype).reshape(x.shape)
