"""torch.distributed for the Learner: which process group, each rank's shard, and the all-reduces.

Training under ``torchrun`` (or any initialised process group) is data parallel: every rank
holds the same model, wrapped in ``DistributedDataParallel`` so gradients are averaged at each
step; each rank trains on its shard of every experience and keeps its own share of every replay
memory (memory batches are drawn locally; strategies' sizes are global and the ranks' shares add
up to them). What a rank estimates from its own shard at a boundary (importances, class means)
is all-reduced there, so every rank holds the estimate over the whole experience; at a save the
memories are gathered, so the checkpoint rank 0 writes holds the global memory and loads in a
single process (and a learner loaded in a group takes its share of it again).

Without a process group every helper here is the identity, so single-process code pays nothing.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lifelong.data.dataset import Dataset
from lifelong.errors import StrategyMismatchError
from lifelong.learn.buffers import Buffer

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner
    from lifelong.learn.strategy import Strategy
    from lifelong.metrics.result import Result


def check_strategies(strategies: Sequence[Strategy]) -> None:
    """Refuse strategies that cannot train in several processes: their own forward bypasses
    DistributedDataParallel, or their state cannot be split among ranks (``Strategy.single_process``).
    The learner checks it in every rank; the service checks it at start-up with ``--nproc`` > 1, where
    every training failed on it."""
    from lifelong.learn.strategy import overrides

    forward = [type(s).__name__ for s in strategies if overrides(s, "forward")]
    if forward:
        raise StrategyMismatchError(
            f"{', '.join(forward)} computes logits in its own forward, which bypasses DistributedDataParallel "
            "(the ranks' replicas would drift apart); train it in one process"
        )
    for s in strategies:
        if s.single_process:
            raise StrategyMismatchError(s.single_process)


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


def all_reduce_class_sums(
    learner: Learner, sums: Tensor | None, counts: Tensor | None
) -> tuple[Tensor | None, Tensor | None]:
    """Per-class feature sums [C, D] and counts [C] summed over ranks (NCM, iCaRL class means).

    Sums, not means, travel: the pooled mean ``sums / counts`` is then exactly the mean a single
    process computes over the union of the ranks' samples. Ranks may know different numbers of
    classes (or none yet): rows are padded to the largest.
    """
    group = learner.process_group
    if group is None:
        return sums, counts
    shape = torch.tensor([0, 0] if sums is None else [sums.shape[0], sums.shape[1]])
    dist.all_reduce(shape, op=dist.ReduceOp.MAX, group=group)
    rows, dim = (int(v) for v in shape)
    if rows == 0:
        return sums, counts
    dtype = torch.float32 if sums is None else sums.dtype
    total = torch.zeros(rows, dim, dtype=dtype)
    n = torch.zeros(rows, dtype=dtype)
    if sums is not None and counts is not None:
        total[: len(sums)] = sums
        n[: len(counts)] = counts.to(dtype)
    dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
    dist.all_reduce(n, op=dist.ReduceOp.SUM, group=group)
    return total, n


def any_rank(learner: Learner, flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (the same answer on every rank)."""
    v = torch.tensor([int(flag)])
    dist.all_reduce(v, op=dist.ReduceOp.MAX, group=learner.process_group)
    return bool(v)


def pool_costs(learner: Learner, result: Result) -> None:
    """Make ``result``'s costs the whole job's: samples, memory bytes and peak RSS summed over ranks,
    seconds the slowest rank's (so samples per second is the job's throughput)."""
    if learner.process_group is None:
        return
    summed = torch.tensor([result.samples, result.buffer_bytes, result.peak_rss_mb], dtype=torch.float64)
    slowest = torch.tensor([result.train_seconds, result.boundary_seconds], dtype=torch.float64)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM, group=learner.process_group)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX, group=learner.process_group)
    result.samples, result.buffer_bytes = int(summed[0]), int(summed[1])
    result.peak_rss_mb = float(summed[2])
    result.train_seconds, result.boundary_seconds = float(slowest[0]), float(slowest[1])


def share(learner: Learner, total: int) -> int:
    """This rank's part of ``total`` (samples to draw, slots to keep): ``total / world``, remainder to low ranks."""
    return _share(total, learner.rank, learner.world_size)


def all_gather_rows(learner: Learner, rows: Tensor) -> Tensor:
    """Every rank's ``rows`` [n_r, ...] concatenated in rank order (the same tensor on every rank)."""
    group = learner.process_group
    if group is None:
        return rows
    every: list[Any] = [None] * learner.world_size
    dist.all_gather_object(every, rows.cpu(), group=group)
    return torch.cat(every).to(rows.device)


# -- replay memories: a share per rank while training, the whole memory in the checkpoint -----------
def _memories(learner: Learner) -> list[tuple[int, str, Any]]:
    """(strategy index, attribute, value) of every per-rank memory: Buffers, and the attributes a
    strategy names in ``rows_per_rank`` (dicts of row-aligned tensors, such as iCaRL's exemplars)."""
    found = []
    for i, s in enumerate(learner.strategies):
        for attr, value in vars(s).items():
            if isinstance(value, Buffer) or attr in s.rows_per_rank:
                found.append((i, attr, value))
    return found


