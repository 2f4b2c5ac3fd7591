"""Fixed-size sample memories for replay: reservoir, class-balanced and herding.

Stored inputs keep the dataset's storage dtype (uint8 images cost a quarter of float32), so a
byte budget buys four times the samples. Random choices draw from the learner's generator,
so a run is reproducible and resumes bit-for-bit from a checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lifelong.data.dataset import Batch, Dataset
from lifelong.errors import ConfigError
from lifelong.learn.models import reading_features


class Buffer:
    """A memory of up to ``capacity`` samples (``x`` raw, ``y``, ``t``, optional ``logits``)."""

    policy = "base"

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ConfigError(f"buffer capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.x: Tensor | None = None
        self.y = torch.empty(0, dtype=torch.long)
        self.t = torch.empty(0, dtype=torch.long)
        self.logits: Tensor | None = None
        # False once a stored logit may be NaN (a head grew) or -inf (task masks): readers then mask;
        # kept per write so a reader of all-finite logits needs no per-step check
        self.finite_logits = True
        self.size = 0
        self.seen = 0
        self.scale = 1.0

    def __len__(self) -> int:
        return self.size

    def clear(self) -> None:
        """Forget every stored sample (the storage stays allocated); sampling starts afresh."""
        self.size = self.seen = 0
        self.finite_logits = True

    def _allocate(self, x: Tensor, logits: Tensor | None, dtype: torch.dtype | None) -> None:
        self.x = torch.zeros((self.capacity, *x.shape[1:]), dtype=dtype or x.dtype)
        self.y = torch.zeros(self.capacity, dtype=torch.long)
        self.t = torch.zeros(self.capacity, dtype=torch.long)
        if logits is not None:
            self.logits = torch.zeros((self.capacity, logits.shape[1]), dtype=logits.dtype)

    def _write(
        self,
        slots: Tensor,
        src: Tensor,
        x: Tensor,
        y: Tensor,
        t: Tensor | None,
        logits: Tensor | None,
        unique: bool = False,
    ) -> None:
        """Store offered rows ``src`` in memory rows ``slots``; a slot offered twice keeps the later sample.

        Indexed assignment with repeated indices has an undefined outcome in PyTorch (with several
        threads one row can mix two samples), so duplicates are resolved first, as sequential
        reservoir sampling would: the last offer wins. ``unique``: the caller's slots are distinct.
        """
        assert self.x is not None
        if not unique:
            slots, src = last_offer_wins(slots, src)
        self.x[slots] = self._stored(x[src])
        self.y[slots] = y[src]
        if t is not None:  # without task ids the slots keep their zeros
            self.t[slots] = t[src]
        if logits is not None and self.logits is not None:
            if logits.shape[1] > self.logits.shape[1]:  # the head grew: older rows have no such outputs
                pad = (0, logits.shape[1] - self.logits.shape[1])
                self.logits = torch.nn.functional.pad(self.logits, pad, value=float("nan"))
                self.finite_logits = False
            rows = logits[src].detach()
            # a sum is non-finite when any entry is NaN or +-inf (or, harmlessly, when finite values
            # overflow): one reduction, where isfinite().all() takes four kernels per write
            if self.finite_logits and not math.isfinite(float(rows.sum())):
                self.finite_logits = False
            self.logits[slots] = rows

    def add(self, x: Tensor, y: Tensor, t: Tensor | None = None, *, generator: torch.Generator,
            logits: Tensor | None = None, scale: float = 1.0, dtype: torch.dtype | None = None) -> None:  # fmt: skip
        """Offer a batch of samples; the policy decides which are kept.

        ``dtype`` and ``scale`` say how the memory stores inputs (uint8 with its scale for images):
        only the samples actually kept are converted.
        """
        if self.capacity == 0 or len(y) == 0:
            return
        if self.x is None:
            self._allocate(x, logits, dtype)
            self.scale = scale
        self._add(x, y, t, logits, generator)

    def _stored(self, x: Tensor) -> Tensor:
        """``x`` in the memory's storage form (float inputs offered to a uint8 memory are re-quantised)."""
        assert self.x is not None
        if x.dtype == self.x.dtype:
            return x
        if x.dtype.is_floating_point and not self.x.dtype.is_floating_point:
            return x.div(self.scale).round_().to(self.x.dtype)
        return x.to(self.x.dtype) * (self.scale if not x.dtype.is_floating_point else 1.0)

    def _add(self, x: Tensor, y: Tensor, t: Tensor | None, logits: Tensor | None, g: torch.Generator) -> None:
        raise NotImplementedError

    def remember(self, learner: Any, batch: Batch | None = None, logits: Tensor | None = None) -> None:
        """Offer ``batch`` (default: the learner's incoming batch) in the form its experience stores it."""
        self.add_offer(offer(learner, batch), learner.generator, logits)

    def add_offer(self, offered: Offer, generator: torch.Generator, logits: Tensor | None = None) -> None:
        """:meth:`add` an :func:`offer`, taken now or steps earlier (a write deferred past a device copy)."""
        x, y, t, scale, dtype = offered
        self.add(x, y, t, generator=generator, logits=logits, scale=scale, dtype=dtype)

    def sample(
        self, n: int, generator: torch.Generator, logits: bool = True
    ) -> tuple[Tensor, Batch, Tensor | None]:
        """``n`` stored samples drawn uniformly without replacement: (indices, batch, logits).

        ``logits=False`` skips gathering the stored logits (None is returned) for a caller that needs labels only.
        """
        assert self.x is not None
        n = min(n, self.size)
        idx = torch.randperm(self.size, generator=generator)[:n]
        x = self.x[idx].float().mul_(self.scale) if self.scale != 1.0 else self.x[idx].float()
        z = self.logits[idx] if logits and self.logits is not None else None
        return idx, Batch(x, self.y[idx], self.t[idx]), z

    def nbytes(self) -> int:
        """Bytes of the samples stored (with their labels, task ids and logits): the filled slots, as
        iCaRL's and GEM's exemplar memories count theirs, so a memory not yet full (a 500-sample budget
        on 142 samples) is not reported as 3.5x theirs at the same budget."""
        if self.x is None:
            return 0
        arrays = [a for a in (self.x, self.logits, self.y, self.t) if a is not None]
        return self.size * sum(a[0].numel() * a.element_size() for a in arrays)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"capacity": self.capacity, "size": self.size, "seen": self.seen,
                                 "scale": self.scale}  # fmt: skip
        if self.x is not None:
            state.update(x=self.x, y=self.y, t=self.t)
        if self.logits is not None:
            state["logits"] = self.logits
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.seen, self.scale = int(state["size"]), int(state["seen"]), float(state["scale"])
        self.x = state.get("x")
        # a checkpoint's capacity wins: a learner in a process group splits it per rank afterwards
        self.capacity = int(state.get("capacity", self.capacity if self.x is None else len(self.x)))
        if self.x is not None:
            self.y, self.t = state["y"], state["t"]
        self.logits = state.get("logits")
        self.finite_logits = self.logits is None or bool(torch.isfinite(self.logits[: self.size]).all())


