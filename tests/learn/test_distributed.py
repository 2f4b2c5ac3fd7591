"""torch.distributed: two gloo processes train Split digits as one, and rank 0's checkpoint loads alone.

One spawn runs every distributed check (starting processes is the expensive part): DDP training,
importances, NCM sums and iCaRL class means pooled across ranks, and the replay memories gathered
into rank 0's checkpoint (and shared out again when a group loads it).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lifelong.data import digits
from lifelong.data.dataset import Dataset
from lifelong.data.scenarios import Scenario, class_incremental
from lifelong.errors import StrategyMismatchError
from lifelong.learn import Learner, distributed
from lifelong.learn.callbacks import Callback, Control, LoopState
from lifelong.learn.models import MLP
from lifelong.strategies import AGEM, EWC, GEM, GPM, NCM, OGD, GDumb, ICaRL, MultiHead, Replay
from lifelong.strategies.ncm import embed

WORLD = 2
BATCH, BUFFER, FISHER = 32, 400, 256  # global: batch and memory are split across ranks
EXEMPLARS = 100


def _learner(world: int, strategies: list, callbacks: tuple = ()) -> Learner:
    torch.manual_seed(0)
    return Learner(
        MLP(64, (64,), 10),
        strategies,
        lr=0.1,
        batch_size=BATCH // world,
        epochs=4,
        seed=0,
        callbacks=callbacks,
    )


@dataclasses.dataclass
class _StopAfterEpoch(Callback):
    """Ends every experience after ``epoch`` on one rank only (as a callback reading its shard's loss may)."""

    rank: int
    epoch: int

    def on_epoch_end(self, state: LoopState, control: Control) -> None:
        if state.rank == self.rank and state.epoch == self.epoch:
            control.stop_experience = True


def _replay_ewc(world: int) -> Learner:
    return _learner(world, [Replay(BUFFER), EWC(lam=10.0, fisher_samples=FISHER // world)])


def _even(stream: Scenario) -> Dataset:
    """The first experience's training set cut to an even length: shards without padding."""
    train = stream.experiences[0].train
    return train.subset(torch.arange(len(train) - len(train) % WORLD), train.name)


def _memory_rows(learner: Learner) -> list[list[float]]:
    """(label, sum of the stored row) of every sample the replay memory holds, sorted."""
    buf = learner.strategies[0].buffer_
    return sorted([[float(y), float(x.double().sum())] for x, y in zip(buf.x[: buf.size], buf.y[: buf.size])])


def _worker(rank: int, tmp: str, stream: Scenario) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=WORLD)
    out: dict = {}
    try:
        # shards: equal length, together the whole dataset (padding repeats a few samples)
        data = Dataset(torch.arange(11.0).unsqueeze(1), torch.zeros(11, dtype=torch.long))
        out["shard"] = distributed.shard(data, dist.group.WORLD, seed=0).x.squeeze(1).tolist()
        learner = _replay_ewc(WORLD)
        out["world_size"] = learner.world_size
        for exp in stream:
            learner.learn(exp)
        out["acc"] = sum(learner.evaluate(stream)) / len(stream)
        out["params"] = [float(p.detach().double().sum()) for p in learner.model.parameters()]
        out["fisher"] = float(sum(f.sum() for f in learner.strategies[1].fishers_[0].values()))
        out["memory"] = len(learner.strategies[0].buffer_)
        out["capacity"] = learner.strategies[0].buffer_.capacity
        out["memory_rows"] = _memory_rows(learner)
        learner.save(Path(tmp) / "ckpt")
        out["predictions"] = learner.predict(stream.experiences[0].test.features()).tolist()
        again = Learner.load(Path(tmp) / "ckpt")  # loaded in the group: each rank takes its share again
        out["reloaded_rows"] = _memory_rows(again)
        out["reloaded_capacity"] = again.strategies[0].buffer_.capacity
        icarl = _learner(WORLD, [ICaRL(buffer_size=EXEMPLARS)])
        for exp in stream.experiences[:2]:
            icarl.learn(exp)
        out["means"] = icarl.strategies[0].means_.tolist()
        out["exemplars"] = len(icarl.strategies[0].exemplars_["y"])
        icarl.save(Path(tmp) / "icarl")
        ncm = _learner(WORLD, [NCM()])
        ncm.learn(dataclasses.replace(stream.experiences[0], train=_even(stream)))
        out["ncm"] = [ncm.strategies[0].sums_.tolist(), ncm.strategies[0].counts_.tolist()]
        # projections on pooled bases or reference gradients, a reset broadcast by re-wrapping:
        # every rank's replica stays identical
        agree = [GPM(), AGEM(BUFFER), OGD(50), GDumb(100, epochs=2)]
        for strategy in agree:
            replica = _learner(WORLD, [strategy])
            for exp in stream.experiences[:2]:
                replica.learn(exp)
            out[strategy.name] = [float(p.detach().double().sum()) for p in replica.model.parameters()]
        try:  # a strategy with its own forward would bypass DDP: refused before any collective
            _learner(WORLD, [MultiHead()])
        except StrategyMismatchError as e:
            out["refused"] = str(e)
        try:  # GEM's per-experience lists are neither split among ranks nor gathered on save
            _learner(WORLD, [GEM(BUFFER)])
        except StrategyMismatchError as e:
            out["gem_refused"] = str(e)
        # one rank's callback ends the experience early: every rank stops there, and the result's costs
        # are the job's (a rank training on alone would pair its all-reduces with the others' next ones)
        stopped = _learner(WORLD, [Replay(BUFFER)], callbacks=[_StopAfterEpoch(rank=1, epoch=1)])
        result = stopped.fit(stream.experiences[:2])
        out["stopped"] = {
            "epochs": stopped.epochs_trained, "samples": result.samples, "local_samples": stopped.samples_trained,
            "bytes": result.buffer_bytes, "local_bytes": stopped.memory_bytes(),
            "params": [float(p.detach().double().sum()) for p in stopped.model.parameters()],
        }  # fmt: skip
        dist.barrier()  # every rank's work is done: what follows is teardown
        Path(tmp, f"rank{rank}.json").write_text(json.dumps(out))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch built without torch.distributed")
def test_two_gloo_processes_train_like_one(tmp_path):
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    stream = class_incremental(digits(), n_experiences=5)  # loaded once, sent to the workers
    try:
        mp.start_processes(
            _worker, args=(str(tmp_path), stream), nprocs=WORLD, start_method="spawn", join=True
        )
    except mp.ProcessExitedException:  # gloo can abort a rank whose peer closed its sockets first
        if not all((tmp_path / f"rank{r}.json").is_file() for r in range(WORLD)):
            raise  # a rank died before its work was done
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD))
    assert r0["world_size"] == r1["world_size"] == WORLD
    # disjoint shards of equal length covering every sample
    assert len(r0["shard"]) == len(r1["shard"]) == 6
    assert set(r0["shard"]) | set(r1["shard"]) == set(range(11))
    # DDP keeps the replicas identical; all-reduced importances and class means agree too
    assert r0["params"] == r1["params"]
    assert r0["fisher"] == r1["fisher"]
    assert r0["means"] == r1["means"]
    assert r0["memory"] == r1["memory"] == r0["capacity"] == BUFFER // WORLD  # a share per rank
    assert r0["ncm"] == r1["ncm"]
    for name in ("gpm", "agem", "ogd", "gdumb"):
        assert r0[name] == r1[name], name
    assert "bypasses DistributedDataParallel" in r0["refused"]
    assert "train GEM in one process" in r0["gem_refused"]
    single = _replay_ewc(1)
    for exp in stream:
        single.learn(exp)
    single_acc = sum(single.evaluate(stream)) / len(stream)
    assert r0["acc"] > 0.5
    assert abs(r0["acc"] - single_acc) < 0.05, (r0["acc"], single_acc)
    # rank 0's checkpoint loads in a single process and predicts as rank 0 did
    loaded = Learner.load(tmp_path / "ckpt")
    assert loaded.world_size == 1
    assert loaded.predict(stream.experiences[0].test.features()).tolist() == r0["predictions"]
    # ... holding the global memory: every rank's samples, the configured size
    memory = loaded.strategies[0].buffer_
    assert len(memory) == memory.capacity == BUFFER
    assert _memory_rows(loaded) == sorted(r0["memory_rows"] + r1["memory_rows"])
    # loaded again in the group, the ranks split it back into disjoint shares
    assert r0["reloaded_capacity"] == r1["reloaded_capacity"] == BUFFER // WORLD
    assert sorted(r0["reloaded_rows"] + r1["reloaded_rows"]) == _memory_rows(loaded)
    s0, s1 = r0["stopped"], r1["stopped"]
    assert s0["epochs"] == s1["epochs"] == 2 * 2  # both ranks stopped after epoch 1 of each experience
    assert s0["params"] == s1["params"]
    assert s0["samples"] == s1["samples"] == s0["local_samples"] + s1["local_samples"]
    assert s0["bytes"] == s1["bytes"] == s0["local_bytes"] + s1["local_bytes"] > s0["local_bytes"]
    _icarl_means_are_those_of_every_exemplar(tmp_path / "icarl", r0, r1)
    _ncm_sums_are_those_of_one_process(stream, r0["ncm"])


def _icarl_means_are_those_of_every_exemplar(path: Path, r0: dict, r1: dict) -> None:
    """The all-reduced means equal the class means a single process computes over all ranks' exemplars."""
    icarl = Learner.load(path)
    ex = icarl.strategies[0].exemplars_
    # both ranks' exemplars: what one process keeps (4 classes x 25; each rank's share was floored to 12)
    assert len(ex["y"]) == r0["exemplars"] + r1["exemplars"] == EXEMPLARS
    icarl.model.eval()
    with torch.no_grad():
        f = embed(icarl.model, ex["x"].float() * digits().train.scale)
    for c in torch.unique(ex["y"]).tolist():
        mean = torch.nn.functional.normalize(f[ex["y"] == c].mean(0), dim=0)
        assert torch.allclose(mean, torch.tensor(r0["means"][c]), atol=1e-5), c


def _ncm_sums_are_those_of_one_process(stream: Scenario, ncm: list) -> None:
    """NCM's pooled running sums equal one process's over the same data (frozen features)."""
    single = _learner(1, [NCM()])
    single.learn(dataclasses.replace(stream.experiences[0], train=_even(stream)))
    sums, counts = single.strategies[0].sums_, single.strategies[0].counts_
    assert counts.tolist() == ncm[1]
    assert torch.allclose(sums, torch.tensor(ncm[0]), atol=1e-4)


def test_without_a_group_everything_is_single_process():
    learner = _replay_ewc(1)
    assert learner.process_group is None and (learner.rank, learner.world_size) == (0, 1)
    assert learner._train_net is learner.model
    data = Dataset(torch.arange(5.0).unsqueeze(1), torch.zeros(5, dtype=torch.long))
    assert distributed.shard(data, None, seed=0) is data
    tensors = {"w": torch.ones(3)}
    assert distributed.all_reduce_mean(learner, tensors) is tensors


def test_exemplar_shares_join_back_in_herding_order():
    """Rows dealt class by class to the ranks (a load in a group) are interleaved back at a save."""
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    rows = {"x": torch.arange(9.0).unsqueeze(1), "y": y}
    position = distributed._position_in_class(y)
    assert position.tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 3]
    shares = [{k: v[position % 2 == r] for k, v in rows.items()} for r in range(2)]
    joined = distributed._join_rows(shares)
    assert torch.equal(joined["x"], rows["x"]) and torch.equal(joined["y"], y)


def test_an_emptied_memory_splits_into_empty_shares():
    """A memory the worker emptied (a concept drift forgets the old rule's labels) has fewer rows than
    ranks: rank 1 failed to load it ("upper bound and lower bound inconsistent with step sign"), and
    every `up --nproc 2` training after the drift failed (a trial)."""
    learner = _learner(1, [Replay(BUFFER)])
    data = digits().train
    learner.partial_fit(data.features()[:40], data.y[:40])
    memory = learner.strategies[0].buffer_
    memory.clear()
    learner.process_group, learner.rank, learner.world_size = object(), 1, 2  # as rank 1 of 2 sees it
    distributed.split_memories(learner)
    assert memory.size == 0 and memory.capacity == BUFFER // 2
