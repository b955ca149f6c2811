"""Schema migrations (Alembic) driven from code: ``k8snet db upgrade`` and first start.

The Alembic ``Config`` is built here, with ``script_location`` = the directory of the
installed ``migrations`` package, so this works from a wheel with no ``alembic.ini``. Each
migration runs on a connection k8snet opened itself, inside one transaction: on SQLite a
``BEGIN IMMEDIATE`` one, on PostgreSQL one holding an advisory lock, so two processes
migrating at once run the migrations once.

- SQLite (the default, a file in the user's data dir): :func:`ensure_schema` creates the
  directory and migrates a new or outdated file on start.
- PostgreSQL: :func:`ensure_schema` never migrates; it raises SchemaNotCurrent telling the
  operator to run ``k8snet db upgrade`` (a schema change on a shared database is a deliberate
  step).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL

from bot.adapters.db.engine import (
    advisory_xact_lock,
    is_sqlite,
    make_engine,
    mask_url,
    parse_url,
    read_transaction,
    sqlite_path,
    write_transaction,
)
from bot.adapters.db.errors import DatabaseError, SchemaNotCurrent
from bot.sdk.errors import InputError, SettingsError

MIGRATION_LOCK = "k8snet.migrations"
"""Name of the PostgreSQL advisory lock held while migrating."""


def migrations_dir() -> Path:
    """Directory of the ``migrations`` package (holds ``env.py`` and ``versions/``).
    Raises DatabaseError when the package is missing or incomplete (a broken install)."""
    spec = importlib.util.find_spec("migrations")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        d = Path(loc)
        if (d / "env.py").is_file() and (d / "versions").is_dir():
            return d
    raise DatabaseError(
        "The k8snet migrations package is missing or incomplete (no migrations/env.py); "
        "reinstall k8snet"
    )


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config for the packaged migrations; ``connection`` (optional) is the open
    connection ``migrations/env.py`` will run on."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this k8snet knows (e.g. ``0001_commands``)."""
    head = _scripts().get_current_head()
    if head is None:  # pragma: no cover - the package always has revisions
        raise DatabaseError("The k8snet migrations package has no revisions; reinstall k8snet")
    return head


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _check_known(url: URL, current: str | None) -> None:
    """Raise SchemaNotCurrent when the database is at a revision this code does not know."""
    if current is None:
        return
    try:
        known = _scripts().get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise SchemaNotCurrent(
            f"The database at {mask_url(url)} is at revision {current}, which this version "
            "of k8snet does not know (was it upgraded by a newer k8snet?); upgrade k8snet",
            url=mask_url(url), current=current, head=head_revision(),
        )


def current_revision(url: str) -> str | None:
    """The database's schema revision, or None for an empty database (no ``alembic_version``).

    Raises SettingsError for a bad URL, DatabaseUnreachable when the database cannot be
    reached, DatabaseError for other failures.
    """
    engine = make_engine(url)
    try:
        with read_transaction(engine, "reading the schema revision") as conn:
            return _current(conn)
    finally:
        engine.dispose()


def _migrate(engine: Engine, revision: str, *, up: bool) -> str | None:
    """Run upgrade/downgrade to ``revision`` in one locked transaction; returns the revision
    the database is at afterwards."""
    doing = "upgrading the schema" if up else "downgrading the schema"
    with write_transaction(engine, doing) as conn:
        advisory_xact_lock(conn, MIGRATION_LOCK)
        _check_known(engine.url, _current(conn))
        cfg = alembic_config(conn)
        try:
            if up:
                command.upgrade(cfg, revision)
            else:
                command.downgrade(cfg, revision)
        except CommandError as e:
            raise InputError(
                f"Cannot {'upgrade' if up else 'downgrade'} to revision {revision!r}: {e}",
                field="revision",
            ) from e
        return _current(conn)


def upgrade(url: str, revision: str = "head") -> str | None:
    """Migrate the database at ``url`` up to ``revision`` (default: the newest); returns the
    revision it is at afterwards. For SQLite, creates the file's directory first.

    Raises InputError for an unknown revision, SchemaNotCurrent when the database is at a
    revision this k8snet does not know, SettingsError / DatabaseUnreachable / DatabaseError
    as :func:`current_revision`.
    """
    u = parse_url(url)
    engine = make_engine(u, create_dir=is_sqlite(u))
    try:
        return _migrate(engine, revision, up=True)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> str | None:
    """Migrate the database at ``url`` down to ``revision`` (``base`` = drop every table,
    audit rows included); returns the revision it is at afterwards (None at base).
    Errors as :func:`upgrade`."""
    engine = make_engine(url)
    try:
        return _migrate(engine, revision, up=False)
    finally:
        engine.dispose()


def ensure_schema(url: str, *, create_dir: bool = True) -> str:
    """Make sure the database at ``url`` is usable by this k8snet; returns the head revision.

    SQLite: create the file's directory (only when ``create_dir``; otherwise a missing
    directory is a SettingsError naming ``database_url``, so that a mistyped path does not
    silently start an empty audit trail) and migrate a new or outdated file to head.
    PostgreSQL: check only; raise SchemaNotCurrent ("... is at revision X ...; run `k8snet db
    upgrade`") when it is not at head. Other errors as :func:`upgrade`.
    """
    u = parse_url(url)
    head = head_revision()
    if is_sqlite(u):
        path = sqlite_path(u)
        if not create_dir and path is not None and not path.expanduser().parent.is_dir():
            raise SettingsError(
                f"database_url names an SQLite file in {path.expanduser().parent}, which does "
                "not exist: create the directory or fix the URL", key="database_url")
        engine = make_engine(u, create_dir=create_dir)
        try:
            with read_transaction(engine, "reading the schema revision") as conn:
                current = _current(conn)
            if current != head:
                _migrate(engine, "head", up=True)
        finally:
            engine.dispose()
        return head
    current = current_revision(url)
    if current != head:
        _check_known(u, current)
        raise SchemaNotCurrent(
            f"The database at {mask_url(u)} is at revision {current or 'none (empty)'} but "
            f"this k8snet needs {head}; run `k8snet db upgrade`",
            url=mask_url(u), current=current, head=head,
        )
    return head
