"""MIR: replay the memories one virtual SGD step on the incoming batch would hurt most."""

import copy

import torch
import torch.nn.functional as F

from lifelong.checks import toy_data, toy_model, toy_scenario
from lifelong.data.dataset import Batch
from lifelong.learn.learner import Learner
from lifelong.strategies import MIR


def _after_one_experience(mir: MIR) -> Learner:
    learner = Learner(toy_model(), [mir], lr=0.1, batch_size=4)
    learner.learn(toy_scenario("class").experiences[0])  # fills the memory; the second experience replays
    learner._begin(toy_scenario("class").experiences[1])  # noqa: SLF001 - open it without training
    return learner


def test_it_replays_the_candidates_a_step_would_hurt_most_and_leaves_the_weights_alone() -> None:
    mir = MIR(buffer_size=40, batch_size=3, subsample=12)
    learner = _after_one_experience(mir)
    data = toy_data().train
    incoming = Batch(data.x[:4], data.y[:4])
    learner.incoming = incoming
    before = copy.deepcopy(learner.model.state_dict())
    state = learner.generator.get_state()
    _, candidates, _ = mir.buffer_.sample(12, learner.generator, logits=False)
    learner.generator.set_state(state)  # the strategy draws the same candidates
    replayed = mir.batch(learner, incoming)
    assert all(torch.equal(v, learner.model.state_dict()[k]) for k, v in before.items())  # restored exactly
    # the interference computed by hand, on a copy stepped by SGD at the learner's lr
    model = learner.model
    step = copy.deepcopy(model)
    loss = F.cross_entropy(step(incoming.x), incoming.y)
    grads = torch.autograd.grad(loss, list(step.parameters()))
    with torch.no_grad():
        for p, g in zip(step.parameters(), grads):
            p.sub_(0.1 * g)
        rise = F.cross_entropy(step(candidates.x), candidates.y, reduction="none") - F.cross_entropy(
            model(candidates.x), candidates.y, reduction="none"
        )
    chosen = rise.topk(3).indices
    assert torch.equal(replayed.x[4:], candidates.x[chosen]) and torch.equal(
        replayed.y[4:], candidates.y[chosen]
    )


def test_the_loss_sums_the_incoming_and_replayed_means() -> None:
    mir = MIR(buffer_size=40, batch_size=2)
    learner = _after_one_experience(mir)
    x, y = torch.randn(6, 8), torch.tensor([2, 3, 2, 3, 0, 1])
    learner.incoming = Batch(x[:4], y[:4])
    logits = torch.randn(6, 4)
    expected = F.cross_entropy(logits[:4], y[:4]) + F.cross_entropy(logits[4:], y[4:])
    assert torch.allclose(mir.loss(learner, Batch(x, y), logits), expected)


def test_the_first_experience_is_fine_tuning_unless_the_stream_is_task_free() -> None:
    mir = MIR(buffer_size=40)
    learner = Learner(toy_model(), [mir], lr=0.1, batch_size=4)
    first = toy_scenario("class").experiences[0]
    learner._begin(first)  # noqa: SLF001
    mir.buffer_.add(
        first.train.x[:8], first.train.y[:8], torch.zeros(8, dtype=torch.long), generator=learner.generator
    )
    incoming = Batch(first.train.x[8:12], first.train.y[8:12])
    assert mir.batch(learner, incoming) is incoming
    learner.task_free = True
    assert len(mir.batch(learner, incoming).y) == 8
