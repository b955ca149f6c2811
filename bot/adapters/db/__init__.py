"""The audit database: SQLAlchemy models, the append-only hash-chained audit store, the run
store, and schema migrations (Alembic). The only place ``sqlalchemy`` and ``alembic`` are
imported (DESIGN.md §2).

Typical start-up (wiring)::

    ensure_schema(settings.database_url)     # SQLite: migrates; PostgreSQL: checks only
    audit = AuditStore(settings.database_url)
    audit.record_command(CommandRecord(...))  # -> row id
    runs = RunStoreSQL(settings.database_url) # bot.sdk.runs.RunStore: runs, approvals,
                                              # hash-chained run events, cluster locks
    audit.verify_chain()                      # checks commands and run_events

Errors: see :mod:`bot.adapters.db.errors` (every message masks the password).
"""

from bot.adapters.db.engine import mask_url
from bot.adapters.db.errors import DatabaseError, DatabaseUnreachable, SchemaNotCurrent
from bot.adapters.db.runs import RunStoreSQL
from bot.adapters.db.schema import (
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    upgrade,
)
from bot.adapters.db.store import AuditStore, ChainCheck, canonical_json, row_hash

display_url = mask_url
"""Alias of :func:`mask_url`: the URL as text with the password shown as ``***``."""

__all__ = [
    "AuditStore",
    "ChainCheck",
    "DatabaseError",
    "DatabaseUnreachable",
    "RunStoreSQL",
    "SchemaNotCurrent",
    "canonical_json",
    "current_revision",
    "display_url",
    "downgrade",
    "ensure_schema",
    "head_revision",
    "mask_url",
    "row_hash",
    "upgrade",
]
