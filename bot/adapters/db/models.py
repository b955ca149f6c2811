"""SQLAlchemy models of the audit database (DESIGN.md §6). ``Base.metadata`` is what Alembic
(``migrations/env.py``) compares revisions with; every schema change needs a new revision in
``migrations/versions/``.

Tables (revision ``0001_commands``, then ``0002_runs``):

- ``commands``: one row per slash command or CLI call, append-only and hash-chained (see
  :mod:`bot.adapters.db.store` for the hash). ``UNIQUE(prev_hash)`` makes a fork of the chain
  (two rows claiming the same predecessor) impossible even if a writer skipped the lock.
- ``runs``: one row per runbook run (:class:`bot.sdk.runs.RunRecord`); the only mutable table:
  its ``state`` moves by compare-and-set (:mod:`bot.adapters.db.runs`), and each move is also
  written as a ``run_events`` row by the engine, so the history stays auditable.
- ``run_events``: append-only, hash-chained exactly like ``commands``.
- ``approvals``: append-only decisions, one per (run, approver).
- ``locks``: one row per cluster with a mutating run in progress (a lease; not audit data).

Audit rows (``commands``, ``run_events``, ``approvals``) have no update or delete path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.sdk.runbook import Risk
from bot.sdk.runs import RunState

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
RUN_STATES = tuple(s.value for s in RunState)
"""Values of ``runs.state`` (a CHECK constraint; a new state needs a new revision)."""
RISKS = tuple(r.value for r in Risk)
"""Values of ``runs.risk``."""
DECISIONS = ("approve", "reject")
"""Values of ``approvals.decision``."""


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



class Run(Base):
    """One runbook run (fields as in :class:`bot.sdk.runs.RunRecord`).

    ``id``: opaque, e.g. ``r-k3v9q2m7xw``. ``params`` / ``plan``: JSON objects; ``applied``: a
    JSON list. ``plan_hash`` / ``source_sha256``: sha256 hex (``""`` before there is a plan).
    Times UTC. ``idempotency_key``: unique when set (e.g. Slack's ``trigger_id``).
    """

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(_in("state", RUN_STATES), name="state"),
        CheckConstraint(_in("risk", RISKS), name="risk"),
        CheckConstraint("approvals_required >= 0", name="approvals_required"),
        Index("ix_runs_cluster_created_at", "cluster", "created_at"),
        Index("ix_runs_created_at", "created_at"),
        Index("ix_runs_state", "state"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    cluster: Mapped[str] = mapped_column(Text, nullable=False)
    runbook: Mapped[str] = mapped_column(Text, nullable=False)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    source_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    plan_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    risk: Mapped[str] = mapped_column(String(16), nullable=False)
    requester: Mapped[str] = mapped_column(Text, nullable=False)
    channel: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    approvals_required: Mapped[int] = mapped_column(Integer, nullable=False)
    message_ts: Mapped[str | None] = mapped_column(Text, nullable=True)
    message_channel: Mapped[str | None] = mapped_column(Text, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(Text, nullable=True, unique=True)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    applied: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)


class RunEventRow(Base):
    """One step of a run (:class:`bot.sdk.runs.RunEvent`), append-only and hash-chained like
    :class:`Command`: ``row_hash`` = sha256(``prev_hash`` + canonical JSON of ``run_id``,
    ``at``, ``kind``, ``data``). ``at``: UTC. ``data``: JSON object."""

    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run_id_id", "run_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(Text, ForeignKey("runs.id"), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    row_hash: Mapped[str] = mapped_column(String(64), nullable=False)


class Approval(Base):
    """One decision on a run (:class:`bot.sdk.runs.ApprovalRecord`); append-only, at most one
    per (``run_id``, ``approver``). ``decision``: ``approve`` or ``reject``; ``at``: UTC;
    ``plan_hash``: the plan the decision was made on."""

    __tablename__ = "approvals"
    __table_args__ = (
        CheckConstraint(_in("decision", DECISIONS), name="decision"),
        UniqueConstraint("run_id", "approver"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(Text, ForeignKey("runs.id"), nullable=False)
    approver: Mapped[str] = mapped_column(Text, nullable=False)
    decision: Mapped[str] = mapped_column(String(16), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    plan_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)


class Lock(Base):
    """The mutating-run lock of one cluster: a lease held by ``holder`` (an opaque id, e.g.
    ``<replica>:<run id>``) from ``acquired_at`` until ``expires_at`` (UTC). Not audit data:
    rows are taken over after expiry and deleted on release."""

    __tablename__ = "locks"

    cluster: Mapped[str] = mapped_column(Text, primary_key=True)
    holder: Mapped[str] = mapped_column(Text, nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


metadata = Base.metadata
"""The metadata Alembic migrates (``migrations/env.py`` imports only this)."""
