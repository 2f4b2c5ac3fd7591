"""Naive fine-tuning: the lower bound, which forgets."""

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn import Learner
from lifelong.strategies import Naive


def test_fine_tuning_learns_each_experience_and_forgets_the_earlier_one() -> None:
    result = Learner(toy_model(), [Naive()], lr=0.1, batch_size=8, epochs=3, seed=0).fit(toy_scenario())
    m = result.accuracy_matrix
    assert m[0][0] > 0.9 and m[1][1] > 0.9  # each experience is learned
    assert m[1][0] < 0.5 and result.metrics["forgetting"] > 0.4  # and the first is lost in class-incremental


def test_it_keeps_nothing() -> None:
    assert Naive().memory_bytes() == 0 and Naive().get_params() == {}
