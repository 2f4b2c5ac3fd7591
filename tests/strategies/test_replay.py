"""Replay: the batch is the incoming samples followed by memory samples; the memory is a reservoir."""

import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn import Learner
from lifelong.strategies import Naive, Replay


def _after_first(replay: Replay) -> Learner:
    learner = Learner(toy_model(), [replay], lr=0.1, batch_size=8)
    learner.learn(toy_scenario("class")[0])
    return learner


def test_batch_is_incoming_then_memory() -> None:
    replay = Replay(buffer_size=40, batch_size=5)
    learner = _after_first(replay)
    incoming = toy_scenario("class")[1].train.batch(slice(0, 8))
    out = replay.batch(learner, incoming)
    assert len(out.y) == 8 + 5 and torch.equal(out.x[:8], incoming.x) and torch.equal(out.y[:8], incoming.y)
    stored = replay.buffer_.x[: len(replay.buffer_)]
    for row, label in zip(out.x[8:], out.y[8:]):  # each replayed sample is a stored one, label included
        match = (stored == row).all(1).nonzero().squeeze(1)
        assert len(match) == 1 and replay.buffer_.y[match[0]] == label
    assert len(set(map(tuple, out.x[8:].tolist()))) == 5  # drawn without replacement


def test_replayed_count_defaults_to_the_learners_batch_size() -> None:
    replay = Replay(buffer_size=40)
    learner = _after_first(replay)
    out = replay.batch(learner, toy_scenario("class")[1].train.batch(slice(0, 8)))
    assert len(out.y) == 16


def test_memory_is_a_uniform_sample_of_the_stream() -> None:
    replay = Replay(buffer_size=40)
    learner = Learner(toy_model(), [replay], lr=0.1, batch_size=8)
    learner.fit(toy_scenario("class"))
    counts = torch.bincount(replay.buffer_.y[: len(replay.buffer_)], minlength=4)
    assert len(replay.buffer_) == 40 and replay.buffer_.seen == 240
    assert counts.min() >= 4  # 10 expected per class; every class of both experiences is kept


def test_replay_remembers_old_classes_better_than_naive() -> None:
    naive = Learner(toy_model(), [Naive()], lr=0.1, batch_size=8).fit(toy_scenario())
    replay = Learner(toy_model(), [Replay(40)], lr=0.1, batch_size=8).fit(toy_scenario())
    assert replay.accuracy_matrix[1][0] > naive.accuracy_matrix[1][0] + 0.3


def test_each_sample_is_offered_once_per_experience_whatever_the_epochs() -> None:
    """Was: every epoch's batches were offered again, so a memory as large as the data filled with
    copies (a trial: 1,000 slots, 143 distinct samples after 10 epochs)."""
    experience = toy_scenario()[0]
    replay = Replay(buffer_size=1000)
    Learner(toy_model(), [replay], lr=0.1, batch_size=8, epochs=5).learn(experience)
    stored = replay.buffer_.x[: len(replay.buffer_)]
    assert replay.buffer_.seen == len(experience.train) == len(replay.buffer_)
    assert len(torch.unique(stored, dim=0)) == len(experience.train)  # no copies
