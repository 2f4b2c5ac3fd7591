"""torch.distributed for the Learner: which process group, each rank's shard, and the all-reduces.

Training under ``torchrun`` (or any initialised process group) is data parallel: every rank
holds the same model, wrapped in ``DistributedDataParallel`` so gradients are averaged at each
step; each rank trains on its shard of every experience and keeps its own replay memory
(memory batches are drawn locally, the global memory is the sum of the ranks'). What a rank
estimates from its own shard at a boundary (importances, class means) is all-reduced there, so
every rank, and the checkpoint rank 0 writes, holds the estimate over the whole experience.

Without a process group every helper here is the identity, so single-process code pays nothing.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lifelong.data.dataset import Dataset

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner


def resolve_group(process_group: dist.ProcessGroup | None) -> dist.ProcessGroup | None:
    """The group to train in: ``process_group`` if given, else the default group ``torchrun`` set up."""
    if process_group is not None:
        return process_group
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.group.WORLD
    return None


def rank_and_size(group: dist.ProcessGroup | None) -> tuple[int, int]:
    """(this process's rank, world size) in ``group``; (0, 1) without one."""
    if group is None:
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def wrap(model: nn.Module, group: dist.ProcessGroup | None, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel (rank 0's weights are broadcast to all), or as is.

    Buffers are synchronised once here, not at every forward (``forward_sync_buffers=False``): that
    would put a collective inside every forward, where ranks may do different amounts of work.
    """
    if group is None:
        return model
    ids = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else None
    )
    ddp = nn.parallel.DistributedDataParallel
    # torch >= 2.13 names it forward_sync_buffers (broadcast_buffers is deprecated there)
    sync = (
        "forward_sync_buffers"
        if "forward_sync_buffers" in inspect.signature(ddp).parameters
        else "broadcast_buffers"
    )
    no_buffer_sync: dict[str, Any] = {sync: False}
    return ddp(model, device_ids=ids, process_group=group, **no_buffer_sync)


def shard(data: Dataset, group: dist.ProcessGroup | None, seed: int) -> Dataset:
    """This rank's shard of ``data``: a shared seeded permutation cut into equal parts.

    Every rank must take the same number of steps (each step all-reduces gradients), so the
    shards have equal length: the last samples of the permutation are repeated to pad, as
    ``torch.utils.data.DistributedSampler`` does.
    """
    rank, world = rank_and_size(group)
    if world == 1 or len(data) == 0:
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    per_rank = -(-len(data) // world)
    order = torch.cat([order, order[: per_rank * world - len(order)]])
    return data.subset(order[rank::world], data.name)


def all_reduce_mean(learner: Learner, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """The mean over ranks of each tensor (an importance estimated on each rank's equal-sized shard)."""
    group = learner.process_group
    if group is None:
        return tensors
    world = dist.get_world_size(group)
    out = {}
    for k in sorted(tensors):  # the same order on every rank
        v = tensors[k].detach().clone()
        dist.all_reduce(v, op=dist.ReduceOp.SUM, group=group)
        out[k] = v / world
    return out


def _pad_rows(x: Tensor, rows: int) -> Tensor:
    return x if len(x) >= rows else torch.cat([x, x.new_zeros(rows - len(x), *x.shape[1:])])


def _max_rows(group: dist.ProcessGroup, rows: int) -> int:
    n = torch.tensor([rows])
    dist.all_reduce(n, op=dist.ReduceOp.MAX, group=group)
    return int(n)


def all_reduce_class_means(learner: Learner, means: Tensor | None, labels: Tensor) -> Tensor | None:
    """Class means [C, D] pooled over ranks, weighted by each rank's count of ``labels`` per class.

    Each rank's means are L2-normalised means of its own exemplars; the pooled mean is their
    count-weighted average, normalised again. Classes no rank holds keep a zero row.
    """
    group = learner.process_group
    if group is None or means is None:
        return means
    rows = _max_rows(group, len(means))
    counts = torch.bincount(labels, minlength=rows)[:rows].to(means.dtype)  # [C]
    weighted = _pad_rows(means, rows) * counts.unsqueeze(1)
    dist.all_reduce(weighted, op=dist.ReduceOp.SUM, group=group)
    dist.all_reduce(counts, op=dist.ReduceOp.SUM, group=group)
    pooled = weighted / counts.clamp(min=1).unsqueeze(1)
    return torch.nn.functional.normalize(pooled, dim=1) * (counts > 0).unsqueeze(1)


def is_writer(learner: Learner) -> bool:
    """Whether this process writes checkpoints (rank 0, or the only process)."""
    return rank_and_size(learner.process_group)[0] == 0


def barrier(learner: Learner) -> None:
    """Wait for every rank (after rank 0 wrote a checkpoint the others may read)."""
    if learner.process_group is not None:
        dist.barrier(group=learner.process_group)
