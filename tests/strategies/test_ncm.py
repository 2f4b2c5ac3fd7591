"""NCM: running class means of normalised features, prediction by the nearest one."""

import pytest
import torch
import torch.nn.functional as F

from lifelong.checks import toy_data, toy_model, toy_scenario
from lifelong.errors import StrategyMismatchError
from lifelong.learn.learner import Learner
from lifelong.strategies import NCM, ICaRL


def test_predicts_the_nearest_class_mean_learned_online() -> None:
    data = toy_data()
    learner = Learner(toy_model(), [NCM()], lr=0.1, batch_size=16)
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    x, y = data.train.x[order], data.train.y[order]
    learner.partial_fit(x, y)  # task-free: no boundary is ever announced
    with torch.no_grad():
        f = F.normalize(learner.model.features(x), dim=1)
        means = F.normalize(torch.stack([f[y == c].mean(0) for c in range(4)]), dim=1)
        ft = F.normalize(learner.model.features(data.test.x), dim=1)
    expected = torch.cdist(ft, means).argmin(1)
    assert torch.equal(learner.predict(data.test.x), expected)
    assert (expected == data.test.y).float().mean() > 0.8


def test_freeze_keeps_the_features_fixed_and_means_do_not_forget() -> None:
    learner = Learner(toy_model(), [NCM(freeze=True)], lr=0.1, batch_size=8)
    before = {k: v.clone() for k, v in learner.model.features.state_dict().items()}
    result = learner.fit(toy_scenario("class"))
    after = learner.model.features.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in learner.model.features.parameters())
    assert result.accuracy_matrix[-1][0] > 0.8  # the first experience is still classified well


def test_unseen_classes_are_never_predicted() -> None:
    learner = Learner(toy_model(), [NCM()], lr=0.1, batch_size=8)
    data = toy_data()
    keep = data.train.y < 2
    learner.partial_fit(data.train.x[keep], data.train.y[keep])
    assert set(learner.predict(data.test.x).tolist()) <= {0, 1}


def test_partial_fit_keeps_no_window_for_ncm() -> None:
    """NCM's boundary reads no data (it only pools sums across ranks), so partial_fit holds no batches."""
    data = toy_data()
    learner = Learner(toy_model(), [NCM()], lr=0.1, batch_size=16)
    learner.partial_fit(data.train.x, data.train.y)
    assert learner._window == []
    learner.consolidate()
    assert (learner.predict(data.test.x) == data.test.y).float().mean() > 0.8


class BagOfIds(torch.nn.Module):
    """A text model whose embedding sits before .features: 32 ids in, 32-wide embeddings out, so
    features(ids) ran without a shape error and NCM and iCaRL scored chance (0.19) where replay had 0.97."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.EmbeddingBag(100, 32)
        self.features = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU())
        self.classifier = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.embed(x)))


def test_an_embedding_outside_features_is_refused_by_the_nearest_mean_methods() -> None:
    for strategy in (NCM(), ICaRL(buffer_size=20)):
        with pytest.raises(StrategyMismatchError, match="embedding embed lies outside .features"):
            Learner(BagOfIds(), [strategy])