class ReservoirBuffer(Buffer):
    """Reservoir sampling (Vitter, 1985): every sample seen so far is kept with equal probability."""

    policy = "reservoir"

    def _add(self, x: Tensor, y: Tensor, t: Tensor | None, logits: Tensor | None, g: torch.Generator) -> None:
        n = len(y)
        fill = min(self.capacity - self.size, n)
        if fill:
            self._write(torch.arange(self.size, self.size + fill), torch.arange(fill), x, y, t, logits, True)
            self.size += fill
        if fill < n:
            # sample i (global position seen+i) replaces slot floor(u * (seen+i+1)) when that is below
            # capacity, i.e. with probability capacity/(seen+i+1); one draw for the whole batch, decided
            # in Python (a full memory rarely keeps anything, and a few scalars beat eight tensor ops).
            # A dict keyed by slot keeps the last offer, as sequential reservoir sampling would.
            u = torch.rand(n - fill, generator=g).tolist()
            kept: dict[int, int] = {}
            for i, r in enumerate(u, start=fill):
                j = int(r * (self.seen + i + 1))
                if j < self.capacity:
                    kept[j] = i
            if kept:  # dict keys: each slot once, with its last offer
                self._write(
                    torch.tensor(list(kept)), torch.tensor(list(kept.values())), x, y, t, logits, True
                )
        self.seen += n


