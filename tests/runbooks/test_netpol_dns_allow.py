"""Runbook ``netpol-dns-allow`` phase by phase (inspect, plan, apply, verify, rollback) over the
API emulator, with the real kube adapter as reader and writer (no engine: the plan's dry runs
are the runbook's own ``dryRun=All`` requests).

Scenarios: b (Calico), c (Canal), d (Cilium), case-dns-allow-or-selectors (Calico, the user's
OR'ed "allow DNS"), a and case-flannel-netpol-not-enforced (Flannel: no enforcement), plus
variations: NodeLocal DNSCache from the real addon manifest, DNS pods on 5353, foreign policies
with our names, allow-all policies, admission webhooks, bad parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

import runbooks.probes
from bot.adapters.kube import KubeAdapter
from bot.engine.registry import parse_params
from bot.engine.status import build_report
from bot.sdk import (
    InputError,
    Plan,
    Refused,
    RunContext,
    strip_noise,
)
from runbooks.netpol_dns_allow import (
    ALLOW_DNS,
    DEFAULT_DENY,
    MANAGED_BY,
    RUN_ID,
    NetpolDnsAllow,
    NetpolDnsAllowParams,
)
from tests.lab import scenarios
from tests.lab.emulator import Emulator, Request
from tests.lab.paths import REAL
from tests.lab.scenarios._build import Scenario

NP = "networking.k8s.io/v1"
Obj = dict[str, Any]
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Lab:
    """One emulated cluster with the real adapter over HTTP."""

    emu: Emulator
    kube: KubeAdapter

    def ctx(self, run_id: str = "run-1") -> RunContext:
        return RunContext(cluster="lab", kube=self.kube, writer=self.kube, run_id=run_id,
                          phase="plan")

    def writes(self, *, dry: bool | None = None) -> list[Request]:
        out = [r for r in self.emu.requests if r.method in WRITE_METHODS]
        if dry is not None:
            out = [r for r in out if (r.query.get("dryRun") == "All") is dry]
        return out

    def policies(self, ns: str) -> list[Obj]:
        items = self.kube.list(NP, "networkpolicies", namespace=ns)
        return sorted((strip_noise(p) or {} for p in items),
                      key=lambda p: p["metadata"]["name"])

    def policy(self, ns: str, name: str) -> Obj | None:
        return self.kube.get(NP, "networkpolicies", name, ns)

    def add(self, *objs: Obj) -> None:
        self.emu.add(*copy.deepcopy(list(objs)))


LabFactory = Callable[..., Lab]


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[LabFactory]:
    """``make(scenario) -> Lab``: a started emulator seeded from a scenario name or
    ``Scenario``; stopped at teardown."""
    made: list[Emulator] = []

    def make(scenario: str | Scenario) -> Lab:
        emu = Emulator.from_scenario(scenario).start()
        made.append(emu)
        kc = tmp_path / f"kubeconfig-{len(made)}"
        emu.write_kubeconfig(kc, context="lab")
        return Lab(emu, KubeAdapter("lab", kubeconfig=str(kc), context="lab"))

    yield make
    for emu in made:
        emu.stop()


RB = NetpolDnsAllow()


def params(**kw: Any) -> NetpolDnsAllowParams:
    return NetpolDnsAllowParams.model_validate(kw)


def plan_for(lab: Lab, run_id: str = "run-1", **kw: Any) -> Plan:
    ctx = lab.ctx(run_id)
    return RB.plan(ctx, params(**kw), RB.inspect(ctx))


def netpol(ns: str, name: str, spec: Obj, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": NP, "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns, **({"labels": labels} if labels else {})},
            "spec": spec}


def np_codes(lab: Lab) -> list[tuple[str, str]]:
    rep = build_report("lab", lab.kube, runbooks.probes.all_probes())
    sec = next(s for s in rep.sections if s.name == "networkpolicy")
    return [(f.code, f.subject) for f in sec.findings]


def egress_of(policy: Obj) -> list[Obj]:
    return policy["spec"]["egress"]


# --------------------------------------------------------------------------- the case


def test_case_or_selectors_gets_one_and_form_item_from_the_live_service(
        make_lab: LabFactory) -> None:
    lab = make_lab("case-dns-allow-or-selectors")
    user_before = lab.policies("example")
    assert ("NP002", "namespace/example") in np_codes(lab)
    svc = lab.kube.get("v1", "services", "kube-dns", "kube-system")
    assert svc is not None
    ctx = lab.ctx()
    p = params(namespaces=["example"])
    plan = RB.plan(ctx, p, RB.inspect(ctx))
    assert [(c.action, c.name) for c in plan.changes] == [
        ("create", ALLOW_DNS), ("create", DEFAULT_DENY)]  # allows before the deny
    dns = plan.changes[0].after
    assert dns is not None
    (rule,) = egress_of(dns)
    (item,) = rule["to"]  # ONE item: both selectors AND'ed
    assert item["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}
    assert item["podSelector"] == {"matchLabels": svc["spec"]["selector"]}
    assert item["podSelector"]["matchLabels"]["k8s-app"] == "kube-dns"
    assert rule["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    # the run id label is not part of the plan (the engine plans before the run has an id)
    assert dns["metadata"]["labels"] == {MANAGED_BY: "k8snet"}
    assert plan.warnings == (
        "The default deny also blocks egress to the Kubernetes API server, traffic between "
        "pods of the same namespace and traffic to and from outside the cluster: only egress "
        "to DNS stays allowed.",)

    applied = RB.apply(ctx, p, plan)
    assert all(a.ok for a in applied)
    created = lab.policy("example", ALLOW_DNS)
    assert created is not None
    assert created["metadata"]["labels"] == {MANAGED_BY: "k8snet", RUN_ID: "run-1"}
    ver = RB.verify(ctx, p, plan, applied)
    assert ver.passed, ver.checks
    names = [c.name for c in ver.checks]
    assert "example: DNS egress allowed in AND form on UDP and TCP" in names
    assert "example: default deny present" in names
    # the user's broken policies are left exactly as they were
    after = {p["metadata"]["name"]: p for p in lab.policies("example")}
    for pol in user_before:
        assert after[pol["metadata"]["name"]] == pol
    # and the status probe no longer reports DNS denied in example
    codes = np_codes(lab)
    assert ("NP002", "namespace/example") not in codes
    assert not [c for c in codes if c[0] in ("NP002", "NP003")]


# --------------------------------------------------------------------------- idempotency


@pytest.mark.parametrize("scenario,namespaces", [
    ("b", ["all"]), ("b", ["web"]), ("c", ["all"]), ("d", ["default"]),
    ("case-dns-allow-or-selectors", ["example"]),
])
def test_check_apply_check_apply(make_lab: LabFactory, scenario: str,
                                 namespaces: list[str]) -> None:
    lab = make_lab(scenario)
    ctx = lab.ctx()
    p = params(namespaces=namespaces, allow_from_namespaces=["kube-system"],
               extra_egress_cidrs=["10.20.0.0/16"])
    plan = RB.plan(ctx, p, RB.inspect(ctx))
    assert plan.changes and all(c.action == "create" for c in plan.changes)
    targets = list(dict.fromkeys(c.namespace for c in plan.changes))
    for ns in targets:
        names = [c.name for c in plan.changes if c.namespace == ns]
        assert names == [ALLOW_DNS, "k8snet-allow-from-kube-system",
                         "k8snet-allow-egress-cidrs", DEFAULT_DENY]
    applied = RB.apply(ctx, p, plan)
    assert len(applied) == len(plan.changes) and all(a.ok for a in applied)
    ver = RB.verify(ctx, p, plan, applied)
    assert ver.passed, [c for c in ver.checks if not c.passed]

    lab.emu.clear_requests()
    ctx2 = lab.ctx("run-2")  # another run: its id label must not make a difference
    again = RB.plan(ctx2, p, RB.inspect(ctx2))
    assert again.empty, again.changes
    assert RB.apply(ctx2, p, again) == ()
    assert lab.writes() == []  # neither the plan nor the empty apply wrote anything


@pytest.mark.parametrize("scenario", ["b", "c", "d", "case-dns-allow-or-selectors"])
def test_rollback_restores_exactly_the_previous_objects(make_lab: LabFactory,
                                                        scenario: str) -> None:
    lab = make_lab(scenario)
    ctx = lab.ctx()
    nss = [n["metadata"]["name"] for n in lab.kube.list("v1", "namespaces")]
    before = {ns: lab.policies(ns) for ns in nss}
    p = params(namespaces=["all"], allow_from_namespaces=["default"])
    plan = RB.plan(ctx, p, RB.inspect(ctx))
    applied = RB.apply(ctx, p, plan)
    assert all(a.ok for a in applied)
    lab.emu.clear_requests()
    undone = RB.rollback(ctx, p, plan, applied)
    assert all(u.ok for u in undone), undone
    deletes = [r.path.rsplit("/", 1)[-1] for r in lab.writes() if r.method == "DELETE"]
    # per namespace, the deny goes first
    assert deletes[0] == DEFAULT_DENY
    assert {ns: lab.policies(ns) for ns in nss} == before


def test_replace_of_our_changed_policy_and_its_rollback(make_lab: LabFactory) -> None:
    lab = make_lab("b")
    ctx = lab.ctx()
    p = params(namespaces=["web"])
    first = RB.plan(ctx, p, RB.inspect(ctx))
    RB.apply(ctx, p, first)
    # someone narrows our DNS allow to UDP only, and adds a label of their own
    cur = lab.policy("web", ALLOW_DNS)
    assert cur is not None
    cur["spec"]["egress"][0]["ports"] = [{"protocol": "UDP", "port": 53}]
    cur["metadata"]["labels"]["team"] = "blog"
    lab.kube.replace(NP, "networkpolicies", ALLOW_DNS, cur, "web")
    edited = lab.policies("web")

    ctx2 = lab.ctx("run-2")
    plan = RB.plan(ctx2, p, RB.inspect(ctx2))
    assert [(c.action, c.name) for c in plan.changes] == [("replace", ALLOW_DNS)]
    ch = plan.changes[0]
    assert ch.before is not None and ch.after is not None
    assert ch.before["spec"]["egress"][0]["ports"] == [{"protocol": "UDP", "port": 53}]
    assert ch.after["metadata"]["labels"] == {MANAGED_BY: "k8snet", "team": "blog"}
    applied = RB.apply(ctx2, p, plan)
    assert all(a.ok for a in applied)
    now = lab.policy("web", ALLOW_DNS)
    assert now is not None and now["metadata"]["labels"] == {
        MANAGED_BY: "k8snet", RUN_ID: "run-2", "team": "blog"}
    assert RB.verify(ctx2, p, plan, applied).passed
    assert RB.plan(ctx2, p, RB.inspect(ctx2)).empty
    RB.rollback(ctx2, p, plan, applied)
    assert lab.policies("web") == edited


def test_default_deny_false_removes_only_our_deny_first(make_lab: LabFactory) -> None:
    lab = make_lab("b")
    ctx = lab.ctx()
    RB.apply(ctx, params(namespaces=["web"], allow_from_namespaces=["shop"]),
             RB.plan(ctx, params(namespaces=["web"], allow_from_namespaces=["shop"]),
                     RB.inspect(ctx)))
    lab.add(netpol("web", "team-deny", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    with_all = lab.policies("web")
    p = params(namespaces=["web"], default_deny=False)
    ctx2 = lab.ctx("run-2")
    plan = RB.plan(ctx2, p, RB.inspect(ctx2))
    assert [(c.action, c.name) for c in plan.changes] == [
        ("delete", DEFAULT_DENY), ("delete", "k8snet-allow-from-shop")]
    applied = RB.apply(ctx2, p, plan)
    assert {q["metadata"]["name"] for q in lab.policies("web")} == {ALLOW_DNS, "team-deny"}
    ver = RB.verify(ctx2, p, plan, applied)
    assert ver.passed, ver.checks
    RB.rollback(ctx2, p, plan, applied)
    assert lab.policies("web") == with_all


# --------------------------------------------------------------------------- what it never touches


def test_foreign_policy_with_our_name_skips_the_namespace(make_lab: LabFactory) -> None:
    lab = make_lab("b")
    lab.add(netpol("web", DEFAULT_DENY, {"podSelector": {"matchLabels": {"app": "blog"}},
                                         "policyTypes": ["Ingress"]}, {"team": "blog"}))
    theirs = lab.policies("web")
    plan = plan_for(lab, namespaces=["web", "shop"])
    assert {c.namespace for c in plan.changes} == {"shop"}
    assert any("Namespace web is skipped" in w and DEFAULT_DENY in w for w in plan.warnings)
    ctx = lab.ctx()
    p = params(namespaces=["web", "shop"])
    applied = RB.apply(ctx, p, plan)
    RB.rollback(ctx, p, plan, applied)
    assert lab.policies("web") == theirs


def test_rollback_never_deletes_a_policy_it_did_not_create(make_lab: LabFactory) -> None:
    lab = make_lab("b")
    ctx = lab.ctx()
    p = params(namespaces=["web"])
    plan = RB.plan(ctx, p, RB.inspect(ctx))
    applied = RB.apply(ctx, p, plan)
    # between apply and rollback someone replaces our deny with their own object
    lab.kube.delete(NP, "networkpolicies", DEFAULT_DENY, "web")
    lab.kube.create(NP, "networkpolicies", netpol(
        "web", DEFAULT_DENY, {"podSelector": {}, "policyTypes": ["Ingress"]}, {"team": "x"}))
    undone = RB.rollback(ctx, p, plan, applied)
    by_name = {u.target.rsplit("/", 1)[-1]: u for u in undone}
    assert not by_name[DEFAULT_DENY].ok and "left untouched" in by_name[DEFAULT_DENY].message
    assert by_name[ALLOW_DNS].ok
    left = lab.policy("web", DEFAULT_DENY)
    assert left is not None and left["metadata"]["labels"] == {"team": "x"}
    assert lab.policy("web", ALLOW_DNS) is None


def test_allow_all_policy_and_webhook_namespace_warnings(make_lab: LabFactory) -> None:
    lab = make_lab("b")
    lab.add(netpol("web", "allow-everything", {"podSelector": {}, "ingress": [{}]}))
    plan = plan_for(lab, namespaces=["web", "metallb-system"])
    assert ("NetworkPolicies are additive: web/allow-everything allows all ingress, so the "
            "default deny will not isolate these pods (every pod in web).") in plan.warnings
    hook = [w for w in plan.warnings if w.startswith("default-deny ingress in metallb-system")]
    assert hook and "blocks the API server's calls to webhooks" in hook[0]
    assert "on port 9443" in hook[0] and "add an allow or exclude the namespace" in hook[0]
    # MetalLB's speaker runs on the host network: a namespace allow does not match it
    speaker = plan_for(lab, namespaces=["web"], allow_from_namespaces=["metallb-system"])
    assert any(w.startswith("Pods of metallb-system use the host network (speaker-")
               and "k8snet-allow-from-metallb-system does not match" in w
               for w in speaker.warnings), speaker.warnings
    # no deny: nothing to warn about
    quiet = plan_for(lab, namespaces=["web", "metallb-system"], default_deny=False)
    assert not [w for w in quiet.warnings if "additive" in w or "webhook" in w]


# --------------------------------------------------------------------------- dry run in plan


def test_plan_dry_runs_every_change_and_stores_nothing(make_lab: LabFactory) -> None:
    lab = make_lab("c")
    before = lab.policies("default")
    lab.emu.clear_requests()
    plan = plan_for(lab, namespaces=["default"], allow_from_namespaces=["kube-system"])
    assert len(plan.changes) == 3
    posts = lab.writes()
    assert len(posts) == 3 and all(r.method == "POST" for r in posts)
    assert all(r.query.get("dryRun") == "All" for r in posts)
    assert lab.policies("default") == before == []


def test_a_change_the_server_rejects_in_dry_run_refuses_the_plan(make_lab: LabFactory) -> None:
    lab = make_lab("b")
    lab.emu.forbid("create", "networkpolicies", "web")
    with pytest.raises(Refused) as ei:
        plan_for(lab, namespaces=["web"])
    assert ei.value.reason == "dry-run"
    assert "create networkpolicies.networking.k8s.io in namespace 'web'" in str(ei.value)
    assert "cannot create resource" in str(ei.value)  # the apiserver's own words
    assert lab.writes(dry=False) == []


# --------------------------------------------------------------------------- not enforced


@pytest.mark.parametrize("scenario,ns", [("a", "shop"),
                                         ("case-flannel-netpol-not-enforced", "default")])
def test_flannel_refused_without_override(make_lab: LabFactory, scenario: str, ns: str) -> None:
    lab = make_lab(scenario)
    with pytest.raises(Refused) as ei:
        plan_for(lab, namespaces=[ns])
    assert ei.value.reason == "not-enforced"
    assert "Flannel does not enforce NetworkPolicy" in str(ei.value)
    assert "allow_unenforced=true" in str(ei.value)
    assert lab.writes() == []


@pytest.mark.parametrize("scenario,ns", [("a", "shop"),
                                         ("case-flannel-netpol-not-enforced", "default")])
def test_flannel_with_override_warns_and_never_says_isolated(make_lab: LabFactory,
                                                             scenario: str, ns: str) -> None:
    lab = make_lab(scenario)
    ctx = lab.ctx()
    p = params(namespaces=[ns], allow_unenforced=True)
    ins = RB.inspect(ctx)
    assert "does not enforce NetworkPolicy" in ins.summary
    plan = RB.plan(ctx, p, ins)
    assert ("Objects will be created but NOT enforced by Flannel: no namespace becomes "
            "isolated.") in plan.warnings
    assert not any("isolated" in t for t in (*[c.summary for c in plan.changes], *plan.notes))
    applied = RB.apply(ctx, p, plan)
    ver = RB.verify(ctx, p, plan, applied)
    assert ver.passed
    assert not any("isolated" in c.message for c in ver.checks)
    ours = [c for c in ver.checks if c.name.startswith(f"{ns}:")]
    assert ours and all("NOT enforced by Flannel" in c.message for c in ours)
    # without the override the same objects do not verify
    strict = RB.verify(ctx, params(namespaces=[ns]), plan, applied)
    assert not strict.passed
    assert not any("isolated" in c.message for c in strict.checks)


# --------------------------------------------------------------------------- DNS discovery


def _nodelocal(local: str) -> list[Obj]:
    """The real NodeLocal DNSCache addon objects with ``__PILLAR__LOCAL__DNS__`` set and the
    DNS server placeholder set to ``local``'s second part (iptables mode) or removed (IPVS)."""
    text = (REAL / "coredns" / "nodelocaldns.addon.yaml").read_text(encoding="utf-8")
    text = text.replace("__PILLAR__LOCAL__DNS__", "169.254.20.10")
    text = text.replace(",__PILLAR__DNS__SERVER__", f",{local}" if local else "")
    text = text.replace("__PILLAR__DNS__SERVER__", local or "")
    text = text.replace("__PILLAR__DNS__DOMAIN__", "cluster.local")
    docs = [d for d in yaml.safe_load_all(text) if d]
    for d in docs:
        d.setdefault("metadata", {}).setdefault("namespace", "kube-system")
    return docs


