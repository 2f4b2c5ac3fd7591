"""PackNet: earlier tasks' outputs are bit-identical after later tasks; pruning releases weights."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.data.scenarios import Experience, Scenario
from lifelong.errors import ConfigError
from lifelong.learn.learner import Learner
from lifelong.strategies import PackNet
from lifelong.strategies.packnet import DEFAULT_PRUNE


def test_earlier_task_logits_are_bit_identical_after_later_tasks() -> None:
    stream = toy_scenario("task")
    first, second = stream.experiences
    # momentum and weight decay move zero-gradient weights: the freeze must hold against both
    learner = Learner(
        toy_model(), [PackNet(prune=0.5)], lr=0.1, batch_size=8, momentum=0.9, weight_decay=1e-3
    )
    learner.learn(first)
    before = learner.predict_logits(first.test.features(), first.test.t)
    weights = learner.model.features[1].weight.detach().clone()
    learner.learn(second)
    assert torch.equal(before, learner.predict_logits(first.test.features(), first.test.t))
    assert not torch.equal(weights, learner.model.features[1].weight)  # free weights did train
    assert learner.evaluate(stream)[1] > 0.6


def test_pruning_keeps_the_largest_fraction_and_zeroes_the_rest() -> None:
    strategy = PackNet(prune=0.5, finetune_epochs=0)
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8)
    learner.learn(toy_scenario("task").experiences[0])
    owner, w = strategy.owner_["features.1.weight"], learner.model.features[1].weight.detach()
    assert abs(float((owner == 1).float().mean()) - 0.5) < 0.05
    assert torch.all(w[owner == 0] == 0)
    assert w[owner == 1].abs().min() >= w[owner == 0].abs().max()
    assert strategy.tasks_ == [0] and strategy.memory_bytes() > 0


def test_default_gives_every_task_an_equal_share() -> None:
    """Each of n tasks keeps 1/n of the weights; the last keeps all still free (a fixed 0.5 left 1/4 unused)."""
    strategy = PackNet(finetune_epochs=0)
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8)
    first, second = toy_scenario("task").experiences  # the scenario says: two tasks
    learner.learn(first)
    owner = strategy.owner_["features.1.weight"]
    assert abs(float((owner == 1).float().mean()) - 0.5) < 0.05
    learner.learn(second)
    assert int((owner == 0).sum()) == 0 and abs(float((owner == 2).float().mean()) - 0.5) < 0.05


def test_shares_follow_n_tasks() -> None:
    strategy = PackNet(finetune_epochs=0, n_tasks=4)
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8)
    first, second = toy_scenario("task").experiences
    assert [strategy.prune_fraction(k, first) for k in (1, 2, 3, 4)] == [0.75, 1 - 1 / 3, 0.5, 0.0]
    learner.learn(first)
    assert abs(float((strategy.owner_["features.1.weight"] == 1).float().mean()) - 0.25) < 0.05
    assert PackNet(prune=0.8).prune_fraction(3, first) == 0.8


def test_bad_prune_is_refused() -> None:
    with pytest.raises(ConfigError, match="prune"):
        PackNet(prune=1.0)
    with pytest.raises(ConfigError, match="n_tasks"):
        PackNet(n_tasks=0)


def _scenario(*experiences: Experience) -> Scenario:
    """A task scenario of these experiences, built right before it is fit (building one points its
    experiences at it: the scenario an experience came in is the one PackNet sizes its shares from)."""
    return Scenario("part", "task", list(experiences), 4)


def test_fitting_task_by_task_leaves_capacity_for_later_tasks(tmp_path) -> None:
    """One fit per task (here resumed from a checkpoint in between): a one-experience scenario does not
    say how many tasks follow, so each releases half its free weights instead of keeping them all."""
    first, second = toy_scenario("task").experiences
    strategy = PackNet()
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8)
    learner.fit(_scenario(first))
    free = float((strategy.owner_["features.1.weight"] == 0).float().mean())
    assert strategy.plan_ is None and abs(free - DEFAULT_PRUNE) < 0.05
    learner.save(tmp_path)
    resumed = Learner.load(tmp_path)
    resumed.fit(_scenario(second))
    accuracy = resumed.evaluate([first, second])
    assert accuracy[1] > 0.8  # two classes per task: chance is 0.5, where the second task used to score
    assert accuracy[0] > 0.8


def test_a_whole_scenario_fit_still_packs_equal_shares() -> None:
    strategy = PackNet(finetune_epochs=0)
    Learner(toy_model(), [strategy], lr=0.1, batch_size=8).fit(toy_scenario("task"))
    owner = strategy.owner_["features.1.weight"]
    assert strategy.plan_ == 2 and int((owner == 0).sum()) == 0
    assert abs(float((owner == 1).float().mean()) - 0.5) < 0.05


@pytest.mark.parametrize("sized", ["n_tasks", "scenario"])
def test_a_task_with_no_free_weights_left_is_refused(sized: str) -> None:
    first, second = toy_scenario("task").experiences
    strategy = PackNet(n_tasks=1) if sized == "n_tasks" else PackNet()
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8)
    learner.fit(_scenario(first) if sized == "n_tasks" else _scenario(first, second))  # fills the network
    seen = (learner.experience_index, learner.classes_seen)
    with pytest.raises(
        ConfigError, match=r"no free weights left for task .*n_tasks=<tasks in the whole stream>"
    ):
        learner.fit(_scenario(second) if sized == "n_tasks" else _scenario(first))
    assert (learner.experience_index, learner.classes_seen) == seen  # refused: nothing counted


def test_a_fit_with_more_tasks_than_shares_is_refused_before_training() -> None:
    """Was refused at the task with no room, after the earlier ones had trained (and their Result lost)."""
    first, second = toy_scenario("task").experiences
    learner = Learner(toy_model(), [PackNet(n_tasks=1)], lr=0.1, batch_size=8)
    with pytest.raises(
        ConfigError, match=r"task 1 \(experience 1\): the 1 tasks .*equal shares for 1 tasks, n_tasks"
    ):
        learner.fit(_scenario(first, second))
    assert learner.samples_trained == 0 and learner.strategies[0].tasks_ == []
    Learner(toy_model(), [PackNet(prune=0.5)], lr=0.1, batch_size=8).fit(
        _scenario(first, second)
    )  # a fixed prune never runs out


def test_a_checkpoint_saved_mid_experience_keeps_earlier_tasks_weights_frozen(tmp_path) -> None:
    """The freeze was set at the experience's start and not saved: after loading, task 0's weights
    trained again (the largest moved by 0.0135)."""
    from lifelong.learn.models import create_model

    torch.manual_seed(0)
    learner = Learner(create_model("mlp", in_features=8, n_classes=4), [PackNet(n_tasks=2)], lr=0.1)
    learner.partial_fit(torch.randn(60, 8), torch.arange(60) % 2, torch.zeros(60, dtype=torch.long))
    learner.consolidate()
    kept = {n: o == 1 for n, o in learner.strategies[0].owner_.items()}
    before = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
    task1 = torch.ones(40, dtype=torch.long)
    learner.partial_fit(torch.randn(40, 8), 2 + torch.arange(40) % 2, task1)
    learner.save(tmp_path)
    loaded = Learner.load(tmp_path)
    loaded.partial_fit(torch.randn(40, 8), 2 + torch.arange(40) % 2, task1)
    for n, p in loaded.model.named_parameters():
        assert torch.equal(p.detach()[kept[n]], before[n][kept[n]]), n


def test_a_frozen_backbone_is_not_pruned() -> None:
    """Pruned weights that can never retrain would be zeros for good: frozen ones go whole to task 1."""
    model = toy_model()
    model.features[1].requires_grad_(False)
    frozen = model.features[1].weight.detach().clone()
    strategy = PackNet(prune=0.5)
    learner = Learner(model, [strategy], lr=0.1, batch_size=8)
    learner.learn(toy_scenario("task").experiences[0])
    assert torch.equal(model.features[1].weight, frozen)
    assert bool((strategy.owner_["features.1.weight"] == 1).all())


def test_each_task_owns_its_classes_head_rows_whole_and_leaves_the_others_free() -> None:
    """The head was pruned as a shared layer: the first task took every bias and a third of the next
    tasks' rows, frozen at their random initial values, and kept only 41% of its own rows."""
    stream = toy_scenario("task")
    first, second = stream.experiences
    strategy = PackNet(prune=0.5)
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8)
    head = learner.model.classifier
    init = head.weight.detach().clone(), head.bias.detach().clone()
    learner.learn(first)
    w_owner, b_owner = strategy.owner_["classifier.weight"], strategy.owner_["classifier.bias"]
    mine, others = list(first.classes), list(second.classes)
    assert bool((w_owner[mine] == 1).all()) and bool((b_owner[mine] == 1).all())  # whole, not pruned
    assert bool((w_owner[others] == 0).all()) and bool((b_owner[others] == 0).all())
    assert torch.equal(head.weight[others], init[0][others])  # neither zeroed nor taken
    learner.learn(second)
    assert bool((w_owner[others] == 2).all()) and bool((b_owner[others] == 2).all())
    assert not torch.equal(head.bias[others], init[1][others])  # the second task trained its own bias
    assert min(learner.evaluate(stream)) > 0.6


