"""Runbook runs in SQL: :class:`RunStoreSQL` implements :class:`bot.sdk.runs.RunStore`
(re-exported as ``bot.engine.runs.RunStore``) on the tables ``runs``, ``run_events``,
``approvals`` and ``locks`` (revision ``0002_runs``; DESIGN.md §5, §6, §10).

How each guarantee is kept, on SQLite and on PostgreSQL (several replicas, one database):

- ``transition``: one ``UPDATE runs SET state = :to, ..., updated_at = :now WHERE id = :id AND
  state IN (:from...)``; it moved iff exactly one row changed. On PostgreSQL a concurrent
  update of the same row waits, then re-checks the WHERE on the new row, so of two racers
  exactly one wins; on SQLite writers are serialised (``BEGIN IMMEDIATE``).
- ``create_run`` with an ``idempotency_key`` already used: the insert runs in a SAVEPOINT; on
  the unique violation the savepoint is rolled back and the existing run is read and returned.
- ``add_approval``: ``UNIQUE(run_id, approver)``; the violation (in a SAVEPOINT) means False.
- ``append_event``: appended to the ``run_events`` hash chain exactly as ``commands`` rows are
  (:func:`bot.adapters.db.store.append_chained`); ``AuditStore.verify_chain`` checks both.
- ``acquire_lock``: one ``INSERT ... ON CONFLICT (cluster) DO UPDATE ... WHERE locks.expires_at
  < :now OR locks.holder = :holder RETURNING holder`` (PostgreSQL and SQLite >= 3.35 both
  have it): a row comes back iff the caller now holds the lock. PostgreSQL locks the
  conflicting row and evaluates the WHERE on its latest version; SQLite runs it inside
  ``BEGIN IMMEDIATE``. ``renew_lock`` / ``release_lock`` are one ``UPDATE`` / ``DELETE``
  conditioned on ``holder``.

Times are timezone-aware UTC from the injectable clock ``now`` (default: the system clock),
stored with microsecond precision. Lease expiry is judged by the clock of the process that
tries to take over: replicas' clocks must agree to well within a lease (NTP).

``runs`` is the one mutable table; ``run_events`` and ``approvals`` (audit rows) have no update
or delete path here. Locks are not audit data: released locks are deleted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    Table,
    case,
    delete,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from bot.adapters.db.engine import make_engine, mask_url, read_transaction, write_transaction
from bot.adapters.db.models import DECISIONS, RISKS, Approval, Lock, Run, RunEventRow
from bot.adapters.db.store import RUN_EVENTS_CHAIN, append_chained, check_json, check_text
from bot.sdk.runs import ApprovalRecord, RunEvent, RunRecord, RunState

MAX_LIST = 1000
"""Most runs :meth:`RunStoreSQL.list_runs` returns at once."""

MAX_LEASE_SECONDS = 24 * 3600
"""Longest lock lease accepted (seconds)."""

TRANSITION_FIELDS = frozenset({"plan", "plan_hash", "expires_at", "approvals_required",
                               "message_ts", "message_channel", "detail", "applied"})
"""RunRecord attributes :meth:`RunStoreSQL.transition` may set along with the state. The
identity of a run (id, cluster, runbook, version, source, params, requester, channel, risk,
idempotency key, created_at) never changes; ``state``/``updated_at`` are set by the store."""

UPDATE_FIELDS = frozenset({"message_ts", "message_channel", "applied", "detail"})
"""RunRecord attributes :meth:`RunStoreSQL.update_fields` may set (no state change). The plan
and its hash, which approvals are bound to, change only with a state transition."""

_ID_RE = re.compile(r"^[^\s\x00-\x1f\x7f]{1,256}$")
_HEX_RE = re.compile(r"^(?:[0-9a-f]{64})?$")
_KIND_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_RUN = "RunRecord"
_RUNS = cast(Table, Run.__table__)


def _check_id(owner: str, name: str, value: Any) -> None:
    """Ids (run ids, cluster names such as kubeconfig contexts ``admin@lab``, lock holders):
    1-256 printable characters without whitespace."""
    check_text(owner, name, value)
    if not _ID_RE.match(value):
        raise ValueError(f"{owner}.{name} must be 1-256 printable characters without "
                         f"whitespace, not {value!r}")


def _check_hex(owner: str, name: str, value: Any) -> None:
    check_text(owner, name, value)
    if not _HEX_RE.match(value):
        raise ValueError(f"{owner}.{name} must be 64 lower-case hex digits (sha256) or empty, "
                         f"not {value!r}")


def _check_time(owner: str, name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, datetime):
        raise TypeError(f"{owner}.{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError(f"{owner}.{name} must be timezone-aware (UTC)")


def _check_count(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
        raise ValueError(f"{owner}.{name} must be a non-negative int, not {value!r}")


def _state(value: Any, name: str) -> RunState:
    try:
        return RunState(value)
    except ValueError:
        raise ValueError(f"{name} must be a RunState, not {value!r}") from None


def _field_value(name: str, value: Any) -> Any:
    """Validate one mutable RunRecord field; returns the value to store."""
    if name == "plan":
        return check_json(_RUN, name, value, dict)
    if name == "applied":
        return check_json(_RUN, name, value, list)
    if name == "plan_hash":
        _check_hex(_RUN, name, value)
    elif name == "expires_at":
        _check_time(_RUN, name, value, optional=True)
        return None if value is None else value.astimezone(UTC)
    elif name == "approvals_required":
        _check_count(_RUN, name, value)
    elif name in ("message_ts", "message_channel"):
        check_text(_RUN, name, value, optional=True)
    else:  # detail
        check_text(_RUN, name, value)
    return value


def _fields(fields: Mapping[str, Any], allowed: frozenset[str], method: str) -> dict[str, Any]:
    """Validated column values for ``fields``; ValueError naming an attribute not allowed."""
    bad = sorted(set(fields) - allowed)
    if bad:
        raise ValueError(f"{method} cannot set {', '.join(bad)}; it sets only "
                         f"{', '.join(sorted(allowed))}")
    return {k: _field_value(k, v) for k, v in fields.items()}


def _run_values(run: RunRecord) -> dict[str, Any]:
    """Validated column values of a new run. Raises TypeError / ValueError naming the field."""
    if not isinstance(run, RunRecord):
        raise TypeError(f"create_run needs a RunRecord, not {type(run).__name__}")
    _check_id(_RUN, "id", run.id)
    _check_id(_RUN, "cluster", run.cluster)
    for name in ("runbook", "version", "requester", "channel", "detail"):
        check_text(_RUN, name, getattr(run, name))
    if len(run.version) > 64:
        raise ValueError("RunRecord.version is longer than 64 characters")
    check_text(_RUN, "idempotency_key", run.idempotency_key, optional=True)
    _check_hex(_RUN, "source_sha256", run.source_sha256)
    if run.risk not in RISKS:
        raise ValueError(f"RunRecord.risk must be one of {RISKS}, not {run.risk!r}")
    for name in ("created_at", "updated_at"):
        _check_time(_RUN, name, getattr(run, name))
    values: dict[str, Any] = {
        "id": run.id, "cluster": run.cluster, "runbook": run.runbook, "version": run.version,
        "source_sha256": run.source_sha256,
        "params": check_json(_RUN, "params", run.params, dict),
        "risk": run.risk, "requester": run.requester, "channel": run.channel,
        "state": _state(run.state, "RunRecord.state").value,
        "created_at": run.created_at.astimezone(UTC),
        "updated_at": run.updated_at.astimezone(UTC),
        "idempotency_key": run.idempotency_key,
    }
    for name in TRANSITION_FIELDS:
        values[name] = _field_value(name, getattr(run, name))
    return values


def _to_run(row: RowMapping) -> RunRecord:
    """The RunRecord of a ``runs`` row (every column is a RunRecord attribute)."""
    return RunRecord(**{**row, "state": RunState(row["state"])})


def _check_lease(lease_seconds: Any) -> None:
    if (isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int)
            or not 1 <= lease_seconds <= MAX_LEASE_SECONDS):
        raise ValueError(f"lease_seconds must be an int from 1 to {MAX_LEASE_SECONDS} (s), "
                         f"not {lease_seconds!r}")


class RunStoreSQL:
    """Runs, approvals, run events and cluster locks in the database at ``url``; implements
    :class:`bot.sdk.runs.RunStore` (see the module docstring for how each method stays atomic
    across processes).

    ``now``: the clock, returning a timezone-aware datetime (default: UTC system time); it
    stamps ``updated_at``, event and lock times. Does not connect or migrate on construction:
    call :func:`bot.adapters.db.ensure_schema` first. Thread-safe (one pooled engine); several
    instances, in one process or many, may share a database.

    Errors: TypeError / ValueError naming the field for invalid arguments (nothing written);
    :class:`~bot.adapters.db.errors.DatabaseUnreachable` when the database cannot be reached,
    :class:`~bot.adapters.db.errors.DatabaseError` for other database failures (messages mask
    the password). Call :meth:`close` (or use ``with``) to release connections.
    """

    def __init__(self, url: str, *, now: Callable[[], datetime] | None = None) -> None:
        self._engine: Engine = make_engine(url)
        self._clock = now or (lambda: datetime.now(UTC))
        self.url = mask_url(self._engine.url)
        """The database URL with the password masked."""

    def close(self) -> None:
        """Close pooled connections."""
        self._engine.dispose()

    def __enter__(self) -> RunStoreSQL:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> datetime:
        t = self._clock()
        if not isinstance(t, datetime) or t.tzinfo is None:
            raise ValueError("the store's clock must return a timezone-aware datetime")
        return t.astimezone(UTC)

    @staticmethod
    def _select_run(conn: Connection, run_id: str) -> RunRecord | None:
        row = conn.execute(select(_RUNS).where(Run.id == run_id)).mappings().one_or_none()
        return None if row is None else _to_run(row)

    @staticmethod
    def _by_key(conn: Connection, key: str) -> RunRecord | None:
        row = conn.execute(
            select(_RUNS).where(Run.idempotency_key == key)).mappings().one_or_none()
        return None if row is None else _to_run(row)

    @staticmethod
    def _require_run(conn: Connection, run_id: str) -> None:
        if not conn.execute(select(exists().where(Run.id == run_id))).scalar():
            raise ValueError(f"there is no run {run_id!r}")

    # ------------------------------------------------------------------ runs
    def create_run(self, run: RunRecord) -> RunRecord:
        """Insert ``run`` (its ``created_at``/``updated_at`` as given, timezone-aware) and
        return it as stored. If ``run.idempotency_key`` is already used, insert nothing and
        return the existing run (also when another process inserted it concurrently).

        Raises TypeError / ValueError naming the field for an invalid record, ValueError when
        a different run already has ``run.id``."""
        values = _run_values(run)
        with write_transaction(self._engine, "creating a run") as conn:
            key = values["idempotency_key"]
            if key is not None and (found := self._by_key(conn, key)) is not None:
                return found
            try:
                with conn.begin_nested():
                    conn.execute(insert(Run).values(**values))
            except IntegrityError:
                if key is not None and (found := self._by_key(conn, key)) is not None:
                    return found
                if self._select_run(conn, run.id) is not None:
                    raise ValueError(f"a run with id {run.id!r} already exists") from None
                raise
            stored = self._select_run(conn, run.id)
            assert stored is not None
            return stored

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run with id ``run_id``, or None."""
        check_text("get_run", "run_id", run_id)
        with read_transaction(self._engine, "reading a run") as conn:
            return self._select_run(conn, run_id)

    def list_runs(self, limit: int = 20, cluster: str | None = None,
                  states: list[RunState] | None = None) -> list[RunRecord]:
        """Up to ``limit`` (1..:data:`MAX_LIST`) runs, newest ``created_at`` first, optionally
        only of ``cluster`` and only in ``states`` (an empty list matches nothing). Raises
        ValueError for a limit out of range or an unknown state."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise ValueError(f"limit must be an integer from 1 to {MAX_LIST}, not {limit!r}")
        check_text("list_runs", "cluster", cluster, optional=True)
        q = select(_RUNS)
        if cluster is not None:
            q = q.where(Run.cluster == cluster)
        if states is not None:
            q = q.where(Run.state.in_([_state(s, "states").value for s in states]))
        q = q.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
        with read_transaction(self._engine, "listing runs") as conn:
            return [_to_run(r) for r in conn.execute(q).mappings()]

    def transition(self, run_id: str, from_states: list[RunState], to_state: RunState,
                   **fields: Any) -> bool:
        """Compare-and-set: move run ``run_id`` to ``to_state`` and set ``fields`` (names in
        :data:`TRANSITION_FIELDS`) and ``updated_at`` (now), only if its state is one of
        ``from_states`` — one conditional UPDATE. True if it moved; False if the run is in
        another state or does not exist. Raises ValueError for an empty ``from_states``, an
        unknown state or a field that cannot be set (nothing written)."""
        check_text("transition", "run_id", run_id)
        sources = [_state(s, "from_states").value for s in from_states]
        if not sources:
            raise ValueError("from_states must name at least one state")
        target = _state(to_state, "to_state").value
        values = _fields(fields, TRANSITION_FIELDS, "transition")
        with write_transaction(self._engine, "changing a run's state") as conn:
            result = conn.execute(
                update(Run).where(Run.id == run_id, Run.state.in_(sources))
                .values(state=target, updated_at=self._now(), **values)
            )
            return result.rowcount == 1

    def update_fields(self, run_id: str, **fields: Any) -> None:
        """Set ``fields`` (names in :data:`UPDATE_FIELDS`) and ``updated_at`` (now) without a
        state change. Raises ValueError for a field that cannot be set this way or when there
        is no run ``run_id`` (nothing written)."""
        check_text("update_fields", "run_id", run_id)
        values = _fields(fields, UPDATE_FIELDS, "update_fields")
        with write_transaction(self._engine, "updating a run") as conn:
            result = conn.execute(
                update(Run).where(Run.id == run_id).values(updated_at=self._now(), **values))
            if result.rowcount != 1:
                raise ValueError(f"there is no run {run_id!r}")

    # ------------------------------------------------------------------ approvals
    def add_approval(self, approval: ApprovalRecord) -> bool:
        """Record a decision (``decision`` ``approve`` or ``reject``, ``at`` timezone-aware);
        False, with nothing stored, when this approver already decided on this run (also when
        the other decision was written concurrently by another process). Raises TypeError /
        ValueError naming the field for an invalid record or an unknown run."""
        owner = "ApprovalRecord"
        check_text(owner, "run_id", approval.run_id)
        check_text(owner, "approver", approval.approver)
        check_text(owner, "reason", approval.reason)
        if approval.decision not in DECISIONS:
            raise ValueError(f"ApprovalRecord.decision must be one of {DECISIONS}, "
                             f"not {approval.decision!r}")
        _check_time(owner, "at", approval.at)
        _check_hex(owner, "plan_hash", approval.plan_hash)
        with write_transaction(self._engine, "recording an approval") as conn:
            self._require_run(conn, approval.run_id)
            try:
                with conn.begin_nested():
                    conn.execute(insert(Approval).values(
                        run_id=approval.run_id, approver=approval.approver,
                        decision=approval.decision, at=approval.at.astimezone(UTC),
                        plan_hash=approval.plan_hash, reason=approval.reason))
            except IntegrityError:
                if conn.execute(select(exists().where(
                        Approval.run_id == approval.run_id,
                        Approval.approver == approval.approver))).scalar():
                    return False
                raise
            return True

    def approvals(self, run_id: str) -> list[ApprovalRecord]:
        """Decisions on run ``run_id``, oldest ``at`` first (empty for an unknown run)."""
        check_text("approvals", "run_id", run_id)
        with read_transaction(self._engine, "reading approvals") as conn:
            rows = conn.execute(
                select(Approval.run_id, Approval.approver, Approval.decision, Approval.at,
                       Approval.plan_hash, Approval.reason)
                .where(Approval.run_id == run_id).order_by(Approval.at, Approval.id)
            ).mappings()
            return [ApprovalRecord(**r) for r in rows]

    # ------------------------------------------------------------------ events
    def append_event(self, run_id: str, kind: str, data: dict[str, Any]) -> int:
        """Append an event to the ``run_events`` hash chain, stamped now; returns its id.

        ``kind``: 1-64 characters ``[a-z0-9_.-]`` starting with a letter (``planned``,
        ``state``, ``write``...); ``data``: a JSON object (never secrets). Raises TypeError /
        ValueError naming the argument, or for an unknown run (nothing written)."""
        check_text("append_event", "run_id", run_id)
        check_text("append_event", "kind", kind)
        if not _KIND_RE.match(kind):
            raise ValueError(f"append_event.kind must be 1-64 characters of a-z, 0-9 and _.- "
                             f"starting with a letter, not {kind!r}")
        content = {"run_id": run_id, "at": self._now(), "kind": kind,
                   "data": check_json("append_event", "data", data, dict)}
        with write_transaction(self._engine, "appending a run event") as conn:
            self._require_run(conn, run_id)
            return append_chained(conn, RUN_EVENTS_CHAIN, content)

    def events(self, run_id: str) -> list[RunEvent]:
        """Events of run ``run_id``, oldest (lowest id) first."""
        check_text("events", "run_id", run_id)
        with read_transaction(self._engine, "reading run events") as conn:
            rows = conn.execute(
                select(RunEventRow.id, RunEventRow.run_id, RunEventRow.at, RunEventRow.kind,
                       RunEventRow.data)
                .where(RunEventRow.run_id == run_id).order_by(RunEventRow.id)
            ).mappings()
            return [RunEvent(**r) for r in rows]

    # ------------------------------------------------------------------ locks
    def acquire_lock(self, cluster: str, holder: str, lease_seconds: int) -> bool:
        """Take ``cluster``'s mutating-run lock for ``lease_seconds`` (1..
        :data:`MAX_LEASE_SECONDS`) from now: True when it was free, expired
        (``expires_at < now``) or already held by ``holder`` (then the lease is extended and
        ``acquired_at`` kept); False when another holder has a live lease. One atomic
        statement (module docstring)."""
        _check_id("acquire_lock", "cluster", cluster)
        _check_id("acquire_lock", "holder", holder)
        _check_lease(lease_seconds)
        now = self._now()
        with write_transaction(self._engine, "taking a cluster lock") as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            ins = dialect.insert(Lock).values(
                cluster=cluster, holder=holder, acquired_at=now,
                expires_at=now + timedelta(seconds=lease_seconds))
            stmt = ins.on_conflict_do_update(
                index_elements=[Lock.cluster],
                set_={
                    "holder": ins.excluded.holder,
                    "acquired_at": case((Lock.holder == ins.excluded.holder, Lock.acquired_at),
                                        else_=ins.excluded.acquired_at),
                    "expires_at": ins.excluded.expires_at,
                },
                where=or_(Lock.expires_at < ins.excluded.acquired_at,
                          Lock.holder == ins.excluded.holder),
            ).returning(Lock.holder)
            return conn.execute(stmt).first() is not None

    def renew_lock(self, cluster: str, holder: str, lease_seconds: int) -> bool:
        """Set the lease of ``cluster``'s lock to end ``lease_seconds`` from now, only if
        ``holder`` holds it. False if it does not (released, or taken over after expiry by
        another holder). A lease that expired but was not taken over is still ``holder``'s
        and is renewed."""
        _check_id("renew_lock", "cluster", cluster)
        _check_id("renew_lock", "holder", holder)
        _check_lease(lease_seconds)
        expires = self._now() + timedelta(seconds=lease_seconds)
        with write_transaction(self._engine, "renewing a cluster lock") as conn:
            result = conn.execute(update(Lock).where(Lock.cluster == cluster,
                                                     Lock.holder == holder)
                                  .values(expires_at=expires))
            return result.rowcount == 1

    def release_lock(self, cluster: str, holder: str) -> None:
        """Release ``cluster``'s lock if ``holder`` holds it; otherwise do nothing."""
        _check_id("release_lock", "cluster", cluster)
        _check_id("release_lock", "holder", holder)
        with write_transaction(self._engine, "releasing a cluster lock") as conn:
            conn.execute(delete(Lock).where(Lock.cluster == cluster, Lock.holder == holder))

    def lock_holder(self, cluster: str) -> str | None:
        """The holder of ``cluster``'s lock while its lease is live (``expires_at >= now``),
        else None. Not part of the port: for messages ("locked by ...") and tests."""
        check_text("lock_holder", "cluster", cluster)
        now = self._now()
        with read_transaction(self._engine, "reading a cluster lock") as conn:
            return conn.execute(select(Lock.holder).where(
                Lock.cluster == cluster, Lock.expires_at >= now)).scalar_one_or_none()