class ClassBalancedBuffer(Buffer):
    """Equal slots per class seen; a new class takes slots from the largest classes."""

    policy = "class-balanced"

    def _add(self, x: Tensor, y: Tensor, t: Tensor | None, logits: Tensor | None, g: torch.Generator) -> None:
        for i in range(len(y)):
            self.seen += 1
            if self.size < self.capacity:
                slot = self.size
                self.size += 1
            else:
                stored = self.y[: self.size]
                counts = torch.bincount(stored, minlength=int(max(stored.max(), y[i])) + 1)
                largest = int(counts.argmax())
                if counts[int(y[i])] >= counts[largest]:
                    continue  # its class already holds the most slots
                candidates = (stored == largest).nonzero().squeeze(1)
                slot = int(candidates[torch.randint(len(candidates), (1,), generator=g)])
            self._write(torch.tensor([slot]), torch.tensor([i]), x, y, t, logits)


class HerdingBuffer(Buffer):
    """Equal slots per class, filled by iCaRL herding (Rebuffi et al., 2017) on features.

    Each :meth:`add` re-herds, per class offered, the stored exemplars of that class together
    with the offered samples, then trims every class to its quota (``capacity // classes``, the
    remainder going to the lowest class ids). Within a class, exemplars are kept in herding
    order, so trimming keeps the best prefix. ``embed`` maps float inputs to features; without
    it the inputs themselves are the features. :meth:`add_experience` is the boundary entry
    point: it herds a whole experience on the model's penultimate features (``model.features``).
    """

    policy = "herding"
    _embed: Callable[[Tensor], Tensor] | None = None

    def add(self, x: Tensor, y: Tensor, t: Tensor | None = None, *, generator: torch.Generator,
            logits: Tensor | None = None, scale: float = 1.0, dtype: torch.dtype | None = None,
            embed: Callable[[Tensor], Tensor] | None = None) -> None:  # fmt: skip
        self._embed = embed
        try:
            super().add(x, y, t, generator=generator, logits=logits, scale=scale, dtype=dtype)
        finally:
            self._embed = None

    def add_experience(self, learner: Any, data: Dataset, logits: Tensor | None = None) -> None:
        """Herd ``data`` (raw, as an experience stores it) on the learner's penultimate features."""
        self.add(data.x, data.y, data.t, generator=learner.generator, logits=logits, scale=data.scale,
                 embed=penultimate(learner))  # fmt: skip

    def _add(self, x: Tensor, y: Tensor, t: Tensor | None, logits: Tensor | None, g: torch.Generator) -> None:
        from lifelong.strategies._herding import herding  # lazy: lifelong.strategies imports this module

        n, stored = len(y), self.size
        assert self.x is not None
        # candidates: stored exemplars first (in their herding order), then the offered samples
        all_x = torch.cat([self.x[:stored], self._stored(x)])
        all_y = torch.cat([self.y[:stored], y])
        all_t = torch.cat([self.t[:stored], torch.zeros_like(y) if t is None else t])
        all_logits = None
        if self.logits is not None and logits is not None:
            all_logits = torch.cat([self.logits[:stored], logits.detach().to(self.logits.dtype)])
        offered = torch.unique(y).tolist()
        classes = sorted(set(all_y.tolist()))
        base, extra = divmod(self.capacity, len(classes))
        keep = []
        for rank, c in enumerate(classes):
            quota = base + (rank < extra)
            members = (all_y == c).nonzero().squeeze(1)  # stored ones first, in herding order
            if c in offered and quota > 0:
                members = members[herding(self._features(all_x[members]), quota)]
            keep.append(members[:quota])
        keep_idx = torch.cat(keep)
        self.size = len(keep_idx)
        self.x[: self.size] = all_x[keep_idx]
        self.y[: self.size] = all_y[keep_idx]
        self.t[: self.size] = all_t[keep_idx]
        if all_logits is not None and self.logits is not None:
            self.logits[: self.size] = all_logits[keep_idx]
            self.finite_logits = bool(torch.isfinite(self.logits[: self.size]).all())
        self.seen += n

    def _features(self, raw: Tensor) -> Tensor:
        x = raw.float().mul_(self.scale) if self.scale != 1.0 else raw.float()
        return x.flatten(1) if self._embed is None else self._embed(x)