def _share(total: int, rank: int, world: int) -> int:
    return total // world + (rank < total % world)


def split_memories(learner: Learner) -> None:
    """Keep this rank's share of every memory: capacity ``capacity / world`` and every world-th row.

    Strategies' sizes (``buffer_size``) are global; under torch.distributed each rank keeps its
    share, so the ranks' memories add up to the configured size (and :func:`gathered_memories`
    puts them back together in the checkpoint). Called when a learner is built or loaded in a
    group; a memory loaded from a checkpoint is split the way :func:`gathered_memories` joined it.
    """
    if learner.process_group is None:
        return
    rank, world = learner.rank, learner.world_size
    for _, _, memory in _memories(learner):
        if isinstance(memory, Buffer):
            cap = _share(memory.capacity, rank, world)
            if memory.x is not None:
                # an emptied memory (the worker forgets the old concept's) has fewer rows than ranks: none here
                rows = torch.arange(rank, max(rank, memory.size), world)[:cap]
                x = memory.x.new_zeros(cap, *memory.x.shape[1:])
                x[: len(rows)] = memory.x[rows]
                y, t = memory.y.new_zeros(cap), memory.t.new_zeros(cap)
                y[: len(rows)], t[: len(rows)] = memory.y[rows], memory.t[rows]
                memory.x, memory.y, memory.t = x, y, t
                if memory.logits is not None:
                    logits = memory.logits.new_zeros(cap, memory.logits.shape[1])
                    logits[: len(rows)] = memory.logits[rows]
                    memory.logits = logits
                memory.size = len(rows)
            memory.capacity, memory.seen = cap, _share(memory.seen, rank, world)
        elif isinstance(memory, dict) and "y" in memory:
            mine = _position_in_class(memory["y"]) % world == rank
            memory.update({k: v[mine] for k, v in memory.items()})


def _position_in_class(y: Tensor) -> Tensor:
    """For each row, how many rows of the same class come before it."""
    if len(y) == 0:
        return y
    onehot = torch.nn.functional.one_hot(y)  # [N, C]
    return (onehot.cumsum(0) * onehot).sum(1) - 1


def gathered_memories(learner: Learner, states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``states`` (the strategies' state dicts) with every per-rank memory replaced by all ranks' rows.

    A collective: every rank calls it, rank 0 uses the result to write a checkpoint that holds the
    global memory and loads in a single process. Buffers are concatenated (capacity, size and
    samples seen add up; each rank's reservoir saw an equal shard, so the union keeps every sample
    with the same probability); row dicts with labels are interleaved class by class, which keeps
    iCaRL's herding order a round robin of the ranks' orders. Objects travel through
    ``all_gather_object``: the peers are this job's own processes.
    """
    group = learner.process_group
    if group is None:
        return states
    local: list[Any] = []
    for _, _, memory in _memories(learner):
        if isinstance(memory, Buffer):
            n = memory.size
            local.append({"capacity": memory.capacity, "size": n, "seen": memory.seen, "scale": memory.scale,
                          **({} if memory.x is None else {"x": memory.x[:n], "y": memory.y[:n], "t": memory.t[:n]}),
                          **({} if memory.logits is None else {"logits": memory.logits[:n]})})  # fmt: skip
        else:
            local.append(memory)
    every: list[Any] = [None] * learner.world_size
    dist.all_gather_object(every, local, group=group)
    out = [dict(s) for s in states]
    for j, (i, attr, memory) in enumerate(_memories(learner)):
        parts = [ranks[j] for ranks in every]
        out[i][attr] = _join_buffer(parts) if isinstance(memory, Buffer) else _join_rows(parts)
    return out


def _join_buffer(parts: list[dict[str, Any]]) -> dict[str, Any]:
    capacity = sum(p["capacity"] for p in parts)
    state: dict[str, Any] = {"size": sum(p["size"] for p in parts), "seen": sum(p["seen"] for p in parts),
                             "scale": parts[0]["scale"]}  # fmt: skip
    for key in ("x", "y", "t", "logits"):
        held = [p[key] for p in parts if key in p]
        if held:
            rows = torch.cat(held)
            full = rows.new_zeros(capacity, *rows.shape[1:])
            full[: len(rows)] = rows
            state[key] = full
    return state


def _join_rows(parts: list[Any]) -> Any:
    parts = [p for p in parts if p]
    if not parts:
        return {}
    joined = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    if "y" not in joined:
        return joined
    # class by class, then position within the class, then rank: a round robin of the ranks' orders
    y = joined["y"]
    position = torch.cat([_position_in_class(p["y"]) for p in parts])
    rank = torch.cat([torch.full((len(p["y"]),), r) for r, p in enumerate(parts)])
    key = (y * (len(y) + 1) + position) * len(parts) + rank
    order = torch.argsort(key)
    return {k: v[order] for k, v in joined.items()}


def is_writer(learner: Learner) -> bool:
    """Whether this process writes checkpoints (rank 0, or the only process)."""
    return rank_and_size(learner.process_group)[0] == 0


def barrier(learner: Learner) -> None:
    """Wait for every rank (after rank 0 wrote a checkpoint the others may read)."""
    if learner.process_group is not None:
        dist.barrier(group=learner.process_group)
