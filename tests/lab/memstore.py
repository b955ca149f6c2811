"""In-memory doubles for engine tests: a ``RunStore``, a clock and a ``KubeWriter``.

- :class:`FakeClock`: ``clock()`` returns a fixed UTC time; ``advance(seconds=...)`` moves it.
- :class:`MemRunStore`: the ``bot.engine.runs.RunStore`` port in memory, thread-safe (one
  lock), with an injectable clock for lock leases. Records are copied in and out so tests see
  what a database would give back. ``lock_holder(cluster)`` lets tests look at the lock.
- :class:`StoreWriter`: a ``bot.sdk.runbook.KubeWriter`` over a ``tests.lab.store.Store``
  (what ``StaticKubeReader`` reads), with resourceVersion bookkeeping, 404/409 like the API
  server, merge/strategic (shallow)/JSON patches, and a ``log`` of every call (dry runs
  included, nothing stored for them). ``fail`` makes chosen calls raise.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from bot.engine.runs import ApprovalRecord, RunEvent, RunRecord, RunState
from bot.sdk.errors import KubeApiError, KubeNotFound
from tests.lab.emulator import json_patch, merge_patch, strategic_merge
from tests.lab.store import Store

__all__ = ["TRANSITION_FIELDS", "UPDATE_FIELDS", "FakeClock", "MemRunStore", "StoreWriter",
           "WriteCall"]

TRANSITION_FIELDS = frozenset({"plan", "plan_hash", "expires_at", "approvals_required",
                               "message_ts", "message_channel", "detail", "applied"})
"""What ``transition`` may set with the state (as ``RunStoreSQL``)."""

UPDATE_FIELDS = frozenset({"message_ts", "message_channel", "applied", "detail"})
"""What ``update_fields`` may set (as ``RunStoreSQL``)."""


def _json(value: Any) -> Any:
    """A JSON round trip, strict like the SQL store (ValueError for what JSON cannot hold)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"not JSON-serialisable: {e}") from e