def penultimate(learner: Any) -> Callable[[Tensor], Tensor]:
    """``x -> model.features(x)``, in eval mode without gradients; the flat inputs without ``features``."""
    model = learner.model
    features = getattr(model, "features", None)
    if not callable(features):
        return lambda x: x.flatten(1)

    def embed(x: Tensor) -> Tensor:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                step = max(1, learner.eval_batch_size)
                chunks = [x[i : i + step].to(learner.device) for i in range(0, len(x), step)]
                with reading_features(model, "a herding memory"):
                    return torch.cat([features(c).flatten(1).cpu() for c in chunks])
        finally:
            model.train(was_training)

    return embed


def last_offer_wins(slots: Tensor, src: Tensor) -> tuple[Tensor, Tensor]:
    """``(slots, src)`` with each slot once, paired with its last offer (``src`` is in offer order)."""
    if len(slots) < 2 or len(torch.unique(slots)) == len(slots):
        return slots, src
    uniq, inverse = torch.unique(slots, return_inverse=True)
    order = torch.arange(len(slots))
    last = torch.full((len(uniq),), -1, dtype=torch.long).scatter_reduce(0, inverse, order, reduce="amax")
    return slots[last], src[last]


BUFFERS: dict[str, type[Buffer]] = {
    "reservoir": ReservoirBuffer,
    "class-balanced": ClassBalancedBuffer,
    "herding": HerdingBuffer,
}


def make_buffer(policy: str, capacity: int) -> Buffer:
    if policy not in BUFFERS:
        raise ConfigError(f"unknown buffer policy {policy!r}; valid: {', '.join(BUFFERS)}")
    return BUFFERS[policy](capacity)


#: what a memory is offered: raw inputs, labels, task ids, the inputs' scale and storage dtype
Offer = tuple[Tensor, Tensor, Tensor | None, float, torch.dtype | None]


def offer(learner: Any, batch: Batch | None = None) -> Offer:
    """``batch`` (default: the learner's incoming batch) in the form its experience stores it."""
    x, y, t = batch if batch is not None else learner.incoming
    dtype, scale = storage_form(learner)
    raw = learner.incoming_raw if batch is None and dtype is not None else None
    if raw is not None and raw.dtype == dtype:  # the stored rows themselves: no re-quantising
        x = raw
    return x.detach(), y, t, scale, dtype


def storage_form(learner: Any) -> tuple[torch.dtype | None, float]:
    """How the current experience stores inputs: ``(torch.uint8, scale)`` for images, else ``(None, 1.0)``.

    Inputs drawn from uint8 data are ``u * scale`` exactly, so re-quantising is lossless and a
    memory of images costs a quarter of float32.
    """
    experience = learner.experience
    data = experience.train if experience is not None else None
    if data is not None and data.x.dtype == torch.uint8 and len(data):
        return torch.uint8, data.scale
    return None, 1.0
