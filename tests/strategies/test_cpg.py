"""CPG: compact, pick and grow; earlier tasks' outputs are bit-identical, growth follows its test."""

import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.strategies import CPG


def _two_tasks(strategy: CPG) -> tuple[Learner, torch.Tensor, torch.Tensor]:
    first, second = toy_scenario("task").experiences
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8, momentum=0.9, weight_decay=1e-3)
    learner.learn(first)
    before = learner.predict_logits(first.test.features(), first.test.t)
    learner.learn(second)
    return learner, before, learner.predict_logits(first.test.features(), first.test.t)


def test_earlier_task_logits_are_bit_identical_and_nothing_grows_when_the_goal_is_met() -> None:
    strategy = CPG(target_accuracy=0.0)
    learner, before, after = _two_tasks(strategy)
    assert torch.equal(before, after)
    assert strategy.sizes_ == [] and learner.model.features[1].out_features == 16
    assert set(strategy.picks_[1]) and not any(
        p.any() for p in strategy.picks_[0].values()
    )  # task 1 picks nothing


def test_layers_grow_when_the_accuracy_goal_is_missed_and_old_tasks_still_match() -> None:
    strategy = CPG(target_accuracy=1.01, grow_units=4, max_grow=1)
    learner, before, after = _two_tasks(strategy)
    assert torch.equal(before, after)
    assert strategy.sizes_ == [24] and learner.model.features[1].out_features == 24  # grew once per task
    assert strategy.task_sizes_ == [[20], [24]]
    assert learner.extra_parameters() > 0


def test_grown_structure_survives_a_checkpoint_and_training_resumes_identically(tmp_path) -> None:
    first, second = toy_scenario("task").experiences
    a = Learner(toy_model(), [CPG(target_accuracy=1.01, grow_units=4)], lr=0.1, batch_size=8, momentum=0.9)
    a.learn(first)
    a.save(tmp_path)
    b = Learner.load(tmp_path)
    assert b.model.features[1].out_features == 20 and b.extra_parameters() == a.extra_parameters()
    for learner in (a, b):
        torch.manual_seed(5)  # growth initialises new units from the global generator
        learner.learn(second)
    x, t = second.test.features(), second.test.t
    assert torch.equal(a.predict_logits(x, t), b.predict_logits(x, t))


def test_each_task_trains_and_keeps_its_own_biases_and_classifier_rows() -> None:
    """As the authors' code: biases were owned and frozen by the first task (the classifier bias did
    not move while task 2 trained), and task 1 took a share of task 2's classifier rows, frozen at
    their random initial values."""
    from lifelong.checks import toy_model, toy_scenario
    from lifelong.learn.learner import Learner

    stream = toy_scenario("task")
    first, second = stream.experiences
    strategy = CPG()
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8)
    learner.learn(first)
    before = learner.predict_logits(first.test.features(), first.test.t)
    owner = strategy.owner_["classifier.weight"]
    mine, others = list(first.classes), list(second.classes)
    assert bool((owner[mine] == 1).all()) and bool((owner[others] == 0).all())
    bias = learner.model.classifier.bias.detach().clone()
    learner.learn(second)
    assert not torch.equal(learner.model.classifier.bias[others], bias[others])  # task 2's own bias trained
    owner = strategy.owner_["classifier.weight"]  # rebuilt (padded) at each experience
    assert bool((owner[others] == 2).all()) and len(strategy.biases_) == 2
    assert torch.equal(
        before, learner.predict_logits(first.test.features(), first.test.t)
    )  # task 1 as it was
