"""``netpol-dns-allow`` end to end through the engine: ``RunService.plan / approve / execute``
on the API emulator with the real kube adapter (reader and writer), an in-memory run store, and
two people (the requester plans, another approves: the runbook is disruptive).

Covers: the plan made before the run has an id and the re-plan before apply hash the same
(the run id label is added at apply); success and a second plan that is ``nothing_to_do``;
verification failures (a policy altered right after apply, a read that fails) rolled back to
exactly the previous NetworkPolicies; a cluster that changed since approval (``stale``, nothing
written); Flannel (refused, or created with the override and never called isolated); bad
parameters (nothing stored, nothing sent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kube import KubeAdapter
from bot.engine.core import Actor
from bot.engine.policy import PolicyEngine
from bot.engine.registry import Registry
from bot.engine.runs import RunState
from bot.engine.service import RunService, RunView, default_holder
from bot.sdk import InputError, Refused, strip_noise
from bot.settings import Policy, RoleMembers
from runbooks.netpol_dns_allow import ALLOW_DNS, DEFAULT_DENY, MANAGED_BY, RUN_ID, NetpolDnsAllow
from tests.lab.emulator import Emulator
from tests.lab.memstore import FakeClock, MemRunStore

NP = "networking.k8s.io/v1"
REQUESTER = Actor("U0OPS", "slack", "C0NET")
APPROVER = Actor("U0LEAD", "slack", "C0NET")
POLICY = Policy(roles={"*": RoleMembers(viewer=["*"], operator=["U0OPS", "U0LEAD"],
                                        approver=["U0OPS", "U0LEAD"])},
                approvals_required=1)
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Notes:
    """A notifier that records messages and can act when one arrives (fault injection)."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    on: dict[str, Callable[[], None]] = field(default_factory=dict)

    def run_changed(self, view: RunView, message: str) -> None:
        self.seen.append((view.run.state.value, message))
        hook = self.on.pop(message, None)
        if hook is not None:
            hook()


@dataclass
class Lab:
    emu: Emulator
    kube: KubeAdapter
    svc: RunService
    notes: Notes

    def writes(self, *, dry: bool) -> list[Any]:
        return [r for r in self.emu.requests if r.method in WRITE_METHODS
                and (r.query.get("dryRun") == "All") is dry]

    def policies(self, ns: str) -> list[dict[str, Any]]:
        return sorted((strip_noise(p) or {} for p in
                       self.kube.list(NP, "networkpolicies", namespace=ns)),
                      key=lambda p: p["metadata"]["name"])


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Callable[[str], Lab]]:
    made: list[tuple[Emulator, RunService]] = []

    def make(scenario: str) -> Lab:
        emu = Emulator.from_scenario(scenario).start()
        kc = emu.write_kubeconfig(tmp_path / f"kubeconfig-{len(made)}", context="lab")
        kube = KubeAdapter("lab", kubeconfig=str(kc), context="lab")
        registry = Registry()
        registry.register(NetpolDnsAllow)
        notes = Notes()
        svc = RunService(registry=registry, store=MemRunStore(FakeClock()),
                         policy=PolicyEngine(POLICY), clusters=["lab"],
                         readers=lambda c: kube, writers=lambda c: kube,
                         holder=default_holder(), ttl=timedelta(minutes=30),
                         lock_lease_seconds=60, notifier=notes)
        made.append((emu, svc))
        return Lab(emu, kube, svc, notes)

    yield make
    for emu, svc in made:
        svc.shutdown()
        emu.stop()


def plan_and_approve(lab: Lab, raw: dict[str, Any]) -> RunView:
    view = lab.svc.plan(REQUESTER, "lab", "netpol-dns-allow@1", raw)
    assert view.run.state is RunState.AWAITING_APPROVAL, view.run.detail
    assert view.run.risk == "disruptive" and view.run.approvals_required == 1
    with pytest.raises(Refused):  # four eyes: the requester cannot approve a disruptive run
        lab.svc.approve(REQUESTER, view.run.id)
    view = lab.svc.approve(APPROVER, view.run.id)
    assert view.run.state is RunState.APPROVED
    return view


def test_plan_approve_execute_then_nothing_to_do(make_lab: Callable[[str], Lab]) -> None:
    lab = make_lab("case-dns-allow-or-selectors")
    user_policies = lab.policies("example")
    view = plan_and_approve(lab, {"namespaces": "example"})
    assert [c.target for c in view.plan.changes] == [
        f"networkpolicy/example/{ALLOW_DNS}", f"networkpolicy/example/{DEFAULT_DENY}"]
    assert lab.writes(dry=False) == []
    assert len(lab.writes(dry=True)) == 2  # the plan's server-side dry runs

    done = lab.svc.execute(APPROVER, view.run.id)
    assert done.run.state is RunState.SUCCEEDED, done.run.detail
    replan = [e.data for e in lab.svc.events(view.run.id) if e.kind == "replan"]
    assert replan and replan[0]["same"] is True  # planned without a run id, re-planned with
    assert [r.method for r in lab.writes(dry=False)] == ["POST", "POST"]
    live = lab.kube.get(NP, "networkpolicies", ALLOW_DNS, "example")
    assert live is not None
    assert live["metadata"]["labels"] == {MANAGED_BY: "k8snet", RUN_ID: view.run.id}
    verify = next(e.data for e in lab.svc.events(view.run.id) if e.kind == "verify")
    assert verify["passed"] and any(
        c["name"] == "example: DNS egress allowed in AND form on UDP and TCP"
        for c in verify["checks"])
    # the user's own policies are untouched
    now = {p["metadata"]["name"]: p for p in lab.policies("example")}
    assert all(now[p["metadata"]["name"]] == p for p in user_policies)

    lab.emu.clear_requests()
    again = lab.svc.plan(APPROVER, "lab", "netpol-dns-allow", {"namespaces": "example"})
    assert again.run.state is RunState.NOTHING_TO_DO, again.run.detail
    assert again.plan.empty
    assert [r for r in lab.emu.requests if r.method in WRITE_METHODS] == []


