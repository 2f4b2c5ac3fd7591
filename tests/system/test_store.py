"""The store on SQLite and on a real PostgreSQL server: round trips, validation, durability, retention."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import torch

from lifelong.errors import ConfigError, LifelongError, NotFoundError, StoreError
from lifelong.system.store import NewClasses, RetentionPolicy, Store, assign_indices, prediction_ids, samples


def test_samples_round_trip_exactly(store: Store) -> None:
    x = np.random.default_rng(0).normal(size=(5, 3, 2)).astype(np.float32)
    ids = store.add_samples(x, [0, 1, 2, 3, 4], source="camera-1")
    more = store.add_samples(torch.ones(2, 3, 2, dtype=torch.float64))  # unlabelled, cast to float32
    assert ids == sorted(ids) and more[0] > ids[-1]

    got = store.samples()
    assert got.ids.tolist() == ids + more
    assert got.x.dtype == torch.float32 and got.x.shape == (7, 3, 2)
    assert torch.equal(got.x[:5], torch.from_numpy(x))
    assert got.y.tolist() == [0, 1, 2, 3, 4, -1, -1]  # -1: no label yet


def test_features_are_raw_little_endian_bytes_not_pickles(store: Store) -> None:
    x = np.arange(12, dtype=np.uint8).reshape(2, 6)
    (first, _) = store.add_samples(x)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(samples).where(samples.c.id == first)).one()
    assert bytes(row.features) == x[0].tobytes() and row.dtype == "uint8" and row.shape == [6]
    assert store.samples().x.dtype == torch.uint8  # images stay 4x smaller than float32

    store.add_samples(np.ones((1, 2), dtype=">f8"))  # big-endian float64 in, little-endian float32 stored
    with store.engine.connect() as conn:
        raw = conn.execute(sa.select(samples.c.features).order_by(samples.c.id.desc()).limit(1)).scalar_one()
    assert bytes(raw) == np.ones(2, dtype="<f4").tobytes()


def test_windows_counts_and_limits(store: Store) -> None:
    ids = store.add_samples(np.zeros((6, 2)), [0, 1, 0, 1, 0, 1])
    store.add_samples(np.zeros((2, 2)))
    assert store.samples(since_id=ids[1], until_id=ids[3]).ids.tolist() == ids[2:4]
    assert store.samples(since_id=ids[0], limit=2).ids.tolist() == ids[1:3]
    assert len(store.samples(labelled_only=True).ids) == 6
    assert store.count_samples() == 8
    assert store.count_samples(since_id=ids[3], labelled_only=True) == 2
    empty = store.samples(since_id=10**9)
    assert len(empty.ids) == 0 and len(empty.x) == 0


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.array([[1.0, np.nan]]), None, "NaN or infinite"),
        (np.array([[np.inf, 0.0]]), None, "NaN or infinite"),
        (np.array([[1e39, 0.0]]), None, "float32 range"),
        (np.zeros(3), None, "batch dimension"),
        (np.zeros((2, 2), dtype=np.int64), None, "floating point or uint8"),
        (np.zeros((2, 2)), [0.0, 1.0], "must be integers"),
        (np.zeros((2, 2)), [0, -1], ">= 0"),
        (np.zeros((2, 2)), [0], "1 labels for 2 samples"),
        (np.zeros((2, 2)), [[0, 1]], "1-D"),
    ],
)
def test_bad_samples_are_refused_with_a_clear_message(store: Store, x, y, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        store.add_samples(x, y)
    assert store.count_samples() == 0


def test_bad_names_and_json(store: Store) -> None:
    with pytest.raises(StoreError, match="source"):
        store.add_samples(np.zeros((1, 2)), source="../etc")
    with pytest.raises(StoreError, match="event kind"):
        store.add_event("Drift!")
    with pytest.raises(StoreError, match="finite"):
        store.add_event("data_drift", {"p": float("nan")})
    with pytest.raises(StoreError, match="JSON"):
        store.add_event("data_drift", {"p": object()})
    with pytest.raises(StoreError, match="variant"):
        store.add_prediction(1, 0, variant="blue")
    with pytest.raises(StoreError, match="model version"):
        store.add_prediction("v1", 0)  # type: ignore[arg-type]
    assert issubclass(StoreError, LifelongError) and issubclass(NotFoundError, LifelongError)


def test_feedback_labels_the_request_for_every_variant_and_the_sample(store: Store) -> None:
    (sid,) = store.add_samples(np.zeros((1, 2)))
    champ = store.add_prediction(1, 3, [0.1, 0.9], sample_id=sid)
    shadow = store.add_prediction(2, 4, sample_id=sid, variant="shadow", request_id=champ)
    other = store.add_prediction(1, 0)  # never gets feedback
    store.add_feedback(champ, 4)

    rows = store.labelled_predictions()
    assert {(r.prediction_id, r.version, r.variant, r.predicted, r.label) for r in rows} == {
        (champ, 1, "champion", 3, 4),
        (shadow, 2, "shadow", 4, 4),
    }
    assert other not in {r.prediction_id for r in rows}
    assert [r.prediction_id for r in store.labelled_predictions(version=2)] == [shadow]
    assert [r.prediction_id for r in store.labelled_predictions(variant="champion")] == [champ]
    assert store.samples().y.tolist() == [4]  # traffic became training data

    store.add_feedback(champ, 3)  # a correction replaces the earlier label
    assert {r.label for r in store.labelled_predictions()} == {3}
    assert store.samples(labelled_only=True).y.tolist() == [3]

    with pytest.raises(
        NotFoundError,
        match="no prediction with id .*retention \\(--keep-samples, --keep-days\\) deletes old ones",
    ):
        store.add_feedback("nope", 1)
    with pytest.raises(StoreError, match=">= 0"):
        store.add_feedback(champ, -2)


def test_batched_predictions_and_recent_limit(store: Store) -> None:
    ids = store.add_predictions(7, np.array([0, 1, 2]), torch.eye(3))
    for pid, label in zip(ids, [0, 0, 2]):
        store.add_feedback(pid, label)
    rows = store.labelled_predictions(limit=2)
    assert [r.prediction_id for r in rows] == ids[1:]  # the most recent two, oldest first
    assert sum(r.predicted == r.label for r in store.labelled_predictions()) == 2
    with pytest.raises(StoreError, match="scores"):
        store.add_predictions(7, [0, 1], np.ones((3, 2)))
    with pytest.raises(NotFoundError, match="sample id"):
        store.add_predictions(7, [0], sample_ids=[12345])
    assert len(store.labelled_predictions()) == 3  # the failed batch wrote nothing


def test_events_filters_and_polling_cursor(store: Store) -> None:
    first = store.add_event("data_drift", {"feature": 3, "p": 0.001})
    store.add_event("training", {"version": 2})
    last = store.add_event("data_drift", {"feature": 1, "p": 0.01})
    assert [e.payload["feature"] for e in store.events("data_drift")] == [3, 1]
    assert [e.id for e in store.events(after_id=first)] == [first + 1, last]
    assert [e.kind for e in store.events(limit=2)] == ["training", "data_drift"]
    assert store.events(since=store.events()[-1].ts)[-1].id == last
    # a poller following the cursor a page at a time sees every event (it got the newest page and
    # skipped the rest: after_id=0&limit=3 answered [8, 9, 10])
    seen, cursor = [], 0
    while page := store.events(after_id=cursor, limit=2):
        seen += [e.id for e in page]
        cursor = page[-1].id
    assert seen == [e.id for e in store.events()]


def test_failed_trainings_are_counted_from_the_event_log(store: Store) -> None:
    assert store.count_failed_trainings() == 0
    store.add_event("training", {"state": "started", "reason": "by hand"})
    store.add_event("training", {"state": "failed", "error": "boom", "failures": 1})
    store.add_event("gate", {"state": "failed"})  # another kind: not a training failure
    store.add_event("training", {"state": "failed", "error": "boom", "failures": 2})
    assert store.count_failed_trainings() == 2


def test_attempts_that_trained_nothing_are_counted_apart(store: Store) -> None:
    store.add_event("gate", {"passed": True, "trained": True, "version": 2})
    store.add_event("gate", {"passed": False, "version": None})  # judged and refused (no "trained" key)
    assert store.count_untrained_attempts() == 0
    store.add_event("gate", {"passed": False, "trained": False, "reasons": ["window too small"]})
    store.add_event("training", {"trained": False})  # another kind
    assert store.count_untrained_attempts() == 1


def test_trained_cursor_and_retention(store: Store) -> None:
    assert store.last_trained_sample_id() is None
    ids = store.add_samples(np.zeros((4, 2)), [0, 1, 0, 1])
    pid = store.add_prediction(1, 0, sample_id=ids[-1])
    store.add_feedback(pid, 1)
    store.mark_trained(ids, version=1)
    assert store.last_trained_sample_id() == ids[-1]

    assert store.apply_retention(RetentionPolicy(delete_trained=True)) == 4
    assert store.count_samples() == 0
    assert store.last_trained_sample_id() == ids[-1]  # the cursor survives deletion
    assert [r.label for r in store.labelled_predictions()] == [1]  # outcomes kept, sample link cleared
    (new,) = store.add_samples(np.zeros((1, 2)))
    assert new > ids[-1]  # ids are never reused, so id cursors stay valid

    store.advance_cursor("drift-checked", 10)
    store.advance_cursor("drift-checked", 5)
    assert store.cursor("drift-checked") == 10


def test_retention_by_age(store: Store) -> None:
    store.add_samples(np.zeros((3, 2)))
    store.add_drift_check(1, 1, 3, {"monitor": "ks", "score": 0.1, "drift": False})
    policy = RetentionPolicy(max_age_days=1)
    assert store.apply_retention(policy) == 0 and len(store.drift_checks()) == 1
    assert store.apply_retention(policy, now=time.time() + 2 * 86400) == 3
    assert store.drift_checks() == []  # the drift history ages out with the data it describes
    assert store.apply_retention(RetentionPolicy()) == 0
    with pytest.raises(StoreError, match="max_age_days"):
        RetentionPolicy(max_age_days=0)


def test_a_sample_cap_counts_only_the_samples_the_other_rules_keep(store: Store) -> None:
    """keep 5 with delete-trained: the 6 newest were trained, and the cap, counted over them too,
    deleted the 4 older untrained samples as well: all 10 went."""
    ids = store.add_samples(np.zeros((10, 2)))
    store.mark_trained(ids[4:], version=1)
    assert store.apply_retention(RetentionPolicy(delete_trained=True, max_samples=5)) == 6
    assert store.samples().ids.tolist() == ids[:4]  # untrained and under the cap: kept
    assert store.apply_retention(RetentionPolicy(max_samples=2)) == 2


def test_retention_deletes_in_chunks_and_takes_feedback_with_predictions(store: Store) -> None:
    ids = store.add_samples(np.zeros((10, 2)))
    for i in ids:
        store.add_feedback(store.add_prediction(1, 0, sample_id=i), 1)
    assert store.apply_retention(RetentionPolicy(max_samples=2), chunk=3) == 8
    assert store.samples().ids.tolist() == ids[-2:]
    assert [p.label for p in store.labelled_predictions()] == [1, 1]


def test_foreign_keys_are_indexed_also_in_a_database_made_before(db_url: str, tmp_path: Path) -> None:
    """Retention deletes parents; unindexed children made it scan them once per deleted row."""
    wanted = {"ix_predictions_sample_id", "ix_feedback_prediction_id"}
    with Store(db_url, data_dir=tmp_path) as store, store.transaction() as conn:
        for name in wanted:  # a database created before these indexes existed
            conn.exec_driver_sql(f"DROP INDEX {name}")
    with Store(db_url, data_dir=tmp_path) as store:
        found = {
            i["name"] for t in ("predictions", "feedback") for i in sa.inspect(store.engine).get_indexes(t)
        }
        assert wanted <= found


def test_acknowledged_writes_survive_sigkill(db_url: str, tmp_path: Path, kill_when_ready) -> None:
    def write(ready) -> None:
        child = Store(db_url, data_dir=tmp_path)
        child.add_samples(np.full((3, 4), 7.0), [1, 2, 3])
        child.add_event("training", {"ok": True})
        ready()  # the writes returned: from here the process may die at any instant

    assert kill_when_ready(write) == signal.SIGKILL
    with Store(db_url, data_dir=tmp_path) as reopened:
        got = reopened.samples()
        assert got.y.tolist() == [1, 2, 3] and bool((got.x == 7).all())
        assert [e.kind for e in reopened.events()] == ["training"]


def test_default_is_one_sqlite_file_in_wal_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIFELONG_DB_URL", raising=False)
    with Store(data_dir=tmp_path / "data") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert (
            conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
        )  # NORMAL: durable across process crashes
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert (tmp_path / "data" / "lifelong.db").exists()

    monkeypatch.setenv("LIFELONG_SQLITE_SYNCHRONOUS", "FULL")  # survives power loss as well
    with Store(data_dir=tmp_path / "full") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    monkeypatch.setenv("LIFELONG_SQLITE_SYNCHRONOUS", "OFF")
    with pytest.raises(
        ConfigError, match="LIFELONG_SQLITE_SYNCHRONOUS='OFF' is not valid; use one of NORMAL, FULL, EXTRA"
    ):
        Store(data_dir=tmp_path / "off")
    monkeypatch.delenv("LIFELONG_SQLITE_SYNCHRONOUS")

    monkeypatch.setenv("LIFELONG_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    with Store(data_dir=tmp_path / "unused") as store:
        store.add_event("deployment")
    assert (tmp_path / "env.db").exists() and not (tmp_path / "unused").exists()
    with pytest.raises(StoreError, match="scheme 'nosuchdb' is not supported: lifelong stores in SQLite"):
        Store("nosuchdb://x")
    with pytest.raises(StoreError, match=r"URL 'postgresql\+psycopg://u:\*\*\*@127.0.0.1:notaport/x'") as e:
        Store("postgresql://u:pw@127.0.0.1:notaport/x")  # was a raw ValueError traceback
    assert "pw" not in str(e.value)
    with pytest.raises(StoreError, match="cannot open the database .*refused") as e:
        Store("postgresql://nobody@127.0.0.1:1/none")
    assert "\n" not in str(e.value)  # one line: psycopg's hint came on a line of its own
    monkeypatch.setenv("LIFELONG_SQLITE_SYNCHRONOUS", "BOGUS")  # refused whatever the store
    with pytest.raises(ConfigError, match="LIFELONG_SQLITE_SYNCHRONOUS='BOGUS'"):
        Store("postgresql://nobody@127.0.0.1:1/none")


def test_a_file_that_is_not_a_database_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: sqlalchemy's DatabaseError ("file is not a database") escaped as a traceback, exit 1, from
    every command (serve, worker, events, ...); only OperationalError was turned into a StoreError."""
    from lifelong.cli import main

    (tmp_path / "lifelong.db").write_bytes(b"not an SQLite file, e.g. a truncated copy\n" * 10)
    before = (tmp_path / "lifelong.db").read_bytes()
    with pytest.raises(StoreError, match="cannot open the database at .*file is not a database"):
        Store(data_dir=tmp_path)
    assert main(["events", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot open the database") and len(err.strip().splitlines()) == 1
    assert (tmp_path / "lifelong.db").read_bytes() == before  # left as it was


def test_concurrent_writers_get_distinct_ids(store: Store) -> None:
    results: list[list[int]] = []

    def writer() -> None:
        for _ in range(10):
            results.append(store.add_samples(np.zeros((3, 2))))

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_ids = [i for batch in results for i in batch]
    assert len(all_ids) == len(set(all_ids)) == store.count_samples() == 120


def test_a_write_names_its_new_classes_in_its_own_transaction_or_not_at_all(store: Store) -> None:
    """Names were given before the request was checked: refused requests (an unknown sample or
    prediction id) used up indices for good, and a typo's index became an output of a grown head."""
    x = np.zeros((1, 3), dtype=np.float32)
    (sid,) = store.add_samples(x)
    fig = NewClasses(("fig",), 3, assign_indices(store.class_names(), ["fig"], 3))
    with pytest.raises(NotFoundError):
        store.relabel_sample(sid + 1, 3, fig)
    with pytest.raises(NotFoundError):
        store.add_feedback_many([("no-such-prediction", 3)], fig)
    assert store.class_names() == {}  # refused: nothing named
    store.name_classes(["kiwi"], first=3)  # another replica takes index 3 meanwhile
    store.relabel_sample(sid, 3, fig)  # checked as fig = 3: stored as the index fig was given
    assert store.class_names() == {"kiwi": 3, "fig": 4}
    assert store.samples(labelled_only=True).y.tolist() == [4]
    store.add_samples(x, [5], new_classes=NewClasses(("lime",), 3, {"kiwi": 3, "fig": 4, "lime": 5}))
    assert store.class_names()["lime"] == 5 and store.samples(since_id=sid).y.tolist() == [5]


def test_compacting_puts_admitted_classes_before_those_still_waiting(store: Store) -> None:
    """A typo ("barberra", 1 label) named before "barbera" (enough labels to train on) sat below it, so
    the head grown to barbera's index took the typo's as an output for good."""
    x = np.zeros((4, 3), dtype=np.float32)
    store.name_classes(["barberra", "barbera"], first=2)
    store.add_samples(x, [2, 3, 3, 3])
    assert store.compact_classes(first=2, admitted=3) == {2: 3, 3: 2}  # traded places
    assert store.class_names() == {"barbera": 2, "barberra": 3}
    assert store.samples(labelled_only=True).y.tolist() == [3, 2, 2, 2]
    assert store.compact_classes(first=2, admitted=3) == {}  # already in order


def test_compacting_frees_the_indices_of_names_left_without_labels(store: Store) -> None:
    """A typo ("fsh", corrected to "fish") kept index 3, so a head grown to fish's 4 served "fsh"."""
    x = np.zeros((3, 3), dtype=np.float32)
    store.name_classes(["fsh", "fish", "eel"], first=3)
    ids = store.add_samples(x, [3, 4, 5])
    store.relabel_sample(ids[0], 4)  # corrected: fsh holds no label now
    assert store.compact_classes(first=3) == {4: 3, 5: 4}
    assert store.class_names() == {"fish": 3, "eel": 4}
    assert store.samples(labelled_only=True).y.tolist() == [3, 3, 4]
    assert store.compact_classes(first=3) == {}  # nothing left to free
    assert store.compact_classes(first=5) == {} and store.class_names() == {
        "fish": 3,
        "eel": 4,
    }  # below first
    store.add_samples(x[:1], [9])  # an index no name holds: a client numbering classes itself
    store.name_classes(["gar"], first=3)
    assert store.compact_classes(first=3) == {} and "gar" in store.class_names()
    # a write checked before a compaction moved its class lands on the class's new index
    stale = NewClasses(("eel",), 3, {"eel": 5})
    store.add_samples(x[:1], [5], new_classes=stale)
    assert store.samples(labelled_only=True).y.tolist()[-1] == 4


def test_new_class_names_get_the_next_free_index_once_even_from_racing_writers(store: Store) -> None:
    assert store.class_names() == {}
    assert store.name_classes(["kiwi", "fig", "kiwi"], first=3) == {"kiwi": 3, "fig": 4}
    assert store.name_classes(["fig"], first=3) == {"kiwi": 3, "fig": 4}  # known: kept, nothing added
    assert store.name_classes(["lime"], first=7) == {
        "kiwi": 3,
        "fig": 4,
        "lime": 7,
    }  # the head grew meanwhile
    got: list[dict[str, int]] = []

    def writer(i: int) -> None:
        for k in range(5):
            got.append(store.name_classes([f"w{i}-{k}", "shared"], first=3))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.class_names()
    assert len(final) == 3 + 20 + 1 and len(set(final.values())) == len(final)  # one index per name
    assert sorted(final.values())[3:] == list(range(8, 8 + 21))  # consecutive after lime's 7
    assert all(seen.items() <= final.items() for seen in got)  # every answer agrees with the record


def test_lease_is_exclusive_until_it_expires_and_renewable_by_its_holder(tmp_path):
    with Store(data_dir=tmp_path) as store:
        assert store.lease("worker") is None
        assert store.acquire_lease("worker", "a", 10, now=100.0)
        assert not store.acquire_lease("worker", "b", 10, now=105.0)  # a holds it
        assert store.acquire_lease("worker", "a", 10, now=108.0)  # renewal moves expiry, keeps acquired
        lease = store.lease("worker")
        assert (lease.holder, lease.acquired, lease.heartbeat, lease.expires) == ("a", 100.0, 108.0, 118.0)
        assert not store.acquire_lease("worker", "b", 10, now=117.0)
        assert store.acquire_lease("worker", "b", 10, now=119.0)  # expired: b takes over
        assert store.lease("worker").holder == "b"
        store.release_lease("worker", "a")  # not a's any more: no effect
        assert store.lease("worker").holder == "b"
        store.release_lease("worker", "b")
        assert store.lease("worker") is None


def test_unknown_event_kind_is_refused(tmp_path):
    with Store(data_dir=tmp_path) as store, pytest.raises(StoreError, match="unknown event kind"):
        store.add_event("bogus")


def test_record_served_returns_the_ids_its_samples_got(store: Store) -> None:
    """Sample ids are inferred on SQLite (no RETURNING): they must be the rows' ids, in order, also
    after deletes (AUTOINCREMENT never reuses one) and beside samples added otherwise."""
    store.add_samples(np.zeros((3, 4), dtype=np.float32))
    store.delete_sample(store.last_sample_id())  # type: ignore[arg-type]
    x = np.arange(20, dtype=np.float32).reshape(5, 4)
    pids = [f"p{i}" for i in range(5)]
    ids = store.record_served(x, pids, pids, [1] * 5, ["champion"] * 5, [0] * 5, [[1.0, 0.0]] * 5)
    assert ids == list(range(4, 9))
    stored = store.samples(since_id=3)
    assert stored.ids.tolist() == ids
    np.testing.assert_array_equal(stored.x.numpy(), x)
    assert store.prediction_samples() == dict(zip(pids, ids))


def _pragma(store: Store, name: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"PRAGMA {name}").scalar_one())


def test_background_checkpoints_keep_wal_copies_out_of_commits(tmp_path: Path) -> None:
    """With ``checkpoint_every`` no commit copies the WAL (autocheckpoint 0); a thread does it."""
    with Store(data_dir=tmp_path / "default") as plain:
        assert _pragma(plain, "wal_autocheckpoint") == 1000  # SQLite's own: inside the commit
    with Store(data_dir=tmp_path, checkpoint_every=0.05) as store:
        assert _pragma(store, "wal_autocheckpoint") == 0
        db = tmp_path / "lifelong.db"
        before = db.stat().st_size
        store.add_samples(np.random.default_rng(0).random((400, 256), dtype=np.float32))  # ~400 KB
        deadline = time.monotonic() + 10
        ckpt = store._checkpointer
        assert ckpt is not None
        # the file grows during the copy; the count moves once the checkpoint's connection is back
        while (db.stat().st_size < before + 300_000 or ckpt.checkpoints < 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert db.stat().st_size >= before + 300_000, "the checkpointer never copied the WAL"
        assert ckpt.checkpoints >= 1
    with Store(data_dir=tmp_path) as again:  # nothing lost: the rows are in the file
        assert len(again.samples()[0]) == 400


def test_checkpointer_rewinds_the_wal_under_continuous_writes(tmp_path: Path) -> None:
    """A PASSIVE checkpoint never catches up with commits that keep coming, and SQLite rewinds the WAL
    only after one has: the file grew without bound under serving load. The writer's catch-up bounds it."""

    def wal_after_commits(path: Path, every: float) -> int:
        with Store(data_dir=path, checkpoint_every=every) as store:
            ckpt = store._checkpointer
            assert ckpt is not None
            ckpt.rewind_frames = 64
            x = np.zeros((1, 16), dtype=np.float32)
            for _ in range(1500):
                store.add_samples(x)
            if every < 1:
                assert ckpt.catch_ups >= 1
            return (path / "lifelong.db-wal").stat().st_size

    never = wal_after_commits(tmp_path / "never", 3600.0)  # no tick during the loop: every frame stays
    ticking = wal_after_commits(tmp_path / "ticking", 0.01)
    assert ticking < never / 2, f"WAL {ticking} bytes with checkpoints, {never} without: never rewound"
    with Store(data_dir=tmp_path / "ticking") as again:  # nothing lost
        assert len(again.samples()[0]) == 1500


def test_prediction_ids_are_time_ordered_uuid7() -> None:
    """New ids sort after older ones, so they append to the unique index instead of landing on
    random pages (uuid4 ids made 32-row serving commits 2.5x slower)."""
    before = time.time_ns() // 1_000_000
    first = prediction_ids(1000)
    time.sleep(0.002)
    second = prediction_ids(1000)
    after = time.time_ns() // 1_000_000
    assert len(set(first + second)) == 2000
    assert max(first) < min(second)
    for pid in (first[0], second[-1]):
        u = uuid.UUID(pid)
        assert (u.version, u.variant, len(pid)) == (7, uuid.RFC_4122, 32)
        assert before <= int(pid[:12], 16) <= after  # the leading 48 bits: Unix milliseconds


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    """--db-url pointed at a file holding a table `foo` got lifelong's tables created beside it, a first
    model and a server."""
    import sqlite3

    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE foo (x)")
    with pytest.raises(StoreError, match=r"holds other tables \(foo\) and none of lifelong's"):
        Store(f"sqlite:///{tmp_path / 'other.db'}")
    with sqlite3.connect(tmp_path / "other.db") as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["foo"]
    with sqlite3.connect(tmp_path / "events.db") as conn:  # a table of lifelong's name, not lifelong's
        conn.execute("CREATE TABLE events (id INTEGER, x TEXT)")
    with pytest.raises(
        StoreError, match=r"has a table 'events' without lifelong's columns \(kind, payload, ts\)"
    ):
        Store(f"sqlite:///{tmp_path / 'events.db'}")
    with sqlite3.connect(tmp_path / "events.db") as conn:  # nothing created beside it (was nine tables)
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["events"]
    with Store(data_dir=tmp_path / "ours"):  # a new database, and lifelong's own, open as before
        pass
    with Store(data_dir=tmp_path / "ours") as store:
        store.add_event("deployment")


def test_a_store_written_to_while_copied_is_refused_and_the_target_keeps_nothing(tmp_path: Path) -> None:
    """migrate's lease check sees a worker only: a `serve` left running on the SQLite file went on
    writing while it was copied, and those rows would be lost with the retired store."""
    with Store(data_dir=tmp_path / "source") as source, Store(data_dir=tmp_path / "target") as target:
        source.add_samples(np.ones((5, 3), dtype=np.float32), [0, 1, 0, 1, 0])
        writes: list[int] = []

        def a_server_writes(conn: object, cursor: object, statement: str, *_: object) -> None:
            if not writes and statement.startswith("INSERT"):  # another connection commits during the copy
                with Store(data_dir=tmp_path / "source") as server:
                    writes.append(server.add_event("deployment", {"note": "a server still running"}))

        sa.event.listen(target.engine, "before_cursor_execute", a_server_writes)
        with pytest.raises(
            StoreError, match="written to while it was copied .* nothing was written to the target"
        ):
            source.copy_into(target)
        sa.event.remove(target.engine, "before_cursor_execute", a_server_writes)
        assert writes and not any(target.counts().values())
        assert source.copy_into(target)["samples"] == 5  # nobody writes now: it copies
