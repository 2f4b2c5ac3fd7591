"""lifelong migrate: a stopped SQLite store copied into an empty PostgreSQL one serves, trains and keeps
numbering where it stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifelong.cli import main
from lifelong.errors import StoreError
from lifelong.system.migrate import migrate
from lifelong.system.policy import Policy
from lifelong.system.service import System
from lifelong.system.store import Store
from lifelong.system.trainer import Gate, train_once
from lifelong.system.worker import LEASE
from tests.system._models import DATA, trained
from tests.system._system import settings

pytestmark = pytest.mark.postgres
LENIENT = Gate(max_new_accuracy_drop=1.0, max_old_accuracy_drop=1.0, max_negative_flip_rate=1.0)


def _served(tmp_path: Path) -> tuple[list[str], list[int]]:
    """A SQLite data directory with two versions, answered and labelled predictions; what they were."""
    with System(settings(tmp_path)) as system:
        system.bootstrap(trained())
        answers = system.predict(DATA.test.x[:40])
        system.feedback([(a["id"], int(y)) for a, y in zip(answers[:30], DATA.test.y[:30].tolist())])
        system.add_samples(DATA.train.x[:120], DATA.train.y[:120].tolist())
        train_once(system.store, system.registry, Policy("scheduled-finetune", every_samples=100), LENIENT)
        versions = [v.version for v in system.registry.versions()]
    return [a["id"] for a in answers], versions


def test_a_migrated_store_serves_trains_and_numbers_on(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand copy left PostgreSQL's sequences at 1: the next event collided with a copied one and every
    answered prediction was dropped (labels for them then got 404)."""
    answered, versions = _served(tmp_path)
    # with LIFELONG_DB_URL exported (the replicas' recipe), the environment's database was copied, not the
    # SQLite store named, and the command said "copied 17600 samples" of the live store (a trial)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LIFELONG_DB_URL", pg_url)
        assert main(["migrate", "--data-dir", str(tmp_path), "--to", pg_url + "_other"]) == 2
        assert "holds an SQLite store, but LIFELONG_DB_URL names another database" in capsys.readouterr().err
    assert main(["migrate", "--data-dir", str(tmp_path), "--to", pg_url]) == 0
    assert "copied 160 samples, 40 predictions, 30 feedback" in capsys.readouterr().out
    with System(settings(tmp_path, db_url=pg_url)) as system:
        assert [v.version for v in system.registry.versions()] == versions
        assert system.registry.alias("champion") == versions[-1]
        system.feedback(answered[35], int(DATA.test.y[35]))  # a prediction answered before the move
        new = system.predict(DATA.test.x[:2])  # new rows, new ids: the sequences go on
        system.feedback(new[0]["id"], int(DATA.test.y[0]))
        events_before = len(system.store.events(limit=10_000))
        system.store.add_event("deployment", {"note": "after the move"})
        assert len(system.store.events(limit=10_000)) == events_before + 1
        result = train_once(system.store, system.registry, Policy("manual"), LENIENT)
        assert result.version == versions[-1] + 1  # the registry numbers on too
    refused = pytest.raises(StoreError, match=r"already holds lifelong rows \(.*samples")
    with Store(pg_url) as target, Store(data_dir=tmp_path) as source, refused:  # a second migrate
        migrate(source, target)


def test_a_running_service_is_not_migrated(pg_url: str, tmp_path: Path) -> None:
    _served(tmp_path)
    with Store(data_dir=tmp_path) as source, Store(pg_url) as target:
        source.acquire_lease(LEASE, "host:1:abc", 30.0)
        with pytest.raises(StoreError, match="the service is running on the source .* stop it first"):
            migrate(source, target)
        source.release_lease(LEASE, "host:1:abc")
        assert migrate(source, target).rows["predictions"] == 40
