"""Alembic environment for the k8snet audit database.

Two ways in:
- From k8snet (:mod:`bot.adapters.db.schema`): the Config carries an open ``Connection`` in
  ``config.attributes["connection"]``, already inside the transaction (and lock) k8snet
  manages; migrations run on it and k8snet commits.
- From the ``alembic`` command (developers): the URL comes from ``-x url=...``, else
  ``sqlalchemy.url`` in the ini, else ``$K8SNET_DATABASE_URL``. ``--sql`` (offline) works too.

Imports only the models' metadata from ``bot`` (DESIGN.md §2).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from bot.adapters.db.models import metadata

config = context.config
target_metadata = metadata


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        **kwargs,  # type: ignore[arg-type]
    )


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("K8SNET_DATABASE_URL")
    )
    if not url:
        raise SystemExit("no database: pass -x url=... or set K8SNET_DATABASE_URL")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def run_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run on k8snet's connection, or on a new one to ``_url()``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _run_on(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
