"""The runbook service (DESIGN.md §3, §5): plan, approve, execute, verify, roll back.

One :class:`RunService` per process, built by wiring and driven by Slack and the CLI::

    view = svc.plan(actor, "prod", "netpol-dns-allow@1", {"namespaces": "shop,web"})
    view = svc.approve(other_actor, view.run.id)        # -> approved when enough approvals
    fut  = svc.submit_execute(other_actor, view.run.id)  # Slack; the CLI calls execute()
    fut.result().run.state                               # succeeded | rolled_back | ...

Guarantees:

- Every input is validated before any side effect (cluster, runbook, params, role), with an
  :class:`InputError` naming the field or a :class:`Refused` naming the reason.
- Every state change is a compare-and-set in the store: two clicks, a Slack retry or a second
  replica cannot approve or execute a run twice.
- Before apply the runbook re-inspects and re-plans; a different ``Plan.digest()`` stops the run
  as ``stale`` with nothing written.
- One mutating run per cluster: the store's lock row with a lease, renewed while running.
- Writes happen only in apply and rollback (:mod:`bot.engine.guards`); each one is logged as a
  ``write`` event before and after it is sent, and ``RunRecord.applied`` grows after each
  confirmed change, so a crash leaves evidence for :meth:`RunService.recover_interrupted`.
- Runbook failures end in a state (``failed``, ``rolled_back``, ``rollback_failed``,
  ``stale``), never in an exception to the caller.

Events appended per run (``RunStore.append_event`` kinds and their data):

=============  =============================================================================
``planned``    runbook, version, source_sha256, params, plan_hash, changes, warnings, risk,
               approvals_required, requester, channel, cluster, expires_at
``state``      from, to, actor, detail (+ holder when entering ``running``)
``approval``   approver, decision (approve/reject), plan_hash, count, required, reason
``replan``     planned_hash, current_hash, same (bool)
``write``      seq, stage (start/done/error), phase, verb, target, api_version, plural,
               namespace, name, change (index into the plan, or None), error
``applied``    results (``Applied`` dumps)
``verify``     passed, checks (``Check`` dumps)
``rollback``   results (``Applied`` dumps), ok
``error``      phase, type, error (a runbook phase raised)
``interrupted``holder, why, applied (targets), maybe_applied (targets)
``lock_lost``  holder (the lease could not be renewed)
=============  =============================================================================
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.engine.core import Actor
from bot.engine.guards import GuardedWriter, PhaseReader, WriteEvent
from bot.engine.policy import PolicyEngine
from bot.engine.registry import Registry, RunbookInfo, parse_params, source_sha256
from bot.engine.runs import (
    ApprovalRecord,
    RunEvent,
    RunRecord,
    RunState,
    RunStore,
    new_run_id,
)
from bot.sdk.errors import InputError, K8snetError, Refused
from bot.sdk.ports import KubeReader
from bot.sdk.runbook import (
    Applied,
    Change,
    KubeWriter,
    Params,
    Plan,
    Runbook,
    RunContext,
    Verification,
)

__all__ = [
    "RunNotifier",
    "RunService",
    "RunView",
    "default_holder",
    "holder_alive",
    "utcnow",
]

log = logging.getLogger(__name__)

MAX_RUN_ID = 64
MAX_IDEMPOTENCY_KEY = 200
MAX_REASON = 500
_DONE = {"create": "created", "replace": "replaced", "patch": "patched", "delete": "deleted"}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def default_holder() -> str:
    """A lock holder id for this process: ``"<hostname>:<pid>:<random>"``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_alive(holder: str) -> bool | None:
    """Whether the process named by a holder string (``"<host>:<pid>:..."``) still runs:
    True/False when it names this host, None when it names another host or cannot be parsed.
    A zombie (killed, not yet reaped) counts as dead."""
    parts = holder.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return None
    pid = int(parts[1])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fp:
            state = fp.read().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    return True


@dataclass(frozen=True)
class RunView:
    """What Slack and the CLI render about one run: the stored ``run``, its ``plan`` (parsed
    from ``run.plan``), the ``approvals`` decisions so far (oldest first),
    ``approvals_needed``: approvals still missing before it is approved (``run.approvals_required``
    minus the approvals on its current plan hash, never below 0; 0 once approved or when none
    is needed) and the runbook's one-line summary ("" when that version is not loaded)."""

    run: RunRecord
    plan: Plan
    approvals: tuple[ApprovalRecord, ...]
    approvals_needed: int
    runbook_summary: str

    @property
    def approved_by(self) -> tuple[str, ...]:
        """Users whose approval counts (decision approve, on the run's current plan hash)."""
        return tuple(a.approver for a in self.approvals
                     if a.decision == "approve" and a.plan_hash == self.run.plan_hash)


class RunNotifier(Protocol):
    """Told about progress and results the caller does not get as a return value: each step
    of an execution (also when submitted), expiries, recoveries. The Slack layer edits the
    plan message (rate-limited there). Exceptions it raises are logged and ignored."""

    def run_changed(self, view: RunView, message: str) -> None:
        """``message`` is one plain sentence (no markup)."""
        ...


class _Phase:
    """The engine-held phase name the guards read (runbooks cannot change it)."""

    def __init__(self) -> None:
        self.name = ""

    def get(self) -> str:
        return self.name


def _dump(items: Sequence[Applied]) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in items]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _err(e: BaseException) -> str:
    """One line for an error: its message (K8snetError: written for operators), else
    ``Type: message`` (a bug in a runbook), without a trailing full stop."""
    text = str(e) or type(e).__name__
    if not isinstance(e, K8snetError):
        text = f"{type(e).__name__}: {text}"
    return text[:1000].rstrip(".")


class _Session:
    """One runbook instance working on one run: phases, guarded writer, write log."""

    def __init__(self, svc: RunService, cluster: str, cls: type[Runbook], run_id: str = "",
                 plan: Plan | None = None, record_writes: bool = False) -> None:
        self.svc = svc
        self.cls = cls
        self.runbook = cls()
        self.run_id = run_id
        self.plan = plan or Plan()
        self.phase = _Phase()
        self.inner_reader = svc._readers(cluster)
        self.writer = GuardedWriter(svc._writers(cluster), self.phase.get,
                                    self._on_write if record_writes else None)
        self.ctx = RunContext(cluster=cluster, kube=PhaseReader(self.inner_reader),
                              writer=self.writer, run_id=run_id, progress=self._progress)
        self.live = record_writes
        self.progressive: list[Applied] = []
        self._started: dict[int, int | None] = {}
        self._lock = threading.Lock()

    def enter(self, phase: str) -> None:
        """Switch phase: the guard follows; the runbook gets a fresh caching reader."""
        self.phase.name = phase
        self.ctx.phase = phase
        self.ctx.kube = PhaseReader(self.inner_reader)

    def _progress(self, message: str) -> None:
        if self.live:  # executing a stored run (while planning there is nothing to edit yet)
            self.svc._notify(self.run_id, str(message)[:300])

    def _match(self, ev: WriteEvent) -> int | None:
        cands = [i for i, ch in enumerate(self.plan.changes)
                 if ch.api_version == ev["api_version"] and ch.plural == ev["plural"]
                 and (ch.namespace or None) == (ev["namespace"] or None)
                 and ch.name == ev["name"]]
        if not cands:
            return None
        taken = {a.index for a in self.progressive}
        for pick in ([i for i in cands if self.plan.changes[i].action == ev["verb"]
                      and i not in taken], [i for i in cands if i not in taken], cands):
            if pick:
                return pick[0]
        return None  # pragma: no cover - cands is non-empty

    def _on_write(self, ev: WriteEvent) -> None:
        with self._lock:
            if ev["stage"] == "start":
                idx = self._match(ev) if ev["phase"] == "apply" else None
                self._started[ev["seq"]] = idx
            else:
                idx = self._started.get(ev["seq"])
            data = {**ev, "change": idx}
            self.svc._store.append_event(self.run_id, "write", data)
            if ev["stage"] != "done":
                return
            if isinstance(self.ctx.kube, PhaseReader):
                self.ctx.kube.invalidate()
            if ev["phase"] == "apply" and idx is not None and \
                    idx not in {a.index for a in self.progressive}:
                ch = self.plan.changes[idx]
                self.progressive.append(Applied(
                    index=idx, target=ch.target, action=ch.action, ok=True,
                    message=f"{_DONE.get(ch.action, ch.action)} {ch.target}"))
                self.svc._store.update_fields(self.run_id, applied=_dump(self.progressive))


