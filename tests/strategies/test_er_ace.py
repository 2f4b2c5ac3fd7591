"""ER-ACE: the incoming loss sees only the incoming classes, the replayed loss every seen class."""

import torch
import torch.nn.functional as F

from lifelong.checks import toy_model, toy_scenario
from lifelong.data.dataset import Batch
from lifelong.learn.learner import Learner
from lifelong.strategies import ERACE


def _setup() -> tuple[Learner, ERACE, Batch, torch.Tensor]:
    er = ERACE(buffer_size=20)
    learner = Learner(toy_model(), [er], lr=0.1, batch_size=4, epochs=0)
    for experience in toy_scenario("class").experiences:
        learner.learn(experience)  # no training (epochs=0): only the bookkeeping
    er.seen_ = torch.ones(4, dtype=torch.bool)  # classes 0-3 have arrived
    x = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    batch = Batch(x, torch.tensor([2, 3, 2, 3, 0, 1]))  # 4 incoming (classes 2, 3), 2 replayed (0, 1)
    learner.incoming = Batch(x[:4], batch.y[:4])
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    return learner, er, batch, logits


def test_incoming_loss_ignores_absent_classes() -> None:
    learner, er, batch, logits = _setup()
    loss = er.loss(learner, batch, logits)
    changed = logits.clone()
    changed[:4, :2] += torch.tensor([5.0, -7.0])  # classes 0 and 1 are absent from the incoming samples
    assert torch.equal(er.loss(learner, batch, changed), loss)
    masked = logits[:4].clone()
    masked[:, :2] = float("-inf")
    expected = F.cross_entropy(masked, batch.y[:4]) + F.cross_entropy(logits[4:], batch.y[4:])
    assert torch.allclose(loss, expected)


def test_replayed_loss_uses_every_seen_class() -> None:
    learner, er, batch, logits = _setup()
    changed = logits.clone()
    changed[4:, 3] += 5.0  # class 3 is seen and competes for the replayed samples
    assert er.loss(learner, batch, changed) > er.loss(learner, batch, logits)


def test_task_free_masks_and_replays_from_the_first_step() -> None:
    """No first experience is announced on a task-free stream (the authors' and mammoth's task_free)."""
    er = ERACE(buffer_size=20)
    torch.manual_seed(0)
    learner = Learner(toy_model(), [er], lr=0.1, batch_size=8, seed=0)
    result = learner.fit(toy_scenario("task-free"))
    assert len(er.buffer_) == 20 and er.seen_.tolist() == [True] * 4 and not learner.task_free
    torch.manual_seed(0)
    naive = Learner(toy_model(), [], lr=0.1, batch_size=8, seed=0).fit(toy_scenario("task-free"))
    assert result.accuracy_matrix != naive.accuracy_matrix  # it was naive fine-tuning, bit for bit
    learner.task_free = True  # as inside a task-free fit, still in experience 0
    incoming = Batch(torch.randn(4, 8), torch.tensor([0, 1, 0, 0]))
    learner.incoming = incoming
    assert len(er.batch(learner, incoming).y) == 4 + 8  # replayed at once


def test_uint8_budget(uint8_scenario) -> None:
    er = ERACE(buffer_size=20)
    Learner(toy_model(), [er], lr=0.1, batch_size=32).fit(uint8_scenario)
    assert er.buffer_.x.dtype == torch.uint8
    assert er.memory_bytes() == 20 * (8 + 8 + 8)


def test_first_experience_is_plain_fine_tuning() -> None:
    """As the authors' code: no mask and no replay before there is something old to protect."""
    er = ERACE(buffer_size=20)
    learner = Learner(toy_model(), [er], lr=0.1, batch_size=4, epochs=0)
    learner.learn(toy_scenario("class").experiences[0])  # bookkeeping only: experience 0, classes 0-1
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    incoming = Batch(x, torch.tensor([0, 1, 0, 0]))
    learner.incoming = incoming
    er.buffer_.remember(learner)
    assert er.batch(learner, incoming) is incoming
    logits = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(er.loss(learner, incoming, logits), F.cross_entropy(logits, incoming.y))


def test_incoming_loss_keeps_the_classes_not_seen_yet() -> None:
    """The mask keeps present classes and those not seen yet; old ones are out."""
    learner, er, _, logits = _setup()
    er.seen_ = torch.tensor([True, True, False, False])  # classes 2 and 3 have not arrived
    incoming = Batch(learner.incoming.x[:2], torch.tensor([1, 1]))
    learner.incoming = incoming
    loss = er.loss(learner, incoming, logits[:2])
    kept = logits[:2].clone()
    kept[:, 0] = float("-inf")  # only class 0, seen and absent, is left out
    assert torch.allclose(loss, F.cross_entropy(kept, incoming.y))


