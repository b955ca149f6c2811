"""Review tests (engine, SDK generic apply/rollback, CLI identity): each test demonstrates one
suspected defect and FAILS while the defect is present. Memory backend only (lab ``Store`` +
``StoreWriter`` + ``MemRunStore``), except the CLI rollback test, which drives the real CLI
against the API emulator and a SQLite run store."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.engine.core import Actor
from bot.engine.policy import PolicyEngine
from bot.engine.registry import Registry, source_sha256
from bot.engine.runs import RunState
from bot.engine.service import RunService, RunView
from bot.sdk.errors import KubeTimeout, Refused
from bot.sdk.results import Inspection
from bot.sdk.runbook import Applied, Check, Plan, RunContext, Verification
from bot.settings import Policy, RoleMembers
from tests.lab.fake_runbooks import TestConfigMap, TestDisruptive, configmap, make_registry
from tests.lab.memstore import FakeClock, MemRunStore, StoreWriter
from tests.lab.store import StaticKubeReader, Store

OP = Actor("U0OP", "slack", "C0CHAN")
AP1 = Actor("U0AP1", "slack", "C0CHAN")
AP2 = Actor("U0AP2", "slack", "C0CHAN")

POLICY = Policy(roles={"*": RoleMembers(viewer=["*"], operator=["U0OP", "cli:*"],
                                        approver=["U0AP1", "U0AP2"])},
                approvals_required=2)


# ----------------------------------------------------------------------------- test runbooks


class ExtraWriteVerifyFails(TestConfigMap):
    """Apply also writes an object that is not in the plan; verify fails."""

    name = "review-extra-write"

    def apply(self, ctx: RunContext, params: Any, plan: Plan) -> tuple[Applied, ...]:
        out = super().apply(ctx, params, plan)
        ns = params.namespaces[0]
        ctx.writer.create("v1", "configmaps", configmap(ns, "unplanned", {"x": "1"}), ns)
        return out

    def verify(self, ctx: RunContext, params: Any, plan: Plan,
               applied: tuple[Applied, ...]) -> Verification:
        return Verification(checks=(Check(name="fails", passed=False, message="no"),))


class PlanBypassesGuard(TestConfigMap):
    """Plan reaches the unguarded writer behind ``ctx.writer``."""

    name = "review-plan-bypass"

    def plan(self, ctx: RunContext, params: Any, inspection: Inspection) -> Plan:
        ns = params.namespaces[0]
        # every attribute route to something that writes: the writer's internals, and the
        # reader's (the real adapter reads and writes)
        for holder, route in ((ctx.writer, "inner"), (ctx.writer, "_inner"),
                              (ctx.writer, "_GuardedWriter__inner"), (ctx.kube, "inner"),
                              (ctx.kube, "_inner")):
            inner = getattr(holder, route, None)
            if inner is not None and hasattr(inner, "create"):
                inner.create("v1", "configmaps", configmap(ns, "sneaky", {"x": "1"}), ns)
        return super().plan(ctx, params, inspection)


class VerifyReturnsNone(TestConfigMap):
    """A runbook bug: verify returns None instead of a Verification."""

    name = "review-verify-none"

    def verify(self, ctx: RunContext, params: Any, plan: Plan,
               applied: tuple[Applied, ...]) -> Verification:
        return None  # type: ignore[return-value]


class InterruptedAfterFirstWrite(TestConfigMap):
    """Ctrl-C in the terminal while ``k8snet apply`` runs: KeyboardInterrupt after change 1."""

    name = "review-ctrl-c"

    def apply(self, ctx: RunContext, params: Any, plan: Plan) -> tuple[Applied, ...]:
        from bot.sdk.runbook import execute_change
        execute_change(ctx.writer, plan.changes[0])
        raise KeyboardInterrupt


class EvilTwin(TestConfigMap):
    """Same name and version as ``test-configmap@1.0.0`` but different source (another
    replica, a hot-patched checkout, an operator's laptop): same plan, different apply."""

    name = "test-configmap"
    version = "1.0.0"

    def prepare_write(self, ctx: RunContext, change: Any) -> Any:
        after = dict(change.after or {})
        meta = dict(after.get("metadata") or {})
        meta["labels"] = {**(meta.get("labels") or {}), "evil": "yes"}
        after["metadata"] = meta
        return change.model_copy(update={"after": after})


EXTRA = (ExtraWriteVerifyFails, PlanBypassesGuard, VerifyReturnsNone, InterruptedAfterFirstWrite)


def registry(*extra: type) -> Registry:
    reg = make_registry()
    for cls in (*EXTRA, *extra):
        reg.register(cls)
    return reg


# ----------------------------------------------------------------------------- lab


@dataclass
class Env:
    svc: RunService
    runs: MemRunStore
    clock: FakeClock
    kube: Store
    reader: StaticKubeReader
    writer: StoreWriter

    def cm(self, ns: str, name: str = "k8snet-test") -> dict[str, Any] | None:
        return self.reader.get("v1", "configmaps", name, ns)

    def kinds(self, run_id: str) -> list[str]:
        return [e.kind for e in self.runs.events(run_id)]

    def service(self, *, holder: str, reg: Registry | None = None,
                lease: int = 60) -> RunService:
        """Another RunService (another replica) on the same run store and cluster."""
        return RunService(registry=reg or registry(), store=self.runs,
                          policy=PolicyEngine(POLICY), clusters=["lab"],
                          readers=lambda c: self.reader, writers=lambda c: self.writer,
                          holder=holder, ttl=timedelta(minutes=30), lock_lease_seconds=lease,
                          clock=self.clock)


def make_env(writer_cls: type[StoreWriter] = StoreWriter, lease: int = 60,
             reg: Registry | None = None) -> Env:
    kube = Store()
    for ns in ("default", "kube-system", "shop", "web"):
        kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    reader, writer = StaticKubeReader(kube), writer_cls(kube)
    clock = FakeClock()
    runs = MemRunStore(clock)
    holder = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
    svc = RunService(registry=reg or registry(), store=runs, policy=PolicyEngine(POLICY),
                     clusters=["lab"], readers=lambda c: reader, writers=lambda c: writer,
                     holder=holder, ttl=timedelta(minutes=30), lock_lease_seconds=lease,
                     clock=clock)
    return Env(svc, runs, clock, kube, reader, writer)


@pytest.fixture
def env() -> Iterator[Env]:
    e = make_env()
    yield e
    e.svc.shutdown()


def plan_approve(e: Env, ref: str = "test-configmap@1", raw: dict[str, Any] | None = None,
                 svc: RunService | None = None) -> RunView:
    svc = svc or e.svc
    view = svc.plan(OP, "lab", ref, raw or {"namespaces": "shop"})
    assert view.run.state is RunState.AWAITING_APPROVAL, view.run.detail
    view = svc.approve(AP1, view.run.id)
    assert view.run.state is RunState.APPROVED, view.run.detail
    return view


def wait_for(cond: Any, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def force_running(e: Env, run_id: str, holder: str) -> None:
    """Put an approved run in ``running`` exactly as ``_execute_locked`` does."""
    assert e.runs.transition(run_id, [RunState.APPROVED], RunState.RUNNING, detail="Applying.")
    e.runs.append_event(run_id, "state", {"from": "approved", "to": "running",
                                          "actor": OP.user, "holder": holder,
                                          "detail": "Applying."})


# ============================================================================ the tests


class TimeoutAfterWrite(StoreWriter):
    """The POST reaches the API server and is stored, but the answer is lost: the adapter
    raises KubeTimeout ("The request may have reached the server")."""

    def create(self, api_version: str, plural: str, obj: dict[str, Any],
               namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        out = super().create(api_version, plural, obj, namespace, dry_run=dry_run)
        if not dry_run:
            raise KubeTimeout("The API server of cluster 'lab' did not answer within 10 s "
                              "(create configmaps). The request may have reached the server: "
                              "read the object before trying again.", cluster="lab")
        return out


def test_ambiguous_write_timeout_is_reported_as_nothing_changed() -> None:
    """service.py:_apply_verify (762-799) + sdk/runbook.py:271: a timed-out write is treated
    as 'not applied': no rollback, and the run says 'Nothing was changed'."""
    e = make_env(TimeoutAfterWrite)
    view = plan_approve(e)
    view = e.svc.execute(OP, view.run.id)
    live = e.cm("shop")
    if live is not None:
        assert "Nothing was changed" not in view.run.detail and \
            view.run.state is not RunState.FAILED, (
                f"run ended {view.run.state.value}: {view.run.detail!r}, but "
                "configmap/shop/k8snet-test exists (the timed-out create reached the server)")


def test_write_whose_done_event_failed_is_reported_as_nothing_changed(env: Env) -> None:
    """guards.py:106-110 + sdk/runbook.py:271-274 + service.py:794-799: the write is sent, then
    recording its 'done' event fails (a DatabaseError is a K8snetError); the generic apply
    reports the change as failed and the engine concludes 'Nothing was changed'."""
    from bot.adapters.db.errors import DatabaseUnreachable

    real = env.runs.append_event
    failed: list[int] = []

    def flaky(run_id: str, kind: str, data: dict[str, Any]) -> int:
        if kind == "write" and data.get("stage") == "done" and not failed:
            failed.append(1)
            raise DatabaseUnreachable("the database did not answer (blip)")
        return real(run_id, kind, data)

    view = plan_approve(env)
    env.runs.append_event = flaky  # type: ignore[method-assign]
    out = env.svc.execute(OP, view.run.id)
    if env.cm("shop") is not None:
        assert "Nothing was changed" not in out.run.detail, (
            f"run ended {out.run.state.value}: {out.run.detail!r}, but the ConfigMap was "
            "created")


def test_approved_run_can_be_executed_days_after_its_approval_window(env: Env) -> None:
    """service.py:646-669 / 596-608: expiry is only checked while awaiting approval; an
    approved run never expires and can be applied at any later time."""
    view = plan_approve(env)
    env.clock.advance(days=3)
    with pytest.raises(Refused) as ei:
        out = env.svc.execute(OP, view.run.id)
        pytest.fail(f"executed 3 days after approval: {out.run.state.value} "
                    f"(expires_at was {view.run.expires_at})")
    assert ei.value.reason == "expired"


def test_lock_lost_during_apply_does_not_stop_writes(tmp_path: Path) -> None:
    """service.py:260-291, 731-738: when the lease cannot be renewed (another holder took the
    expired lock) the keeper only appends ``lock_lost``; apply goes on writing, so two
    mutating runs overlap on one cluster."""
    e = make_env(lease=3)
    gate = tmp_path / "gate"
    view = plan_approve(e, "test-slow", {"namespace": "default", "gate_file": str(gate),
                                         "hold_seconds": "20"})
    rid = view.run.id
    fut = e.svc.submit_execute(OP, rid)
    try:
        wait_for(lambda: ("create", "slow-1") in [(c.verb, c.name) for c in e.writer.writes],
                 what="the first write")
        e.clock.advance(seconds=30)  # renewals stalled (paused VM, suspended laptop...)
        assert e.runs.acquire_lock("lab", "otherhost:1:beef:r-other", 600)
        wait_for(lambda: "lock_lost" in e.kinds(rid), what="lock_lost")
        n_before = len(e.writer.writes)
    finally:
        gate.touch()
    out = fut.result(timeout=30)
    late = [(c.verb, c.name) for c in e.writer.writes[n_before:]]
    assert late == [] and out.run.state is not RunState.SUCCEEDED, (
        f"after losing the cluster lock to another holder the run still wrote {late} and "
        f"ended {out.run.state.value}")
    e.svc.shutdown()


def test_live_run_marked_interrupted_by_other_replica_keeps_writing(tmp_path: Path) -> None:
    """service.py:836-854 + 786/796/825 (``_move`` result ignored): replica B declares A's
    live run interrupted once A's lease lapsed; A keeps applying and its final transition
    silently fails, so the record says 'interrupted' while the run actually completed and an
    approver may now roll it back concurrently."""
    e = make_env(lease=3)
    gate = tmp_path / "gate"
    view = plan_approve(e, "test-slow", {"namespace": "default", "gate_file": str(gate),
                                         "hold_seconds": "20"})
    rid = view.run.id
    fut = e.svc.submit_execute(OP, rid)
    try:
        wait_for(lambda: ("create", "slow-1") in [(c.verb, c.name) for c in e.writer.writes],
                 what="the first write")
        e.clock.advance(seconds=30)
        b = e.service(holder="otherhost:42:cafe0000")
        recovered = [v.run.id for v in b.recover_interrupted()]
        n_before = len(e.writer.writes)
    finally:
        gate.touch()
    out = fut.result(timeout=30)
    late = [(c.verb, c.name) for c in e.writer.writes[n_before:]]
    final = e.runs.get_run(rid)
    assert final is not None
    assert not (rid in recovered and late), (
        f"run was marked interrupted by another replica while alive; it then wrote {late}; "
        f"stored state {final.state.value}, execute returned {out.run.state.value}; last "
        f"state events: {[ev.data for ev in e.runs.events(rid) if ev.kind == 'state'][-2:]}")
    e.svc.shutdown()


def test_recover_trusts_pid_over_a_live_lease(env: Env) -> None:
    """service.py:111-132, 842-847: a holder naming this hostname and a pid absent from *this*
    PID namespace is declared dead and its live lock released, without looking at the lease.
    Containers with a shared hostname (hostNetwork pods, docker --network host, CLI on the
    host) have separate PID namespaces, so a live run elsewhere is marked interrupted."""
    view = plan_approve(env)
    rid = view.run.id
    holder = f"{socket.gethostname()}:{dead_pid()}:abcd1234:{rid}"
    assert env.runs.acquire_lock("lab", holder, 600)  # a live, freshly renewed lease
    force_running(env, rid, holder)
    recovered = [v.run.id for v in env.svc.recover_interrupted()]
    assert recovered == [] and env.runs.lock_holder("lab") == holder, (
        f"recovered {recovered}, lock now held by {env.runs.lock_holder('lab')!r}: a run whose "
        "lease is live was declared dead from the pid alone")


def test_rollback_interrupted_without_the_runbook_version_crashes(env: Env) -> None:
    """service.py:965 + 196-200: the documented fallback ``cls = ... or Runbook`` instantiates
    the abstract ``Runbook`` -> TypeError after the run was moved interrupted -> running; the
    run is left 'running' and nothing is rolled back."""
    view = plan_approve(env, "review-ctrl-c")
    rid = view.run.id
    with pytest.raises(KeyboardInterrupt):  # the process stops after change 0 was written
        env.svc.execute(OP, rid)
    # execute() marks the run interrupted before the KeyboardInterrupt propagates (see
    # test_ctrl_c_during_apply_leaves_run_running_and_cluster_unlocked); a process killed
    # harder is found by recover_interrupted instead: either way it is interrupted now
    assert [v.run.id for v in env.svc.recover_interrupted()] in ([], [rid])
    stored = env.runs.get_run(rid)
    assert stored is not None and stored.state is RunState.INTERRUPTED
    assert env.cm("shop") is not None
    other = env.service(holder=f"{socket.gethostname()}:{os.getpid()}:feed0000",
                        reg=Registry())  # a replica where this version is not installed
    try:
        out = other.rollback_interrupted(AP1, rid)
    except TypeError as err:
        stuck = env.runs.get_run(rid)
        pytest.fail(f"rollback_interrupted raised {err!r}; run left "
                    f"{stuck.state.value if stuck else None}, object still present: "
                    f"{env.cm('shop') is not None}")
    assert out.run.state is RunState.ROLLED_BACK and env.cm("shop") is None


def test_generic_rollback_of_interrupted_create_deletes_foreign_object(env: Env) -> None:
    """sdk/runbook.py:332-335 + service.py:976-982, 1001-1011: a create that 'may have been
    applied' is undone by deleting whatever now has that name; existence is the only check,
    so an object someone else created is deleted."""
    view = plan_approve(env, raw={"namespaces": "shop", "name": "victim"})
    rid = view.run.id
    holder = f"{env.svc.holder}:{rid}"
    force_running(env, rid, holder)
    env.runs.append_event(rid, "write", {
        "seq": 1, "stage": "start", "phase": "apply", "verb": "create", "api_version": "v1",
        "plural": "configmaps", "namespace": "shop", "name": "victim",
        "target": "configmaps/shop/victim", "change": 0})
    # the process dies with the POST in flight; it was answered 409 AlreadyExists because
    # team-a created their own ConfigMap of that name
    env.kube.add(configmap("shop", "victim", {"owner": "team-a"}, labels={"team": "a"}))
    assert [v.run.id for v in env.svc.recover_interrupted()] == [rid]
    out = env.svc.rollback_interrupted(AP1, rid)
    assert env.cm("shop", "victim") is not None, (
        f"rollback ({out.run.state.value}: {out.run.detail!r}) deleted team-a's ConfigMap, "
        "which this run never created")


def test_unplanned_write_in_apply_is_allowed_and_not_rolled_back(env: Env) -> None:
    """guards.py:86-110 + service.py:224-236: apply may write objects that are not in the
    approved plan (recorded with change=None); rollback undoes only planned changes, so the
    run ends 'rolled_back' with the unplanned object still on the cluster."""
    view = plan_approve(env, "review-extra-write")
    out = env.svc.execute(OP, view.run.id)
    assert out.run.state is RunState.ROLLED_BACK, out.run.detail
    assert env.cm("shop") is None
    assert env.cm("shop", "unplanned") is None, (
        f"run says {out.run.detail!r} but configmap/shop/unplanned (never approved) is still "
        "there")


def test_runbook_can_write_for_real_during_plan_via_writer_inner(env: Env) -> None:
    """guards.py:68-76: ``GuardedWriter.inner`` (and ``phase_getter``) are public attributes
    of the object handed to runbooks as ``ctx.writer``; plan can write for real, unaudited."""
    view = env.svc.plan(OP, "lab", "review-plan-bypass", {"namespaces": "shop"})
    assert view.run.state is RunState.AWAITING_APPROVAL
    assert env.cm("shop", "sneaky") is None, (
        "a real (non-dry-run) write happened during plan, before any approval; audit events: "
        f"{env.kinds(view.run.id)}")


def test_execute_runs_other_source_than_planned_without_notice(env: Env) -> None:
    """service.py:684-686, 691: execution picks the class by name@version only; a different
    source with the same version (other replica / checkout) runs and the audit still names the
    planned source_sha256."""
    view = plan_approve(env, "test-configmap@1.0.0")
    reg2 = Registry()
    reg2.register(EvilTwin)
    replica = env.service(holder="otherhost:7:0000beef", reg=reg2)
    assert source_sha256(EvilTwin) != view.run.source_sha256
    out = replica.execute(OP, view.run.id)
    recorded = [ev for ev in env.runs.events(view.run.id)
                if source_sha256(EvilTwin) in str(ev.data)]
    assert out.run.state is RunState.STALE or recorded, (
        f"run {out.run.state.value}: code with sha256 {source_sha256(EvilTwin)[:12]} ran, the "
        f"audit only names {view.run.source_sha256[:12]}; labels written: "
        f"{(env.cm('shop') or {}).get('metadata', {}).get('labels')}")


def test_execute_applies_stored_plan_without_checking_its_hash(env: Env) -> None:
    """service.py:698, 715: the re-plan is compared with ``run.plan_hash``, but what is applied
    is ``run.plan`` (a mutable column) whose digest is never checked against that hash."""
    view = plan_approve(env)
    rid = view.run.id
    stored = env.runs._runs[rid]
    ch = stored.plan["changes"][0]
    ch["namespace"] = "web"
    ch["after"]["metadata"]["namespace"] = "web"
    assert stored.plan_hash == view.run.plan_hash
    out = env.svc.execute(OP, rid)
    assert env.cm("web") is None, (
        f"applied a change to namespace web that nobody approved (approved plan targets shop); "
        f"run {out.run.state.value}")


def test_verify_returning_wrong_type_escapes_and_leaves_run_running(env: Env) -> None:
    """service.py:774-783: ``ver.passed`` is read outside the try; a runbook bug in verify's
    return value raises out of execute() after the writes, with no rollback, run 'running'."""
    view = plan_approve(env, "review-verify-none")
    try:
        out = env.svc.execute(OP, view.run.id)
    except Exception as err:
        run = env.runs.get_run(view.run.id)
        pytest.fail(f"execute raised {err!r}; run left {run.state.value if run else None}, "
                    f"applied object present: {env.cm('shop') is not None}")
    assert out.run.state in (RunState.ROLLED_BACK, RunState.FAILED)


def test_ctrl_c_during_apply_leaves_run_running_and_cluster_unlocked(env: Env) -> None:
    """service.py:664-669, 734-738, 745-750: a BaseException (Ctrl-C in ``k8snet apply``) passes
    the ``except Exception``; the finally blocks release the cluster lock while the run stays
    'running' half-applied, and rollback_interrupted refuses it (only serve() ever calls
    recover_interrupted)."""
    view = plan_approve(env, "review-ctrl-c", {"namespaces": "shop,web"})
    rid = view.run.id
    with pytest.raises(KeyboardInterrupt):
        env.svc.execute(OP, rid)
    run = env.runs.get_run(rid)
    assert run is not None
    try:
        env.svc.rollback_interrupted(AP1, rid)
        rollback = "accepted"
    except Refused as err:
        rollback = f"refused: {err}"
    assert run.state is not RunState.RUNNING, (
        f"run left running after Ctrl-C with configmap/shop applied "
        f"({env.cm('shop') is not None}); cluster lock holder: {env.runs.lock_holder('lab')!r}; "
        f"rollback {rollback}")


def test_run_whose_process_died_cannot_be_rolled_back_without_serve(env: Env) -> None:
    """cli.py:146-158 (``k8snet rollback``) -> service.py:932-945: rollback_interrupted needs
    state 'interrupted', but only ``serve()`` (slack/server.py:203) ever calls
    recover_interrupted; a run whose ``k8snet apply`` process was killed stays 'running' and
    the CLI can never roll it back (CLI-only installs have no serve at all)."""
    view = plan_approve(env)
    rid = view.run.id
    holder = f"{socket.gethostname()}:{dead_pid()}:abcd1234:{rid}"  # the killed CLI process
    force_running(env, rid, holder)
    try:
        out = env.svc.rollback_interrupted(AP1, rid)  # what `k8snet rollback <id>` calls
    except Refused as err:
        pytest.fail(f"`k8snet rollback` refused a run whose process is dead: {err}")
    assert out.run.state is RunState.ROLLED_BACK


def test_cli_identity_comes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """cli.py:75-80: ``getpass.getuser()`` reads $LOGNAME/$USER first, so any terminal user can
    act (role checks, audit ``actor``) as any ``cli:<name>``."""
    from bot.cli import _actor

    real = pwd.getpwuid(os.getuid()).pw_name
    fake = "alice" if real != "alice" else "mallory"
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, fake)
    assert _actor().user == f"cli:{real}", f"CLI acts as {_actor().user!r}, OS user is {real!r}"


def test_reject_after_own_approval_is_missing_from_approvals(env: Env) -> None:
    """service.py:581-583: the result of ``add_approval`` is ignored in reject(); an approver who
    already approved can reject, the run becomes 'rejected', but the approvals audit rows only
    show their approval.

    Resolution chosen: the approvals table keeps one decision per person and run, so such a
    reject is refused (reason ``duplicate``) and nothing changes; a run is never rejected
    without its reject row."""
    assert TestDisruptive.risk.value == "disruptive"  # needs 2 approvals (POLICY)
    view = env.svc.plan(OP, "lab", "test-disruptive", {"namespaces": "shop"})
    env.svc.approve(AP1, view.run.id)
    with pytest.raises(Refused) as ei:
        env.svc.reject(AP1, view.run.id, "changed my mind")
    assert ei.value.reason == "duplicate"
    out = env.svc.get(view.run.id)
    decisions = [(a.approver, a.decision) for a in out.approvals]
    assert out.run.state is not RunState.REJECTED or ("U0AP1", "reject") in decisions, (
        f"run rejected by U0AP1 but the approvals rows are {decisions}")
    assert out.run.state is RunState.AWAITING_APPROVAL and decisions == [("U0AP1", "approve")]
    assert [e.data["decision"] for e in env.runs.events(view.run.id)
            if e.kind == "approval"] == ["approve"]


# ============================================================================ around the fixes


def test_expire_due_covers_approved_runs_past_their_execution_deadline(env: Env) -> None:
    view = plan_approve(env)
    assert view.run.expires_at == env.clock() + timedelta(minutes=30)  # from the approval
    env.clock.advance(minutes=29)
    assert env.svc.expire_due() == []
    env.clock.advance(minutes=2)
    assert [v.run.id for v in env.svc.expire_due()] == [view.run.id]
    assert env.runs.get_run(view.run.id).state is RunState.EXPIRED  # type: ignore[union-attr]
    assert env.writer.writes == []


def test_holder_pid_is_trusted_only_in_this_pid_namespace() -> None:
    from bot.engine.service import default_holder, holder_alive, pidns_id

    host, ns = socket.gethostname(), pidns_id()
    assert ns and default_holder().endswith(f":ns={ns}")
    assert holder_alive(f"{host}:{dead_pid()}:abcd:ns={ns}:r-x") is False
    assert holder_alive(f"{host}:{os.getpid()}:abcd:ns={ns}") is True
    assert holder_alive(f"{host}:{dead_pid()}:abcd:ns=000000000000:r-x") is None
    assert holder_alive(f"{host}:{dead_pid()}:abcd:r-x") is None
    assert holder_alive(f"elsewhere:{dead_pid()}:abcd:ns={ns}") is None


def _interrupted_create(e: Env, name: str, done_uid: str | None) -> str:
    """A run whose process died after sending the create of ``name`` (confirmed with
    ``done_uid``, or never answered when None)."""
    view = plan_approve(e, raw={"namespaces": "shop", "name": name})
    rid = view.run.id
    force_running(e, rid, f"{e.svc.holder}:{rid}")
    start = {"seq": 1, "stage": "start", "phase": "apply", "verb": "create",
             "api_version": "v1", "plural": "configmaps", "namespace": "shop", "name": name,
             "target": f"configmaps/shop/{name}", "change": 0}
    e.runs.append_event(rid, "write", start)
    if done_uid is not None:
        e.runs.append_event(rid, "write", {**start, "stage": "done", "uid": done_uid})
    assert [v.run.id for v in e.svc.recover_interrupted()] == [rid]
    return rid


def test_interrupted_create_with_the_run_label_is_deleted(env: Env) -> None:
    from bot.sdk.runbook import RUN_ID_LABEL, run_label

    view = plan_approve(env, raw={"namespaces": "shop", "name": "ours"})
    rid = view.run.id
    force_running(env, rid, f"{env.svc.holder}:{rid}")
    env.runs.append_event(rid, "write", {
        "seq": 1, "stage": "start", "phase": "apply", "verb": "create", "api_version": "v1",
        "plural": "configmaps", "namespace": "shop", "name": "ours",
        "target": "configmaps/shop/ours", "change": 0})
    env.kube.add(configmap("shop", "ours", {"value": "on"},
                           labels={RUN_ID_LABEL: run_label(rid) or ""}))
    assert [v.run.id for v in env.svc.recover_interrupted()] == [rid]
    out = env.svc.rollback_interrupted(AP1, rid)
    assert out.run.state is RunState.ROLLED_BACK, out.run.detail
    assert env.cm("shop", "ours") is None


def test_interrupted_confirmed_create_deletes_only_its_uid(env: Env) -> None:
    rid = _interrupted_create(env, "mine", done_uid="uid-of-ours")
    env.kube.add({**configmap("shop", "mine", {"owner": "b"}),
                  "metadata": {"name": "mine", "namespace": "shop", "uid": "uid-of-theirs"}})
    out = env.svc.rollback_interrupted(AP1, rid)
    assert out.run.state is RunState.ROLLED_BACK, out.run.detail
    assert env.cm("shop", "mine") is not None  # recreated by someone else: not ours
    rb = [ev.data for ev in env.runs.events(rid) if ev.kind == "rollback"][-1]
    assert "left untouched" in rb["results"][0]["message"]


def test_unknown_outcome_create_with_no_mark_is_left_and_said(env: Env) -> None:
    rid = _interrupted_create(env, "maybe", done_uid=None)
    env.kube.add(configmap("shop", "maybe", {"value": "on"}))
    out = env.svc.rollback_interrupted(AP1, rid)
    assert out.run.state is RunState.ROLLBACK_FAILED
    assert "configmap/shop/maybe: left in place" in out.run.detail
    assert env.cm("shop", "maybe") is not None


class RollbackWritesElsewhere(TestConfigMap):
    """Verify fails; rollback also deletes an object that is not in the plan."""

    name = "review-rollback-elsewhere"

    def verify(self, ctx: RunContext, params: Any, plan: Plan,
               applied: tuple[Applied, ...]) -> Verification:
        return Verification(checks=(Check(name="fails", passed=False, message="no"),))

    def rollback(self, ctx: RunContext, params: Any, plan: Plan,
                 applied: tuple[Applied, ...]) -> tuple[Applied, ...]:
        ctx.writer.delete("v1", "configmaps", "bystander", "shop")
        return super().rollback(ctx, params, plan, applied)


def test_rollback_may_not_write_outside_the_plan() -> None:
    e = make_env(reg=registry(RollbackWritesElsewhere))
    e.kube.add(configmap("shop", "bystander", {"x": "1"}))
    view = plan_approve(e, "review-rollback-elsewhere")
    out = e.svc.execute(OP, view.run.id)
    assert out.run.state is RunState.ROLLBACK_FAILED, out.run.detail
    assert "not in the approved plan" in out.run.detail
    assert e.cm("shop", "bystander") is not None
    e.svc.shutdown()


def test_final_transition_lost_is_recorded_and_told(env: Env) -> None:
    """Another process moves the run while this one executes: the end is a ``conflict``
    event, the stored state is kept."""
    seen: list[str] = []

    class Notes:
        def run_changed(self, view: RunView, message: str) -> None:
            seen.append(message)

    env.svc.notifier = Notes()
    view = plan_approve(env)
    rid = view.run.id
    real = env.runs.append_event

    def meddle(run_id: str, kind: str, data: dict[str, Any]) -> int:
        if kind == "verify":  # as if a replica had declared it interrupted just now
            env.runs.transition(run_id, [RunState.RUNNING], RunState.INTERRUPTED)
        return real(run_id, kind, data)

    env.runs.append_event = meddle  # type: ignore[method-assign]
    out = env.svc.execute(OP, rid)
    assert out.run.state is RunState.INTERRUPTED
    conflict = [ev.data for ev in env.runs.events(rid) if ev.kind == "conflict"]
    assert conflict and conflict[0]["wanted"] == "succeeded"
    assert "another process had already marked it interrupted" in seen[-1]
