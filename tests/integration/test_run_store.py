"""The run store (``RunStoreSQL``) against real backends: SQLite files and a throwaway
PostgreSQL 15 (``postgres_server`` fixture, marked ``postgres``): runs, idempotency, the
compare-and-set of states under races (threads, and separate instances = separate engines),
approvals, the ``run_events`` hash chain and its tamper detection, cluster locks with leases,
and the ``0002_runs`` migration up, down and up again."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.adapters.db import (
    AuditStore,
    RunStoreSQL,
    SchemaNotCurrent,
    current_revision,
    downgrade,
    ensure_schema,
    upgrade,
)
from bot.adapters.db.models import DECISIONS, RISKS, RUN_STATES, Lock
from bot.engine.runs import ApprovalRecord, RunRecord, RunState, RunStore, new_run_id
from bot.sdk.audit import CommandRecord
from tests.lab.postgres import PostgresServer

HEAD = "0002_runs"
T0 = datetime(2026, 11, 30, 3, 0, 0, 123456, tzinfo=UTC)
PLAN_HASH = "a" * 64
SOURCE = hashlib.sha256(b"runbook source").hexdigest()
REPEAT = 20


class Clock:
    """An injectable clock: returns ``t``; ``advance(seconds)`` moves it."""

    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def _run(run_id: str | None = None, **kw: Any) -> RunRecord:
    base: dict[str, Any] = dict(
        id=run_id or new_run_id(), cluster="prod", runbook="kube-proxy-mode", version="1.2.0",
        source_sha256=SOURCE,
        params={"mode": "ipvs", "scheduler": "rr", "nested": {"z": 1, "a": [1, 2.5, None]}},
        requester="U0REQ", channel="C0123456789", state=RunState.AWAITING_APPROVAL,
        created_at=T0, updated_at=T0,
        plan={"changes": [{"target": "ConfigMap/kube-system/kube-proxy", "before": {"mode": ""},
                           "after": {"mode": "ipvs"}}], "warnings": ["é ünïcode ✓"]},
        plan_hash=PLAN_HASH, risk="disruptive", expires_at=T0 + timedelta(minutes=30),
        approvals_required=1,
    )
    base.update(kw)
    return RunRecord(**base)


def _execute(url: str, sql: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> Any:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _race(n: int, fn: Callable[..., Any], *args: Any) -> list[Any]:
    """Run ``fn(k, *args)`` for k in 0..n-1 in n threads released together by a barrier;
    their results, by k."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = fn(i, *args)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    return results


