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
  replica cannot approve or execute a run twice. When the final transition of an execution
  loses (another process moved the run meanwhile), a ``conflict`` event records it and the
  notifier is told; the stored state is never overwritten.
- Approval windows: a run awaiting approval expires ``ttl`` after planning; an approved run
  must be executed within ``ttl`` of its approval (else ``expired``, nothing written).
- Before apply: the runbook source must be the one planned (``source_sha256``), the stored
  plan must hash to the approved ``plan_hash``, and a fresh inspect + plan must hash the same;
  anything else stops the run as ``stale`` with nothing written.
- One mutating run per cluster: the store's lock row with a lease, renewed while running, and
  confirmed (renewed) before every write. Once the lock is lost nothing more is written: the
  run becomes ``interrupted`` (an approver rolls it back under the lock).
- Writes happen only in apply and rollback, and only to the objects of the approved plan (in
  apply: the planned action) (:mod:`bot.engine.guards`); each one is logged as a ``write``
  event before and after it is sent, and ``RunRecord.applied`` grows after each confirmed
  change, so a crash leaves evidence for :meth:`RunService.recover_interrupted`.
- A write whose outcome is unknown (timeout, connection lost, answer lost, or sent but not
  recorded) counts as "may have been applied": it is undone (the undo reads the live object
  first) and the run never says "nothing was changed" then.
- Runbook failures (including wrong return types) end in a state (``failed``,
  ``rolled_back``, ``rollback_failed``, ``stale``), never in an exception to the caller. A
  ``BaseException`` (Ctrl-C, SystemExit) during execution moves the run to ``interrupted``
  before it propagates.

Events appended per run (``RunStore.append_event`` kinds and their data):

=============  =============================================================================
``planned``    runbook, version, source_sha256, params, plan_hash, changes, warnings, risk,
               approvals_required, requester, channel, cluster, expires_at
``state``      from, to, actor, detail (+ holder when entering ``running``)
``approval``   approver, decision (approve/reject), plan_hash, count, required, reason
``source``     planned_source_sha256, current_source_sha256, same (the runbook source here
               differs from the planned one)
``plan_check`` plan_hash, stored_hash, same (the stored plan does not hash to the approved
               hash)
``replan``     planned_hash, current_hash, same (bool)
``write``      seq, stage (start/done/error), phase, verb, target, api_version, plural,
               namespace, name, change (index into the plan, or None), uid (done), error and
               outcome (error: ``failed`` or ``unknown``)
