"""The audit database against real backends: SQLite files and a throwaway PostgreSQL 15
(``postgres_server`` fixture, marked ``postgres``): migrations up/down, first-start schema
handling, the hash chain (record, read, verify, tamper, export), concurrent appends, and
error messages that name the place and never the password."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.adapters.db import (
    AuditStore,
    DatabaseError,
    DatabaseUnreachable,
    SchemaNotCurrent,
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    upgrade,
)
from bot.adapters.db.models import metadata
from bot.sdk.audit import AuditSink, CommandRecord
from bot.sdk.errors import InputError, SettingsError
from tests.lab.postgres import PostgresServer, free_port

HEAD = "0002_runs"


def _record(i: int = 0, **kw: Any) -> CommandRecord:
    base: dict[str, object] = dict(
        actor="U0123ABC", source="slack", channel="C0123456789", text=f"status prod #{i}",
        cluster="prod", outcome="ok", detail="3 findings", duration_ms=120 + i,
        extra={"n": i, "findings": ["KP001"], "ratio": 0.5, "nested": {"b": 1, "a": "é"}},
    )
    base.update(kw)
    return CommandRecord(**base)  # type: ignore[arg-type]


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _execute(url: str, sql: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.sqlite3'}"


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's throwaway server."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend, migrated to head."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    upgrade(url)
    return url


# ---------------------------------------------------------------------------- migrations


def _up_down_up(url: str) -> None:
    assert current_revision(url) is None
    assert upgrade(url) == HEAD
    assert current_revision(url) == HEAD
    assert {"commands", "alembic_version"} <= _tables(url)
    engine = sa.create_engine(url)
    try:
        insp = sa.inspect(engine)
        assert {i["name"] for i in insp.get_indexes("commands")} >= {
            "ix_commands_created_at", "ix_commands_cluster_created_at"}
    finally:
        engine.dispose()
    assert downgrade(url, "base") is None
    assert current_revision(url) is None
    assert "commands" not in _tables(url)
    assert upgrade(url, "head") == HEAD
    assert "commands" in _tables(url)
    assert upgrade(url) == HEAD  # idempotent


def test_sqlite_upgrade_downgrade_upgrade(sqlite_url: str) -> None:
    _up_down_up(sqlite_url)


@pytest.mark.postgres
def test_postgres_upgrade_downgrade_upgrade(pg_url: str) -> None:
    _up_down_up(pg_url)


def test_head_revision_is_the_newest_migration() -> None:
    assert head_revision() == HEAD


def test_migrations_match_models(db_url: str) -> None:
    """The revisions create exactly what the models declare (no autogenerate diff)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                    metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_unknown_revision_is_an_input_error(sqlite_url: str) -> None:
    with pytest.raises(InputError, match="revision 'nope'"):
        upgrade(sqlite_url, "nope")