@pytest.mark.parametrize("intercept,blocks", [
    ("", ["169.254.20.10/32"]),  # IPVS mode: only the link-local IP
    ("10.96.0.10", ["169.254.20.10/32", "10.96.0.10/32"]),  # iptables mode: also the ClusterIP
])
def test_nodelocal_dnscache_adds_ip_blocks(make_lab: LabFactory, intercept: str,
                                           blocks: list[str]) -> None:
    lab = make_lab("b")
    objs = _nodelocal(intercept)
    assert {o["kind"] for o in objs} >= {"DaemonSet", "Service"}
    lab.add(*[o for o in objs if o["kind"] in ("DaemonSet", "Service", "ConfigMap",
                                                "ServiceAccount")])
    assert lab.kube.get("v1", "services", "kube-dns-upstream", "kube-system") is not None
    ctx = lab.ctx()
    p = params(namespaces=["web"])
    plan = RB.plan(ctx, p, RB.inspect(ctx))
    assert any(w.startswith("NodeLocal DNSCache detected") and "169.254.20.10/32" in w
               for w in plan.warnings)
    dns = plan.changes[0].after
    assert dns is not None
    (rule,) = egress_of(dns)  # same ports: one rule, the ipBlocks as further `to` items
    assert rule["to"][0]["podSelector"]["matchLabels"]["k8s-app"] == "kube-dns"
    assert [i["ipBlock"]["cidr"] for i in rule["to"][1:]] == blocks
    assert rule["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    applied = RB.apply(ctx, p, plan)
    ver = RB.verify(ctx, p, plan, applied)
    assert ver.passed, ver.checks
    assert not [c for c in np_codes(lab) if c[0] in ("NP002", "NP003")
                and c[1] == "namespace/web"]


def _dns_on(sc: Scenario, port: int) -> Scenario:
    for o in sc.objects:
        meta = o.get("metadata") or {}
        if o["kind"] == "Service" and meta.get("name") == "kube-dns":
            for sp in o["spec"]["ports"]:
                if sp["port"] == 53:
                    sp["targetPort"] = port
        if o["kind"] == "EndpointSlice" and \
                (meta.get("labels") or {}).get("kubernetes.io/service-name") == "kube-dns":
            for sp in o["ports"]:
                if sp["port"] == 53:
                    sp["port"] = port
    return sc


def test_dns_pods_on_5353_get_a_5353_policy(make_lab: LabFactory) -> None:
    lab = make_lab(_dns_on(scenarios.get("c"), 5353))
    ctx = lab.ctx()
    p = params(namespaces=["default"])
    plan = RB.plan(ctx, p, RB.inspect(ctx))
    dns = plan.changes[0].after
    assert dns is not None
    assert egress_of(dns)[0]["ports"] == [{"protocol": "UDP", "port": 5353},
                                          {"protocol": "TCP", "port": 5353}]
    assert "UDP 5353 and TCP 5353" in plan.changes[0].summary
    applied = RB.apply(ctx, p, plan)
    assert RB.verify(ctx, p, plan, applied).passed


def test_coredns_helm_labels_come_from_the_service_selector(make_lab: LabFactory) -> None:
    sc = scenarios.get("d")
    for o in sc.objects:
        meta = o.get("metadata") or {}
        if o["kind"] == "Service" and meta.get("name") == "kube-dns":
            o["spec"]["selector"] = {"k8s-app": "coredns", "app.kubernetes.io/instance": "dns"}
        if o["kind"] == "Pod" and (meta.get("labels") or {}).get("k8s-app") == "kube-dns":
            meta["labels"] = {"k8s-app": "coredns", "app.kubernetes.io/instance": "dns"}
    lab = make_lab(sc)
    ctx = lab.ctx()
    p = params(namespaces=["default"])
    plan = RB.plan(ctx, p, RB.inspect(ctx))
    dns = plan.changes[0].after
    assert dns is not None
    assert egress_of(dns)[0]["to"][0]["podSelector"] == {"matchLabels": {
        "app.kubernetes.io/instance": "dns", "k8s-app": "coredns"}}
    applied = RB.apply(ctx, p, plan)
    assert RB.verify(ctx, p, plan, applied).passed


def test_no_dns_service_is_refused(make_lab: LabFactory) -> None:
    lab = make_lab("b")
    lab.kube.delete("v1", "services", "kube-dns", "kube-system")
    lab.emu.clear_requests()
    with pytest.raises(Refused) as ei:
        plan_for(lab, namespaces=["web"])
    assert ei.value.reason == "dns-unknown"
    assert lab.writes() == []


def test_shapes_of_allow_from_and_extra_cidrs(make_lab: LabFactory) -> None:
    lab = make_lab("b")
    plan = plan_for(lab, namespaces=["web"], allow_from_namespaces=["shop"],
                    extra_egress_cidrs=["10.20.0.0/16", "2001:db8::/64"])
    by_name = {c.name: c.after for c in plan.changes}
    src = by_name["k8snet-allow-from-shop"]
    assert src is not None and src["spec"] == {
        "podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "shop"}}, "podSelector": {}}]}]}
    cidrs = by_name["k8snet-allow-egress-cidrs"]
    assert cidrs is not None and cidrs["spec"]["egress"] == [{"to": [
        {"ipBlock": {"cidr": "10.20.0.0/16"}}, {"ipBlock": {"cidr": "2001:db8::/64"}}]}]
    deny = by_name[DEFAULT_DENY]
    assert deny is not None and deny["spec"] == {"podSelector": {},
                                                 "policyTypes": ["Ingress", "Egress"]}


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("raw,field,text", [
    ({"namespaces": "web", "colour": "red"}, "colour", "Unknown parameter"),
    ({"namespaces": "Bad_NS"}, "namespaces", "'Bad_NS' is not a valid namespace name"),
    ({"namespaces": "web", "extra_egress_cidrs": "10.0.0.1/24"}, "extra_egress_cidrs",
     "'10.0.0.1/24' has host bits set; the network is 10.0.0.0/24"),
    ({"namespaces": "web", "extra_egress_cidrs": "banana"}, "extra_egress_cidrs",
     "is not an IPv4 or IPv6 network"),
    ({"namespaces": ",".join(f"n{i}" for i in range(300))}, "namespaces", "at most 100"),
    ({"namespaces": "web", "allow_from_namespaces": "`rm -rf`"}, "allow_from_namespaces",
     "not a valid namespace name"),
    ({"namespaces": "<!channel>"}, "namespaces", "not a valid namespace name"),
    ({"namespaces": "all,web"}, "namespaces", "cannot be combined"),
    ({"namespaces": "kube-system"}, "namespaces", "system namespace"),
    ({"namespaces": "a" * 64}, "namespaces", "not a valid namespace name"),
    ({"namespaces": ""}, "namespaces", "at least 1 item"),
])
def test_bad_params_name_the_field_and_write_nothing(make_lab: LabFactory, raw: dict[str, Any],
                                                     field: str, text: str) -> None:
    lab = make_lab("b")
    lab.emu.clear_requests()
    with pytest.raises(InputError) as ei:
        parse_params(NetpolDnsAllow, raw)
    assert ei.value.field == field
    assert text in str(ei.value), str(ei.value)
    for bad in ("`", "<!", "rm -rf"):
        assert bad not in str(ei.value)  # typed markup/shell text is never echoed
    assert lab.emu.requests == []


def test_params_model_is_strict_and_frozen() -> None:
    with pytest.raises(ValidationError) as ei:
        NetpolDnsAllowParams.model_validate({"namespaces": ["web"], "extra": 1})
    assert ei.value.errors()[0]["loc"] == ("extra",)
    p = params(namespaces=["web", "web"], extra_egress_cidrs=["10.0.0.0/8"])
    assert p.namespaces == ["web"]  # duplicates dropped
    with pytest.raises(ValidationError):
        p.default_deny = False  # type: ignore[misc]
    assert NetpolDnsAllow.summary() == \
        "Default-deny plus DNS-allow NetworkPolicies for namespaces"
    schema = NetpolDnsAllowParams.model_json_schema()
    assert all(schema["properties"][f].get("description") for f in schema["properties"])


def test_missing_namespace_is_an_input_error_before_any_write(make_lab: LabFactory) -> None:
    lab = make_lab("b")
    with pytest.raises(InputError) as ei:
        plan_for(lab, namespaces=["web", "nope"])
    assert ei.value.field == "namespaces" and "nope does not exist" in str(ei.value)
    assert lab.writes() == []
