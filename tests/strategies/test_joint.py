"""Joint: one pass of training over the union of the stream, then nothing."""

import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn import Learner
from lifelong.strategies import Joint


def test_joint_trains_once_on_everything() -> None:
    result = Learner(toy_model(), [Joint()], lr=0.1, batch_size=8).fit(toy_scenario())
    assert result.samples == 240 and result.metrics["forgetting"] == 0.0 and result.metrics["acc"] > 0.9


def test_joint_on_tasks_masks_each_sample_by_its_own_task() -> None:
    learner = Learner(toy_model(), [Joint()], lr=0.1, batch_size=8)
    result = learner.fit(toy_scenario("task"))
    assert learner.task_classes == {0: (0, 1), 1: (2, 3)}  # known from the data, before experience 1 began
    assert result.accuracy_matrix[0][1] > 0.9 and result.metrics["acc"] > 0.9


def test_later_experiences_add_nothing_and_the_model_stays_as_it_was() -> None:
    scenario = toy_scenario()
    learner = Learner(toy_model(), [Joint()], lr=0.1, batch_size=8)
    learner.learn(scenario[0])
    after_first = [p.detach().clone() for p in learner.model.parameters()]
    learner.learn(scenario[1])
    assert all(torch.equal(a, p) for a, p in zip(after_first, learner.model.parameters()))


def test_an_experience_outside_a_scenario_is_trained_on_alone() -> None:
    experience = toy_scenario()[1]
    experience.scenario = None
    strategy = Joint()
    data = strategy.train_data(Learner(toy_model(), [strategy]), experience, experience.train)
    assert len(data) == len(experience.train)


def test_joint_trains_on_the_experiences_fit_is_given_not_their_whole_scenario() -> None:
    """fit(scenario[:1]) trained on every experience of the scenario, classes never in the stream too."""
    learner = Learner(toy_model(), [Joint()], lr=0.1, batch_size=8)
    result = learner.fit(toy_scenario()[:1])
    assert result.samples == 120 and learner.classes_seen == (0, 1)
