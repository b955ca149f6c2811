"""The audit store: append-only, hash-chained tables (DESIGN.md §6).

Two tables are chained, each on its own: ``commands`` (every slash command and CLI call, written
here) and ``run_events`` (every step of a runbook run, written by
:class:`bot.adapters.db.runs.RunStoreSQL`). The hash, reproducible by anyone with the exported
JSON lines::

    content   = every column but id, prev_hash, row_hash
                  commands:   {created_at, actor, source, channel, text, cluster, outcome,
                               detail, duration_ms, extra}
                  run_events: {run_id, at, kind, data}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, allow_nan=False)
    row_hash  = sha256((prev_hash + canonical).encode("utf-8")).hexdigest()

Times (``created_at``, ``at``) enter as ISO 8601 in UTC with microseconds
(``2026-11-30T03:00:00.000000+00:00``). The first row's ``prev_hash`` is 64 zeros; each later
row's is the ``row_hash`` of the row before it (by id) in the same table.

Appends are serialised per table so a chain never forks (:func:`append_chained`): on
PostgreSQL by a transaction-scoped advisory lock taken before the last hash is read; on SQLite
by ``BEGIN IMMEDIATE``. ``UNIQUE(prev_hash)`` refuses a fork even from a writer that skipped the
lock. There is no update or delete method, on purpose.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, NamedTuple, cast

from sqlalchemy import Connection, Engine, RowMapping, Table, insert, select

from bot.adapters.db.engine import (
    advisory_xact_lock,
    make_engine,
    mask_url,
    read_transaction,
    write_transaction,
)
from bot.adapters.db.models import GENESIS_HASH, OUTCOMES, SOURCES, Command, RunEventRow
from bot.sdk.audit import CommandRecord

CHAIN_LOCK = "k8snet.audit.commands"
"""Name of the PostgreSQL advisory lock that serialises appends to ``commands``."""

EVENTS_CHAIN_LOCK = "k8snet.audit.run_events"
"""Name of the PostgreSQL advisory lock that serialises appends to ``run_events``."""

MAX_RECENT = 1000
"""Most rows :meth:`AuditStore.recent_commands` returns at once."""

_BATCH = 1000
_MAX_DURATION_MS = 2**31 - 1  # INTEGER column
_CONTENT = ("created_at", "actor", "source", "channel", "text", "cluster", "outcome",
            "detail", "duration_ms", "extra")
_COLUMNS = ("id", *_CONTENT, "prev_hash", "row_hash")


@dataclass(frozen=True)
class Chain:
    """One hash-chained, append-only table.

    ``name``: the table name (as named in :meth:`AuditStore.verify_chain` messages and in the
    ``table`` key of exported lines); ``table``: the SQLAlchemy table (an integer ``id``
    primary key, ``prev_hash`` and ``row_hash`` columns); ``content``: the hashed columns
    (every column but ``id``, ``prev_hash``, ``row_hash``); ``lock``: the PostgreSQL advisory
    lock serialising appends.
    """

    name: str
    table: Table
    content: tuple[str, ...]
    lock: str

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column, in export order: ``id``, the content, ``prev_hash``, ``row_hash``."""
        return ("id", *self.content, "prev_hash", "row_hash")


COMMANDS_CHAIN = Chain("commands", cast(Table, Command.__table__), _CONTENT, CHAIN_LOCK)
"""The ``commands`` chain."""

RUN_EVENTS_CHAIN = Chain("run_events", cast(Table, RunEventRow.__table__),
                         ("run_id", "at", "kind", "data"), EVENTS_CHAIN_LOCK)
"""The ``run_events`` chain."""

CHAINS = (COMMANDS_CHAIN, RUN_EVENTS_CHAIN)
"""Every chain, in the order :meth:`AuditStore.verify_chain` walks and exports them."""


class _ChainCheckTuple(NamedTuple):
    ok: bool
    first_bad_id: int | None
    reason: str


class ChainCheck(_ChainCheckTuple):
    """Result of :meth:`AuditStore.verify_chain`, a 3-tuple ``(ok, first_bad_id, reason)``:
    ``ok``; ``first_bad_id``, the id of the first row that breaks a chain (None when ok);
    ``reason``, one sentence naming that row as ``<table> row <id>``. Attribute ``table``
    (not part of the tuple): the table of that row, None when ok."""

    table: str | None

    def __new__(cls, ok: bool, first_bad_id: int | None, reason: str,
                table: str | None = None) -> ChainCheck:
        self = super().__new__(cls, ok, first_bad_id, reason)
        self.table = table
        return self


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, no NaN/Infinity. Raises ValueError or
    TypeError for values JSON cannot hold."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def iso_utc(dt: datetime) -> str:
    """``dt`` in UTC as ISO 8601 with microseconds, e.g. ``2026-11-30T03:00:00.000000+00:00``."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(prev_hash: str, content: Mapping[str, Any] | RowMapping,
             fields: tuple[str, ...] = _CONTENT) -> str:
    """sha256 hex of ``prev_hash`` + canonical JSON of the ``fields`` of ``content``
    (default: the ``commands`` content; pass ``chain.content`` for another chain). Datetime
    values may be datetimes or their :func:`iso_utc` strings. Raises ValueError / TypeError
    for content JSON cannot hold."""
    body = {k: content[k] for k in fields}
    for k, v in body.items():
        if isinstance(v, datetime):
            body[k] = iso_utc(v)
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()


def check_text(owner: str, name: str, value: Any, *, optional: bool = False) -> None:
    """Refuse a non-string (TypeError) or a string with a NUL character (ValueError, which
    PostgreSQL cannot store), naming ``owner.name``. None passes when ``optional``."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"{owner}.{name} must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"{owner}.{name} contains a NUL character")


