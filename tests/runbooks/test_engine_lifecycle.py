"""RunService lifecycle with the test runbooks (``tests.lab.fake_runbooks``) on an in-memory
run store, against two cluster backends:

- ``memory``: ``StaticKubeReader`` + ``StoreWriter`` over one lab ``Store`` (no HTTP);
- ``emulator``: the API emulator (scenario a) with the real ``KubeAdapter`` as reader and
  writer, so dry runs, patches and deletes go over HTTP; writes are counted in its request log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kube import KubeAdapter
from bot.engine.core import Actor
from bot.engine.guards import GuardedWriter
from bot.engine.policy import PolicyEngine
from bot.engine.runs import RunState
from bot.engine.service import RunService, RunView, default_holder
from bot.sdk.errors import InputError, KubeNotFound, Refused
from bot.sdk.runbook import PhaseError, strip_noise
from bot.settings import Policy, RoleMembers
from tests.lab.emulator import Emulator
from tests.lab.fake_runbooks import configmap, make_registry
from tests.lab.memstore import FakeClock, MemRunStore, StoreWriter
from tests.lab.store import StaticKubeReader, Store

OP = Actor("U0OP", "slack", "C0CHAN")
OP2 = Actor("U0OP2", "slack", "C0CHAN")
AP1 = Actor("U0AP1", "slack", "C0CHAN")
AP2 = Actor("U0AP2", "slack", "C0CHAN")
VIEWER = Actor("U0VIEW", "slack", "C0CHAN")
CLI = Actor("cli:alice", "cli", "terminal")

POLICY = Policy(roles={"*": RoleMembers(viewer=["*"], operator=["U0OP", "U0OP2", "cli:*"],
                                        approver=["U0AP1", "U0AP2"])},
                approvals_required=2)


class Notes:
    """A RunNotifier recording (run id, state, message)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def run_changed(self, view: RunView, message: str) -> None:
        with self._lock:
            self.seen.append((view.run.id, view.run.state.value, message))