def test_ensure_schema_creates_sqlite_in_new_directory(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there" / "k8snet.sqlite3"
    url = f"sqlite:///{path}"
    assert ensure_schema(url) == HEAD
    assert path.is_file()
    assert current_revision(url) == HEAD
    assert ensure_schema(url) == HEAD  # second start: nothing to do
    with AuditStore(url) as store:
        assert store.record_command(_record()) == 1


def test_ensure_schema_migrates_outdated_sqlite(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    downgrade(sqlite_url, "base")
    assert ensure_schema(sqlite_url) == HEAD
    assert "commands" in _tables(sqlite_url)


@pytest.mark.postgres
def test_ensure_schema_does_not_migrate_postgres(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    with pytest.raises(SchemaNotCurrent) as e:
        ensure_schema(url)
    msg = str(e.value)
    assert "is at revision none (empty)" in msg
    assert "run `k8snet db upgrade`" in msg
    assert f"127.0.0.1:{postgres_server.port}" in msg
    assert e.value.current is None and e.value.head == HEAD
    assert "commands" not in _tables(url)  # nothing was created implicitly
    upgrade(url)
    assert ensure_schema(url) == HEAD


@pytest.mark.postgres
def test_postgres_url_fixture_gives_an_empty_database(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    assert current_revision(postgres_url) in (None, HEAD)


def test_database_newer_than_code_is_refused(db_url: str) -> None:
    _execute(db_url, "UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(SchemaNotCurrent, match=r"does not know .*upgrade k8snet"):
        ensure_schema(db_url)
    with pytest.raises(SchemaNotCurrent):
        upgrade(db_url)


# ---------------------------------------------------------------------------- chain


def test_record_recent_verify_export(db_url: str) -> None:
    started = datetime(2026, 11, 30, 3, 0, 0, 123456, tzinfo=UTC)
    with AuditStore(db_url) as store:
        sink: AuditSink = store
        ids = [sink.record_command(_record(i)) for i in range(3)]
        ids.append(store.record_command(_record(
            3, source="cli", channel="terminal", actor="cli:alice", cluster=None,
            outcome="refused", extra={},
            started_at=started.astimezone(timezone(timedelta(hours=2))),
        )))
        assert ids == [1, 2, 3, 4]

        recent = store.recent_commands(2)
        assert [r["id"] for r in recent] == [4, 3]
        newest = recent[0]
        assert newest["created_at"] == "2026-11-30T03:00:00.123456+00:00"
        assert newest["cluster"] is None and newest["source"] == "cli"
        assert newest["outcome"] == "refused" and newest["extra"] == {}
        assert recent[1]["extra"] == {"n": 2, "findings": ["KP001"], "ratio": 0.5,
                                      "nested": {"a": "é", "b": 1}}
        assert recent[1]["duration_ms"] == 122
        assert newest["prev_hash"] == recent[1]["row_hash"]
        assert store.recent_commands(100)[-1]["prev_hash"] == "0" * 64

        check = store.verify_chain()
        assert check == (True, None, "4 rows verified")

        buf = io.StringIO()
        assert store.export_jsonl(buf) == 4
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [r["id"] for r in lines] == [1, 2, 3, 4]
    assert {r["table"] for r in lines} == {"commands"}
    # The documented recipe reproduces every hash from the export alone.
    prev = "0" * 64
    for r in lines:
        content = {k: v for k, v in r.items()
                   if k not in ("table", "id", "prev_hash", "row_hash")}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False, allow_nan=False)
        assert r["prev_hash"] == prev
        assert hashlib.sha256((prev + canonical).encode()).hexdigest() == r["row_hash"]
        prev = r["row_hash"]


def test_empty_chain_verifies(db_url: str) -> None:
    with AuditStore(db_url) as store:
        assert store.verify_chain() == (True, None, "0 rows verified")
        assert store.recent_commands(5) == []
        assert store.export_jsonl(io.StringIO()) == 0


def test_tampered_row_is_named(db_url: str) -> None:
    with AuditStore(db_url) as store:
        for i in range(4):
            store.record_command(_record(i))
        _execute(db_url, "UPDATE commands SET text='x' WHERE id=2")
        ok, bad, reason = store.verify_chain()
        assert (ok, bad) == (False, 2)
        assert "row 2" in reason and "changed after it was written" in reason


def test_rehashed_row_breaks_the_link_to_the_next(db_url: str) -> None:
    """Changing a row and recomputing its own hash still breaks the next row's prev_hash."""
    with AuditStore(db_url) as store:
        for i in range(3):
            store.record_command(_record(i))
        _execute(db_url, "UPDATE commands SET row_hash='" + "f" * 64 + "' WHERE id=2")
        ok, bad, _ = store.verify_chain()
        assert (ok, bad) == (False, 2)
        _execute(db_url, "DELETE FROM commands WHERE id=2")
        ok, bad, reason = store.verify_chain()
        assert (ok, bad) == (False, 3)
        assert "prev_hash" in reason


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"outcome": "maybe"}, "outcome must be one of"),
        ({"source": "email"}, "source must be one of"),
        ({"duration_ms": -1}, "duration_ms"),
        ({"duration_ms": 2**31}, "duration_ms"),
        ({"started_at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"extra": {"x": float("nan")}}, "extra is not JSON"),
        ({"extra": {"x": object()}}, "extra is not JSON"),
        ({"text": "a\x00b"}, "text contains a NUL"),
    ],
)
def test_invalid_records_are_refused_before_writing(
    sqlite_url: str, change: dict[str, Any], match: str
) -> None:
    upgrade(sqlite_url)
    with AuditStore(sqlite_url) as store:
        with pytest.raises(ValueError, match=match):
            store.record_command(_record(**change))
        assert store.recent_commands(1) == []


def test_recent_limit_is_bounded(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    with AuditStore(sqlite_url) as store:
        for bad in (0, -1, 1001):
            with pytest.raises(ValueError, match="limit must be"):
                store.recent_commands(bad)


def test_store_has_no_update_or_delete() -> None:
    names = [n.lower() for n in dir(AuditStore) if not n.startswith("_")]
    assert not [n for n in names if any(w in n for w in ("update", "delete", "remove", "edit"))]


def test_concurrent_appends_keep_one_chain(db_url: str) -> None:
    """8 threads x 25 appends, each thread with its own store (as separate replicas would
    be), all started at once: every id is there once and the chain verifies."""
    threads_n, per_thread = 8, 25
    barrier = threading.Barrier(threads_n)
    ids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        try:
            with AuditStore(db_url) as store:
                barrier.wait()
                mine = [store.record_command(_record(t * 100 + i, actor=f"U{t}"))
                        for i in range(per_thread)]
            with lock:
                ids.extend(mine)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    total = threads_n * per_thread
    assert sorted(ids) == list(range(1, total + 1))
    with AuditStore(db_url) as store:
        assert store.verify_chain() == (True, None, f"{total} rows verified")


# ---------------------------------------------------------------------------- errors


def test_unreachable_postgres_names_host_and_hides_password() -> None:
    port = free_port()
    url = f"postgresql+psycopg://k8snet:s3cr3t-pw@127.0.0.1:{port}/audit"
    for call in (lambda: ensure_schema(url), lambda: current_revision(url),
                 lambda: upgrade(url), lambda: AuditStore(url).record_command(_record())):
        with pytest.raises(DatabaseUnreachable) as e:
            call()
        msg = str(e.value)
        assert "s3cr3t-pw" not in msg
        assert f"127.0.0.1:{port}" in msg
        assert "Connection refused" in msg
        assert "k8snet:***@" in msg
        assert "\n" not in msg
        assert e.value.host == f"127.0.0.1:{port}"


@pytest.mark.postgres
def test_missing_postgres_database_is_named(postgres_server: PostgresServer) -> None:
    url = postgres_server.url("no_such_db").replace("postgres@", "postgres:pw1234@")
    with pytest.raises(DatabaseUnreachable, match='database "no_such_db" does not exist') as e:
        current_revision(url)
    assert "pw1234" not in str(e.value)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("not a url :// s3cr3t", "not a valid database URL"),
        ("mysql://root:s3cr3t@db/k8snet", "'mysql'"),
    ],
)
def test_bad_url_is_a_settings_error_without_password(url: str, match: str) -> None:
    with pytest.raises(SettingsError, match=match) as e:
        ensure_schema(url)
    assert "s3cr3t" not in str(e.value)
    assert e.value.key == "database_url"


def test_sqlite_in_unwritable_place_is_clear() -> None:
    with pytest.raises(DatabaseUnreachable, match="Cannot create the directory /proc/k8snet"):
        ensure_schema("sqlite:////proc/k8snet/audit.sqlite3")


def test_store_before_schema_says_what_failed(sqlite_url: str) -> None:
    with AuditStore(sqlite_url) as store, pytest.raises(
        DatabaseError, match=r"while recording a command .*no such table: commands"
    ):
        store.record_command(_record())


# ---------------------------------------------------------------------------- the fixture


@pytest.mark.parametrize(("ci", "expect"), [("", "1 skipped"), ("true", "1 error")])
def test_postgres_fixture_without_binaries_skips_or_fails_in_ci(ci: str, expect: str) -> None:
    """No PostgreSQL binaries: skip locally, fail under CI=true (never a silent pass)."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "CI": ci, "K8SNET_PG_BINDIR": "/nonexistent/pg/bin"}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsf",
         f"{Path(__file__).relative_to(repo)}::test_postgres_url_fixture_gives_an_empty_database"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120,
    )
    assert expect in res.stdout, res.stdout[-2000:]
    assert (res.returncode != 0) == (ci == "true")
    assert "PostgreSQL server binaries (initdb, pg_ctl) not found" in res.stdout
