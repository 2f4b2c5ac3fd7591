"""MIR faithfulness check: lifelong's MIR vs a plain-PyTorch transcription of the authors'
retrieve_replay_update (optimass/Maximally_Interfered_Retrieval, mir.py), same data/order/init.

usage: python benchmarks/mir_reference.py SEED LR FRACTION OUT.json  (FRACTION 1.0: the full training sets)
"""

import copy
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from lifelong.bench.benchmarks import get
from lifelong.bench.runner import _subsample
from lifelong.learn.learner import Learner
from lifelong.learn.models import for_input
from lifelong.strategies import MIR, Replay

torch.set_num_threads(1)
seed, lr, frac, out = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
MEM, SUB, BBS, BS = 500, 50, 10, 10


def scenario():
    return _subsample(get("split-fmnist").build(seed), frac, seed)


def new_model(sc):
    torch.manual_seed(seed)  # as bench's build_learner
    return for_input("mlp", sc.input_shape, sc.n_classes)


def run_lifelong(strategy, record=False):
    sc = scenario()
    model = new_model(sc)
    init = copy.deepcopy(model.state_dict())
    learner = Learner(model, [strategy], lr=lr, batch_size=BS, epochs=1, seed=seed)
    batches = []
    if record:  # the exact incoming batches, in order (instance attribute, project untouched)
        step = learner.train_step

        def rec(batch):
            batches.append((batch.x.clone(), batch.y.clone(), learner.experience_index))
            return step(batch)

        learner.train_step = rec
    t0 = time.time()
    res = learner.fit(sc)
    return float(res.metrics["acc"]), init, batches, sc, time.time() - t0, learner


def evaluate(model, sc):
    model.eval()
    accs = []
    with torch.no_grad():
        for e in sc.experiences:
            x, y = e.test.features(), e.test.y
            accs.append(float((model(x).argmax(1) == y).float().mean()))
    model.train()
    return float(np.mean(accs)), accs


class AuthorsBuffer:
    """Buffer.add_reservoir / Buffer.sample(exclude_task) as in the authors' buffer.py."""

    def __init__(self, size, shape, rng):
        self.bx = torch.zeros(size, *shape)
        self.by = torch.zeros(size, dtype=torch.long)
        self.bt = torch.zeros(size, dtype=torch.long)
        self.current_index, self.n_seen_so_far, self.rng = 0, 0, rng

    def add_reservoir(self, x, y, t):
        n_elem = x.size(0)
        place_left = max(0, self.bx.size(0) - self.current_index)
        if place_left:
            offset = min(place_left, n_elem)
            self.bx[self.current_index : self.current_index + offset] = x[:offset]
            self.by[self.current_index : self.current_index + offset] = y[:offset]
            self.bt[self.current_index : self.current_index + offset] = t
            self.current_index += offset
            self.n_seen_so_far += offset
            if offset == n_elem:
                return
        x, y = x[place_left:], y[place_left:]
        indices = torch.empty(x.size(0)).uniform_(0, self.n_seen_so_far).long()
        valid = (indices < self.bx.size(0)).long()
        idx_new = valid.nonzero().squeeze(-1)
        idx_buf = indices[idx_new]
        self.n_seen_so_far += x.size(0)
        if idx_buf.numel():
            self.bx[idx_buf], self.by[idx_buf], self.bt[idx_buf] = x[idx_new], y[idx_new], t

    def sample(self, amt, exclude_task=None):
        if exclude_task is not None:
            v = (self.bt[: self.current_index] != exclude_task).nonzero().squeeze(-1)
        else:
            v = torch.arange(self.current_index)
        bx, by = self.bx[v], self.by[v]
        if bx.size(0) < amt:
            return bx, by
        ind = torch.from_numpy(self.rng.choice(bx.size(0), amt, replace=False))
        return bx[ind], by[ind]