class FakeClock:
    """A settable UTC clock: ``clock()`` -> now; ``advance(**timedelta_kwargs)``."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **kwargs: float) -> datetime:
        with self._lock:
            self.now += timedelta(**kwargs)
            return self.now


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MemRunStore:
    """``RunStore`` in memory (see the module docstring). ``clock`` drives lock leases."""

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self._runs: dict[str, RunRecord] = {}
        self._order: list[str] = []
        self._approvals: dict[str, list[ApprovalRecord]] = {}
        self._events: list[RunEvent] = []
        self._hashes: list[str] = []
        self._locks: dict[str, tuple[str, datetime]] = {}
        self._ids = itertools.count(1)
        self.transitions: list[tuple[str, str, str]] = []

    # -------------------------------------------------------------- runs
    def create_run(self, run: RunRecord) -> RunRecord:
        with self._lock:
            if run.idempotency_key:
                for r in self._runs.values():
                    if r.idempotency_key == run.idempotency_key:
                        return copy.deepcopy(r)
            if run.id in self._runs:
                raise ValueError(f"run {run.id} exists")
            if run.created_at.tzinfo is None:
                raise ValueError("created_at must be timezone-aware")
            stored = copy.deepcopy(run)
            stored.params, stored.plan = _json(run.params), _json(run.plan)
            self._runs[run.id] = stored
            self._order.append(run.id)
            return copy.deepcopy(run)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            r = self._runs.get(run_id)
            return copy.deepcopy(r) if r else None

    def list_runs(self, limit: int = 20, cluster: str | None = None,
                  states: list[RunState] | None = None) -> list[RunRecord]:
        with self._lock:
            out = []
            for rid in reversed(self._order):
                r = self._runs[rid]
                if cluster is not None and r.cluster != cluster:
                    continue
                if states is not None and r.state not in states:
                    continue
                out.append(copy.deepcopy(r))
                if len(out) >= limit:
                    break
            return out

    def transition(self, run_id: str, from_states: list[RunState], to_state: RunState,
                   **fields: Any) -> bool:
        with self._lock:
            r = self._runs.get(run_id)
            if r is None or r.state not in from_states:
                return False
            bad = set(fields) - TRANSITION_FIELDS
            if bad:
                raise ValueError(f"transition cannot set {sorted(bad)}")
            self.transitions.append((run_id, r.state.value, to_state.value))
            r.state = to_state
            for k, v in fields.items():
                setattr(r, k, _json(v) if k in ("plan", "applied") else copy.deepcopy(v))
            r.updated_at = self.clock()
            return True

    def update_fields(self, run_id: str, **fields: Any) -> None:
        with self._lock:
            bad = set(fields) - UPDATE_FIELDS
            if bad:
                raise ValueError(f"update_fields cannot set {sorted(bad)}")
            r = self._runs.get(run_id)
            if r is None:
                raise ValueError(f"there is no run {run_id!r}")
            for k, v in fields.items():
                setattr(r, k, _json(v) if k == "applied" else copy.deepcopy(v))
            r.updated_at = self.clock()

    # -------------------------------------------------------------- approvals, events
    def add_approval(self, approval: ApprovalRecord) -> bool:
        with self._lock:
            if approval.run_id not in self._runs:
                raise ValueError(f"there is no run {approval.run_id!r}")
            lst = self._approvals.setdefault(approval.run_id, [])
            if any(a.approver == approval.approver for a in lst):
                return False
            lst.append(approval)
            return True

    def approvals(self, run_id: str) -> list[ApprovalRecord]:
        with self._lock:
            return list(self._approvals.get(run_id, []))

    def append_event(self, run_id: str, kind: str, data: dict[str, Any]) -> int:
        body = json.dumps(_json(data), sort_keys=True)
        with self._lock:
            if run_id not in self._runs:
                raise ValueError(f"there is no run {run_id!r}")
            eid = next(self._ids)
            prev = self._hashes[-1] if self._hashes else ""
            self._hashes.append(hashlib.sha256((prev + run_id + kind + body).encode())
                                .hexdigest())
            self._events.append(RunEvent(id=eid, run_id=run_id, at=self.clock(), kind=kind,
                                         data=json.loads(body)))
            return eid

    def events(self, run_id: str) -> list[RunEvent]:
        with self._lock:
            return [e for e in self._events if e.run_id == run_id]

    # -------------------------------------------------------------- locks
    def acquire_lock(self, cluster: str, holder: str, lease_seconds: int) -> bool:
        with self._lock:
            cur = self._locks.get(cluster)
            now = self.clock()
            if cur is not None and cur[0] != holder and cur[1] > now:
                return False
            self._locks[cluster] = (holder, now + timedelta(seconds=lease_seconds))
            return True

    def renew_lock(self, cluster: str, holder: str, lease_seconds: int) -> bool:
        with self._lock:
            cur = self._locks.get(cluster)
            if cur is None or cur[0] != holder:
                return False
            self._locks[cluster] = (holder, self.clock() + timedelta(seconds=lease_seconds))
            return True

    def release_lock(self, cluster: str, holder: str) -> None:
        with self._lock:
            cur = self._locks.get(cluster)
            if cur is not None and cur[0] == holder:
                del self._locks[cluster]

    def lock_holder(self, cluster: str) -> str | None:
        """The holder of the cluster's lock if its lease is live (test helper)."""
        with self._lock:
            cur = self._locks.get(cluster)
            return cur[0] if cur is not None and cur[1] > self.clock() else None


# ------------------------------------------------------------------------- writer


class WriteCall(NamedTuple):
    """One call seen by :class:`StoreWriter`: verb, api_version, plural, namespace, name,
    dry_run."""

    verb: str
    api_version: str
    plural: str
    namespace: str | None
    name: str
    dry_run: bool


class StoreWriter:
    """A ``KubeWriter`` over a lab ``Store`` (see the module docstring).

    ``fail`` maps ``(verb, name)`` to an exception to raise instead of writing (after logging
    the call). Thread-safe.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.log: list[WriteCall] = []
        self.fail: dict[tuple[str, str], Exception] = {}
        self._rv = itertools.count(5000)
        self._lock = threading.RLock()

    @property
    def writes(self) -> list[WriteCall]:
        """Calls that were not dry runs."""
        with self._lock:
            return [c for c in self.log if not c.dry_run]

    def _bucket(self, api_version: str, plural: str) -> tuple[Any, dict[tuple[str, str], Any]]:
        r = self.store.resources.get((api_version, plural))
        if r is None:
            raise KubeNotFound(f"the server could not find the requested resource ({plural})")
        return r, self.store.objects.setdefault((r.group, r.plural), {})

    def _begin(self, verb: str, api_version: str, plural: str, namespace: str | None,
               name: str, dry_run: bool) -> None:
        self.log.append(WriteCall(verb, api_version, plural, namespace, name, dry_run))
        exc = self.fail.get((verb, name))
        if exc is not None:
            raise exc

    def _stamp(self, obj: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        obj["apiVersion"], obj["kind"] = api_version, kind
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self._rv))
        meta.setdefault("uid", f"uid-{meta.get('name')}")
        return obj

    def create(self, api_version: str, plural: str, obj: dict[str, Any],
               namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        name = obj.get("metadata", {}).get("name", "")
        with self._lock:
            self._begin("create", api_version, plural, namespace, name, dry_run)
            r, bucket = self._bucket(api_version, plural)
            key = (namespace or "" if r.namespaced else "", name)
            if key in bucket:
                raise KubeApiError(f'{plural} "{name}" already exists', code=409,
                                   reason="AlreadyExists")
            new = self._stamp(obj, api_version, r.kind)
            if r.namespaced:
                new["metadata"]["namespace"] = namespace or "default"
            if not dry_run:
                bucket[key] = new
            return copy.deepcopy(new)

    def replace(self, api_version: str, plural: str, name: str, obj: dict[str, Any],
                namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        with self._lock:
            self._begin("replace", api_version, plural, namespace, name, dry_run)
            r, bucket = self._bucket(api_version, plural)
            key = (namespace or "" if r.namespaced else "", name)
            cur = bucket.get(key)
            if cur is None:
                raise KubeNotFound(f'{plural} "{name}" not found')
            want_rv = (obj.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != cur["metadata"].get("resourceVersion"):
                raise KubeApiError(f'Operation cannot be fulfilled on {plural} "{name}": the '
                                   "object has been modified", code=409, reason="Conflict")
            new = self._stamp(obj, api_version, r.kind)
            new["metadata"]["uid"] = cur["metadata"].get("uid")
            if r.namespaced:
                new["metadata"]["namespace"] = key[0]
            if not dry_run:
                bucket[key] = new
            return copy.deepcopy(new)

    def patch(self, api_version: str, plural: str, name: str, patch: Any,
              namespace: str | None = None, *, patch_type: str = "merge",
              dry_run: bool = False) -> dict[str, Any]:
        with self._lock:
            self._begin("patch", api_version, plural, namespace, name, dry_run)
            r, bucket = self._bucket(api_version, plural)
            key = (namespace or "" if r.namespaced else "", name)
            cur = bucket.get(key)
            if cur is None:
                raise KubeNotFound(f'{plural} "{name}" not found')
            if patch_type == "json":
                body = json_patch(copy.deepcopy(cur), patch)
            elif patch_type == "strategic":
                body = strategic_merge(copy.deepcopy(cur), patch, r.kind)
            else:
                body = merge_patch(copy.deepcopy(cur), patch)
            new = self._stamp(body, api_version, r.kind)
            if not dry_run:
                bucket[key] = new
            return copy.deepcopy(new)

    def delete(self, api_version: str, plural: str, name: str, namespace: str | None = None,
               *, dry_run: bool = False) -> None:
        with self._lock:
            self._begin("delete", api_version, plural, namespace, name, dry_run)
            r, bucket = self._bucket(api_version, plural)
            key = (namespace or "" if r.namespaced else "", name)
            if key not in bucket:
                raise KubeNotFound(f'{plural} "{name}" not found')
            if not dry_run:
                del bucket[key]