class _LeaseKeeper:
    """Renews a cluster lock every ``lease/3`` seconds (at least 1 s) until stopped."""

    def __init__(self, store: RunStore, cluster: str, holder: str, lease: int,
                 on_lost: Callable[[], None]) -> None:
        self._store, self._cluster, self._holder, self._lease = store, cluster, holder, lease
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"k8snet-lease-{cluster}")

    def start(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def _loop(self) -> None:
        interval = max(1.0, self._lease / 3)
        lost = False
        while not self._stop.wait(interval):
            try:
                ok = self._store.renew_lock(self._cluster, self._holder, self._lease)
            except Exception:
                log.warning("renewing the lock of %s failed", self._cluster, exc_info=True)
                continue
            if not ok and not lost:
                lost = True
                self._on_lost()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


class RunService:
    """Plans, approvals and executions of runbooks on the known clusters.

    ``registry``: the runbooks; ``store``: runs, approvals, events and locks; ``policy``: roles
    and approval counts; ``clusters``: the cluster names; ``readers(name)``/``writers(name)``:
    ports for one cluster (called lazily); ``holder``: this process's lock holder id
    (``"<hostname>:<pid>:<random>"``, see :func:`default_holder`); ``ttl``: how long a plan
    stays approvable; ``lock_lease_seconds``: lease of the cluster lock (renewed every third of
    it while running); ``executor``: where submitted work runs (default: an own
    ``ThreadPoolExecutor(max_workers=2)``, shut down by :meth:`shutdown`); ``notifier``: told
    about progress; ``clock``: UTC now (tests inject one); ``default_cluster``: used when
    ``plan`` is given no cluster (default: the only cluster, if there is exactly one).
    """

    def __init__(self, *, registry: Registry, store: RunStore, policy: PolicyEngine,
                 clusters: Sequence[str], readers: Callable[[str], KubeReader],
                 writers: Callable[[str], KubeWriter], holder: str,
                 ttl: timedelta = timedelta(minutes=30), lock_lease_seconds: int = 600,
                 executor: concurrent.futures.Executor | None = None,
                 notifier: RunNotifier | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 default_cluster: str | None = None) -> None:
        self._registry = registry
        self._store = store
        self._policy = policy
        self._clusters = list(clusters)
        self._readers = readers
        self._writers = writers
        self.holder = holder
        self.ttl = ttl
        self.lock_lease_seconds = lock_lease_seconds
        self._own_executor = executor is None
        self._executor: concurrent.futures.Executor = executor or \
            concurrent.futures.ThreadPoolExecutor(max_workers=2,
                                                  thread_name_prefix="k8snet-run")
        self.notifier = notifier
        self._clock = clock
        self.default_cluster = default_cluster
        self._mutex = threading.Lock()
        self._executing: set[str] = set()
        self._by_key: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._key_locks: dict[str, threading.Lock] = {}

    # ------------------------------------------------------------------ catalogue
    def runbooks(self) -> list[RunbookInfo]:
        """The registered runbooks (see ``Registry.infos``)."""
        return self._registry.infos()

    def resolve(self, ref: str) -> type[Runbook]:
        """``name``, ``name@<major>`` or ``name@X.Y.Z`` -> runbook class; InputError (field
        ``runbook``) listing the valid names when unknown."""
        return self._registry.resolve(ref)

    def _cluster(self, name: str | None) -> str:
        valid = ", ".join(sorted(self._clusters)) or "(none configured)"
        if not name:
            if self.default_cluster and self.default_cluster in self._clusters:
                return self.default_cluster
            if len(self._clusters) == 1:
                return self._clusters[0]
            raise InputError(f"No cluster given and no default cluster is set. Known "
                             f"clusters: {valid}.", field="cluster")
        if name not in self._clusters:
            raise InputError(f"Unknown cluster {name[:64]!r}. Known clusters: {valid}.",
                             field="cluster")
        return name

    # ------------------------------------------------------------------ views
    def _view(self, run: RunRecord) -> RunView:
        cls = self._registry.get(run.runbook, run.version)
        try:
            plan = Plan.model_validate(run.plan or {})
        except ValueError:  # a plan stored by an incompatible version: show it as empty
            plan = Plan()
        approvals = tuple(self._store.approvals(run.id))
        have = sum(1 for a in approvals
                   if a.decision == "approve" and a.plan_hash == run.plan_hash)
        missing = max(0, run.approvals_required - have) \
            if run.state in (RunState.PLANNED, RunState.AWAITING_APPROVAL) else 0
        return RunView(run=run, plan=plan, approvals=approvals, approvals_needed=missing,
                       runbook_summary=cls.summary() if cls else "")

    def _get(self, run_id: str) -> RunRecord:
        rid = (run_id or "").strip()
        run = self._store.get_run(rid) if 0 < len(rid) <= MAX_RUN_ID else None
        if run is None:
            raise InputError(f"Unknown run {rid[:MAX_RUN_ID]!r}.", field="run_id")
        return run

    def require_role(self, actor: Actor, cluster: str, role: str, action: str = "") -> None:
        """Raise ``Refused(reason="role")`` unless ``actor`` holds ``role`` on ``cluster``
        (used by Slack for read commands: status, history, show need ``viewer``)."""
        self._policy.require(actor.user, cluster, role, action)

    def can(self, actor: Actor, cluster: str, role: str) -> bool:
        """Whether ``actor`` holds ``role`` on ``cluster``."""
        return self._policy.has_role(actor.user, cluster, role)

    def get(self, run_id: str) -> RunView:
        """The run's view; InputError (field ``run_id``) when there is no such run."""
        return self._view(self._get(run_id))

    def events(self, run_id: str) -> list[RunEvent]:
        """The run's events, oldest first (see the module docstring for kinds). InputError
        (field ``run_id``) when there is no such run."""
        return self._store.events(self._get(run_id).id)

    def history(self, limit: int = 10, cluster: str | None = None) -> list[RunView]:
        """The newest ``limit`` runs (1..100), of one cluster or all; newest first."""
        limit = max(1, min(int(limit), 100))
        if cluster is not None:
            cluster = self._cluster(cluster)
        return [self._view(r) for r in self._store.list_runs(limit=limit, cluster=cluster)]

    def _notify(self, run: RunRecord | str, message: str) -> None:
        if self.notifier is None:
            return
        try:
            rec = run if isinstance(run, RunRecord) else self._store.get_run(run)
            if rec is not None:
                self.notifier.run_changed(self._view(rec), message)
        except Exception:
            log.warning("notifier failed for run %s", getattr(run, "id", run), exc_info=True)

    def _event(self, run_id: str, kind: str, data: dict[str, Any]) -> None:
        self._store.append_event(run_id, kind, data)

    def _move(self, run: RunRecord, to: RunState, actor: str, detail: str,
              from_states: Sequence[RunState] | None = None, **fields: Any) -> bool:
        """CAS ``run`` (from its recorded state, or ``from_states``) to ``to`` with ``detail``;
        on success append a ``state`` event. True if this caller moved it."""
        sources = list(from_states or [run.state])
        if not self._store.transition(run.id, sources, to, detail=detail, **fields):
            return False
        data: dict[str, Any] = {"from": run.state.value if from_states is None
                                else "|".join(s.value for s in sources),
                                "to": to.value, "actor": actor, "detail": detail}
        self._event(run.id, "state", data)
        return True

    # ------------------------------------------------------------------ plan
    def plan(self, actor: Actor, cluster: str | None, ref: str, raw: Mapping[str, Any], *,
             idempotency_key: str | None = None) -> RunView:
        """Inspect and plan ``ref`` on ``cluster`` with params ``raw``, store the run.

        Validates, before any side effect: the cluster (InputError ``cluster``), the runbook
        (InputError ``runbook``), the params (InputError naming the parameter), the operator
        role (Refused ``role``) and the idempotency key (InputError ``idempotency_key``, at
        most 200 characters). A key already used returns that run without planning again
        (Slack retries, double submits).

        The resulting run is ``nothing_to_do`` (empty plan, no approval asked) or
        ``awaiting_approval`` (expires after ``ttl``; needs ``policy.approvals_needed(risk)``
        approvals, at least one because the plan changes something). Errors of the runbook's
        inspect/plan (``KubeError``, ``PhaseError``...) propagate and nothing is stored.
        """
        name = self._cluster(cluster)
        cls = self.resolve(ref)
        params = parse_params(cls, raw)
        self._policy.require(actor.user, name, "operator", "plan runbooks")
        if idempotency_key is None:
            return self._plan(actor, name, cls, params, None)
        key = str(idempotency_key)
        if not key or len(key) > MAX_IDEMPOTENCY_KEY:
            raise InputError(f"The idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} "
                             "characters.", field="idempotency_key")
        with self._mutex:
            klock = self._key_locks.setdefault(key, threading.Lock())
        with klock:
            with self._mutex:
                known = self._by_key.get(key)
            if known is not None:
                run = self._store.get_run(known)
                if run is not None:
                    return self._view(run)
            view = self._plan(actor, name, cls, params, key)
            with self._mutex:
                self._by_key[key] = view.run.id
                while len(self._by_key) > 1000:
                    self._by_key.popitem(last=False)
                self._key_locks.pop(key, None)
            return view

    def _plan(self, actor: Actor, cluster: str, cls: type[Runbook], params: Params,
              key: str | None) -> RunView:
        run_id = new_run_id()  # known to the runbook while planning (it may label objects
        s = _Session(self, cluster, cls, run_id)  # with it), so the re-plan hashes the same
        s.enter("inspect")
        inspection = s.runbook.inspect(s.ctx)
        s.enter("plan")
        plan = s.runbook.plan(s.ctx, params, inspection)
        s.enter("")
        now = self._clock()
        needed = 0 if plan.empty else max(1, self._policy.approvals_needed(cls.risk))
        run = RunRecord(
            id=run_id, cluster=cluster, runbook=cls.name, version=cls.version,
            source_sha256=source_sha256(cls), params=params.model_dump(mode="json"),
            requester=actor.user, channel=actor.channel, state=RunState.PLANNED,
            created_at=now, updated_at=now, plan=plan.model_dump(mode="json"),
            plan_hash=plan.digest(), risk=cls.risk.value,
            expires_at=None if plan.empty else now + self.ttl,
            approvals_required=needed, idempotency_key=key)
        stored = self._store.create_run(run)
        if stored.id != run.id:  # the key was used by another request (replica, retry)
            return self._view(stored)
        self._event(run.id, "planned", {
            "runbook": cls.name, "version": cls.version, "source_sha256": run.source_sha256,
            "params": run.params, "plan_hash": run.plan_hash, "changes": len(plan.changes),
            "warnings": list(plan.warnings), "risk": run.risk, "approvals_required": needed,
            "requester": actor.user, "channel": actor.channel, "cluster": cluster,
            "expires_at": run.expires_at.isoformat() if run.expires_at else None})
        if plan.empty:
            self._move(run, RunState.NOTHING_TO_DO, actor.user,
                       "Nothing to do: the cluster already matches.")
        else:
            self._move(run, RunState.AWAITING_APPROVAL, actor.user,
                       f"{_plural(len(plan.changes), 'change')} planned; needs "
                       f"{_plural(needed, 'approval')}.")
        return self.get(run.id)

    def submit_plan(self, actor: Actor, cluster: str | None, ref: str,
                    raw: Mapping[str, Any], *, idempotency_key: str | None = None
                    ) -> concurrent.futures.Future[RunView]:
        """:meth:`plan` on the service's executor; errors arrive through the future."""
        return self._executor.submit(self.plan, actor, cluster, ref, raw,
                                     idempotency_key=idempotency_key)

    # ------------------------------------------------------------------ decisions
    def _refuse_state(self, run: RunRecord, doing: str, allowed: str) -> Refused:
        return Refused(f"Run {run.id} is {run.state.value.replace('_', ' ')}; only a run that "
                       f"is {allowed} can be {doing}.", reason="state")

    def _check_expiry(self, run: RunRecord, actor: str) -> None:
        if run.expires_at is not None and self._clock() > run.expires_at:
            if self._move(run, RunState.EXPIRED, actor,
                          "The approval window closed before enough approvals; plan again."):
                self._notify(run.id, f"Run {run.id} expired.")
            raise Refused(f"Run {run.id} has expired (approvals were due by "
                          f"{run.expires_at:%Y-%m-%d %H:%M} UTC); plan it again.",
                          reason="expired")

    def approve(self, actor: Actor, run_id: str) -> RunView:
        """Record ``actor``'s approval of a run awaiting approval, bound to its plan hash; when
        the approvals reach the required count, move it to ``approved`` (a compare-and-set:
        exactly one concurrent approver wins; the others just see it approved). Approving
        never executes: callers submit execution after an approval that made it approved.

        Refused, checked in this order: ``state`` (not awaiting approval), ``self-approval``
        (the requester), ``role`` (not an approver on the cluster), ``expired`` (past
        ``expires_at``; the run becomes ``expired``), ``duplicate`` (already decided).
        InputError ``run_id``: unknown run.
        """
        run = self._get(run_id)
        if run.state is not RunState.AWAITING_APPROVAL:
            raise self._refuse_state(run, "approved", "awaiting approval")
        if actor.user == run.requester:
            raise Refused(f"You requested run {run.id}; someone else must approve it.",
                          reason="self-approval")
        self._policy.require(actor.user, run.cluster, "approver", "approve runs")
        self._check_expiry(run, actor.user)
        if not self._store.add_approval(ApprovalRecord(
                run_id=run.id, approver=actor.user, decision="approve", at=self._clock(),
                plan_hash=run.plan_hash)):
            raise Refused(f"You have already decided on run {run.id}.", reason="duplicate")
        count = sum(1 for a in self._store.approvals(run.id)
                    if a.decision == "approve" and a.plan_hash == run.plan_hash)
        self._event(run.id, "approval", {"approver": actor.user, "decision": "approve",
                                         "plan_hash": run.plan_hash, "count": count,
                                         "required": run.approvals_required})
        if count >= run.approvals_required:
            self._move(run, RunState.APPROVED, actor.user,
                       f"Approved by {_plural(count, 'approver')}.",
                       from_states=[RunState.AWAITING_APPROVAL])
        return self.get(run.id)

    def reject(self, actor: Actor, run_id: str, reason: str = "") -> RunView:
        """Reject a run awaiting approval (an approver on its cluster) or withdraw it (its
        requester). Refused: ``state``, ``expired``, ``role``. The reason (at most 500
        characters) is recorded with the decision."""
        run = self._get(run_id)
        reason = (reason or "").strip()[:MAX_REASON]
        if run.state is not RunState.AWAITING_APPROVAL:
            raise self._refuse_state(run, "rejected", "awaiting approval")
        own = actor.user == run.requester
        if not own:
            self._policy.require(actor.user, run.cluster, "approver", "reject runs")
        self._check_expiry(run, actor.user)
        self._store.add_approval(ApprovalRecord(
            run_id=run.id, approver=actor.user, decision="reject", at=self._clock(),
            plan_hash=run.plan_hash, reason=reason))
        self._event(run.id, "approval", {"approver": actor.user, "decision": "reject",
                                         "plan_hash": run.plan_hash, "reason": reason,
                                         "withdrawn": own})
        detail = ("Withdrawn by the requester" if own else f"Rejected by {actor.user}") + \
            (f": {reason}" if reason else ".")
        if not self._move(run, RunState.REJECTED, actor.user, detail,
                          from_states=[RunState.AWAITING_APPROVAL]):
            now = self._get(run.id)
            if now.state is not RunState.REJECTED:
                raise self._refuse_state(now, "rejected", "awaiting approval")
        return self.get(run.id)

    def expire_due(self) -> list[RunView]:
        """Move every run awaiting approval past its ``expires_at`` to ``expired`` (CAS; the
        scheduler calls this). Returns the runs this call expired."""
        now = self._clock()
        out = []
        for run in self._store.list_runs(limit=1000, states=[RunState.AWAITING_APPROVAL]):
            if run.expires_at is not None and now > run.expires_at and self._move(
                    run, RunState.EXPIRED, "k8snet",
                    "The approval window closed before enough approvals; plan again."):
                view = self.get(run.id)
                self._notify(view.run, f"Run {run.id} expired without enough approvals.")
                out.append(view)
        return out

    # ------------------------------------------------------------------ execution
    @contextlib.contextmanager
    def _claim(self, run_id: str) -> Iterator[None]:
        with self._mutex:
            if run_id in self._executing:
                raise Refused(f"Run {run_id} is already being executed.", reason="state")
            self._executing.add(run_id)
        try:
            yield
        finally:
            with self._mutex:
                self._executing.discard(run_id)

    def _known_cluster(self, run: RunRecord) -> None:
        if run.cluster not in self._clusters:
            raise InputError(f"Run {run.id} is for cluster {run.cluster}, which is not "
                             "configured here.", field="cluster")

    def _lock(self, run: RunRecord) -> str:
        holder = f"{self.holder}:{run.id}"
        if self._store.acquire_lock(run.cluster, holder, self.lock_lease_seconds):
            return holder
        others = [r.id for r in self._store.list_runs(limit=5, cluster=run.cluster,
                                                      states=[RunState.RUNNING])
                  if r.id != run.id]
        by = f" by run {others[0]}" if others else " by another run"
        raise Refused(f"Cluster {run.cluster} is locked{by}; run {run.id} stays "
                      f"{run.state.value.replace('_', ' ')}: try again when it has finished.",
                      reason="locked")

    def _release(self, cluster: str, holder: str) -> None:
        try:
            self._store.release_lock(cluster, holder)
        except Exception:
            log.warning("releasing the lock of %s failed", cluster, exc_info=True)

    def execute(self, actor: Actor, run_id: str) -> RunView:
        """Execute an approved run: lock the cluster, re-inspect and re-plan (a different plan
        hash -> ``stale``, nothing written), apply with the guarded writer, verify, and roll
        back exactly what was applied when a change fails or verification fails.

        Ends in ``succeeded``, ``failed`` (nothing was changed), ``rolled_back``,
        ``rollback_failed`` or ``stale``; runbook errors never raise. Raises only Refused:
        ``state`` (not approved, or already executing here), ``locked`` (another run holds
        the cluster; this run stays approved), ``role`` (not an operator on the cluster);
        InputError ``run_id`` for an unknown run. Store errors propagate (the run is then
        found by :meth:`recover_interrupted`); InputError ``cluster`` when the run's cluster
        is not configured in this process.
        """
        run = self._get(run_id)
        self._known_cluster(run)
        self._policy.require(actor.user, run.cluster, "operator", "execute runs")
        if run.state is not RunState.APPROVED:
            raise self._refuse_state(run, "executed", "approved")
        with self._claim(run.id):
            holder = self._lock(run)
            try:
                return self._execute_locked(actor, run.id, holder)
            finally:
                self._release(run.cluster, holder)

    def submit_execute(self, actor: Actor, run_id: str
                       ) -> concurrent.futures.Future[RunView]:
        """:meth:`execute` on the service's executor; returns at once. A Refused (locked,
        state...) arrives through the future and is also told to the notifier."""
        return self._executor.submit(self._execute_notifying, actor, run_id)

    def _execute_notifying(self, actor: Actor, run_id: str) -> RunView:
        try:
            return self.execute(actor, run_id)
        except Refused as e:
            self._notify(run_id, str(e))
            raise

    def _runbook_of(self, run: RunRecord) -> type[Runbook] | None:
        return self._registry.get(run.runbook, run.version)

    def _execute_locked(self, actor: Actor, run_id: str, holder: str) -> RunView:
        run = self._get(run_id)
        if run.state is not RunState.APPROVED:
            raise self._refuse_state(run, "executed", "approved")
        cls = self._runbook_of(run)
        if cls is None:
            self._move(run, RunState.STALE, actor.user,
                       f"Runbook {run.runbook}@{run.version} is no longer installed; nothing "
                       "was written. Plan again.")
            self._notify(run.id, f"Run {run.id} is stale: its runbook version is gone.")
            return self.get(run.id)
        planned = Plan.model_validate(run.plan)
        self._notify(run, "Re-checking the cluster before applying.")
        s = _Session(self, run.cluster, cls, run.id, planned, record_writes=True)
        try:
            params = cls.Params.model_validate(run.params)
            s.enter("inspect")
            insp = s.runbook.inspect(s.ctx)
            s.enter("plan")
            current = s.runbook.plan(s.ctx, params, insp)
        except Exception as e:
            self._event(run.id, "error", {"phase": s.phase.name or "replan",
                                          "type": type(e).__name__, "error": _err(e)})
            self._move(run, RunState.FAILED, actor.user,
                       f"Could not re-check the cluster before applying: {_err(e)}. Nothing "
                       "was written.")
            self._notify(run.id, f"Run {run.id} failed before applying anything.")
            return self.get(run.id)
        same = current.digest() == run.plan_hash
        self._event(run.id, "replan", {"planned_hash": run.plan_hash,
                                       "current_hash": current.digest(), "same": same})
        if not same:
            self._move(run, RunState.STALE, actor.user,
                       f"The cluster changed since this plan was made (plan hash "
                       f"{run.plan_hash[:12]} is now {current.digest()[:12]}); nothing was "
                       "written. Plan again.")
            self._notify(run.id, f"Run {run.id} is stale: the cluster changed; nothing was "
                                 "written.")
            return self.get(run.id)
        if not self._store.transition(run.id, [RunState.APPROVED], RunState.RUNNING,
                                      detail="Applying."):
            raise self._refuse_state(self._get(run.id), "executed", "approved")
        self._event(run.id, "state", {"from": "approved", "to": "running", "actor": actor.user,
                                      "holder": holder, "detail": "Applying."})
        keeper = _LeaseKeeper(self._store, run.cluster, holder, self.lock_lease_seconds,
                              lambda: self._event(run.id, "lock_lost", {"holder": holder})
                              ).start()
        try:
            self._notify(run.id, f"Applying {_plural(len(planned.changes), 'change')}.")
            return self._apply_verify(actor, run, s, params)
        finally:
            keeper.stop()

    def _apply_verify(self, actor: Actor, run: RunRecord, s: _Session,
                      params: Params) -> RunView:
        plan = s.plan
        s.enter("apply")
        error: Exception | None = None
        try:
            result = tuple(s.runbook.apply(s.ctx, params, plan))
        except Exception as e:
            error, result = e, ()
            self._event(run.id, "error", {"phase": "apply", "type": type(e).__name__,
                                          "error": _err(e)})
        s.enter("")
        applied = list(result)
        ok_idx = {a.index for a in result if a.ok}
        for a in s.progressive:  # written (per the write log) but not reported ok
            if a.index not in ok_idx:
                applied.append(a.model_copy(update={"message": a.message + " (per the write "
                                                    "log)"}))
                ok_idx.add(a.index)
        self._store.update_fields(run.id, applied=_dump(applied))
        self._event(run.id, "applied", {"results": _dump(applied)})
        undo = tuple(a for a in applied if a.ok)
        failures = [a for a in result if not a.ok]
        if error is not None:
            why = f"The apply phase raised: {_err(error)}"
        elif failures:
            f = failures[0]
            why = f"Change {f.index + 1} ({f.target}) failed: {f.message.rstrip('.')}"
        else:
            why = ""
        if not why:
            self._notify(run.id, "Verifying.")
            s.enter("verify")
            try:
                ver = s.runbook.verify(s.ctx, params, plan, undo)
            except Exception as e:
                self._event(run.id, "error", {"phase": "verify", "type": type(e).__name__,
                                              "error": _err(e)})
                ver = Verification()
                why = f"Verification raised: {_err(e)}"
            s.enter("")
            self._event(run.id, "verify", {"passed": ver.passed, "checks": [
                c.model_dump(mode="json") for c in ver.checks]})
            if ver.passed:
                detail = (f"Applied {_plural(len(undo), 'change')}; verification passed "
                          f"({_plural(len(ver.checks), 'check')}).")
                self._move(run, RunState.SUCCEEDED, actor.user, detail,
                           from_states=[RunState.RUNNING], applied=_dump(applied))
                self._notify(run.id, detail)
                return self.get(run.id)
            if not why:
                bad = [c for c in ver.checks if not c.passed]
                why = (f"Verification failed: {bad[0].name}: {bad[0].message.rstrip('.')}" if bad
                       else "Verification failed: the runbook reported no checks")
        if not undo:
            detail = f"{why}. Nothing was changed."
            self._move(run, RunState.FAILED, actor.user, detail,
                       from_states=[RunState.RUNNING], applied=_dump(applied))
            self._notify(run.id, detail)
            return self.get(run.id)
        self._notify(run.id, f"{why}. Rolling back {_plural(len(undo), 'change')}.")
        return self._rollback(actor, run, s, params, undo, why)

    def _rollback(self, actor: Actor, run: RunRecord, s: _Session, params: Params,
                  undo: tuple[Applied, ...], why: str) -> RunView:
        s.enter("rollback")
        try:
            results = tuple(s.runbook.rollback(s.ctx, params, s.plan, undo))
            error: Exception | None = None
        except Exception as e:
            results, error = (), e
            self._event(run.id, "error", {"phase": "rollback", "type": type(e).__name__,
                                          "error": _err(e)})
        s.enter("")
        failed = [r for r in results if not r.ok]
        ok = error is None and not failed
        self._event(run.id, "rollback", {"results": _dump(results), "ok": ok})
        if ok:
            detail = f"{why}. Rolled back {_plural(len(results), 'change')}."
            state = RunState.ROLLED_BACK
        else:
            what = _err(error) if error is not None else \
                f"{failed[0].target}: {failed[0].message}"
            detail = f"{why}. Rollback failed ({what}); the cluster needs attention."
            state = RunState.ROLLBACK_FAILED
        self._move(run, state, actor.user, detail, from_states=[RunState.RUNNING])
        self._notify(run.id, detail)
        return self.get(run.id)

    # ------------------------------------------------------------------ interrupted runs
    def _running_holder(self, run_id: str, events: list[RunEvent]) -> str:
        for ev in reversed(events):
            if ev.kind == "state" and ev.data.get("to") == "running" and ev.data.get("holder"):
                return str(ev.data["holder"])
        return ""

    def _holder_dead(self, run: RunRecord, holder: str) -> str | None:
        """Why the holder of a running run is gone, or None when it may still be running."""
        if holder and holder.startswith(self.holder + ":"):
            with self._mutex:
                mine = run.id in self._executing
            return None if mine else "this process is not executing it any more"
        alive = holder_alive(holder) if holder else None
        if alive and holder.split(":")[1] == str(os.getpid()):
            alive = None  # another service in this process, or a restarted pid 1: ask the lease
        if alive is False:
            self._release(run.cluster, holder)  # the dead process cannot release it
            return f"process {holder.split(':')[1]} on this host has exited"
        if alive is True:
            return None
        probe = f"{self.holder}:recover"
        if self._store.acquire_lock(run.cluster, probe, self.lock_lease_seconds):
            self._release(run.cluster, probe)
            return "its cluster lock has expired or was released"
        return None

    @staticmethod
    def _writes(plan: Plan, applied: list[dict[str, Any]], events: list[RunEvent]
                ) -> tuple[dict[int, str], dict[int, str], list[str]]:
        """(confirmed index -> target, maybe-applied index -> target, unplanned targets) of the
        apply phase, from ``RunRecord.applied`` and the write events."""
        confirmed: dict[int, str] = {}
        for a in applied:
            if a.get("ok") and isinstance(a.get("index"), int):
                confirmed[a["index"]] = str(a.get("target", ""))
        starts: dict[int, dict[str, Any]] = {}
        ends: dict[int, str] = {}
        for ev in events:
            if ev.kind != "write" or ev.data.get("phase") != "apply":
                continue
            seq = int(ev.data.get("seq", 0))
            if ev.data.get("stage") == "start":
                starts[seq] = ev.data
            else:
                ends[seq] = str(ev.data.get("stage"))
        maybe: dict[int, str] = {}
        unplanned: list[str] = []
        for seq, data in starts.items():
            idx = data.get("change")
            stage = ends.get(seq)
            if stage == "error":
                continue
            if not isinstance(idx, int) or not 0 <= idx < len(plan.changes):
                unplanned.append(str(data.get("target")))
                continue
            target = plan.changes[idx].target
            if stage == "done":
                confirmed.setdefault(idx, target)
            elif idx not in confirmed:
                maybe[idx] = target
        return confirmed, maybe, unplanned

    def recover_interrupted(self) -> list[RunView]:
        """Find runs left ``running`` by a process that is gone (wiring calls this at start)
        and move them to ``interrupted``, with a detail listing what was applied and what may
        have been applied (a write that started but was never confirmed).

        A holder is gone when it names this process but this process is not executing the run,
        names this host and a pid that no longer exists, or (another host) its cluster lock is
        free or expired. Returns the runs this call moved.
        """
        out: list[RunView] = []
        for run in self._store.list_runs(limit=1000, states=[RunState.RUNNING]):
            events = self._store.events(run.id)
            holder = self._running_holder(run.id, events)
            why = self._holder_dead(run, holder)
            if why is None:
                continue
            plan = Plan.model_validate(run.plan)
            confirmed, maybe, unplanned = self._writes(plan, run.applied, events)
            parts = [f"The process executing this run stopped ({why})."]
            parts.append("Applied: " + (", ".join(confirmed[i] for i in sorted(confirmed))
                                        or "nothing") + ".")
            if maybe:
                parts.append("May have been applied: " +
                             ", ".join(maybe[i] for i in sorted(maybe)) + ".")
            if unplanned:
                parts.append("Unplanned writes: " + ", ".join(unplanned) + ".")
            parts.append("An approver can roll it back.")
            detail = " ".join(parts)
            if not self._move(run, RunState.INTERRUPTED, "k8snet", detail,
                              from_states=[RunState.RUNNING]):
                continue
            self._event(run.id, "interrupted", {
                "holder": holder, "why": why,
                "applied": [confirmed[i] for i in sorted(confirmed)],
                "maybe_applied": [maybe[i] for i in sorted(maybe)], "unplanned": unplanned})
            view = self.get(run.id)
            self._notify(view.run, detail)
            out.append(view)
        return out

    def rollback_interrupted(self, actor: Actor, run_id: str) -> RunView:
        """Roll back an ``interrupted`` run: what was applied and what may have been applied
        (each undo is skipped when the live object shows the change never happened: a
        created object that does not exist, a deleted one that still exists). Uses the run's
        runbook version when installed, else the generic rollback of ``bot.sdk.runbook``.

        Ends ``rolled_back`` or ``rollback_failed``. Refused: ``role`` (approver needed),
        ``state`` (not interrupted), ``locked``; InputError ``run_id``.
        """
        run = self._get(run_id)
        self._known_cluster(run)
        self._policy.require(actor.user, run.cluster, "approver", "roll back interrupted runs")
        if run.state is not RunState.INTERRUPTED:
            raise self._refuse_state(run, "rolled back", "interrupted")
        with self._claim(run.id):
            holder = self._lock(run)
            try:
                return self._rollback_interrupted(actor, run.id, holder)
            finally:
                self._release(run.cluster, holder)

    def _rollback_interrupted(self, actor: Actor, run_id: str, holder: str) -> RunView:
        run = self._get(run_id)
        if not self._store.transition(run.id, [RunState.INTERRUPTED], RunState.RUNNING,
                                      detail="Rolling back an interrupted run."):
            raise self._refuse_state(self._get(run.id), "rolled back", "interrupted")
        self._event(run.id, "state", {"from": "interrupted", "to": "running",
                                      "actor": actor.user, "holder": holder,
                                      "detail": "Rolling back an interrupted run."})
        keeper = _LeaseKeeper(self._store, run.cluster, holder, self.lock_lease_seconds,
                              lambda: self._event(run.id, "lock_lost", {"holder": holder})
                              ).start()
        try:
            cls = self._runbook_of(run) or Runbook
            plan = Plan.model_validate(run.plan)
            params: Params
            try:
                params = cls.Params.model_validate(run.params) if cls is not Runbook \
                    else Params.model_construct()
            except ValueError:
                params = Params.model_construct()
            confirmed, maybe, _ = self._writes(plan, run.applied, self._store.events(run.id))
            s = _Session(self, run.cluster, cls, run.id, plan, record_writes=True)
            undo: list[Applied] = []
            for idx in sorted(set(confirmed) | set(maybe)):
                ch = plan.changes[idx]
                if self._never_happened(s.inner_reader, ch):
                    continue
                undo.append(Applied(index=idx, target=ch.target, action=ch.action, ok=True,
                                    message="applied" if idx in confirmed
                                    else "may have been applied"))
            if cls is Runbook:
                self._event(run.id, "error", {
                    "phase": "rollback", "type": "RunbookMissing",
                    "error": f"{run.runbook}@{run.version} is not installed; using the "
                             "generic rollback"})
            if not undo:
                detail = "Interrupted run: nothing had been applied; nothing to roll back."
                self._event(run.id, "rollback", {"results": [], "ok": True})
                self._move(run, RunState.ROLLED_BACK, actor.user, detail,
                           from_states=[RunState.RUNNING])
                self._notify(run.id, detail)
                return self.get(run.id)
            self._notify(run.id, f"Rolling back {_plural(len(undo), 'change')} of an "
                                 "interrupted run.")
            return self._rollback(actor, run, s, params, tuple(undo), "Interrupted run")
        finally:
            keeper.stop()

    @staticmethod
    def _never_happened(reader: KubeReader, ch: Change) -> bool:
        """True when the live object shows ``ch`` was not applied (a create whose object is
        absent, a delete whose object is present). Read errors: assume it happened."""
        if ch.action not in ("create", "delete"):
            return False
        try:
            live = reader.get(ch.api_version, ch.plural, ch.name, ch.namespace)
        except Exception:
            return False
        return (live is None) if ch.action == "create" else (live is not None)

    # ------------------------------------------------------------------ lifecycle
    def shutdown(self, wait: bool = True) -> None:
        """Stop the service's own executor (an injected one is left to its owner)."""
        if self._own_executor:
            self._executor.shutdown(wait=wait)