@dataclass
class Lab:
    """One engine on one cluster backend."""

    svc: RunService
    runs: MemRunStore
    clock: FakeClock
    notes: Notes
    get: Callable[[str, str], dict[str, Any] | None]
    put: Callable[[dict[str, Any]], None]
    writes: Callable[[], list[tuple[str, str]]]
    dry_runs: Callable[[], int]
    clear: Callable[[], None]
    extra: dict[str, Any] = field(default_factory=dict)

    def cm(self, ns: str, name: str = "k8snet-test") -> dict[str, Any] | None:
        return self.get(ns, name)

    def events(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [e.data | {"_kind": e.kind} for e in self.runs.events(run_id)
                if kind is None or e.kind == kind]


def _memory(tmp_path: Path) -> tuple[Any, ...]:
    store = Store()
    for ns in ("default", "kube-system", "shop", "web"):
        store.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    reader, writer = StaticKubeReader(store), StoreWriter(store)

    def get(ns: str, name: str) -> dict[str, Any] | None:
        return reader.get("v1", "configmaps", name, ns)

    def writes() -> list[tuple[str, str]]:
        return [(c.verb, c.name) for c in writer.writes]

    def clear() -> None:
        writer.log.clear()

    return (reader, writer, get, store.add, writes,
            lambda: sum(1 for c in writer.log if c.dry_run), clear, {"writer": writer})


def _emulator(tmp_path: Path) -> tuple[Any, ...]:
    emu = Emulator.from_scenario("a").start()
    emu.add(*({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
              for ns in ("shop", "web")))
    kc = emu.write_kubeconfig(tmp_path / "kubeconfig", context="lab")
    kube = KubeAdapter("lab", kubeconfig=str(kc), context="lab")

    def get(ns: str, name: str) -> dict[str, Any] | None:
        return emu.get_object("v1", "configmaps", name, ns)

    def put(obj: dict[str, Any]) -> None:
        emu.add(obj)

    def calls() -> list[Any]:
        return [r for r in emu.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]

    def writes() -> list[tuple[str, str]]:
        return [(r.method, r.path.rsplit("/", 1)[-1]) for r in calls()
                if r.query.get("dryRun") != "All"]

    return (kube, kube, get, put, writes,
            lambda: sum(1 for r in calls() if r.query.get("dryRun") == "All"),
            emu.clear_requests, {"emulator": emu})


@pytest.fixture(params=["memory", "emulator"])
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lab]:
    reader, writer, get, put, writes, dry_runs, clear, extra = (
        _memory if request.param == "memory" else _emulator)(tmp_path)
    clock = FakeClock()
    runs = MemRunStore(clock)
    notes = Notes()
    svc = RunService(registry=make_registry(), store=runs, policy=PolicyEngine(POLICY),
                     clusters=["lab", "other"], readers=lambda c: reader,
                     writers=lambda c: writer, holder=default_holder(),
                     ttl=timedelta(minutes=30), lock_lease_seconds=60, notifier=notes,
                     clock=clock)
    yield Lab(svc, runs, clock, notes, get, put, writes, dry_runs, clear, extra)
    svc.shutdown()
    if "emulator" in extra:
        extra["emulator"].stop()


def plan_approve(lab: Lab, ref: str = "test-configmap@1", raw: dict[str, Any] | None = None,
                 approvers: tuple[Actor, ...] = (AP1,)) -> RunView:
    view = lab.svc.plan(OP, "lab", ref, raw or {"namespaces": "shop,web", "value": "x"})
    assert view.run.state is RunState.AWAITING_APPROVAL, view.run.detail
    for a in approvers:
        view = lab.svc.approve(a, view.run.id)
    assert view.run.state is RunState.APPROVED
    return view


# ------------------------------------------------------------------------------ happy path


def test_plan_approve_execute_succeeds(lab: Lab) -> None:
    view = lab.svc.plan(OP, "lab", "test-configmap@1", {"namespaces": "shop,web",
                                                         "value": "x"})
    run = view.run
    assert run.state is RunState.AWAITING_APPROVAL
    assert run.requester == "U0OP" and run.channel == "C0CHAN" and run.cluster == "lab"
    assert (run.runbook, run.version, run.risk) == ("test-configmap", "1.1.0", "low")
    assert run.approvals_required == 1 and view.approvals_needed == 1
    assert run.expires_at == lab.clock() + timedelta(minutes=30)
    assert [c.target for c in view.plan.changes] == ["configmap/shop/k8snet-test",
                                                     "configmap/web/k8snet-test"]
    assert run.plan_hash == view.plan.digest() and len(run.source_sha256) == 64
    assert view.runbook_summary == "Write one test ConfigMap per namespace (1.1)."
    assert lab.writes() == []

    view = lab.svc.approve(AP1, run.id)
    assert view.run.state is RunState.APPROVED and view.approvals_needed == 0
    assert view.approved_by == ("U0AP1",)
    assert lab.writes() == []  # approving does not execute

    view = lab.svc.execute(OP, run.id)
    assert view.run.state is RunState.SUCCEEDED, view.run.detail
    assert view.run.detail == "Applied 2 changes; verification passed (2 checks)."
    for ns in ("shop", "web"):
        obj = lab.cm(ns)
        assert obj is not None and obj["data"] == {"value": "x", "replicas": "1",
                                                   "enabled": "true"}
    assert len(lab.writes()) == 2
    assert [a["target"] for a in view.run.applied] == ["configmap/shop/k8snet-test",
                                                       "configmap/web/k8snet-test"]
    kinds = [e["_kind"] for e in lab.events(run.id)]
    assert kinds[:4] == ["planned", "state", "approval", "state"]
    assert {"replan", "write", "applied", "verify"} <= set(kinds)
    planned = lab.events(run.id, "planned")[0]
    assert planned["runbook"] == "test-configmap" and planned["version"] == "1.1.0"
    assert planned["source_sha256"] == run.source_sha256
    assert planned["params"]["namespaces"] == ["shop", "web"]
    assert planned["plan_hash"] == run.plan_hash
    states = [(e["from"], e["to"]) for e in lab.events(run.id, "state")]
    assert states == [("planned", "awaiting_approval"), ("awaiting_approval", "approved"),
                      ("approved", "running"), ("running", "succeeded")]
    writes = lab.events(run.id, "write")
    assert [(w["stage"], w["change"]) for w in writes] == [
        ("start", 0), ("done", 0), ("start", 1), ("done", 1)]
    assert lab.runs.lock_holder("lab") is None  # released
    assert lab.notes.seen[-1] == (run.id, "succeeded", view.run.detail)


def test_check_apply_check_apply(lab: Lab) -> None:
    """kubernetes.core style: changed, then not changed."""
    first = plan_approve(lab)
    assert lab.svc.execute(CLI, first.run.id).run.state is RunState.SUCCEEDED
    again = lab.svc.plan(OP, "lab", "test-configmap@1", {"namespaces": "shop,web",
                                                          "value": "x"})
    assert again.run.state is RunState.NOTHING_TO_DO
    assert again.plan.empty and again.run.approvals_required == 0
    # a different value changes again (a patch of both), then settles
    second = plan_approve(lab, raw={"namespaces": "shop,web", "value": "y"})
    assert [c.action for c in second.plan.changes] == ["patch", "patch"]
    assert lab.svc.execute(OP, second.run.id).run.state is RunState.SUCCEEDED
    third = lab.svc.plan(OP, "lab", "test-configmap@1", {"namespaces": "shop,web",
                                                          "value": "y"})
    assert third.run.state is RunState.NOTHING_TO_DO


def test_empty_plan_is_nothing_to_do_and_asks_no_approval(lab: Lab) -> None:
    view = lab.svc.plan(OP, "lab", "test-readonly", {"namespaces": "shop"})
    assert view.run.state is RunState.NOTHING_TO_DO
    assert view.run.approvals_required == 0 and view.approvals_needed == 0
    assert view.run.expires_at is None
    assert view.run.detail == "Nothing to do: the cluster already matches."
    with pytest.raises(Refused) as ei:
        lab.svc.approve(AP1, view.run.id)
    assert ei.value.reason == "state" and "nothing to do" in str(ei.value)


def test_plan_writes_are_forced_to_dry_runs(lab: Lab) -> None:
    view = lab.svc.plan(OP, "lab", "test-plan-writes", {"namespaces": "shop"})
    assert view.run.state is RunState.AWAITING_APPROVAL
    assert lab.cm("shop", "sneaky") is None
    assert lab.writes() == [] and lab.dry_runs() == 1


# ------------------------------------------------------------------------------ approvals


def test_self_approval_is_refused_even_for_low_risk(lab: Lab) -> None:
    view = lab.svc.plan(AP1, "lab", "test-configmap", {"namespaces": "shop"})
    with pytest.raises(Refused) as ei:
        lab.svc.approve(AP1, view.run.id)
    assert ei.value.reason == "self-approval"
    assert lab.svc.get(view.run.id).run.state is RunState.AWAITING_APPROVAL


def test_approver_role_is_required(lab: Lab) -> None:
    view = lab.svc.plan(OP, "lab", "test-configmap", {"namespaces": "shop"})
    for who in (OP2, VIEWER):
        with pytest.raises(Refused) as ei:
            lab.svc.approve(who, view.run.id)
        assert ei.value.reason == "role"
        assert str(ei.value) == "You need the approver role on cluster lab to approve runs."
    assert lab.svc.get(view.run.id).approvals == ()


def test_disruptive_needs_n_approvals_and_refuses_duplicates(lab: Lab) -> None:
    view = lab.svc.plan(OP, "lab", "test-disruptive", {"namespaces": "shop"})
    assert view.run.approvals_required == 2 and view.approvals_needed == 2
    view = lab.svc.approve(AP1, view.run.id)
    assert view.run.state is RunState.AWAITING_APPROVAL and view.approvals_needed == 1
    with pytest.raises(Refused) as ei:
        lab.svc.approve(AP1, view.run.id)
    assert ei.value.reason == "duplicate"
    view = lab.svc.approve(AP2, view.run.id)
    assert view.run.state is RunState.APPROVED and view.approved_by == ("U0AP1", "U0AP2")
    assert all(a.plan_hash == view.run.plan_hash for a in view.approvals)
    with pytest.raises(Refused) as ei:
        lab.svc.approve(AP2, view.run.id)
    assert ei.value.reason == "state"


def test_expired_approval_is_refused_and_the_run_expires(lab: Lab) -> None:
    view = lab.svc.plan(OP, "lab", "test-configmap", {"namespaces": "shop"})
    lab.clock.advance(minutes=31)
    with pytest.raises(Refused) as ei:
        lab.svc.approve(AP1, view.run.id)
    assert ei.value.reason == "expired"
    assert lab.svc.get(view.run.id).run.state is RunState.EXPIRED
    assert lab.svc.get(view.run.id).approvals == ()


def test_expire_due(lab: Lab) -> None:
    old = lab.svc.plan(OP, "lab", "test-configmap", {"namespaces": "shop"})
    lab.clock.advance(minutes=20)
    young = lab.svc.plan(OP, "lab", "test-configmap", {"namespaces": "web"})
    lab.clock.advance(minutes=11)
    expired = lab.svc.expire_due()
    assert [v.run.id for v in expired] == [old.run.id]
    assert expired[0].run.state is RunState.EXPIRED
    assert lab.svc.get(young.run.id).run.state is RunState.AWAITING_APPROVAL
    assert lab.svc.expire_due() == []
    assert (old.run.id, "expired", f"Run {old.run.id} expired without enough approvals.") \
        in lab.notes.seen


def test_reject_and_withdraw(lab: Lab) -> None:
    a = lab.svc.plan(OP, "lab", "test-configmap", {"namespaces": "shop"})
    with pytest.raises(Refused) as ei:
        lab.svc.reject(OP2, a.run.id)
    assert ei.value.reason == "role"
    view = lab.svc.reject(AP1, a.run.id, "not during business hours")
    assert view.run.state is RunState.REJECTED
    assert view.run.detail == "Rejected by U0AP1: not during business hours"
    assert view.approvals[0].decision == "reject"
    with pytest.raises(Refused) as ei:
        lab.svc.approve(AP2, a.run.id)
    assert ei.value.reason == "state"
    b = lab.svc.plan(OP, "lab", "test-configmap", {"namespaces": "shop"})
    assert lab.svc.reject(OP, b.run.id).run.detail == "Withdrawn by the requester."


def test_concurrent_approvals_move_the_run_once(lab: Lab) -> None:
    view = lab.svc.plan(OP, "lab", "test-configmap", {"namespaces": "shop"})
    barrier = threading.Barrier(2)
    out: list[Any] = []

    def go(actor: Actor) -> None:
        barrier.wait()
        try:
            out.append(lab.svc.approve(actor, view.run.id).run.state)
        except Refused as e:  # came after the winner's transition
            out.append(e.reason)

    threads = [threading.Thread(target=go, args=(a,)) for a in (AP1, AP2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert RunState.APPROVED in out and set(out) <= {RunState.APPROVED, "state"}
    moves = [t for t in lab.runs.transitions if t[0] == view.run.id and t[2] == "approved"]
    assert len(moves) == 1


# ------------------------------------------------------------------------------ input


def test_every_input_is_checked_before_any_side_effect(lab: Lab) -> None:
    lab.clear()
    cases: list[tuple[Any, ...]] = [
        ("nope", "test-configmap", {"namespaces": "a"}, InputError, "cluster"),
        ("lab", "nope", {"namespaces": "a"}, InputError, "runbook"),
        ("lab", "test-configmap", {"namespaces": "Bad_NS"}, InputError, "namespaces"),
        ("lab", "test-configmap", {"namespaces": "a", "x": "1"}, InputError, "x"),
    ]
    for cluster, ref, raw, exc, field_ in cases:
        with pytest.raises(exc) as ei:
            lab.svc.plan(OP, cluster, ref, raw)
        assert ei.value.field == field_
    with pytest.raises(Refused) as ei2:
        lab.svc.plan(VIEWER, "lab", "test-configmap", {"namespaces": "shop"})
    assert ei2.value.reason == "role"
    with pytest.raises(InputError) as ei3:
        lab.svc.plan(OP, "nope", "test-configmap", {})
    assert "Known clusters: lab, other." in str(ei3.value)
    assert lab.runs.list_runs() == [] and lab.writes() == [] and lab.dry_runs() == 0


def test_unknown_run_ids(lab: Lab) -> None:
    for fn in (lab.svc.get, lambda r: lab.svc.approve(AP1, r),
               lambda r: lab.svc.execute(OP, r)):
        with pytest.raises(InputError) as ei:
            fn("r-nothere")
        assert ei.value.field == "run_id"


def test_idempotency_key_returns_the_same_run_without_replanning(lab: Lab) -> None:
    a = lab.svc.plan(OP, "lab", "test-configmap", {"namespaces": "shop"},
                     idempotency_key="trigger-1")
    b = lab.svc.plan(OP, "lab", "test-configmap", {"namespaces": "shop"},
                     idempotency_key="trigger-1")
    assert a.run.id == b.run.id
    assert len(lab.runs.list_runs()) == 1
    assert len(lab.events(a.run.id, "planned")) == 1
    # another service (replica) on the same store: the store dedups
    other = RunService(registry=make_registry(), store=lab.runs, policy=PolicyEngine(POLICY),
                       clusters=["lab"], readers=lab.svc._readers, writers=lab.svc._writers,
                       holder=default_holder(), clock=lab.clock)
    c = other.plan(OP, "lab", "test-configmap", {"namespaces": "shop"},
                   idempotency_key="trigger-1")
    other.shutdown()
    assert c.run.id == a.run.id and len(lab.runs.list_runs()) == 1
    assert len(lab.events(a.run.id, "planned")) == 1


def test_history(lab: Lab) -> None:
    ids = [lab.svc.plan(OP, c, "test-configmap", {"namespaces": "shop"}).run.id
           for c in ("lab", "other", "lab")]
    assert [v.run.id for v in lab.svc.history()] == ids[::-1]
    assert [v.run.id for v in lab.svc.history(1)] == ids[2:]
    assert [v.run.id for v in lab.svc.history(cluster="other")] == [ids[1]]
    assert lab.svc.runbooks()[0].name == "test-apply-fails"


# ------------------------------------------------------------------------------ execute


def test_execute_only_from_approved(lab: Lab) -> None:
    view = lab.svc.plan(OP, "lab", "test-configmap", {"namespaces": "shop"})
    with pytest.raises(Refused) as ei:
        lab.svc.execute(OP, view.run.id)
    assert ei.value.reason == "state" and "awaiting approval" in str(ei.value)
    lab.svc.approve(AP1, view.run.id)
    with pytest.raises(Refused) as ei:
        lab.svc.execute(VIEWER, view.run.id)
    assert ei.value.reason == "role"
    assert lab.svc.execute(OP, view.run.id).run.state is RunState.SUCCEEDED
    with pytest.raises(Refused) as ei:
        lab.svc.execute(OP, view.run.id)
    assert ei.value.reason == "state"
    assert len(lab.writes()) == 1


def test_stale_plan_writes_nothing(lab: Lab) -> None:
    view = lab.svc.plan(OP, "lab", "test-configmap", {"namespaces": "shop,web",
                                                       "value": "x"})
    # someone changes the cluster between plan and approval
    lab.put(configmap("web", "k8snet-test", {"value": "someone else"}))
    lab.svc.approve(AP1, view.run.id)
    lab.clear()
    out = lab.svc.execute(OP, view.run.id)
    assert out.run.state is RunState.STALE
    assert "nothing was written" in out.run.detail
    assert lab.writes() == []
    replan = lab.events(view.run.id, "replan")[0]
    assert replan["planned_hash"] == view.run.plan_hash
    assert replan["current_hash"] != view.run.plan_hash and replan["same"] is False
    assert lab.cm("shop") is None
    assert lab.runs.lock_holder("lab") is None


def test_verify_failure_rolls_back_exactly(lab: Lab) -> None:
    lab.put(configmap("shop", "k8snet-test", {"value": "old", "keep": "me"},
                      labels={"team": "a"}))
    before = strip_noise(lab.cm("shop"))
    view = plan_approve(lab, "test-verify-fails", {"namespaces": "shop,web", "value": "x"})
    assert [c.action for c in view.plan.changes] == ["patch", "create"]
    out = lab.svc.execute(OP, view.run.id)
    assert out.run.state is RunState.ROLLED_BACK, out.run.detail
    assert out.run.detail == ("Verification failed: always: this check always fails. Rolled "
                              "back 2 changes.")
    assert strip_noise(lab.cm("shop")) == before
    assert lab.cm("web") is None
    ver = lab.events(view.run.id, "verify")[0]
    assert ver["passed"] is False and ver["checks"][0]["name"] == "always"
    rb = lab.events(view.run.id, "rollback")[0]
    assert rb["ok"] is True
    assert [(r["action"], r["target"]) for r in rb["results"]] == [
        ("undo-create", "configmap/web/k8snet-test"), ("undo-patch", "configmap/shop/k8snet-test")]
    phases = [(w["phase"], w["stage"]) for w in lab.events(view.run.id, "write")]
    assert phases.count(("apply", "done")) == 2 and phases.count(("rollback", "done")) == 2


def test_failed_change_rolls_back_what_was_applied(lab: Lab) -> None:
    view = plan_approve(lab, "test-apply-fails", {"namespaces": "shop"})
    out = lab.svc.execute(OP, view.run.id)
    assert out.run.state is RunState.ROLLED_BACK, out.run.detail
    assert out.run.detail.startswith("Change 2 (configmap/shop/does-not-exist) failed:")
    assert out.run.detail.endswith("Rolled back 1 change.")
    assert lab.cm("shop") is None
    assert [a["ok"] for a in out.run.applied] == [True, False]
    assert lab.events(view.run.id, "verify") == []


def test_writes_in_verify_raise_phase_error_and_roll_back(lab: Lab) -> None:
    view = plan_approve(lab, "test-verify-writes", {"namespaces": "shop"})
    out = lab.svc.execute(OP, view.run.id)
    assert out.run.state is RunState.ROLLED_BACK, out.run.detail
    assert "Verification raised: The verify phase may not write" in out.run.detail
    err = lab.events(view.run.id, "error")[0]
    assert err["phase"] == "verify" and err["type"] == "PhaseError"
    assert lab.cm("shop") is None
    deletes = [w for w in lab.writes() if w[0].lower() == "delete"]
    assert len(deletes) == 1  # the rollback's undo of the create; verify's was refused
    assert {w["phase"] for w in lab.events(view.run.id, "write")} == {"apply", "rollback"}


def test_lock_held_refuses_and_the_run_stays_approved(lab: Lab) -> None:
    view = plan_approve(lab)
    assert lab.runs.acquire_lock("lab", "elsewhere:1:abcd:r-other", 60)
    with pytest.raises(Refused) as ei:
        lab.svc.execute(OP, view.run.id)
    assert ei.value.reason == "locked"
    assert "Cluster lab is locked by another run" in str(ei.value)
    assert lab.svc.get(view.run.id).run.state is RunState.APPROVED
    assert lab.writes() == []
    lab.clock.advance(seconds=61)  # the other holder's lease ran out
    assert lab.svc.execute(OP, view.run.id).run.state is RunState.SUCCEEDED


def test_slow_run_does_not_block_the_caller_and_holds_the_lock(lab: Lab,
                                                               tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    slow = plan_approve(lab, "test-slow", {"namespace": "shop", "gate_file": str(gate),
                                           "hold_seconds": "30"})
    other = plan_approve(lab)
    t0 = time.monotonic()
    fut = lab.svc.submit_execute(OP, slow.run.id)
    assert time.monotonic() - t0 < 0.5 and not fut.done()
    deadline = time.monotonic() + 10
    while not any(w["stage"] == "done" for w in lab.events(slow.run.id, "write")):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert lab.svc.get(slow.run.id).run.state is RunState.RUNNING
    assert len(lab.svc.get(slow.run.id).run.applied) == 1  # stored progressively
    assert lab.svc.recover_interrupted() == []  # it is running here: not interrupted
    with pytest.raises(Refused) as ei:
        lab.svc.execute(OP, other.run.id)
    assert ei.value.reason == "locked" and f"locked by run {slow.run.id}" in str(ei.value)
    with pytest.raises(Refused) as ei:
        lab.svc.execute(OP, slow.run.id)
    assert ei.value.reason == "state"
    gate.touch()
    assert fut.result(timeout=10).run.state is RunState.SUCCEEDED
    assert lab.cm("shop", "slow-1") is not None and lab.cm("shop", "slow-2") is not None
    assert ("holding" in [m for _, _, m in lab.notes.seen])
    assert lab.svc.execute(OP, other.run.id).run.state is RunState.SUCCEEDED


def test_submit_execute_refusal_arrives_through_the_future_and_the_notifier(lab: Lab) -> None:
    view = lab.svc.plan(OP, "lab", "test-configmap", {"namespaces": "shop"})
    fut = lab.svc.submit_execute(OP, view.run.id)
    with pytest.raises(Refused):
        fut.result(timeout=10)
    assert lab.notes.seen[-1][0] == view.run.id
    assert "only a run that is approved" in lab.notes.seen[-1][2]


class Crash(BaseException):
    """Stands for the process dying mid-write (not an Exception: nothing catches it)."""


class CrashingWriter:
    """Passes writes through, but dies on the create of ``name`` before sending it."""

    def __init__(self, inner: Any, name: str) -> None:
        self.inner, self.name = inner, name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    def create(self, api_version: str, plural: str, obj: dict[str, Any],
               namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        if obj["metadata"]["name"] == self.name and not dry_run:
            raise Crash()
        result: dict[str, Any] = self.inner.create(api_version, plural, obj, namespace,
                                                   dry_run=dry_run)
        return result


def test_crash_mid_apply_is_recovered_as_interrupted_then_rolled_back(lab: Lab) -> None:
    """A BaseException mid-write (Ctrl-C, SystemExit) marks the run interrupted before it
    propagates; a harder death (SIGKILL) is found by recover_interrupted (test_interrupted)."""
    view = plan_approve(lab, "test-slow", {"namespace": "shop"})
    real = lab.svc._writers("lab")
    lab.svc._writers = lambda c: CrashingWriter(real, "slow-2")
    with pytest.raises(Crash):
        lab.svc.execute(OP, view.run.id)
    lab.svc._writers = lambda c: real
    run = lab.svc.get(view.run.id).run
    assert run.state is RunState.INTERRUPTED
    assert "stopped (Crash during apply)" in run.detail
    assert lab.runs.lock_holder("lab") is None  # released: an approver can roll it back
    assert lab.svc.recover_interrupted() == []
    assert "Applied: configmap/shop/slow-1." in run.detail
    assert "May have been applied: configmap/shop/slow-2." in run.detail
    assert lab.svc.recover_interrupted() == []
    with pytest.raises(Refused) as ei:
        lab.svc.rollback_interrupted(OP, view.run.id)
    assert ei.value.reason == "role"
    out = lab.svc.rollback_interrupted(AP1, view.run.id)
    assert out.run.state is RunState.ROLLED_BACK, out.run.detail
    assert lab.cm("shop", "slow-1") is None
    rb = lab.events(view.run.id, "rollback")[0]
    # slow-2 was never created: its undo is skipped, not failed
    assert [r["target"] for r in rb["results"]] == ["configmap/shop/slow-1"]


def test_a_run_held_by_another_host_is_recovered_only_when_its_lease_ends(lab: Lab) -> None:
    view = plan_approve(lab)
    rid, holder = view.run.id, f"elsewhere:4242:beef:{view.run.id}"
    assert lab.runs.transition(rid, [RunState.APPROVED], RunState.RUNNING, detail="Applying.")
    lab.runs.append_event(rid, "state", {"from": "approved", "to": "running", "holder": holder})
    assert lab.runs.acquire_lock("lab", holder, 60)
    assert lab.svc.recover_interrupted() == []  # its lease is live: it may be running
    lab.clock.advance(seconds=61)
    out = lab.svc.recover_interrupted()
    assert [v.run.id for v in out] == [rid]
    assert "its cluster lock has expired or was released" in out[0].run.detail
    assert "Applied: nothing." in out[0].run.detail
    assert lab.runs.lock_holder("lab") is None  # the probe released what it took
    assert lab.svc.rollback_interrupted(AP1, rid).run.state is RunState.ROLLED_BACK


def test_a_running_run_without_holder_or_lock_is_recovered(lab: Lab) -> None:
    view = plan_approve(lab)
    assert lab.runs.transition(view.run.id, [RunState.APPROVED], RunState.RUNNING)
    out = lab.svc.recover_interrupted()
    assert [v.run.state for v in out] == [RunState.INTERRUPTED]
    assert lab.notes.seen[-1][1] == "interrupted"


# ------------------------------------------------------------------------------ guards


def test_guarded_writer_by_phase() -> None:
    store = Store()
    store.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    inner = StoreWriter(store)
    phase = ["inspect"]
    seen: list[dict[str, Any]] = []
    w = GuardedWriter(inner, lambda: phase[0], seen.append)
    cm = configmap("x", "a", {"k": "v"})
    for p in ("inspect", "verify", ""):
        phase[0] = p
        with pytest.raises(PhaseError, match="may not write: create configmaps/x/a"):
            w.create("v1", "configmaps", cm, "x")
    assert inner.log == []
    phase[0] = "plan"
    w.create("v1", "configmaps", cm, "x", dry_run=False)
    assert inner.log[-1].dry_run is True and store.select("v1", "configmaps", "x") == []
    assert seen == [] and w.dry_runs == 1
    phase[0] = "apply"
    w.create("v1", "configmaps", cm, "x")
    with pytest.raises(KubeNotFound):
        w.delete("v1", "configmaps", "nope", "x")
    assert [(e["stage"], e["verb"], e["seq"]) for e in seen] == [
        ("start", "create", 1), ("done", "create", 1), ("start", "delete", 2),
        ("error", "delete", 2)]
    assert "not found" in seen[-1]["error"] and w.writes == 1
    phase[0] = "rollback"
    w.delete("v1", "configmaps", "a", "x")
    assert store.select("v1", "configmaps", "x") == []


# ------------------------------------------------------------------------------ real runbook


def test_netpol_dns_allow_through_the_engine_check_apply_check(tmp_path: Path) -> None:
    """The shipped runbook, discovered, on the emulator (scenario b, Calico enforces policy):
    it labels objects with the run id while planning, so the re-plan before apply must hash
    the same; then a second plan has nothing to do."""
    from bot.engine.registry import Registry

    reg = Registry()
    reg.discover("runbooks")
    with Emulator.from_scenario("b") as emu:
        kc = emu.write_kubeconfig(tmp_path / "kubeconfig", context="lab")
        kube = KubeAdapter("lab", kubeconfig=str(kc), context="lab")
        svc = RunService(registry=reg, store=MemRunStore(), policy=PolicyEngine(Policy()),
                         clusters=["lab"], readers=lambda c: kube, writers=lambda c: kube,
                         holder=default_holder())
        try:
            view = svc.plan(OP, "lab", "netpol-dns-allow@1", {"namespaces": "default"})
            assert view.run.state is RunState.AWAITING_APPROVAL
            assert [c.action for c in view.plan.changes] == ["create", "create"]
            view = svc.approve(AP1, view.run.id)
            out = svc.execute(AP1, view.run.id)
            assert out.run.state is RunState.SUCCEEDED, out.run.detail
            pol = emu.get_object("networking.k8s.io/v1", "networkpolicies",
                                 "k8snet-default-deny", "default")
            assert pol is not None
            assert pol["metadata"]["labels"]["k8snet.io/run-id"] == view.run.id
            again = svc.plan(OP, "lab", "netpol-dns-allow", {"namespaces": "default"})
            assert again.run.state is RunState.NOTHING_TO_DO
        finally:
            svc.shutdown()
