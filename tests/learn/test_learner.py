import pytest
import torch

from lifelong.checks import toy_data, toy_model, toy_scenario
from lifelong.data import from_tensors
from lifelong.errors import ConfigError, DataError, StrategyMismatchError
from lifelong.learn import Callback, Control, EarlyStopping, Learner, LoopState, Strategy, Timer
from lifelong.learn.learner import CALLBACK_HOOKS
from lifelong.learn.strategy import HOOKS
from lifelong.strategies import EWC, Joint, Naive, Replay


def test_fit_builds_the_accuracy_matrix() -> None:
    result = Learner(toy_model(), [Naive()], lr=0.1, batch_size=8).fit(toy_scenario())
    assert len(result.accuracy_matrix) == 2 and all(len(r) == 2 for r in result.accuracy_matrix)
    assert result.accuracy_matrix[0][0] > 0.9  # the first experience is learned
    assert result.accuracy_matrix[1][0] < 0.5  # and forgotten by naive fine-tuning: class-incremental
    assert result.metrics["forgetting"] > 0.4
    assert len(result.untrained_accuracy) == 2 and result.epochs == 2 and result.samples == 240


def test_replay_reduces_forgetting_against_naive() -> None:
    naive = Learner(toy_model(), [Naive()], lr=0.1, batch_size=8).fit(toy_scenario())
    replay = Learner(toy_model(), [Replay(40)], lr=0.1, batch_size=8).fit(toy_scenario())
    assert replay.metrics["acc"] > naive.metrics["acc"] + 0.2


def test_task_ids_mask_outputs_to_the_task() -> None:
    learner = Learner(toy_model(), [Naive()], lr=0.1, batch_size=8)
    result = learner.fit(toy_scenario("task"))
    # with the task id known, old tasks stay separable from each other's classes
    assert result.metrics["acc"] > 0.9
    logits = learner.predict_logits(torch.zeros(3, 8), torch.tensor([0, 1, 1]))
    assert torch.isinf(logits[0, 2:]).all() and torch.isinf(logits[1, :2]).all()


def test_unsupported_scenario_is_refused_before_training() -> None:
    learner = Learner(toy_model(), [EWC()])
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    with pytest.raises(StrategyMismatchError, match="task-free"):
        learner.fit(toy_scenario("task-free"))
    assert all(torch.equal(v, learner.model.state_dict()[k]) for k, v in before.items())


def test_bad_configuration_names_the_option() -> None:
    with pytest.raises(ConfigError, match="optimizer"):
        Learner(toy_model(), optimizer="lbfgs")
    with pytest.raises(ConfigError, match="not a lifelong Strategy"):
        Learner(toy_model(), [object()])  # type: ignore[list-item]


def test_partial_fit_and_consolidate_define_boundaries() -> None:
    data = toy_data()
    learner = Learner(toy_model(), [EWC(lam=10)], lr=0.1, batch_size=8)
    first = data.train.subset(torch.nonzero(data.train.y < 2).squeeze(1))
    for i in range(0, len(first), 16):
        learner.partial_fit(first.x[i : i + 16], first.y[i : i + 16])
    assert learner.experience is not None and learner.experience.classes == (0, 1)
    learner.consolidate()
    assert learner.experience is None and len(learner.strategies[0].anchors_) == 1
    assert learner.classes_seen == (0, 1) and learner.experience_index == 0
    with pytest.raises(DataError, match="float"):
        learner.partial_fit(torch.zeros(2, 8, dtype=torch.uint8), torch.tensor([0, 1]))


def test_task_free_stream_is_seen_once_without_boundaries() -> None:
    class Spy(Strategy):
        name = ""

        def __init__(self) -> None:
            self.boundaries = 0

        def after_experience(self, learner, experience):
            self.boundaries += 1

    spy = Spy()
    stream = toy_scenario("task-free")
    result = Learner(toy_model(), [spy, Replay(40)], lr=0.1, batch_size=8).fit(stream)
    assert result.samples == len(stream.data) and len(result.accuracy_matrix) == 2
    assert spy.boundaries == 0


def test_hooks_and_callbacks_run_in_list_order() -> None:
    """Every strategy hook and every callback moment, recorded for two of each, in one step."""
    calls: list[str] = []

    class Recorder(Strategy):
        name = ""

        def __init__(self, tag: str = "") -> None:
            self.tag = tag

        def attach(self, learner):
            calls.append(f"{self.tag}.attach")

        def before_experience(self, learner, experience):
            calls.append(f"{self.tag}.before_experience")

        def train_data(self, learner, experience, data):
            calls.append(f"{self.tag}.train_data")
            return data

        def train_step(self, learner, batch):  # None: the learner's own step follows
            calls.append(f"{self.tag}.train_step")

        def batch(self, learner, batch):
            calls.append(f"{self.tag}.batch")
            return batch

        def forward(self, learner, x, t):  # None: the next strategy, then the model, computes logits
            calls.append(f"{self.tag}.forward")

        def loss(self, learner, batch, logits):  # None: cross-entropy
            calls.append(f"{self.tag}.loss")

        def penalty(self, learner, batch, logits):
            calls.append(f"{self.tag}.penalty")

        def after_backward(self, learner):
            calls.append(f"{self.tag}.after_backward")

        def after_step(self, learner):
            calls.append(f"{self.tag}.after_step")

        def after_experience(self, learner, experience):
            calls.append(f"{self.tag}.after_experience")

        def predict(self, learner, x, t):
            calls.append(f"{self.tag}.predict")

    class Cb(Callback):
        def __init__(self, tag: str) -> None:
            self.tag = tag

        def on_experience_start(self, state, control):
            calls.append(f"{self.tag}.on_experience_start")

        def on_step_end(self, state, control):
            calls.append(f"{self.tag}.on_step_end")

        def on_epoch_end(self, state, control):
            calls.append(f"{self.tag}.on_epoch_end")

        def on_experience_end(self, state, control):
            calls.append(f"{self.tag}.on_experience_end")

    assert set(HOOKS) == {c for c in vars(Recorder) if not c.startswith("_")} - {"name"}  # every hook
    assert set(CALLBACK_HOOKS) == {c for c in vars(Cb) if c.startswith("on_")}  # every callback moment
    experience = toy_scenario()[0]
    experience.train = experience.train.subset(torch.arange(8))  # exactly one step
    learner = Learner(toy_model(), [Recorder("a"), Recorder("b")], batch_size=8, callbacks=[Cb("x"), Cb("y")])
    learner.learn(experience)
    learner.predict(torch.zeros(2, 8))
    assert calls == [
        "a.attach", "b.attach",
        "a.before_experience", "b.before_experience", "a.train_data", "b.train_data",
        "x.on_experience_start", "y.on_experience_start",
        "a.train_step", "b.train_step", "a.batch", "b.batch", "a.forward", "b.forward", "a.loss", "b.loss",
        "a.penalty", "b.penalty", "a.after_backward", "b.after_backward", "a.after_step", "b.after_step",
        "x.on_step_end", "y.on_step_end", "x.on_epoch_end", "y.on_epoch_end",
        "x.on_experience_end", "y.on_experience_end",
        "a.after_experience", "b.after_experience",
        "a.predict", "b.predict", "a.forward", "b.forward",
    ]  # fmt: skip


def test_early_stopping_acts_through_control() -> None:
    class Plateau(Callback):
        def on_epoch_end(self, state: LoopState, control: Control) -> None:
            control.stop_experience = state.epoch >= 1

    timer = Timer()
    learner = Learner(toy_model(), [Naive()], batch_size=8, epochs=10, callbacks=[Plateau(), timer])
    learner.learn(toy_scenario()[0])
    assert learner.epochs_trained == 2 and len(timer.epoch_seconds) == 2
    stopper = EarlyStopping(patience=1, min_delta=10.0)  # no epoch can improve by 10: stops after the second
    learner = Learner(toy_model(), [Naive()], batch_size=8, epochs=10, callbacks=[stopper])
    learner.learn(toy_scenario()[0])
    assert learner.epochs_trained == 2


def test_seeded_runs_are_identical_and_seeds_differ() -> None:
    def weights(seed: int) -> torch.Tensor:
        learner = Learner(toy_model(), [Replay(20)], batch_size=8, seed=seed)
        learner.fit(toy_scenario())
        return torch.cat([p.flatten() for p in learner.model.parameters()])

    assert torch.equal(weights(0), weights(0))
    assert not torch.equal(weights(0), weights(1))


def test_joint_trains_once_on_everything() -> None:
    result = Learner(toy_model(), [Joint()], lr=0.1, batch_size=8).fit(toy_scenario())
    assert result.samples == 240 and result.metrics["forgetting"] == 0.0 and result.metrics["acc"] > 0.9


def test_joint_on_tasks_masks_each_sample_by_its_own_task() -> None:
    learner = Learner(toy_model(), [Joint()], lr=0.1, batch_size=8)
    result = learner.fit(toy_scenario("task"))
    assert learner.task_classes == {0: (0, 1), 1: (2, 3)}  # known from the data, before experience 1 began
    assert result.accuracy_matrix[0][1] > 0.9 and result.metrics["acc"] > 0.9


def test_unknown_task_ids_are_not_masked() -> None:
    learner = Learner(toy_model(), [Naive()], lr=0.1, batch_size=8)
    learner.learn(toy_scenario("task")[0])
    logits = learner.predict_logits(torch.zeros(2, 8), torch.tensor([0, 7]))
    assert torch.isinf(logits[0, 2:]).all() and torch.isfinite(logits[1]).all()


def test_predict_validates_inputs() -> None:
    learner = Learner(toy_model())
    assert learner.predict(torch.zeros(5, 8)).shape == (5,)
    with pytest.raises(DataError):
        learner.predict(torch.zeros(5, 8, dtype=torch.long))
    with pytest.raises(DataError):
        from_tensors(torch.tensor([[float("nan")]]), torch.tensor([0]))
