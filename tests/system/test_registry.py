"""The registry: atomic crash-safe publishing, integrity, aliases and rollback, on both backends."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from lifelong.errors import LifelongError, NotFoundError, RegistryError
from lifelong.system.registry import AliasState, Registry, hash_artifact, model_versions
from lifelong.system.store import Store
from tests.system._system import publish


def test_publish_registers_an_immutable_verified_version(registry: Registry, store: Store) -> None:
    v1 = publish(registry, params={"lam": 100.0}, window=(1, 50), metrics={"acc": 0.9})
    v2 = publish(registry, b"better", parent=v1, strategy="replay+lwf")
    record = registry.get(v1)
    assert (record.version, record.parent, record.strategy) == (v1, None, "ewc")
    assert (record.params, record.window, record.metrics) == ({"lam": 100.0}, (1, 50), {"acc": 0.9})
    assert record.path == registry.artifacts_dir / f"v{v1}"
    assert (record.path / "model.safetensors").read_bytes() == b"weights"
    assert record.sha256 == hash_artifact(record.path)
    assert registry.get(v2).parent == v1
    assert [v.version for v in registry.versions()] == [v1, v2]
    registry.verify(v1)
    assert [e.payload["version"] for e in store.events("registration")] == [v1, v2]
    assert os.listdir(registry.artifacts_dir / ".staging") == []

    reopened = Registry(store, registry.artifacts_dir)
    assert reopened.get(v2).sha256 == registry.get(v2).sha256


def test_verify_detects_tampering_and_loss(registry: Registry) -> None:
    v = publish(registry)
    (registry.get(v).path / "model.safetensors").write_bytes(b"weightz")
    with pytest.raises(RegistryError, match="modified or corrupted"):
        registry.verify(v)
    os.remove(registry.get(v).path / "model.safetensors")
    os.remove(registry.get(v).path / "manifest.json")
    os.rmdir(registry.get(v).path)
    with pytest.raises(RegistryError, match="missing"):
        registry.verify(v)


def test_hash_covers_names_sizes_and_bytes(tmp_path: Path) -> None:
    def tree(name: str, files: dict[str, bytes]) -> str:
        for rel, data in files.items():
            (tmp_path / name / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / rel).write_bytes(data)
        return hash_artifact(tmp_path / name)

    base = tree("a", {"x": b"12", "sub/y": b"3"})
    assert tree("b", {"sub/y": b"3", "x": b"12"}) == base  # creation order does not matter
    assert tree("c", {"x": b"1", "sub/y": b"23"}) != base  # bytes moved between files
    assert tree("d", {"z": b"12", "sub/y": b"3"}) != base  # a renamed file


def test_a_failed_body_registers_nothing(registry: Registry) -> None:
    with pytest.raises(ValueError, match="training diverged"), registry.publish(strategy="ewc") as draft:
        (draft.path / "model.safetensors").write_bytes(b"half")
        raise ValueError("training diverged")
    assert registry.versions() == []
    assert not draft.path.exists() and os.listdir(registry.artifacts_dir / ".staging") == []

    with pytest.raises(RegistryError, match="empty"), registry.publish(strategy="ewc"):
        pass
    with pytest.raises(RegistryError, match="symbolic link"), registry.publish(strategy="ewc") as draft:
        os.symlink("/etc/passwd", draft.path / "model.safetensors")
    assert registry.versions() == [] and not any(registry.artifacts_dir.glob("v*"))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"strategy": "../evil"}, RegistryError, "strategy"),
        ({"strategy": "ewc", "parent": 99}, NotFoundError, "no model version 99"),
        ({"strategy": "ewc", "window": (5, 1)}, RegistryError, "first <= last"),
        ({"strategy": "ewc", "metrics": {"acc": float("inf")}}, LifelongError, "finite"),
    ],
)
def test_publish_validates_before_anything_is_written(registry: Registry, kwargs, error, message) -> None:
    with pytest.raises(error, match=message), registry.publish(**kwargs):
        pytest.fail("the body must not run")
    assert os.listdir(registry.artifacts_dir / ".staging") == []


def test_champion_promotion_and_stacked_rollback(registry: Registry, store: Store) -> None:
    v1, v2, v3 = (publish(registry, bytes([i])) for i in range(3))
    assert registry.alias("champion") is None
    for v in (v1, v2, v3):
        registry.set_alias("champion", v)
    registry.set_alias("champion", v3)  # no-op: not a new history entry
    assert registry.alias("champion") == v3

    before = time.time()
    assert registry.rollback() == v2
    since = registry.deployed_since("champion")
    # v2 serves again from now: its earlier traffic does not count as its live accuracy (the worker's
    # floor read it, and retrained from the version an operator had just rolled back to)
    assert since is not None and since >= before
    assert registry.rollback() == v1  # rollbacks keep walking back
    with pytest.raises(RegistryError, match="no earlier holder"):
        registry.rollback()
    assert registry.alias("champion") == v1

    registry.set_alias("champion", v3)
    assert registry.rollback() == v1  # v2 was rolled back before, so it is skipped
    assert [e.payload["version"] for e in store.events("promotion")] == [v1, v2, v3, v3]
    assert [(e.payload["from"], e.payload["to"]) for e in store.events("rollback")] == [
        (v3, v2),
        (v2, v1),
        (v3, v1),
    ]


def test_a_rollback_records_a_new_deployment_and_keeps_the_first_ones_time(
    registry: Registry, store: Store
) -> None:
    """Was: a rollback reactivated the old ``deployments`` row and overwrote its time, so the history
    no longer said when the restored version was first deployed."""
    from lifelong.system.registry import deployments as d

    def rows() -> list[tuple[int, str, float]]:
        q = sa.select(d.c.version, d.c.state, d.c.ts).where(d.c.kind == "champion").order_by(d.c.id)
        with store.engine.connect() as conn:
            return [(r.version, r.state, r.ts) for r in conn.execute(q)]

    v1, v2, v3 = (publish(registry, bytes([i])) for i in range(3))
    for v in (v1, v2, v3):
        registry.set_alias("champion", v)
    first = rows()
    time.sleep(0.01)
    before = time.time()
    assert registry.rollback() == v2
    after = rows()
    assert after[:2] == [first[0], (v2, "restored", first[1][2])]  # v2's first deployment keeps its time
    assert after[2][:2] == (v3, "rolled_back")
    assert after[3][:2] == (v2, "active") and after[3][2] >= before  # the rollback is a deployment of its own
    assert registry.deployed_since("champion") == after[3][2]  # v2's live window starts at the rollback
    assert registry.rollback() == v1 and rows()[0][2] == first[0][2]
    assert registry.history() == [v1, v2]


def test_a_ramp_keeps_the_canarys_deployment_and_its_evidence(registry: Registry) -> None:
    """A trial: 10% -> 50% of the same version inserted a new deployment, so the canary's labelled
    predictions (counted from deployed_since) went 32 -> 0, and a rollback went back to its 10%."""
    v1, v2, v3 = (publish(registry, bytes([i])) for i in range(3))
    registry.set_alias("champion", v1)
    registry.set_alias("canary", v2, share=0.1)
    since = registry.deployed_since("canary")
    registry.set_alias("canary", v2, share=0.5)
    assert registry.aliases()["canary"] == AliasState(v2, 0.5) and registry.deployed_since("canary") == since
    assert registry.rollback("canary") is None  # the ramp is no deployment to walk back to
    registry.set_alias("canary", v3, share=0.2)
    assert registry.deployed_since("canary") > since  # another version: a deployment of its own


def test_canary_share_rollback_and_removal(registry: Registry) -> None:
    v1, v2, v3 = (publish(registry, bytes([i])) for i in range(3))
    registry.set_alias("champion", v1)
    registry.set_alias("canary", v2, share=0.1)
    assert registry.aliases() == {"champion": AliasState(v1, None), "canary": AliasState(v2, 0.1)}
    registry.set_alias("canary", v3, share=0.2)
    assert registry.rollback("canary") == v2 and registry.aliases()["canary"].share == 0.1
    assert registry.rollback("canary") is None  # before v2 there was no canary: rolling back ends it
    assert registry.alias("canary") is None
    with pytest.raises(RegistryError, match="not set"):
        registry.rollback("canary")

    # promote a canary: the champion moves, the canary ends; a later canary never resurrects it
    registry.set_alias("canary", v2, share=0.5)
    registry.set_alias("champion", v2)
    registry.remove_alias("canary")
    registry.remove_alias("canary")  # no-op
    registry.set_alias("canary", v3, share=0.5)
    assert registry.rollback("canary") is None and registry.alias("champion") == v2
    for alias in ("canary", "shadow"):  # the champion against itself measures nothing
        with pytest.raises(RegistryError, match="v2 is the champion"):
            registry.set_alias(alias, v2, share=0.5)
    assert registry.alias("canary") is None and registry.alias("shadow") is None


@pytest.mark.parametrize("alias", ["../champion", "Champion", "a/b", "", "x" * 65, ".hidden"])
def test_alias_names_are_validated(registry: Registry, alias: str) -> None:
    v = publish(registry)
    with pytest.raises(RegistryError, match="alias must match"):
        registry.set_alias(alias, v)


def test_alias_errors(registry: Registry) -> None:
    v = publish(registry)
    with pytest.raises(NotFoundError, match="no model version 42"):
        registry.set_alias("champion", 42)
    with pytest.raises(RegistryError, match="takes no share"):
        registry.set_alias("champion", v, share=0.5)
    with pytest.raises(RegistryError, match="share"):
        registry.set_alias("canary", v, share=1.5)
    with pytest.raises(NotFoundError):
        registry.get(42)


def test_draft_is_path_like(registry: Registry) -> None:
    with registry.publish(strategy="naive") as draft:
        Path(os.fspath(draft), "model.safetensors").write_bytes(b"w")
    assert (registry.get(draft.version).path / "model.safetensors").exists()


@pytest.mark.parametrize("moment", ["writing", "before_rename", "after_rename"])
def test_a_killed_publisher_leaves_no_half_registered_version(
    registry: Registry, store: Store, db_url: str, moment: str, kill_when_ready
) -> None:
    artifacts = registry.artifacts_dir

    def publisher(ready) -> None:
        real_replace = os.replace

        def replace_then_die(src: str, dst: str) -> None:
            if moment == "after_rename":
                real_replace(src, dst)
            os.kill(os.getpid(), signal.SIGKILL)

        os.replace = replace_then_die  # only in this forked child
        child = Registry(Store(db_url), artifacts)
        with child.publish(strategy="ewc") as draft:
            (draft.path / "model.safetensors").write_bytes(b"x" * 4096)
            if moment == "writing":
                ready()
                time.sleep(30)

    assert kill_when_ready(publisher) == signal.SIGKILL
    assert registry.versions() == []  # readers never see a pending version
    with store.engine.connect() as conn:
        pending = conn.execute(sa.select(sa.func.count()).select_from(model_versions)).scalar_one()
    assert pending == (0 if moment == "writing" else 1)
    assert any(artifacts.glob("v*")) == (moment == "after_rename")
    assert len(os.listdir(artifacts / ".staging")) >= (1 if moment != "after_rename" else 0)

    reopened = Registry(store, artifacts)  # opening cleans up after the dead publisher
    assert os.listdir(artifacts / ".staging") == [] and not any(artifacts.glob("v*"))
    v = publish(reopened)
    reopened.verify(v)
    assert [r.version for r in reopened.versions()] == [v]


def test_a_publish_cleaned_up_from_another_host_fails_cleanly(
    registry: Registry, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def replace_while_another_host_cleans_up(src: str, dst: str) -> None:
        real_replace(src, dst)
        with store.transaction() as conn:  # what Registry.cleanup() on another host would do
            conn.execute(sa.delete(model_versions).where(model_versions.c.status == "pending"))

    monkeypatch.setattr(os, "replace", replace_while_another_host_cleans_up)
    with pytest.raises(RegistryError, match="publish again"):
        publish(registry)
    monkeypatch.undo()
    assert registry.versions() == [] and not any(registry.artifacts_dir.glob("v*"))
    assert registry.get(publish(registry)).sha256


def test_collected_versions_stay_listed_and_in_the_lineage_but_cannot_be_loaded(registry: Registry) -> None:
    chain = [publish(registry, b"w1")]
    for i in range(4):
        chain.append(
            publish(registry, f"w{i + 2}".encode(), parent=chain[-1], metrics={"new_accuracy": 0.5 + i})
        )
    registry.set_alias("champion", chain[-1])
    gone = registry.collect(keep_last=2)
    assert gone and set(gone) < set(chain)
    assert [v.version for v in registry.versions()] == [v for v in chain if v not in gone]
    listed = registry.versions(collected=True)
    assert [v.version for v in listed] == chain and [v.collected for v in listed] == [
        v in gone for v in chain
    ]
    with pytest.raises(RegistryError, match="deleted by retention"):
        registry.get(gone[0])
    record = registry.get(gone[-1], collected=True)  # the worker walks the lineage through it
    assert record.collected and not record.path.exists() and record.parent == chain[chain.index(gone[-1]) - 1]
    with pytest.raises(NotFoundError, match="lifelong models"):
        registry.get(999, collected=True)


def test_an_alias_is_never_moved_onto_a_version_whose_files_were_collected(registry: Registry) -> None:
    """Rollback onto a collected version answered 200: running replicas kept serving it from memory, a
    new one fell back to another, and every training failed; promote said "no model version 2"."""
    chain = [publish(registry, bytes([i])) for i in range(4)]
    for v in chain:
        registry.set_alias("champion", v)
    gone = registry.collect(keep_last=2)
    assert chain[1] in gone
    registry.rollback()  # v4 -> v3: kept
    with pytest.raises(RegistryError, match=f"v{chain[1]}'s model files were deleted by retention"):
        registry.rollback()
    assert registry.alias("champion") == chain[2]  # unchanged
    with pytest.raises(RegistryError, match="deleted by retention .*cannot point canary at it"):
        registry.set_alias("canary", chain[1], share=0.1)


@pytest.mark.parametrize("alias", ["canary", "shadow"])
def test_a_variant_that_becomes_the_champion_ends_by_promotion_or_rollback(
    registry: Registry, alias: str
) -> None:
    """Was: promoting the shadow's version by hand, or rolling the champion back onto the canary's or
    shadow's version, left that alias pointing at the champion (mirrored to itself, or compared with
    itself), a state set_alias refuses; now the variant ends in the same transaction, with an event."""
    v1, v2 = (publish(registry, bytes([i])) for i in range(2))
    registry.set_alias("champion", v1)
    registry.set_alias("champion", v2)
    registry.set_alias(alias, v1, share=0.3)
    assert registry.rollback() == v1  # the champion goes back onto the variant's version
    assert registry.aliases() == {"champion": AliasState(v1, None)}
    registry.set_alias(alias, v2, share=0.3)
    registry.set_alias("champion", v2)  # promoted by hand
    assert registry.aliases() == {"champion": AliasState(v2, None)}
    ended = [e.payload for e in registry.store.events("deployment")][-1]
    assert ended["alias"] == alias and ended["version"] is None and "became the champion" in ended["reason"]


def test_artifacts_the_store_never_registered_are_named_all_at_once(registry: Registry) -> None:
    """A PostgreSQL dump restored with a later copy of the artifacts failed on v5, then v6, then v7, each
    said to belong to "another store" and each using up a version number."""
    publish(registry)
    for n in (2, 3):
        (registry.artifacts_dir / f"v{n}").mkdir()
    with pytest.raises(
        RegistryError, match=r"holds v2, v3, which the store never registered.*restored from a backup"
    ):
        publish(registry)


def test_an_alias_moves_only_from_where_the_caller_read_it(registry: Registry) -> None:
    from lifelong.system.registry import AliasMoved

    v1, v2, v3 = (publish(registry, bytes([i])) for i in range(3))
    registry.set_alias("champion", v1)
    registry.set_alias("champion", v2, expected=v1)
    with pytest.raises(AliasMoved, match="champion moved from v1 to v2 meanwhile"):
        registry.set_alias("champion", v3, expected=v1)
    assert registry.alias("champion") == v2
    with pytest.raises(AliasMoved, match="canary moved from v1 to unset"):
        registry.set_alias("canary", v3, share=0.1, expected=v1)
    # a canary trained from v1 is deployed only while v1 is the champion, read under the same lock (the
    # gate read the champion, then deployed: a promotion between went unseen)
    with pytest.raises(AliasMoved, match="champion moved from v1 to v2 meanwhile"):
        registry.set_alias("canary", v3, share=0.1, champion=v1)
    assert registry.alias("canary") is None
    registry.set_alias("canary", v3, share=0.1, champion=v2)
    assert registry.alias("canary") == v3
