"""Engines and connections for the audit database, with errors turned into one-sentence
:mod:`bot.adapters.db.errors` messages that never show a password.

Backends: SQLite (``sqlite:///PATH``; ``sqlite://`` is an in-memory database) and PostgreSQL
through psycopg 3 (``postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DB``; ``postgresql://``
is read as ``postgresql+psycopg://``).

Write transactions (:func:`write_transaction`) are serialised by the database:
- SQLite: pysqlite's own transaction handling is switched off and the transaction starts with
  ``BEGIN IMMEDIATE``, so the write lock is taken at begin (another writer waits up to
  :data:`SQLITE_BUSY_TIMEOUT_S` seconds, then gets ``database is locked``). Reads start with a
  plain ``BEGIN``. The file is put in WAL mode so readers do not block the writer.
- PostgreSQL: callers take a transaction-scoped advisory lock (:func:`advisory_xact_lock`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from bot.adapters.db.errors import DatabaseError, DatabaseUnreachable
from bot.sdk.errors import SettingsError

SQLITE_BUSY_TIMEOUT_S = 30.0
"""Seconds an SQLite writer waits for another writer's lock before failing."""

PG_CONNECT_TIMEOUT_S = 10
"""Seconds to wait for a PostgreSQL connection (unless the URL sets ``connect_timeout``)."""

_EXPECTED = "expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
_WRITE_OPTION = "k8snet_write"


def parse_url(url: str | URL) -> URL:
    """Parse and normalise a database URL (``postgresql://`` -> ``postgresql+psycopg://``).

    Raises SettingsError (``key="database_url"``) for an unparsable URL or another backend;
    the message never repeats the URL, which may hold a password.
    """
    try:
        u = make_url(url)
    except (ArgumentError, ValueError) as e:
        raise SettingsError(
            f"database_url is not a valid database URL ({_EXPECTED})", key="database_url"
        ) from e
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    if u.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise SettingsError(
            f"database_url uses {u.drivername!r}, which k8snet does not support ({_EXPECTED})",
            key="database_url",
        )
    return u


def mask_url(url: str | URL) -> str:
    """The URL as text with the password replaced by ``***`` (safe for logs and messages).
    An unparsable URL gives ``<invalid database URL>``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<invalid database URL>"


def is_sqlite(url: URL) -> bool:
    """True for SQLite URLs."""
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: URL) -> Path | None:
    """The file of an SQLite URL, or None for an in-memory database."""
    db = url.database
    if not db or db == ":memory:" or db.startswith("file::memory:"):
        return None
    return Path(db)


def target(url: URL) -> str:
    """What a message names as the place: ``host:port`` for servers, the path for SQLite."""
    if is_sqlite(url):
        return str(sqlite_path(url) or ":memory:")
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def make_engine(url: str | URL, *, create_dir: bool = False) -> Engine:
    """An Engine for ``url`` (see the module docstring for per-backend behaviour).

    ``create_dir``: for an SQLite file, create its parent directory first. Does not connect.
    Raises SettingsError for a bad URL or a missing driver (psycopg for PostgreSQL),
    DatabaseUnreachable when the SQLite directory cannot be created.
    """
    u = parse_url(url)
    if is_sqlite(u):
        path = sqlite_path(u)
        if create_dir and path is not None:
            try:
                path.expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise DatabaseUnreachable(
                    f"Cannot create the directory {path.parent} for the SQLite database: "
                    f"{e.strerror or e}",
                    url=mask_url(u), host=str(path),
                ) from e
        engine = create_engine(u, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _install_sqlite_hooks(engine, in_memory=path is None)
        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in u.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    try:
        return create_engine(u, connect_args=connect_args, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as e:
        raise SettingsError(
            "database_url is a PostgreSQL URL but the psycopg driver is not installed "
            "(pip install 'k8snet[postgres]')",
            key="database_url",
        ) from e


def _install_sqlite_hooks(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite: we emit BEGIN ourselves.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            if not in_memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def advisory_lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` from a name
    (first 8 bytes of its sha256)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def advisory_xact_lock(conn: Connection, name: str) -> None:
    """On PostgreSQL, wait for the transaction-scoped advisory lock ``name`` (released at
    commit or rollback). No-op elsewhere (SQLite write transactions are already exclusive)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_lock_key(name)})


def _cause(e: BaseException, password: str | None) -> str:
    """One line saying why, from a DBAPI error (``Connection refused``, ``database "x" does
    not exist``...), with the password scrubbed."""
    orig = getattr(e, "orig", None) or e
    msg = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    msg = msg.replace("connection failed: ", "")
    m = re.search(r'connection to server at "[^"]*"(?:, port \d+)? failed: (.*)$', msg)
    if m:
        msg = m.group(1)
    msg = re.sub(r"^(FATAL|ERROR):\s+", "", msg).strip().rstrip(".")
    if password:
        msg = msg.replace(password, "***")
    return msg


def unreachable(url: URL, e: BaseException) -> DatabaseUnreachable:
    """The DatabaseUnreachable for a failure to connect to ``url``."""
    where = target(url)
    if is_sqlite(url):
        msg = f"Cannot open the SQLite database {where}: {_cause(e, None)}"
    else:
        msg = (f"Cannot connect to the PostgreSQL database at {where} ({mask_url(url)}): "
               f"{_cause(e, url.password if isinstance(url.password, str) else None)}")
    return DatabaseUnreachable(msg, url=mask_url(url), host=where)


def failed(url: URL, e: BaseException, doing: str) -> DatabaseError:
    """The DatabaseError for a statement that failed while ``doing`` something."""
    pw = url.password if isinstance(url.password, str) else None
    return DatabaseError(
        f"Database error while {doing} at {mask_url(url)}: {_cause(e, pw)}", url=mask_url(url)
    )


@contextmanager
def connect(engine: Engine, doing: str) -> Iterator[Connection]:
    """A connection (no transaction begun), with errors translated: a failure to connect
    raises DatabaseUnreachable, any later database error DatabaseError naming ``doing``."""
    try:
        conn = engine.connect()
    except DBAPIError as e:
        raise unreachable(engine.url, e) from e
    try:
        with conn:
            yield conn
    except SQLAlchemyError as e:
        raise failed(engine.url, e, doing) from e


@contextmanager
def read_transaction(engine: Engine, doing: str) -> Iterator[Connection]:
    """A connection inside a read transaction (plain ``BEGIN``), committed at exit.
    Errors as in :func:`connect`."""
    with connect(engine, doing) as conn, conn.begin():
        yield conn


@contextmanager
def write_transaction(engine: Engine, doing: str) -> Iterator[Connection]:
    """A connection inside a write transaction, committed at exit, rolled back on error.
    On SQLite the transaction begins with ``BEGIN IMMEDIATE`` (writers are serialised from
    the start). Errors as in :func:`connect`."""
    with connect(engine, doing) as conn:
        conn = conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn
