"""The audit store: append-only, hash-chained ``commands`` rows (DESIGN.md §6).

Hash chain, reproducible by anyone with the exported JSON lines::

    content   = {created_at, actor, source, channel, text, cluster, outcome, detail,
                 duration_ms, extra}            # every column but id, prev_hash, row_hash
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, allow_nan=False)
    row_hash  = sha256((prev_hash + canonical).encode("utf-8")).hexdigest()

``created_at`` enters as ISO 8601 in UTC with microseconds (``2026-11-30T03:00:00.000000+00:00``).
The first row's ``prev_hash`` is 64 zeros; each later row's is the row before it (by id).

Appends are serialised so the chain never forks: on PostgreSQL by a transaction-scoped
advisory lock taken before the last hash is read; on SQLite by ``BEGIN IMMEDIATE``. There is
no update or delete method, on purpose.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Iterator, Mapping
from contextlib import closing
from datetime import UTC, datetime
from typing import IO, Any, NamedTuple

from sqlalchemy import Engine, RowMapping, insert, select

from bot.adapters.db.engine import (
    advisory_xact_lock,
    make_engine,
    mask_url,
    read_transaction,
    write_transaction,
)
from bot.adapters.db.models import GENESIS_HASH, OUTCOMES, SOURCES, Command
from bot.sdk.audit import CommandRecord

CHAIN_LOCK = "k8snet.audit.commands"
"""Name of the PostgreSQL advisory lock that serialises appends to ``commands``."""

MAX_RECENT = 1000
"""Most rows :meth:`AuditStore.recent_commands` returns at once."""

_BATCH = 1000
_MAX_DURATION_MS = 2**31 - 1  # INTEGER column
_CONTENT = ("created_at", "actor", "source", "channel", "text", "cluster", "outcome",
            "detail", "duration_ms", "extra")
_COLUMNS = ("id", *_CONTENT, "prev_hash", "row_hash")


class ChainCheck(NamedTuple):
    """Result of :meth:`AuditStore.verify_chain`: ``ok``; ``first_bad_id``, the id of the
    first row that breaks the chain (None when ok); ``reason``, one sentence."""

    ok: bool
    first_bad_id: int | None
    reason: str


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, no NaN/Infinity. Raises ValueError or
    TypeError for values JSON cannot hold."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def iso_utc(dt: datetime) -> str:
    """``dt`` in UTC as ISO 8601 with microseconds, e.g. ``2026-11-30T03:00:00.000000+00:00``."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(prev_hash: str, content: Mapping[str, Any] | RowMapping) -> str:
    """sha256 hex of ``prev_hash`` + canonical JSON of ``content`` (``created_at`` may be a
    datetime or its :func:`iso_utc` string)."""
    body = {k: content[k] for k in _CONTENT}
    if isinstance(body["created_at"], datetime):
        body["created_at"] = iso_utc(body["created_at"])
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()


def _check_text(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"CommandRecord.{name} must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"CommandRecord.{name} contains a NUL character")


def _content(record: CommandRecord, now: datetime) -> dict[str, Any]:
    """Validated row content of ``record``. Raises ValueError / TypeError naming the field."""
    for name in ("actor", "channel", "text", "detail"):
        _check_text(name, getattr(record, name))
    _check_text("cluster", record.cluster, optional=True)
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
    if not isinstance(record.extra, Mapping):
        raise TypeError("CommandRecord.extra must be a JSON object (a dict)")
    try:
        # Round-trip so what is stored and hashed is exactly what JSON reads back.
        extra = json.loads(canonical_json(dict(record.extra)))
    except (TypeError, ValueError) as e:
        raise ValueError(f"CommandRecord.extra is not JSON-serialisable: {e}") from e
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


def _as_dict(row: RowMapping) -> dict[str, Any]:
    d = {k: row[k] for k in _COLUMNS}
    d["created_at"] = iso_utc(d["created_at"])
    return d


class AuditStore:
    """The audit trail in the database at ``url`` (implements
    :class:`bot.sdk.audit.AuditSink`).

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
            advisory_xact_lock(conn, CHAIN_LOCK)
            prev = conn.execute(
                select(Command.row_hash).order_by(Command.id.desc()).limit(1)
            ).scalar_one_or_none() or GENESIS_HASH
            result = conn.execute(
                insert(Command).values(**content, prev_hash=prev,
                                       row_hash=row_hash(prev, content))
            )
            pk = result.inserted_primary_key
            assert pk is not None
            return int(pk[0])

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

    def _iter_rows(self, doing: str) -> Generator[RowMapping, None, None]:
        """Every row in id order, fetched in batches (bounded memory)."""
        with read_transaction(self._engine, doing) as conn:
            result = conn.execution_options(yield_per=_BATCH).execute(
                select(*[getattr(Command, c) for c in _COLUMNS]).order_by(Command.id)
            ).mappings()
            yield from result

    def verify_chain(self) -> ChainCheck:
        """Walk the whole chain in id order and recompute every hash.

        Returns ``ChainCheck(True, None, "N rows verified")`` or ``ChainCheck(False, id,
        reason)`` for the first row whose content no longer matches its ``row_hash`` (changed
        after it was written) or whose ``prev_hash`` is not the previous row's ``row_hash``
        (a row before it was removed, inserted or re-hashed). Cannot detect removal of the
        newest rows (compare with an exported copy for that). Memory: one batch of rows.
        """
        with closing(self._iter_rows("verifying the audit chain")) as rows:
            return self._walk(rows)

    @staticmethod
    def _walk(rows: Iterator[RowMapping]) -> ChainCheck:
        expected_prev = GENESIS_HASH
        count = 0
        for row in rows:
            rid = int(row["id"])
            if row["prev_hash"] != expected_prev:
                what = "the genesis hash (64 zeros)" if count == 0 else "the previous row's hash"
                return ChainCheck(False, rid, f"row {rid}: prev_hash is not {what}; a row "
                                  "before it was removed, inserted or altered")
            try:
                computed = row_hash(expected_prev, row)
            except (TypeError, ValueError):
                computed = ""
            if computed != row["row_hash"]:
                return ChainCheck(False, rid, f"row {rid}: content does not match its row_hash; "
                                  "the row was changed after it was written")
            expected_prev = row["row_hash"]
            count += 1
        return ChainCheck(True, None, f"{count} row{'s' if count != 1 else ''} verified")

    def export_jsonl(self, fp: IO[str]) -> int:
        """Write every row, in id order, as one JSON object per line (keys as in
        :meth:`recent_commands`, sorted) to the text stream ``fp``; returns the row count."""
        n = 0
        with closing(self._iter_rows("exporting the audit trail")) as rows:
            for row in rows:
                fp.write(json.dumps(_as_dict(row), sort_keys=True, ensure_ascii=False) + "\n")
                n += 1
        return n