def authors(init, batches, sc, method="mir", exclude=True, concat_mean=False):
    """retrieve_replay_update, step by step, then buffer.add_reservoir(data, target, task)."""
    torch.manual_seed(1000 + seed)
    model = new_model(sc)
    model.load_state_dict(init)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    buf = AuthorsBuffer(MEM, batches[0][0].shape[1:], np.random.RandomState(seed))
    for x, y, task in batches:
        rehearse = task > 0
        loss = F.cross_entropy(model(x), y)  # (loss_a).sum() / loss_a.size(0)
        opt.zero_grad()
        loss.backward()
        if rehearse:
            ex = task if exclude else None
            if method == "mir":
                bx, by = buf.sample(SUB, exclude_task=ex)
                model_temp = copy.deepcopy(model)  # get_future_step_parameters
                with torch.no_grad():
                    for p, q in zip(model_temp.parameters(), model.parameters()):
                        p.sub_(lr * q.grad)
                    pre = F.cross_entropy(model(bx), by, reduction="none")
                    post = F.cross_entropy(model_temp(bx), by, reduction="none")
                    big = (post - pre).sort(descending=True)[1][:BBS]
                mem_x, mem_y = bx[big], by[big]
            else:  # ER baseline of the same code base
                mem_x, mem_y = buf.sample(BBS, exclude_task=ex)
            if concat_mean:  # lifelong Replay's loss: one mean over the 20 samples
                opt.zero_grad()
                F.cross_entropy(model(torch.cat([x, mem_x])), torch.cat([y, mem_y])).backward()
            else:
                F.cross_entropy(model(mem_x), mem_y).backward()
        opt.step()
        buf.add_reservoir(x, y, task)
    return evaluate(model, sc)


def one_step_check(learner, sc):
    """Same parameters, same incoming batch, same 50 candidates: lifelong's step vs the authors'."""
    g = torch.Generator().manual_seed(7)
    strat = learner.strategies[0]
    _, cands, _ = strat.buffer_.sample(SUB, g, logits=False)
    data = sc.experiences[-1].train
    idx = torch.randperm(len(data), generator=g)[:BS]
    x, y = data.features(idx), data.y[idx]
    ref = copy.deepcopy(learner.model)
    strat.buffer_.sample = lambda n, gen, logits=False: (None, cands, None)  # fixed candidates
    learner.train_step(__import__("lifelong").data.dataset.Batch(x, y, None))
    del strat.buffer_.sample
    opt = torch.optim.SGD(ref.parameters(), lr=lr)
    opt.zero_grad()
    F.cross_entropy(ref(x), y).backward()
    tmp = copy.deepcopy(ref)
    with torch.no_grad():
        for p, q in zip(tmp.parameters(), ref.parameters()):
            p.sub_(lr * q.grad)
        big = (
            F.cross_entropy(tmp(cands.x), cands.y, reduction="none")
            - F.cross_entropy(ref(cands.x), cands.y, reduction="none")
        ).sort(descending=True)[1][:BBS]
    F.cross_entropy(ref(cands.x[big]), cands.y[big]).backward()
    opt.step()
    return max(
        float((p - q).detach().abs().max()) for p, q in zip(learner.model.parameters(), ref.parameters())
    )


r = {"seed": seed, "lr": lr, "frac": frac}
r["lifelong_mir"], init, batches, sc, r["t_mir"], learner = run_lifelong(MIR(MEM, BBS, SUB), record=True)
r["one_step_maxdiff"] = one_step_check(learner, sc)
t0 = time.time()
r["authors_mir"] = authors(init, batches, sc, "mir", exclude=True)[0]
r["t_authors"] = time.time() - t0
r["authors_mir_noexcl"] = authors(init, batches, sc, "mir", exclude=False)[0]
r["authors_er"] = authors(init, batches, sc, "er", exclude=True)[0]
r["authors_er_noexcl_mean20"] = authors(init, batches, sc, "er", exclude=False, concat_mean=True)[0]
r["lifelong_replay10"] = run_lifelong(Replay(MEM, BBS))[0]
r["lifelong_mir_own_eval"] = evaluate(learner.model, sc)[0]  # after the one extra check step
r["steps"] = len(batches)
print(json.dumps(r))
with open(out, "w") as f:
    json.dump(r, f)
