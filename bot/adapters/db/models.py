"""SQLAlchemy models of the audit database (DESIGN.md §6). ``Base.metadata`` is what Alembic
(``migrations/env.py``) compares revisions with; every schema change needs a new revision in
``migrations/versions/``.

Table ``commands``: one row per slash command or CLI call, append-only and hash-chained
(see :mod:`bot.adapters.db.store` for the hash). ``UNIQUE(prev_hash)`` makes a fork of the
chain (two rows claiming the same predecessor) impossible even if a writer skipped the lock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SOURCES = ("slack", "cli")
OUTCOMES = ("ok", "error", "refused", "rejected")
GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first row of a chain."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend: stored as ``timestamptz`` on
    PostgreSQL and as naive UTC text on SQLite (which has no time zones); read back as an
    aware UTC datetime either way. Naive datetimes are refused on write."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base; its ``metadata`` holds every audit table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Command(Base):
    """One slash command or CLI call (fields as in :class:`bot.sdk.audit.CommandRecord`).

    ``created_at``: when the command started (UTC). ``duration_ms``: wall time, ms.
    ``extra``: JSON object with command-specific details (never secrets).
    ``prev_hash`` / ``row_hash``: 64 lower-case hex digits of sha256.
    """

    __tablename__ = "commands"
    __table_args__ = (
        CheckConstraint(_in("source", SOURCES), name="source"),
        CheckConstraint(_in("outcome", OUTCOMES), name="outcome"),
        CheckConstraint("duration_ms >= 0", name="duration_ms"),
        Index("ix_commands_created_at", "created_at"),
        Index("ix_commands_cluster_created_at", "cluster", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    channel: Mapped[str] = mapped_column(Text, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    cluster: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    row_hash: Mapped[str] = mapped_column(String(64), nullable=False)


metadata = Base.metadata
"""The metadata Alembic migrates (``migrations/env.py`` imports only this)."""