def _alter_allow_dns(lab: Lab) -> None:
    """Someone narrows our DNS allow to UDP only right after apply."""
    cur = lab.kube.get(NP, "networkpolicies", ALLOW_DNS, "example")
    assert cur is not None
    cur["spec"]["egress"][0]["ports"] = [{"protocol": "UDP", "port": 53}]
    lab.kube.replace(NP, "networkpolicies", ALLOW_DNS, cur, "example")


@pytest.mark.parametrize("fault", ["altered", "forbidden"])
def test_verification_failure_rolls_back_to_the_previous_policies(
        make_lab: Callable[[str], Lab], fault: str) -> None:
    lab = make_lab("case-dns-allow-or-selectors")
    before = lab.policies("example")
    view = plan_and_approve(lab, {"namespaces": "example", "allow_from_namespaces": "default"})
    assert len(view.plan.changes) == 3
    if fault == "altered":
        lab.notes.on["Verifying."] = lambda: _alter_allow_dns(lab)
    else:  # verify cannot list the namespace's policies
        lab.notes.on["Verifying."] = lambda: lab.emu.forbid("list", "networkpolicies",
                                                            "example")
    done = lab.svc.execute(APPROVER, view.run.id)
    lab.emu.clear_faults()
    assert done.run.state is RunState.ROLLED_BACK, done.run.detail
    if fault == "altered":
        assert "Verification failed" in (done.run.detail or "")
    else:
        assert "Verification raised" in (done.run.detail or "")
        assert "list networkpolicies.networking.k8s.io in namespace 'example'" in \
            (done.run.detail or "")
    rollback = next(e.data for e in lab.svc.events(view.run.id) if e.kind == "rollback")
    assert rollback["ok"]
    # the deny was removed first, then the allows
    assert [r["target"].rsplit("/", 1)[-1] for r in rollback["results"]] == [
        DEFAULT_DENY, "k8snet-allow-from-default", ALLOW_DNS]
    assert lab.policies("example") == before


def test_cluster_changed_since_approval_is_stale(make_lab: Callable[[str], Lab]) -> None:
    lab = make_lab("b")
    view = plan_and_approve(lab, {"namespaces": "web,shop"})
    # someone creates our DNS allow by hand (with our label) before the run executes
    dns = next(c.after for c in view.plan.changes
               if c.namespace == "web" and c.name == ALLOW_DNS)
    assert dns is not None
    lab.kube.create(NP, "networkpolicies", dns, "web")
    lab.emu.clear_requests()
    done = lab.svc.execute(APPROVER, view.run.id)
    assert done.run.state is RunState.STALE, done.run.detail
    assert lab.writes(dry=False) == []


def test_flannel_refused_or_created_never_isolated(make_lab: Callable[[str], Lab]) -> None:
    lab = make_lab("case-flannel-netpol-not-enforced")
    with pytest.raises(Refused) as ei:
        lab.svc.plan(REQUESTER, "lab", "netpol-dns-allow", {"namespaces": "default"})
    assert ei.value.reason == "not-enforced"
    assert lab.svc.history() == [] and lab.writes(dry=True) == []

    view = plan_and_approve(lab, {"namespaces": "default", "allow_unenforced": "true"})
    assert any("NOT enforced by Flannel" in w for w in view.plan.warnings)
    done = lab.svc.execute(APPROVER, view.run.id)
    assert done.run.state is RunState.SUCCEEDED, done.run.detail
    verify = next(e.data for e in lab.svc.events(view.run.id) if e.kind == "verify")
    assert not any("isolated" in c["message"] for c in verify["checks"])
    assert any("NOT enforced by Flannel" in c["message"] for c in verify["checks"])
    assert not any("isolated" in msg for _, msg in lab.notes.seen)
    assert "isolated" not in (done.run.detail or "")


@pytest.mark.parametrize("raw,field", [
    ({"namespaces": "Bad_NS"}, "namespaces"),
    ({"namespaces": "web", "extra_egress_cidrs": "10.1.2.3/16"}, "extra_egress_cidrs"),
    ({"namespaces": "web", "colour": "red"}, "colour"),
    ({"namespaces": "<!channel>"}, "namespaces"),
])
def test_bad_params_store_and_send_nothing(make_lab: Callable[[str], Lab], raw: dict[str, Any],
                                           field: str) -> None:
    lab = make_lab("b")
    lab.emu.clear_requests()
    with pytest.raises(InputError) as ei:
        lab.svc.plan(REQUESTER, "lab", "netpol-dns-allow", raw)
    assert ei.value.field == field
    assert "<!channel>" not in str(ei.value)
    assert lab.svc.history() == []
    assert lab.emu.requests == []
