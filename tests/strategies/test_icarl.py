"""iCaRL: herding exemplars, memory split across classes, nearest-mean-of-exemplars prediction."""

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.checks import toy_model, toy_scenario
from lifelong.data.dataset import Dataset, Split
from lifelong.data.scenarios import class_incremental
from lifelong.errors import StrategyMismatchError
from lifelong.learn.learner import Learner
from lifelong.strategies import ICaRL, Naive


class Identity2D(nn.Module):
    """Features are the inputs themselves, so the hand-made geometry is the feature geometry."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.classifier = nn.Linear(2, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


# class 0: unit vectors; their mean (0.53, 0.6) is nearest [0.6, 0.8], then [1, 0] completes the best pair
C0 = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]
C1 = [[-1.0, 0.0], [-0.8, -0.6], [0.0, -1.0]]
C2 = [[1.0, 1.0], [2.0, 2.1], [1.0, 0.9]]
C3 = [[-1.0, 1.0], [-1.0, 1.2], [-1.1, 1.0]]


def hand_made() -> Dataset:
    x = torch.tensor(C0 + C1 + C2 + C3)
    return Dataset(x, torch.arange(4).repeat_interleave(3))


def boundary_only(buffer_size: int, n_experiences: int = 1) -> tuple[Learner, ICaRL]:
    data = hand_made()
    scenario = class_incremental(Split(data, data), n_experiences=2)
    icarl = ICaRL(buffer_size=buffer_size)
    learner = Learner(Identity2D(), [icarl], epochs=0)  # no training: features stay the inputs
    for e in scenario.experiences[:n_experiences]:
        learner.learn(e)
    return learner, icarl


def test_herding_picks_the_exemplars_whose_mean_approximates_the_class_mean() -> None:
    _, icarl = boundary_only(buffer_size=2)  # one exemplar per class
    ex = icarl.exemplars_
    assert ex["y"].tolist() == [0, 1]
    assert torch.equal(ex["x"][0], torch.tensor(C0[2]))
    _, icarl = boundary_only(buffer_size=4)  # two per class, in herding order
    assert torch.equal(icarl.exemplars_["x"][icarl.exemplars_["y"] == 0], torch.tensor([C0[2], C0[0]]))


def test_old_classes_shrink_to_a_prefix_of_their_herding_order() -> None:
    _, icarl = boundary_only(buffer_size=4, n_experiences=2)  # four classes: one exemplar each
    ex = icarl.exemplars_
    assert ex["y"].tolist() == [0, 1, 2, 3]
    assert torch.equal(ex["x"][0], torch.tensor(C0[2]))


def test_predictions_follow_the_nearest_mean_of_exemplars() -> None:
    learner, icarl = boundary_only(buffer_size=8, n_experiences=2)
    ex = icarl.exemplars_
    means = torch.stack(
        [F.normalize(F.normalize(ex["x"][ex["y"] == c], dim=1).mean(0), dim=0) for c in range(4)]
    )
    queries = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    expected = torch.cdist(F.normalize(queries, dim=1), means).argmin(1)
    assert torch.equal(learner.predict(queries), expected)


def test_icarl_forgets_less_than_fine_tuning() -> None:
    accs = {}
    for name, strategies in {"icarl": [ICaRL(buffer_size=40)], "naive": [Naive()]}.items():
        learner = Learner(toy_model(), strategies, lr=0.1, batch_size=8)
        accs[name] = learner.fit(toy_scenario("class")).accuracy_matrix[-1][0]
    assert accs["icarl"] > 0.8 > accs["naive"]


def test_partial_fit_is_refused_before_anything_changes() -> None:
    """partial_fit trains batches as they arrive, so the exemplars were never mixed in: iCaRL trained as
    fine-tuning while storing a memory it never rehearsed."""
    learner = Learner(toy_model(), [ICaRL(buffer_size=20)], lr=0.1, batch_size=8)
    before = [p.detach().clone() for p in learner.model.parameters()]
    with pytest.raises(
        StrategyMismatchError, match="partial_fit: ICaRL overrides train_data, which rewrites an experience"
    ):
        learner.partial_fit(torch.randn(8, 8), torch.tensor([0, 1] * 4))
    assert all(torch.equal(a, b) for a, b in zip(before, learner.model.parameters()))
    assert learner.samples_trained == 0


def test_a_task_not_trained_yet_is_answered_by_the_network_not_by_class_0() -> None:
    """With no class mean in a task, every score was -inf and class 0 won: untrained tasks scored 0.000
    in every row (FWT -0.49 where the untrained network reaches about 0.5)."""
    torch.manual_seed(0)
    result = Learner(toy_model(), [ICaRL(buffer_size=40)], lr=0.1).fit(toy_scenario("task"))
    assert result.accuracy_matrix[0][1] > 0.2  # task 1 after learning task 0: its two classes, by the network
    assert abs(result.metrics["fwt"]) < 0.3
