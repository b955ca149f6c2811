"""Runs: the data the engine keeps about one runbook execution, and the store port it keeps
them in (implemented by ``bot.adapters.db.RunStoreSQL``).

They live in the sdk, like :mod:`bot.sdk.audit`, because the adapter implementing the port sits
in a layer beside the engine and may import neither the engine nor be imported by it
(DESIGN.md §2). The engine imports them from :mod:`bot.engine.runs`, which re-exports them.

States (DESIGN.md §5, issue 3)::

    planned -> awaiting_approval -> approved -> running -> succeeded | failed | rolled_back
                                                                     | rollback_failed
    planned -> nothing_to_do                  (empty plan: no approval asked)
    awaiting_approval -> rejected | expired
    approved -> stale                         (other runbook source, stored plan not the
                                               approved one, or re-plan differs: nothing
                                               written)
    approved -> expired                       (not executed within the window after approval)
    running -> interrupted                    (process died mid-apply, found by recovery; or
                                               Ctrl-C, or the cluster lock was lost: marked at
                                               once)
    interrupted -> running (rollback) -> rolled_back | rollback_failed | interrupted

Every transition is a compare-and-set (``RunStore.transition``), so a double click, a Slack
retry or a second replica cannot move a run twice.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class RunState(enum.StrEnum):
    """The state of a run; see the module docstring for the transitions."""

    PLANNED = "planned"
    NOTHING_TO_DO = "nothing_to_do"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    STALE = "stale"
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        """True for states no transition leaves (interrupted can still be rolled back)."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({RunState.NOTHING_TO_DO, RunState.SUCCEEDED, RunState.FAILED,
                          RunState.ROLLED_BACK, RunState.ROLLBACK_FAILED, RunState.REJECTED,
                          RunState.EXPIRED, RunState.STALE})


def new_run_id() -> str:
    """An opaque, unguessable run id such as ``r-k3v9q2m7xw`` (10 base32 characters)."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    return "r-" + "".join(secrets.choice(alphabet) for _ in range(10))


@dataclass
class RunRecord:
    """One run as stored.

    ``params`` and ``plan`` are JSON (the plan as ``Plan.model_dump(mode="json")``);
    ``plan_hash`` is ``Plan.digest()``; ``source_sha256`` the sha256 of the runbook's source
    file; ``requester`` a Slack user id or ``cli:<user>``; ``channel`` a Slack channel id or
    ``terminal``; ``expires_at`` when the approval window closes, and once approved the
    execution deadline (UTC); ``approvals_required``
    from the policy (0 for runs that need none); ``message_ts``/``message_channel`` the Slack
    plan message to edit; ``idempotency_key`` dedups retried requests (e.g. Slack's
    ``trigger_id``); ``detail`` the last outcome sentence; ``applied`` the JSON list of
    ``Applied`` of the apply phase (what rollback must undo).
    """

    id: str
    cluster: str
    runbook: str
    version: str
    source_sha256: str
    params: dict[str, Any]
    requester: str
    channel: str
    state: RunState
    created_at: datetime
    updated_at: datetime
    plan: dict[str, Any] = field(default_factory=dict)
    plan_hash: str = ""
    risk: str = "low"
    expires_at: datetime | None = None
    approvals_required: int = 0
    message_ts: str | None = None
    message_channel: str | None = None
    idempotency_key: str | None = None
    detail: str = ""
    applied: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ApprovalRecord:
    """One decision on a run: ``approver`` (Slack user id or ``cli:<user>``), ``decision``
    (``approve`` or ``reject``), ``at`` (UTC), ``plan_hash`` the decision was made on."""

    run_id: str
    approver: str
    decision: str
    at: datetime
    plan_hash: str
    reason: str = ""


@dataclass(frozen=True)
class RunEvent:
    """One append-only step of a run (``kind`` e.g. ``planned``, ``approved``, ``write``,
    ``verify``, ``rollback``, ``state``), with JSON ``data``; hash-chained in storage."""

    id: int
    run_id: str
    at: datetime
    kind: str
    data: dict[str, Any]


class RunStore(Protocol):
    """Persistence of runs, approvals, events and cluster locks. All methods are atomic;
    implementations must be safe across processes sharing one database (PostgreSQL)."""

    def create_run(self, run: RunRecord) -> RunRecord:
        """Insert a new run. If ``run.idempotency_key`` is already used, insert nothing and
        return the existing run."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None."""
        ...

    def list_runs(self, limit: int = 20, cluster: str | None = None,
                  states: list[RunState] | None = None) -> list[RunRecord]:
        """Newest first."""
        ...

    def transition(self, run_id: str, from_states: list[RunState], to_state: RunState,
                   **fields: Any) -> bool:
        """Compare-and-set: move the run to ``to_state`` (and set ``fields``, which are
        RunRecord attribute names, e.g. ``detail``, ``applied``, ``plan``, ``plan_hash``,
        ``message_ts``) only if its state is one of ``from_states``. True if it moved."""
        ...

    def update_fields(self, run_id: str, **fields: Any) -> None:
        """Set non-state fields (``message_ts``, ``message_channel``, ``applied``) without a
        state change. Never used for audit rows."""
        ...

    def add_approval(self, approval: ApprovalRecord) -> bool:
        """Record a decision; False (nothing stored) when this approver already decided on
        this run."""
        ...

    def approvals(self, run_id: str) -> list[ApprovalRecord]:
        """Decisions on a run, oldest first."""
        ...

    def append_event(self, run_id: str, kind: str, data: dict[str, Any]) -> int:
        """Append a hash-chained event; returns its id."""
        ...

    def events(self, run_id: str) -> list[RunEvent]:
        """A run's events, oldest first."""
        ...

    def acquire_lock(self, cluster: str, holder: str, lease_seconds: int) -> bool:
        """Take the cluster's mutating-run lock, or take over an expired one. False when
        another holder has a live lease."""
        ...

    def renew_lock(self, cluster: str, holder: str, lease_seconds: int) -> bool:
        """Extend the lease; False if ``holder`` no longer holds it."""
        ...

    def release_lock(self, cluster: str, holder: str) -> None:
        """Release the lock if ``holder`` holds it."""
        ...
