"""A replica started while the database is down serves what its data directory served last."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifelong.errors import StoreError
from lifelong.system.service import System
from lifelong.system.snapshot import ServedAlias, read_snapshot, snapshot_path, write_snapshot
from tests.system._models import DATA, trained
from tests.system._serve import free_port
from tests.system._system import settings

pytest.importorskip(
    "psycopg", reason="an unreachable database is a PostgreSQL URL; pip install 'lifelong[postgres]'"
)


def _served(tmp_path: Path) -> None:
    """A data directory whose server served champion v1 with v2 as a 30% canary."""
    with System(settings(tmp_path)) as system:
        system.bootstrap(trained())
        with system.registry.publish(strategy="none") as draft:
            trained(1).save(draft.path)
        assert draft.version == 2
        system.deploy(2, "canary", 0.3)


def _down(tmp_path: Path, port: int | None = None) -> System:
    """A server on ``tmp_path`` whose database (PostgreSQL on a loopback port nobody listens on) is down."""
    return System(settings(tmp_path, db_url=f"postgresql://lifelong@127.0.0.1:{port or free_port()}/x"))


def test_the_snapshot_round_trips_and_a_damaged_or_championless_one_is_ignored(tmp_path: Path) -> None:
    served = {
        "champion": ServedAlias(3, None, tmp_path / "a", "ab"),
        "shadow": ServedAlias(4, 0.5, tmp_path, "cd"),
    }
    write_snapshot(tmp_path, served)
    assert read_snapshot(tmp_path) == served
    assert read_snapshot(tmp_path / "nowhere") is None
    write_snapshot(tmp_path, {"shadow": served["shadow"]})
    assert read_snapshot(tmp_path) is None  # nothing to serve without a champion
    snapshot_path(tmp_path).write_text('{"aliases": {"champion": {"version": "three"}}}')
    assert read_snapshot(tmp_path) is None


def test_a_server_keeps_what_it_serves_beside_the_artifacts(tmp_path: Path) -> None:
    _served(tmp_path)
    snapshot = read_snapshot(tmp_path)
    assert snapshot is not None
    assert {a: (s.version, s.share) for a, s in snapshot.items()} == {
        "champion": (1, None),
        "canary": (2, 0.3),
    }
    assert all(s.path.is_dir() and len(s.sha256) == 64 for s in snapshot.values())
    # relative to the data directory: right from any working directory and any mount point
    assert '"path": "artifacts/v1"' in snapshot_path(tmp_path).read_text()


def test_a_replica_started_while_the_store_is_down_serves_the_snapshot(tmp_path: Path) -> None:
    """Was: a replica started during a database outage (an autoscaler adding one, a restart) refused
    to start, though the artifacts it needed were on disk."""
    _served(tmp_path)
    with _down(tmp_path) as system:
        assert system.store.opened_offline
        answers = system.predict(DATA.test.x[:200])
        assert {a["variant"] for a in answers} == {"champion", "canary"}
        assert {a["version"] for a in answers} == {1, 2}
        assert len(system.backlog) == len(answers)  # answered, kept to record once the store answers
        assert system.readiness("serving") == []  # in rotation
        assert any("store" in r for r in system.readiness())  # but the operator is told


def test_without_a_snapshot_or_with_a_tampered_champion_the_replica_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the database"):
        _down(tmp_path)
    _served(tmp_path)
    champion = read_snapshot(tmp_path)["champion"]  # type: ignore[index]
    (champion.path / "extra").write_text("tampered")
    with pytest.raises(StoreError, match="champion v1 of the snapshot .* registered sha256"):
        _down(tmp_path)


@contextlib.contextmanager
def _forward(port: int, to: int) -> Iterator[None]:
    """Listen on ``port`` and pass every connection through to ``to``: the database 'comes back'."""
    server = socket.create_server(("127.0.0.1", port))
    server.settimeout(0.2)
    stop = threading.Event()

    def pipe(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(("127.0.0.1", to))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.mark.postgres
def test_the_replica_takes_the_registrys_aliases_and_records_its_answers_once_the_store_answers(
    tmp_path: Path, pg_url: str
) -> None:
    with System(settings(tmp_path, db_url=pg_url)) as system:
        system.bootstrap(trained())
        with system.registry.publish(strategy="none") as draft:
            trained(1).save(draft.path)
        system.promote(2)  # moved in the registry and served: the snapshot now says v2
    database, port = int(pg_url.rsplit(":", 1)[1].split("/")[0]), free_port()
    url = pg_url.replace(f":{database}/", f":{port}/")
    with System(settings(tmp_path, db_url=url, poll_seconds=0.1)) as replica:
        assert replica.store.opened_offline and replica.holder.live.champion.version == 2
        answers = replica.predict(DATA.test.x[:3])
        replica.start_polling()
        with _forward(port, database):
            deadline = time.monotonic() + 20
            while len(replica.backlog) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(replica.backlog) == 0
            replica.feedback(answers[0]["id"], 1)  # recorded: feedback finds the answer it labels
            replica.rollback()  # the registry's aliases are in force: v1 again
            assert replica.holder.live.champion.version == 1


def test_serve_with_the_store_down_and_a_tampered_snapshot_champion_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked before uvicorn starts: a failure inside its start-up is a page of traceback."""
    from lifelong.cli import main

    _served(tmp_path)
    (read_snapshot(tmp_path)["champion"].path / "extra").write_text("tampered")  # type: ignore[index]
    url = f"postgresql://lifelong@127.0.0.1:{free_port()}/x"
    assert (
        main(["serve", "--data-dir", str(tmp_path), "--db-url", url, "--no-auth", "--port", str(free_port())])
        == 2
    )
    err = capsys.readouterr().err
    assert "is unreachable and the artifact of v1" in err and "registered sha256" in err
    assert len(err.strip().splitlines()) == 1
