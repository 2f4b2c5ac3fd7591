"""The trainer: a good window registers and promotes a version, a corrupted one is stopped by the gate."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch

from lifelong.checks import toy_data
from lifelong.data.dataset import Dataset
from lifelong.errors import ConfigError, NotFoundError
from lifelong.learn.learner import Learner
from lifelong.learn.models import MLP
from lifelong.system.events import EventKind, describe
from lifelong.system.policy import Policy
from lifelong.system.registry import Registry
from lifelong.system.store import RetentionPolicy, Store
from lifelong.system.store import samples as samples_table
from lifelong.system.trainer import CURSOR, Gate, _candidate, train_once
from tests.system._models import seed_store


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[Store, Registry]]:
    with Store(data_dir=tmp_path) as store:
        yield store, Registry(store)


def shuffle_labels(data: Dataset) -> Dataset:
    return data.replace(y=data.y[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))])


CONTINUAL = Policy("continual", strategy_params={"buffer_size": 60}, epochs=3)


def test_good_window_is_gated_registered_and_promoted(system: tuple[Store, Registry]) -> None:
    store, registry = system
    test = seed_store(store, registry)
    before = Learner.load(registry.get(1).path).correct(test).float().mean()
    result = train_once(store, registry, CONTINUAL, Gate(), reason="test")
    assert result.passed, result.reasons
    assert result.version == 2 and registry.alias("champion") == 2
    assert registry.get(2).parent == 1 and registry.get(2).strategy == "replay"
    # a trained version's artifact is as readable as the bootstrapped one (it had the temp dir's 0700)
    assert registry.get(2).path.stat().st_mode & 0o777 == registry.get(1).path.stat().st_mode & 0o777
    after = Learner.load(registry.get(2).path)
    assert after.correct(test).float().mean() > before + 0.2  # it learned classes 2 and 3
    assert len(after.strategies[0].buffer_) == 60  # the replay memory travels in the checkpoint
    (event,) = store.events("gate")
    assert event.payload["passed"] and event.payload["version"] == 2
    assert event.payload["figures"]["negative_flip_rate"] is not None  # forgetting was measured
    assert not any(
        "no labelled samples older than the window" in w for w in event.payload.get("warnings", [])
    )
    assert event.payload["train_cpu_seconds"] > 0
    # the holdout (most recent fifth) is not consumed: it is trained on next time
    assert store.cursor(CURSOR) < store.samples().ids[-1]
    again = train_once(store, registry, CONTINUAL)
    assert again.figures["n_train"] + again.figures["n_holdout"] == result.figures["n_holdout"]


def test_a_gate_without_old_data_says_forgetting_was_not_checked(system: tuple[Store, Registry]) -> None:
    """No memory and no earlier samples (--delete-trained): the flip-rate check silently passed before."""
    store, registry = system
    seed_store(store, registry, strategies=())
    assert store.apply_retention(RetentionPolicy(delete_trained=True)) > 0  # the bootstrap's samples
    result = train_once(store, registry, Policy("continual", strategy="naive", epochs=1), Gate())
    assert result.figures["negative_flip_rate"] is None and result.figures["n_old"] == 0
    assert "old accuracy and flip rate not checked" in result.attempt["warnings"][0]
    assert "(note: no labelled samples older than the window" in describe(EventKind.GATE, result.attempt)


def test_shuffled_labels_are_stopped_by_the_gate(system: tuple[Store, Registry]) -> None:
    store, registry = system
    seed_store(store, registry, strategies=(), known=4)  # a champion that already knows every class
    policy = Policy("scheduled-finetune", every_samples=100, epochs=3)
    result = train_once(store, registry, policy, Gate(), prepare=shuffle_labels)
    assert result.trained and not result.passed and result.version is None
    assert any("accuracy" in r or "flip" in r for r in result.reasons), result.reasons
    assert [v.version for v in registry.versions()] == [1] and registry.alias("champion") == 1
    (event,) = store.events("gate")
    assert not event.payload["passed"] and event.payload["reasons"] == result.reasons


def test_scratch_retrain_and_canary_promotion(system: tuple[Store, Registry]) -> None:
    store, registry = system
    seed_store(store, registry, strategies=())
    policy = Policy("scheduled-retrain", every_samples=10, min_samples=10, epochs=5, window=300)
    result = train_once(store, registry, policy, Gate(promote_to="canary", max_old_accuracy_drop=1.0,
                                                      max_negative_flip_rate=1.0))  # fmt: skip
    assert result.passed, result.reasons
    assert registry.alias("canary") == 2 and registry.alias("champion") == 1
    assert registry.get(2).strategy == "scratch"


def test_budgets_of_the_gate(system: tuple[Store, Registry]) -> None:
    store, registry = system
    seed_store(store, registry)
    result = train_once(store, registry, CONTINUAL, Gate(max_size_mb=1e-6, max_latency_ms=1e-9))
    assert not result.passed
    assert any("size" in r for r in result.reasons) and any("latency" in r for r in result.reasons)


def test_no_champion_says_what_to_do(system: tuple[Store, Registry]) -> None:
    store, registry = system
    with pytest.raises(NotFoundError, match="bootstrap"):
        train_once(store, registry, CONTINUAL)


def test_labels_that_came_after_a_training_passed_their_samples_join_the_next_window(
    system: tuple[Store, Registry],
) -> None:
    """Was: feedback on older predictions (after an upgrade, every label for a prediction made before it)
    was stored, but the next training's window started after the last one's, so those samples were never
    trained on (a trial: 27 labels accepted with 204, `trained_version` NULL for good)."""
    store, registry = system
    seed_store(store, registry)
    data = toy_data(per_class=150, seed=3).train
    early = store.add_samples(data.x[:40], None)  # predicted, not yet labelled
    store.add_samples(data.x[40:], data.y[40:])  # enough after them that the gate's holdout lies later
    policy, gate = (
        Policy("scheduled-finetune", every_samples=10, min_samples=10, epochs=1),
        Gate(max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0, max_new_accuracy_drop=1.0),
    )
    first = train_once(store, registry, policy, gate)
    assert first.passed and first.attempt["window"][1] > int(early[-1])  # it passed them, unlabelled
    for i, label in zip(early, data.y[:40].tolist()):  # the late labels
        store.relabel_sample(int(i), label)
    store.add_samples(data.x[:20], data.y[:20])  # and a few new ones
    result = train_once(store, registry, policy, gate)
    assert result.passed and result.attempt["window"][0] == int(early[0])  # they came first in the window
    with store.engine.connect() as conn:
        untrained = conn.execute(
            sa.select(sa.func.count())
            .select_from(samples_table)
            .where(samples_table.c.id.in_([int(i) for i in early]), samples_table.c.trained_version.is_(None))
        ).scalar_one()
    assert untrained == 0


def test_labels_from_before_a_change_stay_out_of_the_windows_after_the_first_one_past_it(
    system: tuple[Store, Registry],
) -> None:
    """Two trials: once a version trained past a change point was promoted, its monitors re-armed and the
    next trainings had no change point, so the labels before the change that no version trained on joined
    their windows (800 of the old rule's labels; another trained on the 1,600 before the change alone)."""
    store, registry = system
    seed_store(store, registry)
    data = toy_data(per_class=150, seed=3).train
    before = store.add_samples(data.x[:100], data.y[:100])  # the old concept, labelled, never trained on
    store.add_samples(data.x[100:300], data.y[100:300])
    policy = Policy("continual", min_samples=10, epochs=1)
    gate = Gate(max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0, max_new_accuracy_drop=1.0)
    change = int(before[-1])
    first = train_once(store, registry, policy, gate, since=change)
    assert first.passed and first.attempt["window"][0] > change
    assert registry.get(first.version).params["change_point"] == change
    store.add_samples(data.x[300:], data.y[300:])
    later = train_once(store, registry, policy, gate)  # the monitors re-armed: no change point given
    assert later.passed and later.attempt["window"][0] > change, later.attempt["window"]
    assert registry.get(later.version).params["change_point"] == change  # passed down the lineage
    with store.engine.connect() as conn:
        trained = conn.execute(
            sa.select(sa.func.count())
            .select_from(samples_table)
            .where(samples_table.c.id <= change, samples_table.c.trained_version > 1)
        ).scalar_one()
    assert trained == 0


def test_a_version_trained_by_older_code_passes_its_parents_change_point_on(
    system: tuple[Store, Registry],
) -> None:
    """A code rollback's version has no `change_point`: the lineage's was lost across it (an upgrade trial)."""
    from lifelong.system.trainer import _lineage_change

    store, registry = system
    seed_store(store, registry)
    with registry.publish(strategy="replay", parent=1, params={"change_point": 40}) as draft:
        Learner.load(registry.get(1).path).save(draft.path)
    with registry.publish(strategy="replay", parent=draft.version, params={"mode": "finetune"}) as older:
        Learner.load(registry.get(1).path).save(older.path)  # trained by code that recorded none
    assert _lineage_change(registry, registry.get(older.version)) == 40
    assert _lineage_change(registry, registry.get(1)) is None
    with registry.publish(strategy="replay", parent=older.version, params={"change_point": None}) as scratch:
        Learner.load(registry.get(1).path).save(scratch.path)
    assert _lineage_change(registry, registry.get(scratch.version)) is None  # recorded: no change since


def test_forget_empties_the_inherited_memory_before_training(system: tuple[Store, Registry]) -> None:
    store, registry = system
    seed_store(store, registry)
    inherited = Learner.load(registry.get(1).path).strategies[0].buffer_.seen
    kept = train_once(store, registry, CONTINUAL, Gate(max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0))
    more = toy_data(per_class=30, seed=2).train
    store.add_samples(more.x, more.y)
    forgot = train_once(store, registry, CONTINUAL, Gate(max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0),
                        forget=True)  # fmt: skip
    assert kept.passed and forgot.passed, (kept.reasons, forgot.reasons)
    memory = [Learner.load(registry.get(v).path).strategies[0].buffer_ for v in (2, 3)]
    offered = forgot.figures["n_train"]  # once per sample, whatever the epochs
    assert memory[0].seen > inherited  # the memory carried over and grew
    assert memory[1].seen == offered and len(memory[1]) == 60  # restarted: only this window's samples
    assert [e.payload["forgot_memory"] for e in store.events("gate")] == [False, True]


def test_new_classes_keep_the_memory_even_when_asked_to_forget(system: tuple[Store, Registry]) -> None:
    """A drop in accuracy that new classes explain leaves the memory right: it is kept (class-incremental)."""
    store, registry = system
    seed_store(store, registry)  # the champion knows classes 0 and 1; the window brings 2 and 3
    inherited = Learner.load(registry.get(1).path).strategies[0].buffer_.seen
    result = train_once(store, registry, CONTINUAL, Gate(max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0),
                        forget=True)  # fmt: skip
    assert result.passed and store.events("gate")[-1].payload["forgot_memory"] is False
    assert Learner.load(registry.get(2).path).strategies[0].buffer_.seen > inherited


def test_bootstrap_on_raw_scales_far_apart_says_to_standardize(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: a backtest on a file with a salary next to an age ran at chance, exit 0, with no hint."""
    from lifelong.errors import ConfigError
    from lifelong.system.trainer import bootstrap

    split = toy_data(per_class=30)
    raw = Dataset(split.train.x * torch.tensor([1.0] * 7 + [5e4]), split.train.y, None, 1.0, "raw")
    with Store(data_dir=tmp_path / "a") as store, caplog.at_level("WARNING", "lifelong.system.trainer"):
        bootstrap(store, Registry(store), split.train, n_classes=4, epochs=1)
        assert "--standardize" not in caplog.text  # one scale: nothing to say
        with pytest.raises(ConfigError, match="diverged.*standardise the features"):  # and was served NaN
            bootstrap(
                store, Registry(store), raw, n_classes=4, epochs=1, feature_names=[f"f{i}" for i in range(8)]
            )
        assert "very different scales (f7 reaches" in caplog.text and "--standardize" in caplog.text
    caplog.clear()
    with Store(data_dir=tmp_path / "b") as store, caplog.at_level("WARNING", "lifelong.system.trainer"):
        bootstrap(store, Registry(store), raw, n_classes=4, epochs=1, standardize=True)
        assert "--standardize" not in caplog.text


def test_bootstrap_on_label_codes_says_how_many_outputs_they_make(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Labels 10, 20, 30 built a 31-output head whose contract accepted feedback label 5, silently."""
    from lifelong.system.trainer import bootstrap

    split = toy_data(n_classes=3, per_class=30)
    codes = Dataset(split.train.x, (split.train.y + 1) * 10, None, 1.0, "codes")
    with Store(data_dir=tmp_path / "a") as store, caplog.at_level("WARNING", "lifelong.system.trainer"):
        bootstrap(store, Registry(store), split.train, epochs=1)
        assert "numbered up to" not in caplog.text  # 0, 1, 2: indices
    with Store(data_dir=tmp_path / "b") as store, caplog.at_level("WARNING", "lifelong.system.trainer"):
        bootstrap(store, Registry(store), codes, epochs=1)
        assert "3 classes numbered up to 30 (10, 20, 30): the model gets 31 outputs" in caplog.text
        assert "number the classes 0-2" in caplog.text


def test_bootstrap_names_a_class_with_a_few_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One stray '3.5' among named labels became class 0 and moved every real class's index, silently."""
    from lifelong.system.trainer import bootstrap

    split = toy_data(n_classes=3, per_class=30)
    y = split.train.y + 1
    y[0] = 0  # one row of its own class
    stray = Dataset(split.train.x, y, None, 1.0, "stray")
    with Store(data_dir=tmp_path / "a") as store, caplog.at_level("WARNING", "lifelong.system.trainer"):
        bootstrap(store, Registry(store), split.train, epochs=1)
        assert "fewer than 5 rows" not in caplog.text
    with Store(data_dir=tmp_path / "b") as store, caplog.at_level("WARNING", "lifelong.system.trainer"):
        bootstrap(store, Registry(store), stray, epochs=1, class_names=["3.5", "alpha", "beta", "gamma"])
        assert (
            "1 of the bootstrap data's 4 classes have fewer than 5 rows: '3.5' (index 0): 1 row"
            in caplog.text
        )


def test_bootstrap_refuses_options_the_data_contradicts_saying_what_to_give(tmp_path: Path) -> None:
    """``--n-classes`` beside named labels said only "3 class names for 5 classes"; one below the
    labels suggested a Python keyword; ``--standardize`` with no data was silently ignored."""
    from lifelong.errors import ConfigError
    from lifelong.system.trainer import bootstrap

    split = toy_data(n_classes=3, per_class=20)
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        with pytest.raises(ConfigError, match=r"labels name 3 classes \(a, b, c\).*drop --n-classes"):
            bootstrap(store, registry, split.train, n_classes=5, class_names=["a", "b", "c"], epochs=1)
        with pytest.raises(ConfigError, match=r"labels go up to 2: give --n-classes 3 or more"):
            bootstrap(store, registry, split.train, n_classes=2, epochs=1)
        with pytest.raises(ConfigError, match=r"an untrained champion has none"):
            bootstrap(store, registry, None, n_classes=3, input_shape=(8,), standardize=True)
        assert registry.versions() == []


def test_bootstrap_model_kwargs_add_to_the_sizes_taken_from_the_data(tmp_path: Path) -> None:
    """Was: ``--model-kwargs '{"hidden": [16]}'`` replaced the sizing, so `up`/`simulate` failed with
    "missing in_features and n_classes" where `lifelong bench` built the model."""
    from lifelong.system.trainer import bootstrap

    split = toy_data(per_class=10)
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        version = bootstrap(store, registry, split.train, model_kwargs={"hidden": [16]}, epochs=1)
        spec = Learner.load(registry.get(version).path).model.lifelong_spec
    assert spec["kwargs"] == {"in_features": 8, "hidden": [16], "n_classes": 4}


def test_bootstrap_refuses_a_model_with_fewer_outputs_than_the_classes(tmp_path: Path) -> None:
    """Was: training stopped at the first unseen labels advising allow_new_classes=True, a Python
    argument that `up` and `simulate` do not take."""
    from lifelong.errors import ConfigError
    from lifelong.system.trainer import bootstrap

    with Store(data_dir=tmp_path) as store, pytest.raises(ConfigError, match="2 outputs, but the data has "
                                                           "labels up to 3 .*--model-kwargs"):  # fmt: skip
        bootstrap(
            store, Registry(store), toy_data(per_class=10).train, model_kwargs={"n_classes": 2}, epochs=1
        )
    with Store(data_dir=tmp_path) as store:
        assert Registry(store).versions() == []  # nothing published


def test_bootstrap_of_a_token_id_model_refuses_standardize_and_never_suggests_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: ``up --standardize`` on an embedding model failed on "fractional values ... from_tensors
    scales uint8 inputs" (no word of --standardize), and without it the bootstrap warned that ids
    spread over a large vocabulary were features on different scales and said to pass --standardize."""
    from torch import nn

    from lifelong.errors import ConfigError
    from lifelong.learn import models
    from lifelong.learn.models import register_model
    from lifelong.system.trainer import bootstrap

    class Bag(nn.Module):
        def __init__(self, n_classes: int) -> None:
            super().__init__()
            self.features = nn.EmbeddingBag(5000, 4)
            self.classifier = nn.Linear(4, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.features(x))

    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    register_model("bag")(Bag)
    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [torch.randint(0, 5, (40, 5), generator=g), torch.randint(0, 5000, (40, 1), generator=g)], 1
    )
    ids = Dataset(x.float(), torch.arange(40) % 2, None, 1.0, "ids")
    with Store(data_dir=tmp_path / "a") as store:
        with pytest.raises(ConfigError, match=r"takes token ids.*--standardize.*drop it"):
            bootstrap(store, Registry(store), ids, model="bag", n_classes=2, epochs=1, standardize=True)
        assert Registry(store).versions() == []
    with Store(data_dir=tmp_path / "b") as store, caplog.at_level("WARNING", "lifelong.system.trainer"):
        bootstrap(store, Registry(store), ids, model="bag", n_classes=2, epochs=1)
        assert "--standardize" not in caplog.text


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_a_scratch_candidate_is_built_in_the_champions_dtype(dtype: torch.dtype, tmp_path: Path) -> None:
    """Was: scratch mode rebuilt the model from its spec in float32, so a bfloat16 (or float64) champion
    was retrained, gated and published as a float32 version; fine-tuning kept the champion's dtype."""
    champion = Learner(MLP(in_features=8, hidden=(16,), n_classes=3).to(dtype), lr=0.1)
    champion.save(tmp_path / "v1")
    policy = Policy("scheduled-retrain", every_samples=10, min_samples=10)
    candidate = _candidate(tmp_path / "v1", policy, "scratch")
    assert {p.dtype for p in candidate.model.parameters()} == {dtype}
    assert candidate.model is not champion.model and candidate.step == 0  # a fresh model all the same


def test_training_by_hand_continues_the_champion_with_its_own_strategies(tmp_path: Path) -> None:
    """A champion bootstrapped with Replay(200) was fine-tuned plainly at the first training by hand: its
    memory dropped, the version recorded as "naive"; scheduled fine-tuning stays plain fine-tuning."""
    from lifelong.strategies import Replay

    champion = Learner(MLP(in_features=8, hidden=(16,), n_classes=4), [Replay(20)], lr=0.1)
    champion.partial_fit(toy_data().train.x[:40], toy_data().train.y[:40])
    champion.save(tmp_path / "v1")
    by_hand = _candidate(tmp_path / "v1", Policy("manual"), "finetune")
    assert [s.name for s in by_hand.strategies] == ["replay"] and len(by_hand.strategies[0].buffer_) == 20
    scheduled = _candidate(tmp_path / "v1", Policy("scheduled-finetune", every_samples=100), "finetune")
    assert scheduled.strategies == []


def _two_classes_known(store: Store, registry: Registry) -> tuple[torch.Tensor, ...]:
    """A champion of classes 0 and 1 that may grow; the data's ``x, y`` and the indices of its rows of
    classes 0-1 (the first 100 bootstrapped), 2 and 3."""
    from lifelong.system.trainer import bootstrap

    split = toy_data(per_class=90)
    x, y = split.train.x, split.train.y
    old = torch.nonzero(y < 2).squeeze(1)
    bootstrap(store, registry, split.train.subset(old[:100]), n_classes=2, allow_new_classes=True, epochs=2)
    return x, y, old, torch.nonzero(y == 2).squeeze(1), torch.nonzero(y == 3).squeeze(1)


def test_a_stray_new_class_label_waits_outside_the_head_until_the_class_has_enough(
    system: tuple[Store, Registry],
) -> None:
    """Was: with allow_new_classes one stray label (a typo in a class name) grew the head by an output
    for ever; a class the head lacks now enters training at min_new_class_labels stored labels, and its
    first rows, held back meanwhile, join that window."""
    import sqlalchemy as sa

    from lifelong.system.contract import Contract
    from lifelong.system.store import samples as samples_table

    store, registry = system
    x, y, old, two, three = _two_classes_known(store, registry)
    first = torch.cat([three[:1], old[100:160], two[:30]])  # class 3: one stray label
    stray = store.add_samples(x[first], y[first])[0]
    policy, gate = Policy("continual", epochs=2, min_new_class_labels=5), Gate(max_old_accuracy_drop=1.0)
    result = train_once(store, registry, policy, gate)
    assert result.passed and result.attempt["waiting_classes"] == {"3": 1}
    assert "new class 3 waits for labels, 1 so far" in describe(EventKind.GATE, result.attempt)
    assert Contract.load(registry.get(2).path).classes == (0, 1, 2)  # the head grew for class 2 only
    assert result.attempt["classes_added"] == ["2"]  # and the gate event says so (it said nothing)
    assert "(classes 2 added)" in describe(EventKind.GATE, result.attempt)
    more = torch.cat([old[160:170], three[1:5]])  # class 3 reaches 5 labels
    store.add_samples(x[more], y[more])
    result = train_once(store, registry, policy, Gate(max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0))
    assert result.passed and "waiting_classes" not in result.attempt
    assert Contract.load(registry.get(3).path).classes == (0, 1, 2, 3)
    with store.engine.connect() as conn:
        trained = conn.execute(sa.select(samples_table.c.trained_version).where(samples_table.c.id == stray))
        assert trained.scalar_one() == 3  # the held-back row trained the version that learned its class


def test_a_new_class_whose_labels_came_in_a_rejected_window_is_learned_later(
    system: tuple[Store, Registry],
) -> None:
    """Was: a class admitted in a window whose candidate the gate rejected was never learned (later
    windows start after its rows and only looked for new classes among their own), and the gate events
    stopped saying that another class still waited for labels."""
    import sqlalchemy as sa

    from lifelong.system.contract import Contract
    from lifelong.system.store import samples as samples_table

    store, registry = system
    x, y, old, two, three = _two_classes_known(store, registry)
    first = torch.cat([two[:30], three[:1], old[100:120]])  # early in the window: not in its holdout
    ids = store.add_samples(x[first], y[first])
    policy = Policy("continual", epochs=2, min_new_class_labels=5)
    rejected = train_once(store, registry, policy, Gate(), prepare=lambda d: d.replace(x=d.x * 1e30))
    assert rejected.trained and not rejected.passed
    later = old[120:144]  # known classes only
    store.add_samples(x[later], y[later])
    result = train_once(store, registry, policy, Gate(max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0))
    assert result.passed and result.attempt["waiting_classes"] == {"3": 1}
    assert "new class 3 waits for labels, 1 so far" in describe(EventKind.GATE, result.attempt)
    assert Contract.load(registry.get(result.version).path).classes == (0, 1, 2)
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(samples_table.c.trained_version).where(samples_table.c.id.in_(ids[:30]))
        )
        assert {v for (v,) in rows} == {result.version}  # class 2's rows trained the version that learned it


def test_a_diverged_candidate_is_refused_as_diverged(system: tuple[Store, Registry]) -> None:
    """Its NaN weights answered every request with a 422 that blamed the client's values."""
    store, registry = system
    seed_store(store, registry, strategies=(), known=4)
    policy = Policy("scheduled-finetune", every_samples=100, epochs=3)
    result = train_once(store, registry, policy, Gate(), prepare=lambda d: d.replace(x=d.x * 1e30))
    assert result.trained and not result.passed and result.version is None
    assert result.reasons[0].startswith("training diverged (the candidate's weights are not finite)")
    # the rows to act on, by id (a few 1e30 values failed every later training until found by hand)
    assert re.search(r"largest inputs, as the model sees them, are in samples \d+ \(\|x\| [\d.]+e\+30\)",
                     result.reasons[0])  # fmt: skip
    assert "DELETE /v1/samples/{id}" in result.reasons[0] and "--standardize" in result.reasons[0]
    with warnings.catch_warnings(record=True) as caught:  # said in the reason, not by every training's learn
        warnings.simplefilter("always")
        train_once(store, registry, policy, Gate(), prepare=lambda d: d.replace(x=d.x * 1e30))
    assert not [w for w in caught if "networks learn poorly" in str(w.message)]


def test_bootstrap_refuses_a_diverged_first_champion(tmp_path: Path) -> None:
    """`up --lr 1e6` published and served a champion whose weights were all NaN."""
    from lifelong.errors import ConfigError
    from lifelong.system.trainer import bootstrap

    with (
        Store(data_dir=tmp_path) as store,
        pytest.raises(ConfigError, match=r"diverged.*lower lr \(now 1e\+06\)"),
    ):
        bootstrap(store, Registry(store), toy_data(per_class=10).train, lr=1e6, epochs=1)
    with Store(data_dir=tmp_path) as store:
        assert Registry(store).versions() == []  # nothing published


def test_a_rejected_window_is_trained_on_by_the_next_attempt(system: tuple[Store, Registry]) -> None:
    """Was: the cursor moved past a rejected window, so after a concept change each attempt fine-tuned on
    the 60-100 labels since the last, every one rejected, and 1,574 labels were never trained on."""
    import sqlalchemy as sa

    from lifelong.system.store import samples as samples_table
    from lifelong.system.trainer import bootstrap

    store, registry = system
    split = toy_data(per_class=90)
    x, y = split.train.x, split.train.y
    bootstrap(store, registry, split.train.subset(torch.arange(100)), epochs=2)
    first = store.add_samples(x[100:200], y[100:200])
    policy = Policy("continual", epochs=2)
    rejected = train_once(store, registry, policy, Gate(min_new_accuracy=1.0, max_latency_ms=0.0))
    assert rejected.trained and not rejected.passed
    store.add_samples(x[200:260], y[200:260])
    lenient = Gate(max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0)
    result = train_once(store, registry, policy, lenient)
    assert result.passed and result.attempt["window"][0] == first[0]  # the rejected rows, and the new ones
    with store.engine.connect() as conn:
        trained = conn.execute(
            sa.select(samples_table.c.trained_version).where(samples_table.c.id.in_(first[:60]))
        )
        assert {v for (v,) in trained} == {result.version}


def test_a_champion_moved_while_the_candidate_was_published_is_not_overridden(
    system: tuple[Store, Registry],
) -> None:
    """Under load, a rollback to v3 answered 200 and was undone 38 ms later: the worker read the champion
    before publishing its candidate and moved the alias after, with no check in between."""
    from lifelong.system.trainer import Interrupted

    store, registry = system
    seed_store(store, registry, strategies=(), known=4)
    lenient = Gate(max_new_accuracy_drop=1.0, max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0)
    policy = Policy("scheduled-finetune", every_samples=100, epochs=1)
    assert train_once(store, registry, policy, lenient, reason="first").version == 2
    registry.set_alias("champion", 1)  # the candidate below is trained from v1
    more = toy_data(per_class=30, seed=4).train
    store.add_samples(more.x, more.y)
    calls = 0

    def racing() -> bool:  # asked before publishing and before promoting: a rollback lands in between
        nonlocal calls
        calls += 1
        if calls == 2:
            registry.set_alias("champion", 2)
        return True

    with pytest.raises(Interrupted, match=r"moved from v1 to v2 while v3 was being published.*not promoted"):
        train_once(store, registry, policy, lenient, reason="race", holds_lease=racing)
    assert registry.alias("champion") == 2 and registry.get(3).parent == 1
    assert [e.payload.get("reason") for e in store.events(EventKind.GATE)] == ["first"]  # no verdict for it


def test_new_labels_left_out_of_the_window_are_said(system: tuple[Store, Registry]) -> None:
    """A worker down for a while trained on the last 2,000 of 3,100 new labels without a word of the rest."""
    store, registry = system
    seed_store(store, registry, strategies=(), known=4)
    new = store.count_samples(store.cursor(CURSOR), labelled_only=True)  # since the bootstrap
    policy = Policy("scheduled-finetune", every_samples=100, window=100, epochs=1)
    lenient = Gate(max_new_accuracy_drop=1.0, max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0)
    payload = train_once(store, registry, policy, lenient).attempt
    said = f"{new - 100} new labelled samples before the window were not trained on: the policy trains on the latest window=100"
    assert any(said in w for w in payload["warnings"])
    assert said in describe(EventKind.GATE, payload)


def test_an_image_contract_from_before_pixel_ranges_gets_its_bootstraps_range(tmp_path: Path) -> None:
    """Was: a deployment bootstrapped by an older lifelong had no recorded pixel range, nor did any version
    trained from it, so 1e20 pixels were stored, trained on and kept in the replay memory (an upgrade trial)."""
    import json

    from lifelong.system.contract import FILE, Contract
    from lifelong.system.trainer import bootstrap

    g = torch.Generator().manual_seed(0)
    images = Dataset(torch.rand(120, 1, 4, 4, generator=g) * 255, torch.arange(120) % 3, None, 1.0, "img")
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        bootstrap(
            store, registry, images, model="mlp", model_kwargs={"in_features": 16, "n_classes": 3}, epochs=1
        )
        old = registry.get(1).path / FILE
        written = json.loads(old.read_text())
        del written["value_range"]  # as the older code wrote it
        old.write_text(json.dumps(written))
        store.add_samples(images.x[:60], images.y[:60])
        policy = Policy("scheduled-finetune", every_samples=10, min_samples=10, epochs=1)
        gate = Gate(max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0, max_new_accuracy_drop=1.0)
        result = train_once(store, registry, policy, gate)
        assert result.passed
        lo, hi = Contract.load(registry.get(result.version).path).value_range  # type: ignore[misc]
        assert 0 <= lo < 5 and 250 < hi <= 255  # the clients' units: 0-255, as the bootstrap rows


def test_a_returning_concept_brings_back_the_former_champion_that_knew_it(
    system: tuple[Store, Registry],
) -> None:
    """A trial (Agrawal 0 -> 2 -> 0): after the concept came back, continual fine-tuned a champion of the
    second rule on a few labels (0.837) while the registry held the first champion (0.935 on it)."""
    from lifelong.system.trainer import bootstrap

    store, registry = system
    split = toy_data(per_class=90)
    order = torch.randperm(len(split.train), generator=torch.Generator().manual_seed(1))
    a = split.train.subset(order)  # concept A: the labels as they are
    bootstrap(store, registry, a, n_classes=4, strategies=(), epochs=5, lr=0.05, batch_size=16)
    change = int(store.add_samples(a.x, (a.y + 1) % 4)[0]) - 1  # concept B: every label shifted
    lenient = Gate(max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0)
    b = Policy("continual", strategy="naive", epochs=5, window=360)
    second = train_once(store, registry, b, lenient, since=change)  # a drift-triggered training
    assert second.passed and registry.alias("champion") == 2
    cursor = store.cursor(CURSOR)
    store.add_samples(a.x[:100], a.y[:100])  # A returns: a few labels, one short pass learns little of it
    weak = Policy("continual", strategy="naive", epochs=1, window=100)
    result = train_once(store, registry, weak, lenient, reason="performance drop detected")
    assert result.passed and result.version == 1 and registry.alias("champion") == 1
    recalled = result.attempt["recalled"]
    assert recalled["version"] == 1 and recalled["p_value"] < 0.01
    assert result.attempt["recall_scored"]["v1"] == {"new_accuracy": recalled["figures"]["new_accuracy"],
                                                     "p_value": recalled["p_value"]}  # fmt: skip
    assert recalled["figures"]["new_accuracy"] > recalled["candidate_new_accuracy"] + 0.3
    assert [v.version for v in registry.versions()] == [1, 2]  # the trained candidate was not published
    assert store.cursor(CURSOR) == cursor  # v1 never learned this window: the next training takes it
    text = describe(EventKind.GATE, result.attempt)
    assert text.startswith("recalled v1: a former champion") and "a returning concept" in text
    from lifelong.system.contract import Contract
    from lifelong.system.trainer import _same_inputs

    grown = Contract(classes=(0, 1, 2), input_shape=(8,))  # a version from before the head grew drops class 2
    assert _same_inputs(grown, grown) and not _same_inputs(Contract(classes=(0, 1), input_shape=(8,)), grown)
    for bad in ({"recall_versions": -1}, {"recall_alpha": 0.0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Gate(**bad)


def test_bootstrap_keeps_raw_columns_as_sent(system: tuple[Store, Registry]) -> None:
    """`up --standardize --standardize-exclude store`: an integer code for an embedding is served as sent."""
    from lifelong.system.contract import Contract
    from lifelong.system.trainer import bootstrap

    store, registry = system
    data = toy_data(per_class=30).train
    names = [f"f{i}" for i in range(7)] + ["store"]
    bootstrap(store, registry, data, n_classes=4, epochs=1, standardize=True, feature_names=names,
              raw_columns=["store"])  # fmt: skip
    contract = Contract.load(registry.get(1).path)
    assert contract.mean[-1] == 0.0 and contract.std[-1] == 1.0 and contract.mean[0] != 0.0