def test_cosine_head_scores_ten_times_the_cosine() -> None:
    model = toy_model()
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    plain = model(x)
    Learner(model, [ERACE(cosine_head=True)], lr=0.1, batch_size=4)
    feats, w = model.features(x), model.classifier.weight
    expected = (
        10 * (feats / (feats.norm(dim=1, keepdim=True) + 1e-5)) @ (w / (w.norm(dim=1, keepdim=True) + 1e-5)).T
    )
    assert torch.allclose(model(x), expected, atol=1e-5) and not torch.allclose(model(x), plain)
    other = toy_model()
    Learner(other, [ERACE()], lr=0.1, batch_size=4)
    assert torch.equal(other(x), plain)  # off by default: the model is left as it is


def test_cosine_head_survives_a_checkpoint(tmp_path) -> None:
    stream = toy_scenario("class")
    learner = Learner(toy_model(), [ERACE(buffer_size=20, cosine_head=True)], lr=0.1, batch_size=8)
    learner.learn(stream.experiences[0])
    x = stream.experiences[0].test.features()
    learner.save(tmp_path / "ckpt")
    resumed = Learner.load(tmp_path / "ckpt")  # the strategy is rebuilt and hooks the new model's head
    assert torch.equal(resumed.predict_logits(x), learner.predict_logits(x))
    assert float(resumed.predict_logits(x).abs().max()) <= 10.0


def test_a_task_free_learner_masks_and_replays_from_the_first_partial_fit() -> None:
    """partial_fit without consolidate() was naive fine-tuning, bit for bit; task_free=True says there is
    no boundary to wait for, and the flag survives a checkpoint."""
    import tempfile
    import warnings

    x, y = toy_scenario("class").experiences[0].train.x, toy_scenario("class").experiences[0].train.y

    def trained(task_free: bool) -> Learner:
        torch.manual_seed(0)
        learner = Learner(toy_model(), [ERACE(buffer_size=20)], lr=0.1, batch_size=8, task_free=task_free)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            learner.partial_fit(x, y)
            learner.partial_fit(x, y)
        assert [str(w.message).startswith("partial_fit: ERACE acts at boundaries") for w in caught] == (
            [] if task_free else [True]  # once, not per call
        )
        return learner

    torch.manual_seed(0)
    naive = Learner(toy_model(), [], lr=0.1, batch_size=8)
    naive.partial_fit(x, y)
    naive.partial_fit(x, y)
    same = trained(False).model.state_dict()
    free = trained(True)
    assert all(torch.equal(same[k], v) for k, v in naive.model.state_dict().items())
    assert not all(torch.equal(free.model.state_dict()[k], v) for k, v in naive.model.state_dict().items())
    with tempfile.TemporaryDirectory() as d:
        free.save(d)
        assert Learner.load(d).task_free


def test_renaming_the_classes_changes_nothing() -> None:
    """A custom class order masked unseen classes below the largest seen as old (the authors' ``max():``):
    ER-ACE alone changed when only the class names changed (by up to 0.115 ACC in a user trial)."""
    import copy

    from lifelong.checks import toy_data
    from lifelong.data.scenarios import class_incremental
    from lifelong.learn.models import MLP

    data = toy_data(n_classes=6, per_class=30)
    order = [4, 1, 5, 0, 3, 2]  # class order[i] arrives i-th; renamed, it is class i
    rename = torch.empty(6, dtype=torch.long)
    rename[torch.tensor(order)] = torch.arange(6)
    renamed = type(data)(*(d.replace(y=rename[d.y]) for d in data))
    torch.manual_seed(0)
    original = MLP(in_features=8, hidden=(16,), n_classes=6)
    model = copy.deepcopy(original)  # the same weights for the same classes: its row i is row order[i]
    with torch.no_grad():
        model.classifier.weight.copy_(original.classifier.weight[order])
        model.classifier.bias.copy_(original.classifier.bias[order])
    runs = ((original, data, {"class_order": order}), (model, renamed, {}))
    matrices = [
        Learner(m, [ERACE(buffer_size=30)], lr=0.1, batch_size=8, seed=0)
        .fit(class_incremental(split, n_experiences=3, **kw))
        .accuracy_matrix
        for m, split, kw in runs
    ]
    assert matrices[0] == matrices[1]
