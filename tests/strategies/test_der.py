"""DER / DER++: memory holds the logits given at insertion; the penalty matches them again."""

import copy

import torch
import torch.nn.functional as F

from lifelong.checks import toy_data, toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.learn.strategy import Strategy
from lifelong.strategies import DER, DERPP


def _batch(n: int = 8):
    return toy_data().train.batch(torch.randperm(240, generator=torch.Generator().manual_seed(0))[:n])


def test_stores_the_logits_of_the_training_forward() -> None:
    der = DER(buffer_size=20)
    learner = Learner(toy_model(), [der], lr=0.1, batch_size=8)
    batch = _batch()
    before = copy.deepcopy(learner.model)  # the model that trains on this batch (the paper's z = h(x))
    learner.train_step(batch)
    with torch.no_grad():
        expected = before(batch.x)
    assert torch.equal(der.buffer_.x[:8], batch.x)
    assert torch.allclose(der.buffer_.logits[:8], expected)
    assert not torch.allclose(learner.model(batch.x), expected)  # the step moved the model on


def test_penalty_zero_when_model_still_gives_the_stored_logits() -> None:
    der = DER(buffer_size=20)
    learner = Learner(toy_model(), [der], lr=0.1, batch_size=8)
    batch = _batch()
    with torch.no_grad():
        z = learner.model(batch.x)
    der.buffer_.add(batch.x, batch.y, generator=learner.generator, logits=z)
    learner.incoming = batch
    assert float(der.penalty(learner, batch, z).detach()) == 0.0
    with torch.no_grad():
        learner.model.classifier.bias.add_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    assert float(der.penalty(learner, batch, z).detach()) > 0.0


def test_derpp_adds_cross_entropy_on_replayed_labels() -> None:
    learner = Learner(toy_model(), [], lr=0.1, batch_size=8)
    batch = _batch()
    with torch.no_grad():
        z = learner.model(batch.x)
    for beta, positive in ((0.0, False), (0.5, True)):
        derpp = DERPP(buffer_size=8, beta=beta)  # memory = this batch, so the CE is on it
        derpp.buffer_.add(batch.x, batch.y, generator=learner.generator, logits=z)
        learner.incoming = batch
        value = float(derpp.penalty(learner, batch, z).detach())
        assert (value > 0) == positive
        if positive:
            assert abs(value - 0.5 * float(F.cross_entropy(z, batch.y))) < 1e-5


def test_task_masks_stay_finite() -> None:
    der = DERPP(buffer_size=20)
    learner = Learner(toy_model(), [der], lr=0.1, batch_size=32)
    learner.fit(toy_scenario("task"))  # stored logits hold -inf outside their task
    assert torch.isinf(der.buffer_.logits).any()
    assert all(torch.isfinite(p).all() for p in learner.model.parameters())


def test_uint8_budget(uint8_scenario) -> None:
    der = DER(buffer_size=20)
    Learner(toy_model(), [der], lr=0.1, batch_size=32).fit(uint8_scenario)
    assert der.buffer_.x.dtype == torch.uint8
    assert der.memory_bytes() == 20 * (8 + 8 + 8 + 4 * 4)  # uint8 inputs, label, task id, 4 float32 logits


def test_non_finite_stored_logits_are_left_out_of_the_match() -> None:
    der = DER(buffer_size=8, alpha=1.0)
    learner = Learner(toy_model(), [der], lr=0.1, batch_size=8)
    batch = _batch()
    with torch.no_grad():
        z = learner.model(batch.x)
    der.buffer_.add(batch.x, batch.y, generator=learner.generator, logits=z + 1.0)
    assert der.buffer_.finite_logits  # all finite: a plain MSE over every logit
    learner.incoming = batch
    assert abs(float(der.penalty(learner, batch, z).detach()) - 1.0) < 1e-5
    stored = z + 1.0
    stored[:, 0], stored[0, 1] = float("-inf"), float("nan")  # masked and missing targets
    der = DER(buffer_size=8, alpha=1.0)
    learner = Learner(toy_model(), [der], lr=0.1, batch_size=8)  # toy_model: the same weights again
    der.buffer_.add(batch.x, batch.y, generator=learner.generator, logits=stored)
    assert not der.buffer_.finite_logits
    learner.incoming = batch
    value = der.penalty(learner, batch, z)
    assert torch.isfinite(value) and abs(float(value.detach()) - 1.0) < 1e-5  # the finite entries only
    value.backward()
    assert all(torch.isfinite(p.grad).all() for p in learner.model.parameters() if p.grad is not None)
    der.buffer_.load_state_dict(der.buffer_.state_dict())
    assert not der.buffer_.finite_logits  # recomputed from the stored logits