def _new_url(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_url(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> str:
    """A fresh, empty database of each backend."""
    return _new_url(request, tmp_path, backend)


@pytest.fixture
def db_url(empty_url: str) -> str:
    """A fresh database of each backend, migrated to head."""
    upgrade(empty_url)
    return empty_url


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_url: str, clock: Clock) -> Iterator[RunStoreSQL]:
    with RunStoreSQL(db_url, now=clock) as s:
        yield s


@pytest.fixture
def two_stores(db_url: str, clock: Clock) -> Iterator[tuple[RunStoreSQL, RunStoreSQL]]:
    """Two instances on one database: two engines, as two replicas would have."""
    with RunStoreSQL(db_url, now=clock) as a, RunStoreSQL(db_url, now=clock) as b:
        yield a, b


# ---------------------------------------------------------------------------- contract


def test_implements_the_run_store_protocol() -> None:
    """Every method of the port exists with the port's parameters."""
    store_type: type[RunStore] = RunStoreSQL  # mypy checks the structure
    for name, member in inspect.getmembers(RunStore, inspect.isfunction):
        if name.startswith("_"):
            continue
        mine = getattr(store_type, name)
        assert list(inspect.signature(mine).parameters) == list(
            inspect.signature(member).parameters), name


def test_migration_value_lists_match_the_models() -> None:
    """The CHECK constraints of 0002_runs are spelled out; they must match the code."""
    mig = importlib.import_module("migrations.versions.0002_runs")
    assert mig.RUN_STATES == RUN_STATES == tuple(s.value for s in RunState)
    assert mig.RISKS == RISKS
    assert mig.DECISIONS == DECISIONS


def test_no_update_or_delete_of_audit_rows() -> None:
    names = [n.lower() for n in dir(RunStoreSQL) if not n.startswith("_")]
    assert not [n for n in names if any(w in n for w in ("delete", "remove", "edit"))]
    assert [n for n in names if "update" in n] == ["update_fields"]  # runs only


# ---------------------------------------------------------------------------- runs


def test_create_get_list(store: RunStoreSQL, clock: Clock) -> None:
    first = _run("r-aaaaaaaaaa", created_at=T0, updated_at=T0)
    stored = store.create_run(first)
    assert stored == first
    got = store.get_run("r-aaaaaaaaaa")
    assert got == first
    assert got is not None
    assert isinstance(got.state, RunState) and got.state is RunState.AWAITING_APPROVAL
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == timedelta(0)
    # JSON round-trips exactly, key order included.
    assert list(got.params) == ["mode", "scheduler", "nested"]
    assert list(got.params["nested"]) == ["z", "a"]
    assert got.plan["warnings"] == ["é ünïcode ✓"]

    # Another time zone in, UTC out; optional fields empty.
    t1 = (T0 + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=-5)))
    second = _run("r-bbbbbbbbbb", cluster="lab", state=RunState.PLANNED, created_at=t1,
                  updated_at=t1, plan={}, plan_hash="", expires_at=None, risk="read-only",
                  approvals_required=0, applied=[{"index": 0, "ok": True, "result": None}])
    assert store.create_run(second).created_at == T0 + timedelta(minutes=1)
    t2 = T0 + timedelta(minutes=2)
    store.create_run(_run("r-cccccccccc", created_at=t2, updated_at=t2,
                          state=RunState.SUCCEEDED))

    assert store.get_run("r-nope") is None
    assert [r.id for r in store.list_runs()] == ["r-cccccccccc", "r-bbbbbbbbbb", "r-aaaaaaaaaa"]
    assert [r.id for r in store.list_runs(limit=1)] == ["r-cccccccccc"]
    assert [r.id for r in store.list_runs(cluster="prod")] == ["r-cccccccccc", "r-aaaaaaaaaa"]
    assert [r.id for r in store.list_runs(states=[RunState.PLANNED,
                                                  RunState.AWAITING_APPROVAL])] == [
        "r-bbbbbbbbbb", "r-aaaaaaaaaa"]
    assert store.list_runs(cluster="prod", states=[RunState.PLANNED]) == []
    assert store.list_runs(states=[]) == []
    lab = store.list_runs(cluster="lab")[0]
    assert lab.expires_at is None and lab.applied == [{"index": 0, "ok": True, "result": None}]
    for bad in (0, 1001, True):
        with pytest.raises(ValueError, match="limit must be"):
            store.list_runs(limit=bad)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"state": "dancing"}, ValueError, "RunRecord.state must be a RunState"),
        ({"risk": "yolo"}, ValueError, "risk must be one of"),
        ({"created_at": datetime(2026, 1, 1)}, ValueError, "created_at must be timezone-aware"),
        ({"params": {"x": float("nan")}}, ValueError, "params is not JSON"),
        ({"params": ["not", "a", "dict"]}, TypeError, "params must be a JSON object"),
        ({"applied": {"a": 1}}, TypeError, "applied must be a JSON array"),
        ({"plan_hash": "xyz"}, ValueError, "plan_hash must be 64"),
        ({"detail": "a\x00b"}, ValueError, "detail contains a NUL"),
        ({"id": "has space"}, ValueError, "RunRecord.id must be"),
        ({"approvals_required": -1}, ValueError, "approvals_required"),
    ],
)
def test_invalid_runs_are_refused_before_writing(
    tmp_path: Path, change: dict[str, Any], error: type[Exception], match: str
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.sqlite3'}"
    upgrade(url)
    with RunStoreSQL(url) as store:
        with pytest.raises(error, match=match):
            store.create_run(_run(**change))
        assert store.list_runs() == []


def test_same_id_twice_is_refused(store: RunStoreSQL) -> None:
    store.create_run(_run("r-aaaaaaaaaa"))
    with pytest.raises(ValueError, match="'r-aaaaaaaaaa' already exists"):
        store.create_run(_run("r-aaaaaaaaaa", cluster="lab"))
    got = store.get_run("r-aaaaaaaaaa")
    assert got is not None and got.cluster == "prod"


def test_idempotency_key_returns_the_existing_run(store: RunStoreSQL) -> None:
    a = store.create_run(_run("r-aaaaaaaaaa", idempotency_key="trigger-1"))
    b = store.create_run(_run("r-bbbbbbbbbb", idempotency_key="trigger-1", cluster="lab"))
    assert b == a and b.id == "r-aaaaaaaaaa" and b.cluster == "prod"
    assert store.get_run("r-bbbbbbbbbb") is None
    # No key: never deduplicated; another key: a new run.
    store.create_run(_run("r-cccccccccc"))
    store.create_run(_run("r-dddddddddd"))
    assert store.create_run(_run("r-eeeeeeeeee", idempotency_key="trigger-2")).id \
        == "r-eeeeeeeeee"
    assert len(store.list_runs()) == 4


def test_idempotency_key_race(two_stores: tuple[RunStoreSQL, RunStoreSQL]) -> None:
    """Two instances create runs with one key at once, 20 times: one row, both get it."""
    for stores in two_stores:
        stores.get_run("r-warmup")  # connect before the race
    for i in range(REPEAT):
        key = f"trigger-{i}"
        ids = [f"r-{i:02d}aaaaaaaa", f"r-{i:02d}bbbbbbbb"]
        got = _race(2, lambda k, ids, key: two_stores[k].create_run(
            _run(ids[k], idempotency_key=key)), ids, key)
        assert got[0] == got[1] and got[0].id in ids
        assert sum(two_stores[0].get_run(x) is not None for x in ids) == 1


# ---------------------------------------------------------------------------- transitions


def test_transition_is_compare_and_set(store: RunStoreSQL, clock: Clock) -> None:
    store.create_run(_run("r-aaaaaaaaaa", state=RunState.PLANNED))
    clock.advance(5)
    assert not store.transition("r-aaaaaaaaaa", [RunState.APPROVED], RunState.RUNNING)
    assert store.transition("r-aaaaaaaaaa", [RunState.PLANNED], RunState.AWAITING_APPROVAL,
                            message_ts="1700000000.000100", message_channel="C0123456789",
                            expires_at=clock() + timedelta(minutes=30))
    run = store.get_run("r-aaaaaaaaaa")
    assert run is not None
    assert run.state is RunState.AWAITING_APPROVAL
    assert run.updated_at == T0 + timedelta(seconds=5) and run.created_at == T0
    assert run.message_ts == "1700000000.000100"
    assert run.expires_at == T0 + timedelta(seconds=5, minutes=30)
    # Several allowed sources; JSON fields set with the state.
    applied = [{"index": 0, "ok": True, "message": "patched", "result": {"b": 1, "a": 2}}]
    assert store.transition("r-aaaaaaaaaa", [RunState.APPROVED, RunState.AWAITING_APPROVAL],
                            RunState.RUNNING, applied=applied, detail="applying")
    run = store.get_run("r-aaaaaaaaaa")
    assert run is not None and run.state is RunState.RUNNING
    assert run.applied == applied and list(run.applied[0]["result"]) == ["b", "a"]
    # A second identical move finds the state changed.
    assert not store.transition("r-aaaaaaaaaa", [RunState.APPROVED,
                                                 RunState.AWAITING_APPROVAL], RunState.RUNNING)
    assert not store.transition("r-nope", [RunState.PLANNED], RunState.AWAITING_APPROVAL)
    with pytest.raises(ValueError, match="transition cannot set cluster"):
        store.transition("r-aaaaaaaaaa", [RunState.RUNNING], RunState.FAILED, cluster="x")
    with pytest.raises(ValueError, match="from_states must name"):
        store.transition("r-aaaaaaaaaa", [], RunState.FAILED)
    with pytest.raises(ValueError, match="to_state must be a RunState"):
        store.transition("r-aaaaaaaaaa", [RunState.RUNNING], "done")  # type: ignore[arg-type]
    run2 = store.get_run("r-aaaaaaaaaa")
    assert run2 is not None and run2.state is RunState.RUNNING  # refused calls wrote nothing


def test_update_fields(store: RunStoreSQL, clock: Clock) -> None:
    store.create_run(_run("r-aaaaaaaaaa"))
    clock.advance(1)
    store.update_fields("r-aaaaaaaaaa", message_ts="1.2", message_channel="C1", detail="x",
                        applied=[{"index": 0}])
    run = store.get_run("r-aaaaaaaaaa")
    assert run is not None
    assert (run.message_ts, run.message_channel, run.detail, run.applied) == (
        "1.2", "C1", "x", [{"index": 0}])
    assert run.state is RunState.AWAITING_APPROVAL and run.updated_at == clock()
    with pytest.raises(ValueError, match="update_fields cannot set plan, plan_hash"):
        store.update_fields("r-aaaaaaaaaa", plan={}, plan_hash="")
    with pytest.raises(ValueError, match="no run 'r-nope'"):
        store.update_fields("r-nope", detail="x")


@pytest.mark.parametrize("instances", ["one instance", "two instances"])
def test_transition_race_has_one_winner(
    store: RunStoreSQL, two_stores: tuple[RunStoreSQL, RunStoreSQL], instances: str
) -> None:
    """Two threads approve the same run at once (a double click, a Slack retry, two
    replicas), 20 times: exactly one moves it."""
    racers = (store, store) if instances == "one instance" else two_stores
    for s in racers:
        s.get_run("r-warmup")
    for i in range(REPEAT):
        rid = f"r-race{i:06d}"
        store.create_run(_run(rid))
        won = _race(2, lambda k, rid: racers[k].transition(
            rid, [RunState.AWAITING_APPROVAL], RunState.APPROVED, detail=f"by {k}"), rid)
        assert sorted(won) == [False, True], (i, won)
        run = store.get_run(rid)
        assert run is not None and run.state is RunState.APPROVED
        assert run.detail == f"by {won.index(True)}"


# ---------------------------------------------------------------------------- approvals


def test_approvals_are_unique_per_approver(store: RunStoreSQL) -> None:
    store.create_run(_run("r-aaaaaaaaaa"))
    t = T0 + timedelta(minutes=1)
    assert store.add_approval(ApprovalRecord("r-aaaaaaaaaa", "U1", "approve", t, PLAN_HASH))
    assert not store.add_approval(
        ApprovalRecord("r-aaaaaaaaaa", "U1", "reject", t + timedelta(seconds=1), PLAN_HASH,
                       reason="changed my mind"))
    assert store.add_approval(ApprovalRecord("r-aaaaaaaaaa", "U2", "reject",
                                             t + timedelta(seconds=2), PLAN_HASH, "too risky"))
    got = store.approvals("r-aaaaaaaaaa")
    assert [(a.approver, a.decision, a.reason) for a in got] == [
        ("U1", "approve", ""), ("U2", "reject", "too risky")]
    assert got[0].at == t and got[0].plan_hash == PLAN_HASH
    assert store.approvals("r-nope") == []
    with pytest.raises(ValueError, match="no run 'r-nope'"):
        store.add_approval(ApprovalRecord("r-nope", "U1", "approve", t, PLAN_HASH))
    with pytest.raises(ValueError, match="decision must be one of"):
        store.add_approval(ApprovalRecord("r-aaaaaaaaaa", "U3", "maybe", t, PLAN_HASH))
    with pytest.raises(ValueError, match="at must be timezone-aware"):
        store.add_approval(ApprovalRecord("r-aaaaaaaaaa", "U3", "approve",
                                          datetime(2026, 1, 1), PLAN_HASH))


def test_same_approver_racing_is_recorded_once(
    store: RunStoreSQL, two_stores: tuple[RunStoreSQL, RunStoreSQL]
) -> None:
    for s in two_stores:
        s.get_run("r-warmup")
    for i in range(REPEAT):
        rid = f"r-appr{i:06d}"
        store.create_run(_run(rid))
        ok = _race(2, lambda k, rid: two_stores[k].add_approval(
            ApprovalRecord(rid, "U1", ("approve", "reject")[k], T0, PLAN_HASH)), rid)
        assert sorted(ok) == [False, True]
        assert len(store.approvals(rid)) == 1


# ---------------------------------------------------------------------------- events


def test_events_chain_verifies_and_exports(db_url: str, store: RunStoreSQL,
                                           clock: Clock) -> None:
    store.create_run(_run("r-aaaaaaaaaa"))
    store.create_run(_run("r-bbbbbbbbbb"))
    with AuditStore(db_url) as audit:
        audit.record_command(CommandRecord(actor="U0REQ", source="slack", channel="C1",
                                           text="run kube-proxy-mode", cluster="prod",
                                           outcome="ok"))
        ids = []
        for i, rid in enumerate(["r-aaaaaaaaaa", "r-bbbbbbbbbb", "r-aaaaaaaaaa"]):
            clock.advance(1)
            ids.append(store.append_event(rid, "state", {"to": "approved", "i": i,
                                                         "z": {"y": 1, "x": [0.1, "é"]}}))
        assert ids == [1, 2, 3]
        evs = store.events("r-aaaaaaaaaa")
        assert [(e.id, e.kind, e.data["i"]) for e in evs] == [(1, "state", 0), (3, "state", 2)]
        assert evs[0].at == T0 + timedelta(seconds=1) and evs[0].run_id == "r-aaaaaaaaaa"
        assert list(evs[0].data["z"]) == ["y", "x"]
        assert store.events("r-nope") == []
        with pytest.raises(ValueError, match="no run 'r-nope'"):
            store.append_event("r-nope", "state", {})
        with pytest.raises(ValueError, match="kind must be"):
            store.append_event("r-aaaaaaaaaa", "Bad Kind", {})
        with pytest.raises(ValueError, match="data is not JSON"):
            store.append_event("r-aaaaaaaaaa", "state", {"x": float("inf")})

        check = audit.verify_chain()
        assert check.table is None
        assert check == (True, None, "4 rows verified")

        buf = io.StringIO()
        assert audit.export_jsonl(buf) == 4
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [(r["table"], r["id"]) for r in lines] == [
        ("commands", 1), ("run_events", 1), ("run_events", 2), ("run_events", 3)]
    assert lines[1]["at"] == "2026-11-30T03:00:01.123456+00:00"
    # The documented recipe reproduces every run_events hash from the export alone.
    prev = "0" * 64
    for r in lines[1:]:
        content = {k: v for k, v in r.items() if k not in ("table", "id", "prev_hash",
                                                             "row_hash")}
        assert set(content) == {"run_id", "at", "kind", "data"}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False, allow_nan=False)
        assert r["prev_hash"] == prev
        assert hashlib.sha256((prev + canonical).encode()).hexdigest() == r["row_hash"]
        prev = r["row_hash"]