def test_retraining_after_pruning_runs_at_its_own_rate_then_the_learners(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lifelong.strategies.packnet as packnet

    seen = []
    monkeypatch.setattr(
        packnet, "retrain", lambda learner, data, epochs: seen.append(learner.optimizer.param_groups[0]["lr"])
    )
    learner = Learner(toy_model(), [PackNet(prune=0.5, finetune_lr_factor=0.1)], lr=0.2, batch_size=8)
    learner.learn(toy_scenario("task").experiences[0])
    assert seen == [pytest.approx(0.02)] and learner.optimizer.param_groups[0]["lr"] == 0.2
    with pytest.raises(ConfigError, match="finetune_lr_factor"):
        PackNet(finetune_lr_factor=0)


def test_a_head_shared_by_tasks_of_the_same_classes_is_pruned_as_shared_weights() -> None:
    """As permuted MNIST's one 10-way head: the first task must not take the rows every task needs."""
    from lifelong.data import from_tensors
    from lifelong.data.scenarios import tasks_from_column

    g = torch.Generator().manual_seed(0)
    data = from_tensors(torch.randn(160, 8, generator=g), torch.arange(160) % 4)
    stream = tasks_from_column(data, [0] * 80 + [1] * 80)
    strategy = PackNet(finetune_epochs=0)
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8)
    learner.learn(stream.experiences[0])
    owner = strategy.owner_["classifier.weight"]
    assert abs(float((owner == 1).float().mean()) - 0.5) < 0.1  # half kept, half left for task 2
    learner.learn(stream.experiences[1])
    assert int((owner == 0).sum()) == 0 and bool((owner == 2).any())