class _OwnLoss(Strategy):
    """A strategy that may replace the loss (it never does): DER must then forward its memory apart."""

    def loss(self, learner, batch, logits):
        return None


def _forwards(learner: Learner) -> list[int]:
    sizes: list[int] = []
    learner.model.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))
    return sizes


def _train(strategies, model, steps: int = 40) -> tuple[Learner, list[int]]:
    learner = Learner(model, strategies, lr=0.1, batch_size=8, seed=3)
    sizes = _forwards(learner)
    data = toy_data().train
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(1))
    for i in range(steps):
        learner.train_step(data.batch(order[(8 * i) % 232 :][:8]))
    return learner, sizes


def test_derpp_trains_memory_and_incoming_in_one_forward_as_separate_forwards_would() -> None:
    joint, joint_sizes = _train([DERPP(buffer_size=24, alpha=0.5, beta=0.5)], toy_model())
    apart, apart_sizes = _train([DERPP(buffer_size=24, alpha=0.5, beta=0.5), _OwnLoss()], toy_model())
    assert joint_sizes[:3] == [8, 24, 24] and len(joint_sizes) == 40  # one forward: 8 incoming + 2 x 8 memory
    assert apart_sizes[:4] == [8, 8, 8, 8] and len(apart_sizes) == 1 + 3 * 39
    for a, b in zip(joint.model.parameters(), apart.model.parameters()):
        assert torch.allclose(a, b, atol=1e-5)  # the same draws, the same loss: equal up to float rounding
    assert not torch.equal(joint.model.classifier.weight, toy_model().classifier.weight)


def test_der_forwards_memory_apart_when_batch_norm_mixes_samples() -> None:
    model = toy_model()
    model.features = torch.nn.Sequential(model.features, torch.nn.BatchNorm1d(16))
    _, sizes = _train([DER(buffer_size=24)], model, steps=5)
    assert sizes == [8] + [8, 8] * 4  # batch statistics per forward, as mammoth computes them


class _Deferred(DERPP):
    """DER++ writing its memory as on an accelerator: each step's logits at the next step's start."""

    def _defers(self, learner: Learner) -> bool:
        return True


def test_a_deferred_memory_write_trains_as_the_direct_one() -> None:
    """Accelerators write a step's logits at the next step, before its draw: the same memory, the same run."""
    runs = []
    for cls in (DERPP, _Deferred):
        torch.manual_seed(0)
        derpp = cls(buffer_size=30, batch_size=8, alpha=0.5, beta=0.5)
        learner = Learner(toy_model(), [derpp], lr=0.05, batch_size=8, seed=0)
        scenario = toy_scenario("class")
        learner.learn(scenario.experiences[0])
        extra = scenario.experiences[0].train.subset(torch.arange(8))
        learner.partial_fit(extra.x, extra.y)  # a step outside any experience: pending until read
        pending = getattr(derpp, "_pending", None) is not None
        memory = derpp.state_dict()["buffer_"]  # reading the state writes what is pending first
        learner.learn(scenario.experiences[1])
        runs.append(
            (pending, memory, [p.detach().clone() for p in learner.model.parameters()], derpp.buffer_.seen)
        )
    (direct_pending, direct_memory, direct_weights, direct_seen), (pending, memory, weights, seen) = runs
    assert not direct_pending and pending
    assert set(direct_memory) == set(memory)
    for k, v in direct_memory.items():
        assert torch.equal(v, memory[k]) if isinstance(v, torch.Tensor) else v == memory[k], k
    assert all(torch.equal(a, b) for a, b in zip(direct_weights, weights)) and direct_seen == seen
