"""Generative replay: a VAE learns the inputs; its samples, labelled by the old solver, replace stored data."""

import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

from lifelong.checks import toy_data, toy_model, toy_scenario
from lifelong.errors import ConfigError
from lifelong.learn.learner import Learner
from lifelong.strategies import GenerativeReplay, Naive


def centres() -> torch.Tensor:
    d = toy_data().train
    return torch.stack([d.x[d.y == c].mean(0) for c in range(4)])


def test_generated_samples_look_like_old_classes_and_stop_forgetting() -> None:
    stream = toy_scenario("class")
    gr = GenerativeReplay()
    learner = Learner(toy_model(), [gr], lr=0.1, batch_size=8, epochs=2)
    learner.learn(stream[0])
    x = gr.generator(learner).sample(200, torch.Generator().manual_seed(0))
    assert (learner.predict(x) < 2).float().mean() > 0.9  # the old solver sees old classes
    nearest = torch.cdist(x, centres()).argmin(1)  # the data's geometry agrees, and both classes appear
    assert (nearest < 2).float().mean() > 0.9 and min((nearest == 0).sum(), (nearest == 1).sum()) > 20
    batch = gr.batch(learner, stream[1].train.batch(slice(0, 8)))  # replayed labels come from old classes
    assert len(batch.y) == 16 and set(batch.y[8:].tolist()) <= {0, 1}
    learner.learn(stream[1])
    naive = Learner(toy_model(), [Naive()], lr=0.1, batch_size=8, epochs=2)
    naive.fit(stream)
    assert learner.evaluate(stream)[0] > 0.8 > naive.evaluate(stream)[0]


def test_store_generated_keeps_only_generated_samples() -> None:
    stream = toy_scenario("class")
    gr = GenerativeReplay(store_generated=30)
    learner = Learner(toy_model(), [gr], lr=0.1, batch_size=8)
    learner.learn(stream[0])
    memory = gr.memory_
    assert len(memory) == 30 and set(memory.y[:30].tolist()) <= {0, 1}
    raw = stream[0].train.x
    assert torch.cdist(memory.x[:30], raw).min() > 0  # no raw sample was stored
    assert gr.memory_bytes() > 0


def test_generator_is_counted_and_checkpointed_as_plain_tensors() -> None:
    gr = GenerativeReplay()
    learner = Learner(toy_model(), [gr], lr=0.1, batch_size=8)
    learner.learn(toy_scenario("class")[0])
    n_vae = sum(p.numel() for p in gr.generator(learner).parameters())
    assert gr.extra_parameters() >= 2 * n_vae  # the live generator and its frozen copy
    assert all(isinstance(v, torch.Tensor) for v in gr.state_dict()["vae_"].values())
    with tempfile.TemporaryDirectory() as d:
        learner.save(d)
        loaded = Learner.load(d)
    g = torch.Generator().manual_seed(0)
    x = gr.generator(learner).sample(5, g)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(x, loaded.strategies[0].generator(loaded).sample(5, g))


def test_a_model_of_token_ids_is_refused_when_the_learner_is_built() -> None:
    """The VAE's samples are fractional: they reached the embedding as a DataError about uint8 scaling."""
    from torch import nn

    from lifelong.errors import StrategyMismatchError

    model = nn.Sequential(nn.EmbeddingBag(30, 8), nn.Linear(8, 4))
    with pytest.raises(
        StrategyMismatchError, match="GenerativeReplay generates continuous inputs.*EmbeddingBag.*Replay"
    ):
        Learner(model, [GenerativeReplay()])


def test_a_boundary_after_loading_freezes_the_generator_it_loaded() -> None:
    """Saved after an experience's last batch and loaded, consolidate() saw no live generator and
    skipped the boundary: the next experience replayed nothing."""
    train = toy_scenario("class").experiences[0].train
    runs = []
    for stop in (False, True):
        learner = Learner(toy_model(), [GenerativeReplay(latent_dim=4, hidden=16)], lr=0.1, batch_size=8)
        learner.partial_fit(train.x, train.y)
        if stop:
            with tempfile.TemporaryDirectory() as d:
                learner.save(d)
                learner = Learner.load(d)
        learner.consolidate()
        runs.append(learner.strategies[0].state_dict())
    assert runs[1]["old_vae_"] is not None
    assert all(torch.equal(runs[0]["old_vae_"][k], runs[1]["old_vae_"][k]) for k in runs[0]["old_vae_"])


def test_tasks_weighting_gives_the_current_task_one_t_th_of_the_loss() -> None:
    """van de Ven's rnt = 1/context: at the t-th experience new samples weigh 1/t, replayed (t-1)/t,
    whatever the number of each (equal weighting takes one mean over all)."""
    import torch.nn.functional as F

    strategy = GenerativeReplay(latent_dim=4, hidden=16, replay_size=30, weighting="tasks")
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=10)
    first, second = toy_scenario().experiences
    learner.learn(first)
    learner.learn(second)  # experience_index 1: the second experience, t = 2
    incoming = second.train.batch(torch.arange(10))
    learner.incoming = incoming
    mixed = strategy.batch(learner, incoming)
    assert len(mixed.y) == 40
    logits = learner.forward(mixed.x, None)
    ce = F.cross_entropy(logits, mixed.y, reduction="none")
    assert torch.allclose(strategy.loss(learner, mixed, logits), 0.5 * ce[:10].mean() + 0.5 * ce[10:].mean())
    assert not torch.allclose(ce.mean(), 0.5 * ce[:10].mean() + 0.5 * ce[10:].mean())
    assert GenerativeReplay(weighting="equal").loss(learner, mixed, logits) is None
    with pytest.raises(ConfigError, match="weighting must be one of equal, tasks"):
        GenerativeReplay(weighting="van de ven")


def test_a_resume_between_partial_fit_calls_is_bit_for_bit_with_dropout(tmp_path: Path) -> None:
    """The old generator was rebuilt from torch's global generator after a load, shifting every later
    dropout mask: the resumed run's weights differed by up to 1.16 from the uninterrupted run's."""
    first, second = toy_scenario("class").experiences[:2]
    x, y = second.train.x, second.train.y

    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 4))

    def run(resume: bool) -> Learner:
        torch.manual_seed(0)
        learner = Learner(model(), [GenerativeReplay(hidden=16, latent_dim=4)], lr=0.05, batch_size=8)
        learner.learn(first)
        learner.partial_fit(x[:16], y[:16])
        if resume:
            learner.save(tmp_path / "c")
            learner = Learner.load(tmp_path / "c", model=model())
        learner.partial_fit(x[16:32], y[16:32])
        return learner

    straight, resumed = run(False), run(True)
    assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in straight.model.state_dict().items())
