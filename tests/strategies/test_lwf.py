"""LwF: distillation on old tasks' own unmasked outputs, a teacher with grown heads, finite losses."""

import math
import tempfile

import torch
import torch.nn.functional as F

from lifelong.checks import toy_model, toy_scenario
from lifelong.data.dataset import Batch
from lifelong.learn import Callback, Learner
from lifelong.strategies import ICaRL, LwF, MultiHead, Naive


class Losses(Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_step_end(self, state, control) -> None:
        self.values.append(state.loss)


def _fit(strategies, kind: str = "task") -> tuple[Learner, list[list[float]], list[float]]:
    losses = Losses()
    learner = Learner(toy_model(), strategies, lr=0.1, batch_size=8, callbacks=[losses])
    return learner, learner.fit(toy_scenario(kind)).accuracy_matrix, losses.values


def test_task_incremental_lwf_distils_with_finite_losses() -> None:
    _, naive, _ = _fit([Naive()])
    _, lwf, losses = _fit([LwF(alpha=1.0)])
    assert lwf != naive  # the distillation term acts (it was NaN and zeroed before)
    assert losses and all(math.isfinite(v) for v in losses)


def test_penalty_is_kd_on_the_old_tasks_own_outputs() -> None:
    lwf = LwF(alpha=2.0, temperature=2.0)
    learner, _, _ = _fit([lwf])  # after two experiences both tasks are old
    x = toy_scenario("task").experiences[1].train.features()[:8]
    t = torch.ones(8, dtype=torch.long)
    with torch.no_grad():  # move the student away from the teacher
        learner.model.classifier.bias += torch.tensor([0.5, -0.5, 0.3, 0.0])
    logits = learner.forward(x, t)  # task 0's outputs are masked to -inf here
    got = lwf.penalty(learner, Batch(x, t, t), logits)
    terms = []
    for task in (0, 1):  # each old task on its own, unmasked outputs, averaged over tasks
        cls = list(learner.task_classes[task])
        new, old = learner.model(x)[:, cls], lwf._old_model(x)[:, cls]
        terms.append(F.kl_div(F.log_softmax(new / 2, 1), F.log_softmax(old / 2, 1), reduction="batchmean",
                              log_target=True))  # fmt: skip
    want = 2.0 * 4 * (terms[0] + terms[1]) / 2
    assert torch.isfinite(got) and float(got.detach()) > 0 and torch.allclose(got, want)


def test_multihead_with_lwf_uses_a_teacher_with_its_heads() -> None:
    lwf = LwF()
    learner, acc, losses = _fit([MultiHead(), lwf])
    assert sorted(lwf._old_model.task_heads) == ["0", "1"]  # a copy of the model as it was, heads included
    assert all(math.isfinite(v) for v in losses)
    with tempfile.TemporaryDirectory() as d:  # the teacher is rebuilt from a checkpoint of a grown model
        learner.save(d)
        loaded = Learner.load(d)
    s = loaded.strategies[1]
    batch = toy_scenario("task").experiences[1].train.batch(slice(0, 8))
    value = s.penalty(loaded, batch, loaded.forward(batch.x, batch.t))
    # same weights as the teacher: no distillation loss
    assert value is not None and torch.isfinite(value) and float(value.detach()) < 1e-6


def test_icarl_kd_distillation_is_finite_in_task_incremental() -> None:
    _, _, losses = _fit([ICaRL(40, distillation="kd")])
    assert losses and all(math.isfinite(v) for v in losses)


def test_class_incremental_penalty_is_kd_on_old_classes_as_a_run_or_not() -> None:
    from lifelong.strategies._distill import columns

    assert columns([2, 3, 4]) == slice(2, 5) and columns([0, 2]) == [0, 2] and columns([]) == []
    lwf = LwF(alpha=0.5, temperature=2.0)
    learner, _, _ = _fit([lwf], "class")
    x = toy_scenario("class").experiences[1].train.features()[:8]
    with torch.no_grad():  # move the student away from the teacher
        learner.model.classifier.bias += torch.tensor([0.5, -0.5, 0.3, 0.0])
    for old_classes in ([0, 1, 2], [0, 2, 3]):  # a contiguous run (a slice) and a list
        lwf.old_classes_, lwf._groups = old_classes, {}  # the cached groups follow a boundary
        logits = learner.forward(x)
        got = lwf.penalty(learner, Batch(x, torch.zeros(8, dtype=torch.long)), logits)
        new, old = logits[:, old_classes], lwf._old_model(x)[:, old_classes]
        kl = F.kl_div(
            F.log_softmax(new / 2, 1), F.log_softmax(old / 2, 1), reduction="batchmean", log_target=True
        )
        assert float(got.detach()) > 0 and torch.allclose(got, 0.5 * 4 * kl)
