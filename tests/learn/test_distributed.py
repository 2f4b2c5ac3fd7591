"""torch.distributed: two gloo processes train Split digits as one, and rank 0's checkpoint loads alone."""

from __future__ import annotations

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
from lifelong.learn import Learner, distributed
from lifelong.learn.models import MLP
from lifelong.strategies import EWC, ICaRL, Replay

WORLD = 2
BATCH, BUFFER, FISHER = 32, 400, 256  # global: split across ranks


def _learner(world: int, strategies: list) -> Learner:
    torch.manual_seed(0)
    return Learner(MLP(64, (64,), 10), strategies, lr=0.1, batch_size=BATCH // world, epochs=4, seed=0)


def _replay_ewc(world: int) -> Learner:
    return _learner(world, [Replay(BUFFER // world), EWC(lam=10.0, fisher_samples=FISHER // world)])


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
        learner.save(Path(tmp) / "ckpt")
        out["predictions"] = learner.predict(stream.experiences[0].test.features()).tolist()
        icarl = _learner(WORLD, [ICaRL(buffer_size=100)])
        for exp in stream.experiences[:2]:
            icarl.learn(exp)
        out["means"] = icarl.strategies[0].means_.tolist()
    finally:
        dist.destroy_process_group()
    Path(tmp, f"rank{rank}.json").write_text(json.dumps(out))


@pytest.mark.skipif(not dist.is_available(), reason="torch built without torch.distributed")
def test_two_gloo_processes_train_like_one(tmp_path):
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    stream = class_incremental(digits(), n_experiences=5)  # loaded once, sent to the workers
    mp.start_processes(_worker, args=(str(tmp_path), stream), nprocs=WORLD, start_method="spawn", join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD))
    assert r0["world_size"] == r1["world_size"] == WORLD
    # disjoint shards of equal length covering every sample
    assert len(r0["shard"]) == len(r1["shard"]) == 6
    assert set(r0["shard"]) | set(r1["shard"]) == set(range(11))
    # DDP keeps the replicas identical; all-reduced importances and class means agree too
    assert r0["params"] == r1["params"]
    assert r0["fisher"] == r1["fisher"]
    assert r0["means"] == r1["means"]
    assert r0["memory"] == r1["memory"] == BUFFER // WORLD  # the memory is per rank
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


def test_without_a_group_everything_is_single_process():
    learner = _replay_ewc(1)
    assert learner.process_group is None and (learner.rank, learner.world_size) == (0, 1)
    assert learner._train_net is learner.model
    data = Dataset(torch.arange(5.0).unsqueeze(1), torch.zeros(5, dtype=torch.long))
    assert distributed.shard(data, None, seed=0) is data
    tensors = {"w": torch.ones(3)}
    assert distributed.all_reduce_mean(learner, tensors) is tensors
