"""Fixtures for the production-path tests: a store on SQLite and on a real PostgreSQL server.

The PostgreSQL server is started once per session on 127.0.0.1 from the machine's own binaries
(Debian's ``postgresql`` package); tests that need it are skipped, with the reason, if it is absent.
"""

from __future__ import annotations

import glob
import os
import pwd
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch

from lifelong.system.app import create_app
from lifelong.system.contract import Contract
from lifelong.system.registry import Registry
from lifelong.system.service import System
from lifelong.system.settings import Settings
from lifelong.system.store import Store
from tests.system._models import trained
from tests.system._serve import free_port, running
from tests.system._server import FEATURES, NAMES, TOKEN, Server


def _postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on loopback; yields a ``postgresql+psycopg://`` URL."""
    bindir = _postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql package"
        )
    pytest.importorskip("psycopg", reason="psycopg is not installed; pip install 'lifelong[postgres]'")
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="lifelong-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the 'postgres' user
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the PostgreSQL server as")
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else ["su", "postgres", "-c"]

    def run(*cmd: str | Path) -> None:
        args = [str(c) for c in cmd]
        full = prefix + [shlex.join(args)] if prefix[:1] == ["su"] else prefix + args
        subprocess.run(full, check=True, capture_output=True, timeout=60)

    port, data = free_port(), root / "data"
    try:
        run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "lifelong", "-E", "UTF8", "--no-sync")
        options = f"-h 127.0.0.1 -p {port} -k {root}"
        run(bindir / "pg_ctl", "-D", data, "-l", root / "server.log", "-o", options, "-w", "start")
    except subprocess.CalledProcessError as err:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {err.stderr.decode()}\n{log}") from err
    try:
        run(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "lifelong", "lifelong_test")
        yield f"postgresql+psycopg://lifelong@127.0.0.1:{port}/lifelong_test"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """The session's PostgreSQL, emptied after the test."""
    yield postgres_url
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("SET lock_timeout = '10s'")
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of one backend; PostgreSQL is emptied after each test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lifelong.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Store]:
    with Store(db_url, data_dir=tmp_path) as s:
        yield s


@pytest.fixture
def registry(store: Store, tmp_path: Path) -> Registry:
    return Registry(store, tmp_path / "artifacts")


def _kill_when_ready(work: Callable[[Callable[[], None]], None], timeout: float = 30.0) -> int:
    """Run ``work(ready)`` in a forked child and SIGKILL it the moment it calls ``ready()``.

    The child may also die on its own (a test that kills itself mid-publish). Returns the signal
    that ended the child. Forking (rather than a fresh interpreter) skips a 3 s torch import.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(r)
            work(lambda: os.write(w, b"1"))
            time.sleep(timeout)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(1)
    os.close(w)
    try:
        if not select.select([r], [], [], timeout)[0]:
            raise TimeoutError("child did not report within the timeout")
        os.read(r, 1)  # b"1" once ready, b"" if the child died first
    finally:
        os.kill(pid, signal.SIGKILL)  # the child is at worst a zombie until waitpid, so this cannot miss
        _, status = os.waitpid(pid, 0)
        os.close(r)
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else -os.WEXITSTATUS(status)


@pytest.fixture
def kill_when_ready() -> Callable[..., int]:
    """See :func:`_kill_when_ready`."""
    return _kill_when_ready


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared 2-core machine
    data_dir: Path = tmp_path_factory.mktemp("serve")
    settings = Settings(data_dir=data_dir, token=TOKEN, poll_seconds=0.2, canary_min_labelled=20,
                        max_batch=16, max_body_bytes=20_000)  # fmt: skip
    with System(settings) as setup:  # what the worker process would have registered
        good, other, bad = (setup.bootstrap(trained(0)), setup.bootstrap(trained(1)),
                            setup.bootstrap(trained(1, wrong=True)))  # fmt: skip
        setup.promote(good)
    try:
        with running(create_app(settings)) as url:
            yield Server(url, good, other, bad, data_dir)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A deployment whose classes have names, as `lifelong up --bootstrap` makes from string labels."""
    data_dir: Path = tmp_path_factory.mktemp("named")
    settings = Settings(data_dir=data_dir, token=TOKEN, poll_seconds=0.2)
    with System(settings) as setup:
        contract = Contract(classes=(0, 1, 2, 3), input_shape=(8,), class_names=NAMES, feature_names=FEATURES)
        version = setup.bootstrap(trained(0), contract=contract)
    with running(create_app(settings)) as url:
        yield Server(url, version, version, version, data_dir)