def test_tampered_event_is_named(db_url: str, store: RunStoreSQL) -> None:
    store.create_run(_run("r-aaaaaaaaaa"))
    for i in range(4):
        store.append_event("r-aaaaaaaaaa", "write", {"i": i})
    with AuditStore(db_url) as audit:
        assert audit.verify_chain().ok
        _execute(db_url, "UPDATE run_events SET data='{\"i\": 9}' WHERE id=3")
        check = audit.verify_chain()
        assert (check.ok, check.first_bad_id, check.table) == (False, 3, "run_events")
        assert check.reason.startswith("run_events row 3: ")
        assert "changed after it was written" in check.reason
        # Removing a row breaks the next one's link.
        _execute(db_url, "DELETE FROM run_events WHERE id=3")
        ok, bad, reason = audit.verify_chain()
        assert (ok, bad) == (False, 4) and "run_events row 4: prev_hash" in reason
        # A broken commands chain is named first, as "commands row N".
        audit.record_command(CommandRecord(actor="U1", source="cli", channel="terminal",
                                           text="status", cluster=None, outcome="ok"))
        _execute(db_url, "UPDATE commands SET actor='U2' WHERE id=1")
        check = audit.verify_chain()
        assert (check.first_bad_id, check.table) == (1, "commands")
        assert check.reason.startswith("commands row 1: ")