def check_json(owner: str, name: str, value: Any, kind: type[dict[str, Any]] | type[list[Any]],
               ) -> Any:
    """``value`` (which must be a ``kind``: dict or list) round-tripped through JSON, so what
    is stored (and hashed) is exactly what reading it back gives; key order is kept. Raises
    TypeError for another type, ValueError for values JSON cannot hold (NaN, objects...),
    naming ``owner.name``."""
    what = "a JSON object (a dict)" if kind is dict else "a JSON array (a list)"
    if not isinstance(value, Mapping if kind is dict else list):
        raise TypeError(f"{owner}.{name} must be {what}, not {type(value).__name__}")
    try:
        return json.loads(json.dumps(kind(value), ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{owner}.{name} is not JSON-serialisable: {e}") from e


def append_chained(conn: Connection, chain: Chain, content: Mapping[str, Any]) -> int:
    """Append ``content`` (the chain's content columns, already validated) as the chain's
    newest row, inside the caller's write transaction; returns the new row's id.

    Takes the chain's advisory lock on PostgreSQL (SQLite write transactions are already
    exclusive), reads the newest ``row_hash`` and inserts with ``prev_hash`` = that hash
    (:data:`GENESIS_HASH` for the first row) and ``row_hash`` = :func:`row_hash`."""
    advisory_xact_lock(conn, chain.lock)
    t = chain.table
    prev = conn.execute(
        select(t.c.row_hash).order_by(t.c.id.desc()).limit(1)
    ).scalar_one_or_none() or GENESIS_HASH
    values = {k: content[k] for k in chain.content}
    result = conn.execute(
        insert(t).values(**values, prev_hash=prev,
                         row_hash=row_hash(prev, values, chain.content))
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def _content(record: CommandRecord, now: datetime) -> dict[str, Any]:
    """Validated row content of ``record``. Raises ValueError / TypeError naming the field."""
    owner = "CommandRecord"
    for name in ("actor", "channel", "text", "detail"):
        check_text(owner, name, getattr(record, name))
    check_text(owner, "cluster", record.cluster, optional=True)
    if record.source not in SOURCES:
        raise ValueError(f"CommandRecord.source must be one of {SOURCES}, not {record.source!r}")
    if record.outcome not in OUTCOMES:
        raise ValueError(
            f"CommandRecord.outcome must be one of {OUTCOMES}, not {record.outcome!r}"
        )
    d = record.duration_ms
    if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= _MAX_DURATION_MS:
        raise ValueError(f"CommandRecord.duration_ms must be an int from 0 to "
                         f"{_MAX_DURATION_MS} (ms), not {d!r}")
    extra = check_json(owner, "extra", record.extra, dict)
    started = record.started_at or now
    if started.tzinfo is None:
        raise ValueError("CommandRecord.started_at must be timezone-aware (UTC)")
    # Microsecond precision is what both backends store.
    created_at = started.astimezone(UTC)
    return {
        "created_at": created_at, "actor": record.actor, "source": record.source,
        "channel": record.channel, "text": record.text, "cluster": record.cluster,
        "outcome": record.outcome, "detail": record.detail,
        "duration_ms": record.duration_ms, "extra": extra,
    }


def _as_dict(row: RowMapping, columns: tuple[str, ...] = _COLUMNS) -> dict[str, Any]:
    """The row as a JSON-ready dict: ``columns``, datetimes as :func:`iso_utc` strings."""
    d = {k: row[k] for k in columns}
    for k, v in d.items():
        if isinstance(v, datetime):
            d[k] = iso_utc(v)
    return d


class AuditStore:
    """The audit trail in the database at ``url`` (implements
    :class:`bot.sdk.audit.AuditSink`): writes ``commands``; verifies and exports every chain
    (``commands`` and ``run_events``).

    Does not connect or migrate on construction: call :func:`bot.adapters.db.ensure_schema`
    first. Thread-safe (one pooled engine). Methods raise
    :class:`~bot.adapters.db.errors.DatabaseUnreachable` when the database cannot be reached
    and :class:`~bot.adapters.db.errors.DatabaseError` for other database failures; the
    messages mask the password. Call :meth:`close` (or use ``with``) to release connections.
    """

    def __init__(self, url: str) -> None:
        self._engine: Engine = make_engine(url)
        self.url = mask_url(self._engine.url)
        """The database URL with the password masked."""

    def close(self) -> None:
        """Close pooled connections."""
        self._engine.dispose()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ write
    def record_command(self, record: CommandRecord, *, now: datetime | None = None) -> int:
        """Append ``record`` to the chain; returns the new row's id.

        ``created_at`` is ``record.started_at`` (must be timezone-aware) or ``now`` (default:
        the current UTC time). Raises ValueError / TypeError naming the field for an invalid
        record (nothing written), DatabaseError / DatabaseUnreachable for storage failures.
        """
        content = _content(record, now or datetime.now(UTC))
        with write_transaction(self._engine, "recording a command") as conn:
            return append_chained(conn, COMMANDS_CHAIN, content)

    # ------------------------------------------------------------------ read
    def recent_commands(self, limit: int = 20) -> list[dict[str, Any]]:
        """The last ``limit`` rows (1..:data:`MAX_RECENT`), newest first, as dicts with every
        column: ``id`` int, ``created_at`` ISO 8601 UTC string, ``actor``, ``source``,
        ``channel``, ``text``, ``cluster`` (str or None), ``outcome``, ``detail``,
        ``duration_ms`` int (ms), ``extra`` dict, ``prev_hash``, ``row_hash``.
        Raises ValueError for a limit out of range."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RECENT:
            raise ValueError(f"limit must be an integer from 1 to {MAX_RECENT}, not {limit!r}")
        with read_transaction(self._engine, "reading recent commands") as conn:
            rows = conn.execute(
                select(*[getattr(Command, c) for c in _COLUMNS])
                .order_by(Command.id.desc()).limit(limit)
            ).mappings().all()
            return [_as_dict(r) for r in rows]

    def _iter_rows(self, chain: Chain, doing: str) -> Generator[RowMapping, None, None]:
        """Every row of ``chain`` in id order, fetched in batches (bounded memory)."""
        t = chain.table
        with read_transaction(self._engine, doing) as conn:
            result = conn.execution_options(yield_per=_BATCH).execute(
                select(*[t.c[c] for c in chain.columns]).order_by(t.c.id)
            ).mappings()
            yield from result

    def verify_chain(self) -> ChainCheck:
        """Walk every chain (``commands``, then ``run_events``) in id order and recompute every
        hash.

        Returns ``ChainCheck(True, None, "N rows verified")`` (N: rows of all chains) or
        ``ChainCheck(False, id, reason)`` for the first row whose content no longer matches
        its ``row_hash`` (changed after it was written) or whose ``prev_hash`` is not the
        previous row's ``row_hash`` (a row before it was removed, inserted or re-hashed);
        ``reason`` names it as ``<table> row <id>`` and ``.table`` is its table. Cannot
        detect removal of the newest rows (compare with an exported copy for that).
        Memory: one batch of rows.
        """
        total = 0
        for chain in CHAINS:
            with closing(self._iter_rows(chain, "verifying the audit chain")) as rows:
                check, count = self._walk(chain, rows)
            if not check.ok:
                return check
            total += count
        return ChainCheck(True, None, f"{total} row{'s' if total != 1 else ''} verified")

    @staticmethod
    def _walk(chain: Chain, rows: Iterator[RowMapping]) -> tuple[ChainCheck, int]:
        """Check one chain; returns the result and the number of rows verified."""
        expected_prev = GENESIS_HASH
        count = 0
        for row in rows:
            rid = int(row["id"])
            where = f"{chain.name} row {rid}"
            if row["prev_hash"] != expected_prev:
                what = "the genesis hash (64 zeros)" if count == 0 else "the previous row's hash"
                return ChainCheck(False, rid, f"{where}: prev_hash is not {what}; a row "
                                  "before it was removed, inserted or altered",
                                  chain.name), count
            try:
                computed = row_hash(expected_prev, row, chain.content)
            except (TypeError, ValueError):
                computed = ""
            if computed != row["row_hash"]:
                return ChainCheck(False, rid, f"{where}: content does not match its row_hash; "
                                  "the row was changed after it was written",
                                  chain.name), count
            expected_prev = row["row_hash"]
            count += 1
        return ChainCheck(True, None, f"{count} rows verified"), count

    def export_jsonl(self, fp: IO[str]) -> int:
        """Write every row of every chain (``commands``, then ``run_events``), each in id
        order, as one JSON object per line to the text stream ``fp``; returns the line count.

        Keys (sorted): ``table`` (``commands`` or ``run_events``) plus every column of that
        table, times as ISO 8601 UTC strings: for ``commands`` as in
        :meth:`recent_commands`; for ``run_events`` ``id``, ``run_id``, ``at``, ``kind``,
        ``data`` (object), ``prev_hash``, ``row_hash``. Dropping ``table``, ``id``,
        ``prev_hash`` and ``row_hash`` from a line gives the hashed content (module docstring).
        """
        n = 0
        for chain in CHAINS:
            with closing(self._iter_rows(chain, "exporting the audit trail")) as rows:
                for row in rows:
                    line = {"table": chain.name, **_as_dict(row, chain.columns)}
                    fp.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")
                    n += 1
        return n