``applied``    results (``Applied`` dumps)
``verify``     passed, checks (``Check`` dumps)
``rollback``   results (``Applied`` dumps), ok
``error``      phase, type, error (a runbook phase raised or returned the wrong type)
``interrupted``holder, why, applied (targets), maybe_applied (targets), unplanned
``lock_lost``  holder, why (the lease could not be renewed: another holder took it)
``conflict``   wanted, found, detail (this process's final transition lost the race)
=============  =============================================================================
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
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
from bot.engine.guards import (
    GuardedWriter,
    LockLost,
    PhaseReader,
    WriteEvent,
    runbook_reader,
    runbook_writer,
)
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
from bot.sdk.results import Inspection
from bot.sdk.runbook import (
    Applied,
    Change,
    KubeWriter,
    Params,
    PhaseError,
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
    "pidns_id",
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


def pidns_id() -> str:
    """This process's PID namespace as a short id (12 hex), unique on this machine for this
    boot: sha256 of the kernel boot id and the inode of ``/proc/self/ns/pid``. ``""`` when
    it cannot be known (not Linux)."""
    try:
        ino = os.stat("/proc/self/ns/pid").st_ino
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fp:
            boot = fp.read().strip()
    except OSError:
        return ""
    return hashlib.sha256(f"{boot}/{ino}".encode()).hexdigest()[:12]


def default_holder() -> str:
    """A lock holder id for this process: ``"<hostname>:<pid>:<random>:ns=<pid namespace>"``
    (see :func:`pidns_id`; without the ``ns=`` part when it cannot be known)."""
    ns = pidns_id()
    base = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    return f"{base}:ns={ns}" if ns else base


def holder_alive(holder: str) -> bool | None:
    """Whether the process named by a holder string (``"<host>:<pid>:...:ns=<id>..."``) still
    runs: True/False only when it names this host *and* this PID namespace (its ``ns=`` part
    equals :func:`pidns_id`), since a pid means nothing in another namespace (containers
    sharing a hostname); None otherwise (then only the lock's lease can tell). A zombie
    (killed, not yet reaped) counts as dead."""
    parts = holder.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return None
    ns = next((p[3:] for p in parts[2:] if p.startswith("ns=")), "")
    if not ns or ns != pidns_id():
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


def _results(value: Any, plan: Plan, phase: str) -> tuple[Applied, ...]:
    """What apply or rollback returned, checked: a sequence of ``Applied`` whose indexes are in
    the plan. TypeError/ValueError (a runbook bug) otherwise."""
    if value is None or isinstance(value, str | bytes | dict | Applied):
        raise TypeError(f"{phase} returned {type(value).__name__}, not a sequence of Applied")
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{phase} returned {type(value).__name__}, not a sequence of "
                        "Applied") from None
    for a in items:
        if not isinstance(a, Applied):
            raise TypeError(f"{phase} returned a {type(a).__name__} among its results, not "
                            "Applied")
        if not 0 <= a.index < len(plan.changes):
            raise ValueError(f"{phase} returned a result for change index {a.index}; the plan "
                             f"has {_plural(len(plan.changes), 'change')}")
    return items


@dataclass
class _Write:
    """What this process knows of one real write (by seq), also when its events could not be
    stored: ``stage`` start (sent, no answer yet), done, failed (refused by the server) or
    unknown (no usable answer: may have been applied)."""

    phase: str
    index: int | None
    target: str
    stage: str = "start"
    uid: str | None = None
    error: str = ""


class _GenericUndo(Runbook):
    """The generic rollback of ``bot.sdk.runbook`` (for a run whose runbook version is not
    installed here, or whose installed source differs from the one planned)."""

    name = "k8snet-generic-undo"
    version = "0.0.0"

    def plan(self, ctx: RunContext, params: Params, inspection: Inspection) -> Plan:
        raise PhaseError("The generic undo cannot plan.")


class _Session:
    """One runbook instance working on one run: phases, guarded writer, write log.

    ``holder``: the cluster lock holder of an execution (every real write first renews it);
    "" while planning."""

    def __init__(self, svc: RunService, cluster: str, cls: type[Runbook], run_id: str = "",
                 plan: Plan | None = None, record_writes: bool = False,
                 holder: str = "") -> None:
        self.svc = svc
        self.cls = cls
        self.runbook = cls()
        self.run_id = run_id
        self.cluster = cluster
        self.holder = holder
        self.plan = plan or Plan()
        self.phase = _Phase()
        self.inner_reader = svc._readers(cluster)
        self.reader = PhaseReader(self.inner_reader)
        self.guard = GuardedWriter(svc._writers(cluster), self.phase.get,
                                   self._on_write if record_writes else None,
                                   allowed=self._allowed if record_writes else None,
                                   before_write=self._check_lock if holder else None)
        live = record_writes

        def progress(message: str) -> None:
            if live:  # executing a stored run (while planning there is nothing to edit yet)
                svc._notify(run_id, str(message)[:300])

        # runbooks get narrow proxies: no attribute leads to the real writer or reader
        self.ctx = RunContext(cluster=cluster, kube=runbook_reader(self.reader),
                              writer=runbook_writer(self.guard), run_id=run_id,
                              progress=progress)
        self.live = record_writes
        self.progressive: list[Applied] = []
        self.writes: dict[int, _Write] = {}
        self.lock_lost = threading.Event()
        self._lock = threading.Lock()

    def enter(self, phase: str) -> None:
        """Switch phase: the guard follows; the runbook gets a fresh caching reader."""
        self.phase.name = phase
        self.ctx.phase = phase
        self.reader = PhaseReader(self.inner_reader)
        self.ctx.kube = runbook_reader(self.reader)

    # -------------------------------------------------------------- guard hooks
    def _allowed(self, phase: str, verb: str, api_version: str, plural: str,
                 namespace: str | None, name: str) -> bool:
        """Only objects of the approved plan; in apply also only the planned action."""
        return any(ch.api_version == api_version and ch.plural == plural
                   and (ch.namespace or None) == (namespace or None) and ch.name == name
                   and (phase != "apply" or ch.action == verb)
                   for ch in self.plan.changes)

    def mark_lock_lost(self, why: str = "the lease could not be renewed") -> None:
        """Stop all further writes of this session (the lease keeper or a write found the
        lock gone); records one ``lock_lost`` event."""
        with self._lock:
            first = not self.lock_lost.is_set()
            self.lock_lost.set()
        if first:
            log.warning("run %s lost the lock of cluster %s: %s", self.run_id, self.cluster,
                        why)
            try:
                self.svc._event(self.run_id, "lock_lost", {"holder": self.holder, "why": why})
            except Exception:
                log.warning("recording lock_lost of run %s failed", self.run_id,
                            exc_info=True)

    def _check_lock(self) -> None:
        """Before each real write: this session must still hold the cluster lock (renewed
        now, so a lapse that let another holder in is seen before writing, not a third of a
        lease later)."""
        if not self.lock_lost.is_set():
            if self.svc._store.renew_lock(self.cluster, self.holder,
                                          self.svc.lock_lease_seconds):
                return
            self.mark_lock_lost("the lock was gone when a write was about to be sent")
        raise LockLost(f"Run {self.run_id} no longer holds the lock of cluster "
                       f"{self.cluster} (another process took it over or released it); the "
                       "write was not sent.")

    def _match(self, ev: WriteEvent) -> int | None:
        cands = [i for i, ch in enumerate(self.plan.changes)
                 if ch.api_version == ev["api_version"] and ch.plural == ev["plural"]
                 and (ch.namespace or None) == (ev["namespace"] or None)
                 and ch.name == ev["name"]]
        if not cands:
            return None
        taken = {w.index for w in self.writes.values()
                 if w.phase == "apply" and w.stage == "done"}
        for pick in ([i for i in cands if self.plan.changes[i].action == ev["verb"]
                      and i not in taken], [i for i in cands if i not in taken], cands):
            if pick:
                return pick[0]
        return None  # pragma: no cover - cands is non-empty

    def _on_write(self, ev: WriteEvent) -> None:
        with self._lock:
            seq, stage = ev["seq"], ev["stage"]
            if stage == "start":
                idx = self._match(ev) if ev["phase"] == "apply" else None
                # stored before it is sent: if this fails, the write is not sent
                self.svc._store.append_event(self.run_id, "write", {**ev, "change": idx})
                self.writes[seq] = _Write(ev["phase"], idx, str(ev["target"]))
                return
            w = self.writes.get(seq)
            idx = w.index if w is not None else None
            if w is not None:  # known here first, even if storing the event fails below
                w.stage = "done" if stage == "done" else (
                    "unknown" if ev.get("outcome") == "unknown" else "failed")
                w.uid = ev.get("uid") or None
                w.error = str(ev.get("error") or "")
            self.reader.invalidate()
            self.svc._store.append_event(self.run_id, "write", {**ev, "change": idx})
            if stage != "done" or ev["phase"] != "apply" or idx is None or \
                    idx in {a.index for a in self.progressive}:
                return
            ch = self.plan.changes[idx]
            self.progressive.append(Applied(
                index=idx, target=ch.target, action=ch.action, ok=True,
                message=f"{_DONE.get(ch.action, ch.action)} {ch.target}",
                uid=w.uid if w is not None else None))
            self.svc._store.update_fields(self.run_id, applied=_dump(self.progressive))

    def evidence(self) -> tuple[dict[int, _Write], dict[int, _Write]]:
        """(confirmed, maybe applied) planned changes of this session's apply phase, by
        index: what the write log in memory says."""
        confirmed: dict[int, _Write] = {}
        maybe: dict[int, _Write] = {}
        for w in self.writes.values():
            if w.phase != "apply" or w.index is None:
                continue
            if w.stage == "done":
                confirmed[w.index] = w
            elif w.stage in ("start", "unknown"):
                maybe.setdefault(w.index, w)
        return confirmed, {i: w for i, w in maybe.items() if i not in confirmed}


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
    (``"<hostname>:<pid>:<random>:ns=<pid namespace>"``, see :func:`default_holder`); ``ttl``:
    how long a plan stays approvable, and how long an approved run stays executable;
    ``lock_lease_seconds``: lease of the cluster lock (renewed every third of
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
        """Refused ``expired`` (and the run moved to ``expired``) when ``run`` is past its
        ``expires_at``: the approval window while awaiting approval, the execution deadline
        once approved."""
        if run.expires_at is None or self._clock() <= run.expires_at:
            return
        if run.state is RunState.APPROVED:
            detail = "Approved, but not executed before its deadline; plan again."
            message = (f"Run {run.id} has expired (it had to be executed by "
                       f"{run.expires_at:%Y-%m-%d %H:%M} UTC); plan it again.")
        else:
            detail = "The approval window closed before enough approvals; plan again."
            message = (f"Run {run.id} has expired (approvals were due by "
                       f"{run.expires_at:%Y-%m-%d %H:%M} UTC); plan it again.")
        if self._move(run, RunState.EXPIRED, actor, detail):
            self._notify(run.id, f"Run {run.id} expired.")
        raise Refused(message, reason="expired")

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
                       from_states=[RunState.AWAITING_APPROVAL],
                       expires_at=self._clock() + self.ttl)  # the execution deadline
        return self.get(run.id)

    def reject(self, actor: Actor, run_id: str, reason: str = "") -> RunView:
        """Reject a run awaiting approval (an approver on its cluster) or withdraw it (its
        requester). Refused: ``state``, ``expired``, ``role``, ``duplicate`` (this person
        already decided on the run, e.g. approved it: the decision stands). The reason (at
        most 500 characters) is recorded with the decision."""
        run = self._get(run_id)
        reason = (reason or "").strip()[:MAX_REASON]
        if run.state is not RunState.AWAITING_APPROVAL:
            raise self._refuse_state(run, "rejected", "awaiting approval")
        own = actor.user == run.requester
        if not own:
            self._policy.require(actor.user, run.cluster, "approver", "reject runs")
        self._check_expiry(run, actor.user)
        if not self._store.add_approval(ApprovalRecord(
                run_id=run.id, approver=actor.user, decision="reject", at=self._clock(),
                plan_hash=run.plan_hash, reason=reason)):
            # one decision per person and run (the approvals table keeps exactly one row):
            # a reject that cannot be recorded is not done
            raise Refused(f"You have already decided on run {run.id}; a decision cannot be "
                          "changed. Another approver can still reject it, or the requester "
                          "withdraw it.", reason="duplicate")
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
        """Move every run awaiting approval past its approval window, and every approved run
        past its execution deadline, to ``expired`` (CAS; the scheduler calls this). Returns
        the runs this call expired."""
        now = self._clock()
        out = []
        for run in self._store.list_runs(limit=1000, states=[RunState.AWAITING_APPROVAL,
                                                             RunState.APPROVED]):
            if run.expires_at is None or now <= run.expires_at:
                continue
            approved = run.state is RunState.APPROVED
            detail = ("Approved, but not executed before its deadline; plan again."
                      if approved else
                      "The approval window closed before enough approvals; plan again.")
            if self._move(run, RunState.EXPIRED, "k8snet", detail):
                view = self.get(run.id)
                self._notify(view.run, f"Run {run.id} expired without being executed."
                             if approved else
                             f"Run {run.id} expired without enough approvals.")
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
        """Execute an approved run: lock the cluster, check that the runbook source is the
        planned one and that the stored plan hashes to the approved hash, re-inspect and
        re-plan (any difference -> ``stale``, nothing written), apply with the guarded writer
        (only the planned objects and actions, only while the lock is held), verify, and roll
        back what was applied, or may have been, when a change fails or verification fails.

        Ends in ``succeeded``, ``failed`` (nothing was changed), ``rolled_back``,
        ``rollback_failed``, ``stale`` or ``interrupted`` (the cluster lock was lost: nothing
        more was written; an approver rolls it back); runbook errors never raise. Raises only
        Refused: ``state`` (not approved, or already executing here), ``expired`` (approved
        more than ``ttl`` ago; the run becomes ``expired``), ``locked`` (another run holds
        the cluster; this run stays approved), ``role`` (not an operator on the cluster);
        InputError ``run_id`` for an unknown run. Store errors propagate; a BaseException
        (Ctrl-C) first moves the run to ``interrupted``. InputError ``cluster`` when the
        run's cluster is not configured in this process.
        """
        run = self._get(run_id)
        self._known_cluster(run)
        self._policy.require(actor.user, run.cluster, "operator", "execute runs")
        if run.state is not RunState.APPROVED:
            raise self._refuse_state(run, "executed", "approved")
        self._check_expiry(run, actor.user)
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

    def _stale(self, run: RunRecord, actor: str, detail: str, message: str) -> RunView:
        if not self._move(run, RunState.STALE, actor, detail,
                          from_states=[RunState.APPROVED]):
            raise self._refuse_state(self._get(run.id), "executed", "approved")
        self._notify(run.id, message)
        return self.get(run.id)

    def _execute_locked(self, actor: Actor, run_id: str, holder: str) -> RunView:
        run = self._get(run_id)
        if run.state is not RunState.APPROVED:
            raise self._refuse_state(run, "executed", "approved")
        self._check_expiry(run, actor.user)
        cls = self._runbook_of(run)
        if cls is None:
            return self._stale(run, actor.user,
                               f"Runbook {run.runbook}@{run.version} is no longer installed; "
                               "nothing was written. Plan again.",
                               f"Run {run.id} is stale: its runbook version is gone.")
        source = source_sha256(cls)
        if source != run.source_sha256:
            self._event(run.id, "source", {"planned_source_sha256": run.source_sha256,
                                           "current_source_sha256": source, "same": False})
            return self._stale(
                run, actor.user,
                f"Runbook {run.runbook}@{run.version} here is not the source that was planned "
                f"(sha256 {run.source_sha256[:12] or 'unknown'} planned, "
                f"{source[:12] or 'unknown'} here); nothing was written. Plan again.",
                f"Run {run.id} is stale: the runbook source differs from the planned one; "
                "nothing was written.")
        try:
            planned = Plan.model_validate(run.plan)
            stored_hash = planned.digest()
        except ValueError:
            planned, stored_hash = Plan(), ""
        if stored_hash != run.plan_hash:
            self._event(run.id, "plan_check", {"plan_hash": run.plan_hash,
                                               "stored_hash": stored_hash, "same": False})
            return self._stale(
                run, actor.user,
                f"The stored plan does not match the approved plan hash "
                f"({run.plan_hash[:12]} approved, {stored_hash[:12] or 'unreadable'} stored); "
                "nothing was written. Plan again.",
                f"Run {run.id} is stale: its stored plan is not the approved one; nothing was "
                "written.")
        self._notify(run, "Re-checking the cluster before applying.")
        s = _Session(self, run.cluster, cls, run.id, planned, record_writes=True,
                     holder=holder)
        try:
            params = cls.Params.model_validate(run.params)
            s.enter("inspect")
            insp = s.runbook.inspect(s.ctx)
            s.enter("plan")
            current = s.runbook.plan(s.ctx, params, insp)
            if not isinstance(current, Plan):
                raise TypeError(f"plan returned {type(current).__name__}, not Plan")
        except Exception as e:
            self._event(run.id, "error", {"phase": s.phase.name or "replan",
                                          "type": type(e).__name__, "error": _err(e)})
            self._move(run, RunState.FAILED, actor.user,
                       f"Could not re-check the cluster before applying: {_err(e)}. Nothing "
                       "was written.")
            self._notify(run.id, f"Run {run.id} failed before applying anything.")
            return self.get(run.id)
        s.enter("")
        same = current.digest() == run.plan_hash
        self._event(run.id, "replan", {"planned_hash": run.plan_hash,
                                       "current_hash": current.digest(), "same": same})
        if not same:
            return self._stale(
                run, actor.user,
                f"The cluster changed since this plan was made (plan hash "
                f"{run.plan_hash[:12]} is now {current.digest()[:12]}); nothing was written. "
                "Plan again.",
                f"Run {run.id} is stale: the cluster changed; nothing was written.")
        if not self._store.transition(run.id, [RunState.APPROVED], RunState.RUNNING,
                                      detail="Applying."):
            raise self._refuse_state(self._get(run.id), "executed", "approved")
        run = self._get(run.id)
        self._event(run.id, "state", {"from": "approved", "to": "running", "actor": actor.user,
                                      "holder": holder, "detail": "Applying."})
        keeper = _LeaseKeeper(self._store, run.cluster, holder, self.lock_lease_seconds,
                              s.mark_lock_lost).start()
        try:
            self._notify(run.id, f"Applying {_plural(len(planned.changes), 'change')}.")
            return self._apply_verify(actor, run, s, params)
        except BaseException as e:  # Ctrl-C, SystemExit, a store error: say so, then go on
            self._interrupt_here(run, s, e)
            raise
        finally:
            keeper.stop()

    def _with_evidence(self, s: _Session, result: tuple[Applied, ...]) -> list[Applied]:
        """The runbook's results, plus what the write log shows was applied (a write whose
        result the runbook did not report ok) or may have been (sent without a usable
        answer: ``uncertain``), with the uid each create returned."""
        plan = s.plan
        confirmed, maybe = s.evidence()
        applied: list[Applied] = []
        ok_idx: set[int] = set()
        for a in result:
            w = confirmed.get(a.index)
            if a.ok and a.uid is None and w is not None and w.uid:
                a = a.model_copy(update={"uid": w.uid})
            applied.append(a)
            if a.ok:
                ok_idx.add(a.index)
        for idx, w in sorted(confirmed.items()):
            if idx not in ok_idx:
                ch = plan.changes[idx]
                applied.append(Applied(
                    index=idx, target=ch.target, action=ch.action, ok=True, uid=w.uid,
                    message=f"{_DONE.get(ch.action, ch.action)} {ch.target} (per the write "
                            "log)"))
                ok_idx.add(idx)
        for idx in sorted(maybe):
            if idx not in ok_idx:
                ch = plan.changes[idx]
                applied.append(Applied(
                    index=idx, target=ch.target, action=ch.action, ok=True, uncertain=True,
                    message=f"may have been {_DONE.get(ch.action, ch.action)} (sent, no usable "
                            "answer)"))
                ok_idx.add(idx)
        return applied

    def _apply_verify(self, actor: Actor, run: RunRecord, s: _Session,
                      params: Params) -> RunView:
        plan = s.plan
        s.enter("apply")
        error: Exception | None = None
        result: tuple[Applied, ...] = ()
        try:
            result = _results(s.runbook.apply(s.ctx, params, plan), plan, "apply")
        except Exception as e:
            error = e
            self._event(run.id, "error", {"phase": "apply", "type": type(e).__name__,
                                          "error": _err(e)})
        s.enter("")
        applied = self._with_evidence(s, result)
        self._store.update_fields(run.id, applied=_dump(applied))
        self._event(run.id, "applied", {"results": _dump(applied)})
        if s.lock_lost.is_set():
            return self._stop_lock_lost(actor, run, s, "apply")
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
            passed, checks = False, []
            try:
                ver = s.runbook.verify(s.ctx, params, plan, undo)
                if not isinstance(ver, Verification):
                    raise TypeError(f"verify returned {type(ver).__name__}, not Verification")
                passed, checks = ver.passed, list(ver.checks)
            except Exception as e:
                self._event(run.id, "error", {"phase": "verify", "type": type(e).__name__,
                                              "error": _err(e)})
                passed, checks = False, []
                why = f"Verification raised: {_err(e)}"
            s.enter("")
            self._event(run.id, "verify", {"passed": passed, "checks": [
                c.model_dump(mode="json") for c in checks]})
            if passed:
                detail = (f"Applied {_plural(len(undo), 'change')}; verification passed "
                          f"({_plural(len(checks), 'check')}).")
                return self._finish(run, RunState.SUCCEEDED, actor.user, detail,
                                    applied=_dump(applied))
            if not why:
                bad = [c for c in checks if not c.passed]
                why = (f"Verification failed: {bad[0].name}: {bad[0].message.rstrip('.')}" if bad
                       else "Verification failed: the runbook reported no checks")
        if not undo:
            return self._finish(run, RunState.FAILED, actor.user,
                                f"{why}. Nothing was changed.", applied=_dump(applied))
        if s.lock_lost.is_set():
            return self._stop_lock_lost(actor, run, s, "verify", why)
        maybe = sum(1 for a in undo if a.uncertain)
        self._notify(run.id, f"{why}. Rolling back {_plural(len(undo), 'change')}"
                             + (f" ({maybe} of them may not have been applied)" if maybe else "")
                             + ".")
        return self._rollback(actor, run, s, params, undo, why)

    def _rollback(self, actor: Actor, run: RunRecord, s: _Session, params: Params,
                  undo: tuple[Applied, ...], why: str) -> RunView:
        s.enter("rollback")
        results: tuple[Applied, ...] = ()
        error: Exception | None = None
        try:
            results = _results(s.runbook.rollback(s.ctx, params, s.plan, undo), s.plan,
                               "rollback")
        except Exception as e:
            error = e
            self._event(run.id, "error", {"phase": "rollback", "type": type(e).__name__,
                                          "error": _err(e)})
        s.enter("")
        failed = [r for r in results if not r.ok]
        ok = error is None and not failed and not s.lock_lost.is_set()
        self._event(run.id, "rollback", {"results": _dump(results), "ok": ok})
        if s.lock_lost.is_set():
            return self._stop_lock_lost(actor, run, s, "rollback", why)
        if ok:
            detail = f"{why}. Rolled back {_plural(len(results), 'change')}."
            state = RunState.ROLLED_BACK
        else:
            what = _err(error) if error is not None else \
                f"{failed[0].target}: {failed[0].message}"
            detail = f"{why}. Rollback failed ({what}); the cluster needs attention."
            state = RunState.ROLLBACK_FAILED
        return self._finish(run, state, actor.user, detail)

    # ------------------------------------------------------------------ ends of a run
    def _finish(self, run: RunRecord, to: RunState, actor: str, detail: str,
                **fields: Any) -> RunView:
        """The final transition of an execution (from ``running``); when another process
        moved the run meanwhile, record a ``conflict`` and tell the notifier instead."""
        if self._move(run, to, actor, detail, from_states=[RunState.RUNNING], **fields):
            self._notify(run.id, detail)
            return self.get(run.id)
        return self._lost_race(run, to, detail)

    def _lost_race(self, run: RunRecord, to: RunState, detail: str) -> RunView:
        now = self._get(run.id)
        self._event(run.id, "conflict", {"wanted": to.value, "found": now.state.value,
                                         "detail": detail})
        message = (f"Run {run.id} ended here as {to.value.replace('_', ' ')} "
                   f"({detail.rstrip('.')}), but another process had already marked it "
                   f"{now.state.value.replace('_', ' ')}; that state was kept: check the "
                   "cluster before acting on it.")
        log.warning("%s", message)
        self._notify(run.id, message)
        return self._view(now)

    def _evidence(self, run_id: str, plan: Plan, s: _Session | None = None
                  ) -> tuple[dict[int, str | None], set[int], list[str]]:
        """What the store (``applied`` and write events) and, when given, a session's memory
        say about the apply phase: (confirmed index -> uid, maybe-applied indexes,
        unplanned write targets)."""
        rec = self._store.get_run(run_id)
        confirmed, maybe, unplanned = self._writes(plan, rec.applied if rec else [],
                                                   self._store.events(run_id))
        if s is not None:
            mem_confirmed, mem_maybe = s.evidence()
            for idx, w in mem_confirmed.items():
                confirmed[idx] = confirmed.get(idx) or w.uid
            maybe |= set(mem_maybe)
        return confirmed, maybe - set(confirmed), unplanned

    @staticmethod
    def _interrupted_detail(lead: str, plan: Plan, confirmed: Mapping[int, Any],
                            maybe: set[int], unplanned: list[str]) -> str:
        parts = [lead, "Applied: " + (", ".join(plan.changes[i].target
                                                for i in sorted(confirmed)) or "nothing") + "."]
        if maybe:
            parts.append("May have been applied: " +
                         ", ".join(plan.changes[i].target for i in sorted(maybe)) + ".")
        if unplanned:
            parts.append("Unplanned writes: " + ", ".join(unplanned) + ".")
        parts.append("An approver can roll it back.")
        return " ".join(parts)

    def _to_interrupted(self, run: RunRecord, actor: str, holder: str, why: str, lead: str,
                        s: _Session | None) -> RunView:
        """Move a running run to ``interrupted`` with what was and may have been applied."""
        plan = s.plan if s is not None else Plan.model_validate(run.plan)
        confirmed, maybe, unplanned = self._evidence(run.id, plan, s)
        detail = self._interrupted_detail(lead, plan, confirmed, maybe, unplanned)
        if not self._move(run, RunState.INTERRUPTED, actor, detail,
                          from_states=[RunState.RUNNING]):
            return self._lost_race(run, RunState.INTERRUPTED, detail)
        self._event(run.id, "interrupted", {
            "holder": holder, "why": why,
            "applied": [plan.changes[i].target for i in sorted(confirmed)],
            "maybe_applied": [plan.changes[i].target for i in sorted(maybe)],
            "unplanned": unplanned})
        view = self.get(run.id)
        self._notify(view.run, detail)
        return view

    def _stop_lock_lost(self, actor: Actor, run: RunRecord, s: _Session, phase: str,
                        why: str = "") -> RunView:
        lead = (f"The cluster lock was lost during {phase} (another process took it over or "
                "released it); k8snet stopped writing.")
        return self._to_interrupted(run, actor.user, s.holder, "the cluster lock was lost",
                                    f"{why}. {lead}" if why else lead, s)

    def _interrupt_here(self, run: RunRecord, s: _Session, err: BaseException) -> None:
        """This process stops executing ``run`` (a BaseException is propagating): mark it
        ``interrupted`` now, best effort, so it is not left ``running``."""
        why = f"{type(err).__name__} during {s.phase.name or 'execution'}"
        try:
            now = self._store.get_run(run.id)
            if now is None or now.state is not RunState.RUNNING:
                return  # it already ended (or was moved by another process): keep that
            self._to_interrupted(run, "k8snet", s.holder, why,
                                 f"The process executing this run stopped ({why}).", s)
        except Exception:
            log.warning("could not mark run %s interrupted", run.id, exc_info=True)

    # ------------------------------------------------------------------ interrupted runs
    def _running_holder(self, run_id: str, events: list[RunEvent]) -> str:
        for ev in reversed(events):
            if ev.kind == "state" and ev.data.get("to") == "running" and ev.data.get("holder"):
                return str(ev.data["holder"])
        return ""

    def _holder_dead(self, run: RunRecord, holder: str) -> str | None:
        """Why the holder of a running run is gone, or None when it may still be running.
        A pid is trusted only for a holder of this host and PID namespace
        (:func:`holder_alive`); any other holder is gone only once its lock's lease has
        expired (or the lock was released)."""
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
                ) -> tuple[dict[int, str | None], set[int], list[str]]:
        """(confirmed index -> uid of what its create returned (None when unknown),
        maybe-applied indexes, unplanned write targets) of the apply phase, from
        ``RunRecord.applied`` and the write events. A write is maybe-applied when it started
        and never ended, or ended with an error of unknown outcome."""
        n = len(plan.changes)
        confirmed: dict[int, str | None] = {}
        maybe: set[int] = set()
        for a in applied:
            idx = a.get("index")
            if not a.get("ok") or not isinstance(idx, int) or not 0 <= idx < n:
                continue
            if a.get("uncertain"):
                maybe.add(idx)
            else:
                confirmed[idx] = confirmed.get(idx) or (str(a["uid"]) if a.get("uid") else None)
        starts: dict[int, dict[str, Any]] = {}
        ends: dict[int, dict[str, Any]] = {}
        for ev in events:
            if ev.kind != "write" or ev.data.get("phase") != "apply":
                continue
            seq = int(ev.data.get("seq", 0))
            (starts if ev.data.get("stage") == "start" else ends)[seq] = ev.data
        unplanned: list[str] = []
        for seq, data in starts.items():
            idx = data.get("change")
            end = ends.get(seq) or {}
            stage = end.get("stage")
            if stage == "error" and end.get("outcome") != "unknown":
                continue  # refused by the server: not applied
            if not isinstance(idx, int) or not 0 <= idx < n:
                unplanned.append(str(data.get("target")))
                continue
            if stage == "done":
                uid = end.get("uid")
                confirmed[idx] = confirmed.get(idx) or (str(uid) if uid else None)
            else:
                maybe.add(idx)
        return confirmed, maybe - set(confirmed), unplanned

    def recover_interrupted(self, run_ids: Sequence[str] | None = None) -> list[RunView]:
        """Find runs left ``running`` by a process that is gone and move them to
        ``interrupted``, with a detail listing what was applied and what may have been
        applied (a write that started but was never confirmed). Wiring calls this at start
        for every run; the CLI (``rollback``, ``show``, ``history``) and
        :meth:`rollback_interrupted` for the runs they touch (``run_ids``), so installs
        without ``serve`` recover too.

        A holder is gone when it names this process but this process is not executing the
        run, names this host and PID namespace and a pid that no longer exists, or (anything
        else) its cluster lock is free or expired. Returns the runs this call moved.
        """
        if run_ids is None:
            runs = self._store.list_runs(limit=1000, states=[RunState.RUNNING])
        else:
            found = (self._store.get_run(r.strip()) for r in run_ids
                     if 0 < len(r.strip()) <= MAX_RUN_ID)
            runs = [r for r in found if r is not None and r.state is RunState.RUNNING]
        out: list[RunView] = []
        for run in runs:
            events = self._store.events(run.id)
            holder = self._running_holder(run.id, events)
            why = self._holder_dead(run, holder)
            if why is None:
                continue
            try:
                plan = Plan.model_validate(run.plan)
            except ValueError:
                plan = Plan()
            confirmed, maybe, unplanned = self._writes(plan, run.applied, events)
            detail = self._interrupted_detail(
                f"The process executing this run stopped ({why}).", plan, confirmed, maybe,
                unplanned)
            if not self._move(run, RunState.INTERRUPTED, "k8snet", detail,
                              from_states=[RunState.RUNNING]):
                continue
            self._event(run.id, "interrupted", {
                "holder": holder, "why": why,
                "applied": [plan.changes[i].target for i in sorted(confirmed)],
                "maybe_applied": [plan.changes[i].target for i in sorted(maybe)],
                "unplanned": unplanned})
            view = self.get(run.id)
            self._notify(view.run, detail)
            out.append(view)
        return out

    def rollback_interrupted(self, actor: Actor, run_id: str) -> RunView:
        """Roll back an ``interrupted`` run (a run still ``running`` whose process is gone is
        first recovered as interrupted): what was applied and what may have been applied
        (each undo reads the live object first: a created object that does not exist, a
        deleted one that still exists, is skipped; a create whose outcome is unknown deletes
        only an object marked as this run's). Uses the run's runbook version when installed
        with the planned source, else the generic rollback of ``bot.sdk.runbook``.

        Ends ``rolled_back``, ``rollback_failed`` or (lock lost, Ctrl-C) ``interrupted``
        again. Refused: ``role`` (approver needed), ``state`` (not interrupted), ``stale``
        (the stored plan does not match its hash: roll back by hand), ``locked``;
        InputError ``run_id``.
        """
        run = self._get(run_id)
        self._known_cluster(run)
        self._policy.require(actor.user, run.cluster, "approver", "roll back interrupted runs")
        if run.state is RunState.RUNNING:
            self.recover_interrupted([run.id])
            run = self._get(run.id)
        if run.state is not RunState.INTERRUPTED:
            raise self._refuse_state(run, "rolled back", "interrupted")
        try:
            plan = Plan.model_validate(run.plan)
        except ValueError:
            plan = Plan()
        if plan.digest() != run.plan_hash:
            raise Refused(f"Run {run.id}'s stored plan does not match its approved hash; k8snet "
                          "will not roll it back: check the cluster by hand.", reason="stale")
        cls = self._runbook_of(run)
        missing = cls is None
        if cls is not None and source_sha256(cls) != run.source_sha256:
            self._event(run.id, "source", {"planned_source_sha256": run.source_sha256,
                                           "current_source_sha256": source_sha256(cls),
                                           "same": False})
            cls = None
        params: Params
        if cls is None:
            cls, params = _GenericUndo, Params.model_construct()
        else:
            try:
                params = cls.Params.model_validate(run.params)
            except ValueError:
                params = Params.model_construct()
        with self._claim(run.id):
            holder = self._lock(run)
            try:
                s = _Session(self, run.cluster, cls, run.id, plan, record_writes=True,
                             holder=holder)
                return self._rollback_interrupted(actor, run.id, holder, s, params,
                                                  missing)
            finally:
                self._release(run.cluster, holder)

    def _rollback_interrupted(self, actor: Actor, run_id: str, holder: str, s: _Session,
                              params: Params, missing: bool) -> RunView:
        run = self._get(run_id)
        if not self._store.transition(run.id, [RunState.INTERRUPTED], RunState.RUNNING,
                                      detail="Rolling back an interrupted run."):
            raise self._refuse_state(self._get(run.id), "rolled back", "interrupted")
        run = self._get(run.id)
        self._event(run.id, "state", {"from": "interrupted", "to": "running",
                                      "actor": actor.user, "holder": holder,
                                      "detail": "Rolling back an interrupted run."})
        keeper = _LeaseKeeper(self._store, run.cluster, holder, self.lock_lease_seconds,
                              s.mark_lock_lost).start()
        try:
            plan = s.plan
            confirmed, maybe, _ = self._writes(plan, run.applied, self._store.events(run.id))
            undo: list[Applied] = []
            for idx in sorted(set(confirmed) | maybe):
                ch = plan.changes[idx]
                if self._never_happened(s.inner_reader, ch):
                    continue
                undo.append(Applied(index=idx, target=ch.target, action=ch.action, ok=True,
                                    uid=confirmed.get(idx), uncertain=idx not in confirmed,
                                    message="applied" if idx in confirmed
                                    else "may have been applied"))
            if s.cls is _GenericUndo:
                self._event(run.id, "error", {
                    "phase": "rollback", "type": "RunbookMissing",
                    "error": f"{run.runbook}@{run.version} is "
                             f"{'not installed' if missing else 'installed with another source'}"
                             "; using the generic rollback"})
            if not undo:
                self._event(run.id, "rollback", {"results": [], "ok": True})
                return self._finish(run, RunState.ROLLED_BACK, actor.user,
                                    "Interrupted run: nothing had been applied; nothing to "
                                    "roll back.")
            self._notify(run.id, f"Rolling back {_plural(len(undo), 'change')} of an "
                                 "interrupted run.")
            return self._rollback(actor, run, s, params, tuple(undo), "Interrupted run")
        except BaseException as e:
            self._interrupt_here(run, s, e)
            raise
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