def test_concurrent_event_appends_keep_one_chain(db_url: str, store: RunStoreSQL) -> None:
    """4 instances x 15 appends at once: every id once, and the chain verifies."""
    store.create_run(_run("r-aaaaaaaaaa"))
    n, per = 4, 15

    def work(k: int) -> list[int]:
        with RunStoreSQL(db_url) as s:
            return [s.append_event("r-aaaaaaaaaa", "write", {"k": k, "i": i})
                    for i in range(per)]

    ids = [i for got in _race(n, work) for i in got]
    assert sorted(ids) == list(range(1, n * per + 1))
    with AuditStore(db_url) as audit:
        assert audit.verify_chain() == (True, None, f"{n * per} rows verified")


# ---------------------------------------------------------------------------- locks


def _lease(url: str, cluster: str) -> tuple[datetime, datetime]:
    """(acquired_at, expires_at) of a lock row, read with raw SQL, as aware UTC."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(Lock.acquired_at, Lock.expires_at)
                               .where(Lock.cluster == cluster)).one()
    finally:
        engine.dispose()
    return row[0], row[1]


def test_locks_lease_takeover_renew_release(
    db_url: str, two_stores: tuple[RunStoreSQL, RunStoreSQL], clock: Clock
) -> None:
    a, b = two_stores
    assert a.acquire_lock("prod", "replica-a:r-1", 60)
    assert a.lock_holder("prod") == "replica-a:r-1"
    assert _lease(db_url, "prod") == (T0, T0 + timedelta(seconds=60))
    assert not b.acquire_lock("prod", "replica-b:r-2", 60)  # live lease of another holder
    assert b.acquire_lock("lab", "replica-b:r-2", 60)  # locks are per cluster
    clock.advance(30)
    assert a.acquire_lock("prod", "replica-a:r-1", 60)  # same holder: extends
    assert _lease(db_url, "prod") == (T0, T0 + timedelta(seconds=90))  # acquired_at kept
    assert not b.renew_lock("prod", "replica-b:r-2", 600)  # only the holder renews
    b.release_lock("prod", "replica-b:r-2")  # only the holder releases: no-op
    assert not b.acquire_lock("prod", "replica-b:r-2", 60)
    clock.advance(30)
    assert a.renew_lock("prod", "replica-a:r-1", 60)
    assert _lease(db_url, "prod") == (T0, T0 + timedelta(seconds=120))
    clock.advance(60)  # now == expires_at: still live
    assert not b.acquire_lock("prod", "replica-b:r-2", 60)
    assert a.lock_holder("prod") == "replica-a:r-1"
    clock.advance(0.000001)  # expired: taken over
    assert a.lock_holder("prod") is None
    assert b.acquire_lock("prod", "replica-b:r-2", 60)
    assert _lease(db_url, "prod") == (clock(), clock() + timedelta(seconds=60))
    assert not a.renew_lock("prod", "replica-a:r-1", 60)  # A lost it
    a.release_lock("prod", "replica-a:r-1")  # no-op
    assert b.lock_holder("prod") == "replica-b:r-2"
    assert not a.acquire_lock("prod", "replica-a:r-1", 60)
    b.release_lock("prod", "replica-b:r-2")
    assert a.lock_holder("prod") is None
    assert a.acquire_lock("prod", "replica-a:r-3", 60)  # free again
    with pytest.raises(ValueError, match="lease_seconds"):
        a.acquire_lock("prod", "replica-a:r-3", 0)
    with pytest.raises(ValueError, match="holder must be"):
        a.acquire_lock("prod", "", 60)


def test_expired_lock_not_taken_over_is_still_renewable(db_url: str, store: RunStoreSQL,
                                                        clock: Clock) -> None:
    assert store.acquire_lock("prod", "h1", 10)
    clock.advance(20)
    assert store.renew_lock("prod", "h1", 10)  # nobody took it: still h1's
    assert store.lock_holder("prod") == "h1"
    assert _lease(db_url, "prod") == (T0, clock() + timedelta(seconds=10))


@pytest.mark.parametrize("racers", [2, 5])
def test_lock_race_has_one_winner(db_url: str, clock: Clock, racers: int) -> None:
    """Separate instances (engines) race for a free lock, then for an expired one, 20 times
    each: exactly one wins every time."""
    stores = [RunStoreSQL(db_url, now=clock) for _ in range(racers)]
    try:
        for s in stores:
            s.get_run("r-warmup")
        for i in range(REPEAT):
            cluster = f"c{i}"
            won = _race(racers, lambda k, c: stores[k].acquire_lock(c, f"h{k}", 30), cluster)
            assert won.count(True) == 1, (i, won)
            clock.advance(31)
            won2 = _race(racers, lambda k, c: stores[k].acquire_lock(c, f"n{k}", 30), cluster)
            assert won2.count(True) == 1, (i, won2)
            assert stores[0].lock_holder(cluster) == f"n{won2.index(True)}"
    finally:
        for s in stores:
            s.close()


def test_clock_must_be_aware(db_url: str) -> None:
    with RunStoreSQL(db_url, now=lambda: datetime(2026, 1, 1)) as s, \
            pytest.raises(ValueError, match="timezone-aware"):
        s.acquire_lock("prod", "h", 10)


# ---------------------------------------------------------------------------- migrations


def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    """0001 -> 0002 -> 0001 -> 0002: the run tables come and go; commands rows stay."""
    new_tables = {"runs", "run_events", "approvals", "locks"}
    assert upgrade(empty_url, "0001_commands") == "0001_commands"
    assert not new_tables & _tables(empty_url)
    with AuditStore(empty_url) as audit:
        audit.record_command(CommandRecord(actor="U1", source="cli", channel="terminal",
                                           text="db upgrade", cluster=None, outcome="ok"))
    assert upgrade(empty_url) == HEAD
    assert new_tables <= _tables(empty_url)
    engine = sa.create_engine(empty_url)
    try:
        insp = sa.inspect(engine)
        assert {i["name"] for i in insp.get_indexes("runs")} >= {
            "ix_runs_cluster_created_at", "ix_runs_state"}
        assert {tuple(u["column_names"]) for u in insp.get_unique_constraints("run_events")} \
            == {("prev_hash",)}
        assert {tuple(u["column_names"]) for u in insp.get_unique_constraints("approvals")} \
            == {("run_id", "approver")}
    finally:
        engine.dispose()
    with RunStoreSQL(empty_url) as s:
        s.create_run(_run("r-aaaaaaaaaa"))
        s.append_event("r-aaaaaaaaaa", "planned", {})
    assert downgrade(empty_url, "0001_commands") == "0001_commands"
    assert current_revision(empty_url) == "0001_commands"
    assert not new_tables & _tables(empty_url)
    assert _scalar(empty_url, "SELECT count(*) FROM commands") == 1
    assert upgrade(empty_url) == HEAD
    with RunStoreSQL(empty_url) as s:
        assert s.list_runs() == []
        s.create_run(_run("r-aaaaaaaaaa"))
    with AuditStore(empty_url) as audit:
        assert audit.verify_chain() == (True, None, "1 row verified")


def test_check_constraints_refuse_bad_rows(db_url: str) -> None:
    with RunStoreSQL(db_url) as s:
        s.create_run(_run("r-aaaaaaaaaa"))
    with pytest.raises(sa.exc.IntegrityError):
        _execute(db_url, "UPDATE runs SET state='dancing' WHERE id='r-aaaaaaaaaa'")
    with pytest.raises(sa.exc.IntegrityError):
        _execute(db_url, "INSERT INTO approvals (run_id, approver, decision, at, plan_hash, "
                         "reason) VALUES ('r-aaaaaaaaaa', 'U1', 'maybe', "
                         "'2026-01-01 00:00:00', '', '')")


def test_ensure_schema_sqlite_migrates_from_0001(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.sqlite3'}"
    upgrade(url, "0001_commands")
    assert ensure_schema(url) == HEAD
    assert current_revision(url) == HEAD
    assert "runs" in _tables(url)


@pytest.mark.postgres
def test_ensure_schema_postgres_at_0001_asks_for_upgrade(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database()
    upgrade(url, "0001_commands")
    with pytest.raises(SchemaNotCurrent) as e:
        ensure_schema(url)
    assert "is at revision 0001_commands" in str(e.value)
    assert "run `k8snet db upgrade`" in str(e.value)
    assert (e.value.current, e.value.head) == ("0001_commands", HEAD)
    assert "runs" not in _tables(url)
    upgrade(url)
    assert ensure_schema(url) == HEAD

