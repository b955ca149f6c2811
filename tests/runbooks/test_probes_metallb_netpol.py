"""The ``metallb`` and ``networkpolicy`` status probes on lab scenarios and cases.

Full reports go through ``bot.engine.status.build_report`` with every probe; facts that other
probes publish (``cni``, ``kube-proxy``, ``nodes``) are also injected directly through
``ProbeContext`` so these probes are tested whether or not those facts are present.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

import runbooks.probes
from bot.engine.status import build_report
from bot.sdk import (
    ClusterReport,
    Finding,
    KubeForbidden,
    ProbeContext,
    SectionReport,
    Severity,
)
from runbooks.probes.metallb import MetalLBProbe
from runbooks.probes.networkpolicy import NetworkPolicyProbe
from tests.lab import scenarios
from tests.lab.paths import REAL
from tests.lab.scenarios._build import Scenario, load, load_one, namespace, service_lb
from tests.lab.store import StaticKubeReader

KP_IPVS_NO_STRICT = {"deployed": True, "replaced_by": None, "mode": "ipvs", "strict_arp": False,
                     "config_source": "configmap", "version": "v1.34.0"}
CNI_CALICO = {"cni": "calico", "enforces_networkpolicy": True, "encapsulation": "ipip"}
CNI_FLANNEL = {"cni": "flannel", "enforces_networkpolicy": False, "encapsulation": "vxlan"}


def reader(sc: Scenario, errors: dict[str, Exception] | None = None) -> StaticKubeReader:
    return StaticKubeReader(sc.store(), sc.logs, sc.version, errors=errors)


def report(sc: Scenario | str, errors: dict[str, Exception] | None = None) -> ClusterReport:
    if isinstance(sc, str):
        sc = scenarios.get(sc)
    return build_report(sc.name, reader(sc, errors), runbooks.probes.all_probes())


def section(rep: ClusterReport, name: str) -> SectionReport:
    return next(s for s in rep.sections if s.name == name)


def facts_of(rep: ClusterReport, name: str) -> dict[str, Any]:
    """A section's facts, {} when that probe is absent or failed."""
    return next((dict(s.facts) for s in rep.sections if s.name == name), {})


def codes(findings: Any) -> list[tuple[str, str]]:
    return [(f.code, f.subject) for f in findings]


def one(findings: Any, code: str, subject: str | None = None) -> Finding:
    hits = [f for f in findings if f.code == code and (subject is None or f.subject == subject)]
    assert len(hits) == 1, (code, subject, codes(findings))
    return hits[0]


def run_metallb(sc: Scenario, facts: dict[str, dict[str, Any]] | None = None) -> Any:
    return MetalLBProbe().inspect(ProbeContext("t", reader(sc), facts=dict(facts or {})))


def run_netpol(sc: Scenario, facts: dict[str, dict[str, Any]] | None = None) -> Any:
    return NetworkPolicyProbe().inspect(ProbeContext("t", reader(sc), facts=dict(facts or {})))


def replace(sc: Scenario, kind: str, name: str, new: dict[str, Any] | None) -> None:
    """Drop (and optionally replace) the object of ``kind``/``name`` in a scenario."""
    sc.objects = [o for o in sc.objects
                  if not (o["kind"] == kind and o["metadata"].get("name") == name)]
    if new is not None:
        sc.objects.append(new)


def pool(name: str, *addresses: str, ns: str = "metallb-system", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": ns}, "spec": {"addresses": list(addresses),
                                                                  **spec}}


# ============================================================================ probe shape


def test_probes_registered_with_contract_sections() -> None:
    probes = {p.section: p for p in runbooks.probes.all_probes()}
    assert (probes["metallb"].order, probes["metallb"].position) == (50, 40)
    assert (probes["networkpolicy"].order, probes["networkpolicy"].position) == (60, 50)
    assert probes["metallb"].title == "MetalLB / LoadBalancers"
    assert probes["networkpolicy"].title == "NetworkPolicy"


# ============================================================================ scenario (a)


def test_a_legacy_metallb_and_pending_grafana() -> None:
    rep = report("a")
    mlb = section(rep, "metallb")
    assert mlb.summary == ("MetalLB v0.12.1 (legacy ConfigMap), 1 pool, 24 addresses, 1 used; "
                           "1 LoadBalancer pending")
    f = one(mlb.findings, "LB001", "service/monitoring/grafana")
    assert f.severity.value == "critical"
    assert f.evidence["reason"] == "requested-ip-outside-pools"
    assert f.evidence["requested_ips"] == ["192.168.20.5"]
    assert "192.168.20.5" in f.message and "outside every MetalLB pool" in f.message
    assert f.runbook == "metallb-pool"
    assert f.params == {"namespace": "metallb-system", "addresses": ["192.168.20.5/32"]}
    # no false alarms: web has its address, the ConfigMap is live (0.12.1), pool not exhausted
    assert not [x for x in mlb.findings if x.subject == "service/shop/web"]
    assert not [x for x in mlb.findings if x.code in ("MLB004", "MLB005", "MLB010", "MLB011",
                                                      "MLB012", "MLB013", "LB003")]
    (p,) = mlb.facts["pools"]
    assert (p["name"], p["size"], p["used"], p["free"]) == ("default", 24, 1, 23)
    assert mlb.facts["generation"] == "legacy" and mlb.facts["l2_in_use"]
    assert mlb.facts["loadbalancers"] == {"total": 2, "with_ip": 1,
                                          "pending": ["monitoring/grafana"]}


def test_a_networkpolicy_on_flannel_never_claims_isolation() -> None:
    npsec = section(report("a"), "networkpolicy")
    assert not [f for f in npsec.findings if f.code in ("NP002", "NP003")]
    if npsec.facts.get("enforced") is False:
        # not "ok": no namespace is isolated, and the section must say so
        assert npsec.status.value == "warning"
        assert "does not enforce NetworkPolicy" in npsec.summary
        iso = one(npsec.findings, "NP013", "cluster/networkpolicy")
        assert set(iso.evidence["namespaces"]) == {"default", "kube-flannel", "metallb-system",
                                                   "monitoring", "shop"}
        assert not [f for f in npsec.findings if f.code == "NP001"]
    else:  # cni facts unavailable: enforcement unknown, said so
        assert npsec.error and "enforcement unknown" in npsec.error
        one(npsec.findings, "NP005")
    assert npsec.facts["coverage"]["default_deny_ingress"] == 0


# ============================================================================ scenario (b)


def test_b_metallb_crds_l2_with_ipvs_without_strict_arp() -> None:
    rep = report("b")
    mlb = section(rep, "metallb")
    assert mlb.summary.startswith("MetalLB v0.13.10 (CRDs), 1 pool, 4 addresses, 1 used")
    assert not [f for f in mlb.findings if f.code.startswith("LB")]
    (p,) = mlb.facts["pools"]
    assert p["advertised_by"] == {"l2": ["l2-advert"], "bgp": []}
    if facts_of(rep, "kube-proxy").get("mode") == "ipvs":
        f = one(mlb.findings, "MLB013")
        assert f.subject == "configmap/kube-system/kube-proxy"
        assert f.params == {"mode": "ipvs", "strict_arp": True}
    else:
        one(mlb.findings, "MLB014")


def test_b_strict_arp_with_injected_facts() -> None:
    sc = scenarios.get("b")
    insp = run_metallb(sc, {"kube-proxy": KP_IPVS_NO_STRICT})
    f = one(insp.findings, "MLB013", "configmap/kube-system/kube-proxy")
    assert f.severity.value == "critical"
    assert f.message.startswith("MetalLB L2 will be answered by every node")
    assert f.runbook == "kube-proxy-mode" and f.params == {"mode": "ipvs", "strict_arp": True}
    assert f.evidence["l2advertisements"] == ["l2-advert"]
    assert f.evidence["l2_addresses"] == ["172.16.245.171"]
    assert f.evidence["services_external_traffic_policy_local"] == ["shop/storefront"]
    fixed = run_metallb(sc, {"kube-proxy": {**KP_IPVS_NO_STRICT, "strict_arp": True}})
    assert not [x for x in fixed.findings if x.code in ("MLB013", "MLB014")]
    iptables = run_metallb(sc, {"kube-proxy": {**KP_IPVS_NO_STRICT, "mode": "iptables"}})
    assert not [x for x in iptables.findings if x.code in ("MLB013", "MLB014")]
    unknown = run_metallb(sc, {"kube-proxy": {**KP_IPVS_NO_STRICT, "strict_arp": None}})
    assert one(unknown.findings, "MLB014").severity.value == "warning"


def test_b_kube_proxy_facts_missing_is_unknown_not_a_guess() -> None:
    insp = run_metallb(scenarios.get("b"), {})
    f = one(insp.findings, "MLB014")
    assert f.severity.value == "info"
    assert "strictARP not checked" in insp.facts["undecided"]
    assert not [x for x in insp.findings if x.code == "MLB013"]


def test_b_networkpolicy_coverage() -> None:
    sc = scenarios.get("b")
    insp = run_netpol(sc, {"cni": CNI_CALICO})
    ns = insp.facts["namespaces"]
    assert ns["shop"]["ingress"] == "default-deny" and ns["shop"]["egress"] == "default-deny"
    assert ns["shop"]["dns_egress"] == "allowed"
    assert not [f for f in insp.findings if f.subject in ("namespace/shop",)
                or f.subject.startswith("networkpolicy/shop/")]
    web = one(insp.findings, "NP001", "namespace/web")
    assert web.severity.value == "warning"
    assert web.runbook == "netpol-dns-allow" and web.params == {"namespaces": ["web"]}
    assert {f.subject for f in insp.findings if f.code == "NP001"} == {
        "namespace/default", "namespace/metallb-system", "namespace/web"}
    assert not [f for f in insp.findings if f.subject.startswith("namespace/kube-")]
    assert insp.facts["coverage"] == {"namespaces": 4, "default_deny_ingress": 1,
                                      "default_deny_egress": 1}
    assert insp.facts["dns"]["ports"] == {"TCP": [53], "UDP": [53]}
    assert "Calico enforces NetworkPolicy" in insp.summary
    rep = report(sc)
    assert not [f for f in section(rep, "networkpolicy").findings if f.severity.value == "critical"]


# ============================================================================ cases


def test_case_dns_allow_or_selectors_and_name_label() -> None:
    sc = scenarios.get("case-dns-allow-or-selectors")
    for insp_findings in (run_netpol(sc, {"cni": CNI_CALICO}).findings,
                          section(report(sc), "networkpolicy").findings):
        f = one(insp_findings, "NP002", "namespace/example")
        assert f.severity.value == "critical"
        assert "podSelector k8s-app=kube-dns without namespaceSelector only matches pods in " \
               "example" in f.message
        assert "namespaceSelector name=kube-system matches no namespace" in f.message
        assert "kube-system is labelled kubernetes.io/metadata.name=kube-system" in f.message
        assert f.evidence["udp"] is False and f.evidence["tcp"] is False
        assert [p["item"] for p in f.evidence["peers"]] == [1, 2]
        assert f.evidence["dns"]["selector"]["k8s-app"] == "kube-dns"
        assert f.evidence["dns"]["pods"][0]["ip"] == "10.42.9.138"
        assert f.runbook == "netpol-dns-allow" and f.params == {"namespaces": ["example"]}
        lint = one(insp_findings, "NP011", "networkpolicy/example/allow-cluster-dns")
        assert lint.evidence["peers"][0]["missing_labels"] == ["name"]


def test_case_dns_with_cni_facts_missing_says_unknown() -> None:
    insp = run_netpol(scenarios.get("case-dns-allow-or-selectors"), {})
    one(insp.findings, "NP005", "cluster/networkpolicy")
    assert "enforcement unknown" in insp.facts["undecided"]
    assert insp.facts["enforced"] is None
    one(insp.findings, "NP002", "namespace/example")  # analysed as written


def test_case_flannel_netpol_not_enforced() -> None:
    sc = scenarios.get("case-flannel-netpol-not-enforced")
    insp = run_netpol(sc, {"cni": CNI_FLANNEL})
    f = one(insp.findings, "NP004", "networkpolicy/default/deny-cross-namespace")
    assert f.severity.value == "warning" and "not enforced" in f.message
    assert sorted(x.code for x in insp.findings) == ["NP004", "NP013"]
    iso = one(insp.findings, "NP013", "cluster/networkpolicy")
    assert iso.severity is Severity.WARNING and "No namespace is isolated" in iso.message
    assert insp.facts["namespaces"]["default"]["ingress"] == "not-enforced"
    assert insp.facts["namespaces"]["default"]["declared_ingress"] == "default-deny"
    assert insp.facts["coverage"]["default_deny_ingress"] == 0
    assert insp.summary.startswith("Flannel does not enforce NetworkPolicy")
    npsec = section(report(sc), "networkpolicy")
    if npsec.facts.get("enforced") is False:
        one(npsec.findings, "NP004", "networkpolicy/default/deny-cross-namespace")
        assert npsec.facts["cni"] == "Flannel"
        assert not [x for x in npsec.findings if x.code == "NP001"]
    else:  # cni facts missing: unknown, and still no isolation claim
        one(npsec.findings, "NP005")
        assert npsec.error and "enforcement unknown" in npsec.error


def test_case_metallb_l2_ipvs_no_strictarp() -> None:
    sc = scenarios.get("case-metallb-l2-ipvs-no-strictarp")
    rep = report(sc)
    mlb = section(rep, "metallb")
    assert mlb.summary.startswith("MetalLB v0.14.8 (CRDs), 1 pool, 11 addresses, 1 used")
    if facts_of(rep, "kube-proxy").get("mode") == "ipvs":
        assert mlb.status.value == "critical"
        f = one(mlb.findings, "MLB013", "configmap/kube-system/kube-proxy")
    else:  # kube-proxy probe absent: undecided, then the same check with the facts injected
        assert mlb.status.value == "unknown"
        one(mlb.findings, "MLB014")
        f = one(run_metallb(sc, {"kube-proxy": KP_IPVS_NO_STRICT}).findings, "MLB013")
    assert f.message.startswith("MetalLB L2 will be answered by every node")
    assert "192.0.2.240" in f.message
    assert f.evidence["l2advertisements"] == ["lan"]
    assert f.evidence["layer2_pools"] == ["lan"]
    assert f.evidence["services_external_traffic_policy_local"] == ["default/app"]
    assert f.runbook == "kube-proxy-mode" and f.params == {"mode": "ipvs", "strict_arp": True}
    assert not [x for x in mlb.findings if x.code.startswith("LB")]


# ============================================================================ MetalLB variants


def test_malformed_legacy_yaml_is_a_finding_not_a_crash() -> None:
    sc = scenarios.get("a")
    cm = copy.deepcopy(load_one("metallb-legacy-configmap/user-layer2-range.configmap.yaml"))
    cm["data"]["config"] = "address-pools:\n- name: default\n  addresses: [192.168.10.177\n"
    replace(sc, "ConfigMap", "config", cm)
    mlb = section(report(sc), "metallb")
    assert mlb.error is None
    f = one(mlb.findings, "MLB006", "configmap/metallb-system/config")
    assert f.severity.value == "critical" and "YAML error" in f.evidence["errors"][0]
    g = one(mlb.findings, "LB001", "service/monitoring/grafana")
    assert "config-invalid" in g.evidence["reasons"]


def test_legacy_configmap_missing() -> None:
    sc = scenarios.get("a")
    replace(sc, "ConfigMap", "config", None)
    f = one(run_metallb(sc).findings, "MLB006", "configmap/metallb-system/config")
    assert f.runbook == "metallb-pool"
    g = one(run_metallb(sc).findings, "LB001")
    assert g.evidence["reason"] == "no-config"


def test_bad_pool_address_host_bits_overlap_and_node_ip() -> None:
    sc = scenarios.get("b")
    replace(sc, "IPAddressPool", "production", None)
    sc.objects += [
        pool("production", "172.16.245.171-172.16.245.174"),
        pool("broken", "172.16.246.300-172.16.246.310"),
        pool("wide", "10.50.0.5/24"),
        pool("twin", "172.16.245.171-172.16.245.174"),
        pool("nodes", "172.16.245.160-172.16.245.165"),
    ]
    insp = run_metallb(sc, {"kube-proxy": {**KP_IPVS_NO_STRICT, "strict_arp": True}})
    one(insp.findings, "MLB007", "ipaddresspool/metallb-system/broken")
    hb = one(insp.findings, "MLB008", "ipaddresspool/metallb-system/wide")
    assert hb.evidence == {"address": "10.50.0.5/24", "network": "10.50.0.0/24", "size": 256}
    ov = [f for f in insp.findings if f.code == "MLB009"]
    assert len(ov) == 1 and ov[0].evidence["shared"] == "172.16.245.171-172.16.245.174"
    node_hits = [f for f in insp.findings if f.code == "MLB012"]
    assert sorted(f.evidence["node"] for f in node_hits) == ["node-1", "node-2", "node-3"]
    assert all(f.subject == "ipaddresspool/metallb-system/nodes" for f in node_hits)
    assert node_hits[0].evidence["nodes_from"] == "api"
    # with nodes facts (InternalIP) the probe uses them
    facts = {"nodes": {"nodes": [{"name": "n9", "internal_ip": "10.50.0.9"}]}}
    insp2 = run_metallb(sc, facts)
    (n9,) = [f for f in insp2.findings if f.code == "MLB012"]
    assert (n9.subject, n9.evidence["nodes_from"]) == ("ipaddresspool/metallb-system/wide",
                                                      "nodes-facts")


def test_pool_no_advertisement_selects() -> None:
    sc = scenarios.get("b")
    replace(sc, "L2Advertisement", "l2-advert", {
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "l2-advert", "namespace": "metallb-system"},
        "spec": {"ipAddressPools": ["prod"]}})
    insp = run_metallb(sc, {"kube-proxy": KP_IPVS_NO_STRICT})
    f = one(insp.findings, "MLB011", "ipaddresspool/metallb-system/production")
    assert f.severity.value == "critical" and f.evidence["in_use"] == ["172.16.245.171"]
    svc = one(insp.findings, "LB003", "service/shop/storefront")
    assert svc.severity.value == "critical" and "never announced" in svc.message
    adv = one(insp.findings, "MLB015", "l2advertisement/metallb-system/l2-advert")
    assert adv.evidence["unknown_pools"] == ["prod"]


def test_exhausted_pool_and_pending_service() -> None:
    sc = scenarios.get("b")
    replace(sc, "IPAddressPool", "production", pool("production", "172.16.245.171/32"))
    sc.objects.append(service_lb("second", "shop", ip=None, cluster_ip="10.96.33.21"))
    insp = run_metallb(sc, {"kube-proxy": {**KP_IPVS_NO_STRICT, "strict_arp": True}})
    ex = one(insp.findings, "MLB010", "ipaddresspool/metallb-system/production")
    assert ex.severity.value == "critical" and ex.runbook == "metallb-pool"
    lb = one(insp.findings, "LB001", "service/shop/second")
    assert lb.evidence["reason"] == "pools-exhausted"
    assert lb.runbook == "metallb-pool" and lb.params == {"namespace": "metallb-system",
                                                          "pool": "production"}
    assert not [f for f in insp.findings if f.subject == "service/shop/storefront"]


def test_crd_metallb_with_only_legacy_configmap() -> None:
    sc = scenarios.get("b")
    replace(sc, "IPAddressPool", "production", None)
    sc.objects.append(load_one("metallb-legacy-configmap/user-layer2-cidr.configmap.yaml"))
    sc.objects.append(service_lb("pending", "web", ip=None, cluster_ip="10.96.33.22"))
    insp = run_metallb(sc, {"kube-proxy": KP_IPVS_NO_STRICT})
    dead = one(insp.findings, "MLB004", "configmap/metallb-system/config")
    assert dead.severity.value == "warning"
    assert "ignored since MetalLB 0.13.2" in dead.message and "configmaptocrs" in dead.message
    assert dead.evidence["addresses"] == ["203.0.113.216/29"]
    one(insp.findings, "MLB005", "namespace/metallb-system")
    lb = one(insp.findings, "LB001", "service/web/pending")
    assert lb.evidence["reason"] == "no-pools" and "legacy ConfigMap" in lb.message
    assert insp.facts["dead_configmaps"] == ["configmap/metallb-system/config"]


def test_helm_configinline_configmap_found_in_controller_namespace() -> None:
    sc = scenarios.get("a")
    replace(sc, "ConfigMap", "config", None)
    for o in sc.objects:
        if o["metadata"].get("namespace") == "metallb-system" and o["kind"] in (
                "Deployment", "DaemonSet", "Pod"):
            o["metadata"]["namespace"] = "networking"
    sc.objects.append(namespace("networking"))
    sc.objects.append(load_one("metallb-legacy-configmap/user-helm-configinline-exported"
                               ".configmap.yaml"))
    insp = run_metallb(sc)
    assert insp.facts["namespace"] == "networking"
    assert [p["name"] for p in insp.facts["pools"]] == ["default"]
    assert not [f for f in insp.findings if f.code in ("MLB004", "MLB006")]


def test_no_metallb_explains_pending() -> None:
    sc = scenarios.get("case-dns-allow-or-selectors")
    sc.objects.append(service_lb("ui", "example", ip=None))
    insp = run_metallb(sc)
    one(insp.findings, "MLB001", "cluster/metallb")
    lb = one(insp.findings, "LB001", "service/example/ui")
    assert lb.evidence["reason"] == "no-metallb"
    assert "no load-balancer implementation" in lb.message
    assert insp.summary == "MetalLB not installed; 1 LoadBalancer pending"


@pytest.mark.parametrize("mutate,reason,code", [
    (lambda s: s["spec"].update(loadBalancerClass="example.com/other"), "foreign-class", "LB002"),
    (lambda s: s["metadata"].setdefault("annotations", {}).update(
        {"metallb.io/address-pool": "gold"}), "unknown-pool", "LB001"),
    (lambda s: s["metadata"].setdefault("annotations", {}).update(
        {"metallb.universe.tf/loadBalancerIPs": "172.16.245.171"}), "requested-ip-in-use",
     "LB001"),
    (lambda s: s["spec"].update(ipFamilies=["IPv6"]), "ip-family", "LB001"),
])
def test_pending_reasons(mutate: Any, reason: str, code: str) -> None:
    sc = scenarios.get("b")
    svc = service_lb("pending", "web", ip=None, cluster_ip="10.96.33.23")
    mutate(svc)
    sc.objects.append(svc)
    f = one(run_metallb(sc, {"kube-proxy": KP_IPVS_NO_STRICT}).findings, code,
            "service/web/pending")
    assert f.evidence["reason"] == reason


def test_controller_not_ready() -> None:
    sc = scenarios.get("b")
    for o in sc.objects:
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "controller":
            o["status"] = {"replicas": 1, "readyReplicas": 0}
    sc.objects.append(service_lb("pending", "web", ip=None, cluster_ip="10.96.33.24"))
    insp = run_metallb(sc, {"kube-proxy": KP_IPVS_NO_STRICT})
    assert one(insp.findings, "MLB002").severity.value == "critical"
    lb = one(insp.findings, "LB001", "service/web/pending")
    assert lb.evidence["reason"] == "controller-not-ready"


def test_metallb_section_unknown_when_services_forbidden() -> None:
    err = KubeForbidden('services is forbidden: User "k8snet" cannot list resource "services"',
                        verb="list", resource="services")
    rep = report("b", errors={"services": err})
    mlb = section(rep, "metallb")
    assert mlb.status.value == "unknown" and "services" in (mlb.error or "")


# ========================================================================= NetworkPolicy variants


def test_networkpolicy_403_marks_section_unknown_rest_stands() -> None:
    err = KubeForbidden('networkpolicies.networking.k8s.io is forbidden: User "k8snet" cannot '
                        'list resource "networkpolicies"', verb="list",
                        resource="networkpolicies", group="networking.k8s.io")
    rep = report("case-dns-allow-or-selectors", errors={"networkpolicies": err})
    npsec = section(rep, "networkpolicy")
    assert npsec.status.value == "unknown"
    assert "networkpolicies" in (npsec.error or "") and not npsec.findings
    mlb = section(rep, "metallb")
    assert mlb.status.value != "unknown" and mlb.error is None


def test_default_deny_in_webhook_namespace_is_mentioned() -> None:
    sc = scenarios.get("b")
    deny = copy.deepcopy(load_one("networkpolicy/ahmetb-03-default-deny-ingress-namespace.yaml"))
    deny["metadata"]["namespace"] = "metallb-system"
    sc.objects.append(deny)
    insp = run_netpol(sc, {"cni": CNI_CALICO})
    f = one(insp.findings, "NP007", "namespace/metallb-system")
    assert f.severity.value == "info"
    hooks = f.evidence["webhooks"]
    assert {h["webhook"] for h in hooks} >= {"ipaddresspoolvalidationwebhook.metallb.io"}
    assert all(h["service"] == "metallb-webhook-service" and h["failurePolicy"] == "Fail"
               for h in hooks)


def test_allow_all_policy_defeats_deny() -> None:
    sc = scenarios.get("b")
    sc.objects.append(load_one("networkpolicy/rke2-flannel-host-networking.yaml"))
    allow = copy.deepcopy(load_one("networkpolicy/rke2-flannel-host-networking.yaml"))
    allow["metadata"].update(namespace="shop", name="allow-everything")
    sc.objects.append(allow)
    insp = run_netpol(sc, {"cni": CNI_CALICO})
    ks = one(insp.findings, "NP006", "networkpolicy/kube-system/rke2-flannel-host-networking")
    assert ks.severity.value == "warning" and "has no effect" in ks.message
    shop = one(insp.findings, "NP006", "networkpolicy/shop/allow-everything")
    assert "defeats default-deny default-deny-all" in shop.message
    assert insp.facts["namespaces"]["shop"]["ingress"] == "allow-all"
    # NP006 explains it; NP001 (whose runbook adds a deny) would not fix an additive allow-all
    assert not [f for f in insp.findings if f.code == "NP001" and f.subject == "namespace/shop"]


def test_udp_only_dns_allow_is_a_warning() -> None:
    sc = scenarios.get("b")
    for o in sc.objects:
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "allow-dns":
            o["spec"]["egress"][0]["ports"] = [{"port": 53, "protocol": "UDP"}]
    insp = run_netpol(sc, {"cni": CNI_CALICO})
    f = one(insp.findings, "NP003", "namespace/shop")
    assert f.severity.value == "warning" and f.evidence == {**f.evidence, "udp": True, "tcp": False}
    assert insp.facts["namespaces"]["shop"]["dns_egress"] == "udp-only"


def test_recipe_11_first_document_blocks_dns_for_selected_pods() -> None:
    sc = scenarios.get("b")
    foo_deny = copy.deepcopy(load("networkpolicy/ahmetb-11-deny-egress-then-allow-dns.yaml")[0])
    foo_deny["metadata"]["namespace"] = "web"
    sc.objects.append(foo_deny)
    insp = run_netpol(sc, {"cni": CNI_CALICO})
    f = one(insp.findings, "NP008", "networkpolicy/web/foo-deny-egress")
    assert f.severity.value == "warning" and "app=foo" in f.message
    assert insp.facts["namespaces"]["web"]["dns_egress"] == "denied-for-some-pods"


def test_nodelocal_dns_breaks_selector_based_allow() -> None:
    sc = scenarios.get("b")
    addon = load(REAL / "coredns" / "nodelocaldns.addon.yaml")
    ds = copy.deepcopy(next(o for o in addon if o["kind"] == "DaemonSet"))
    ds["spec"]["template"]["spec"]["containers"][0]["args"][1] = "169.254.20.10,10.96.0.10"
    upstream = next(o for o in addon if o["kind"] == "Service" and
                    o["metadata"]["name"] == "kube-dns-upstream")
    sc.objects += [ds, upstream]
    insp = run_netpol(sc, {"cni": CNI_CALICO})
    f = one(insp.findings, "NP002", "namespace/shop")
    assert "NodeLocal DNSCache" in f.message
    assert f.evidence["dns"]["service"] == "kube-system/kube-dns"  # not kube-dns-upstream
    assert f.evidence["dns"]["nodelocal_ips"] == ["169.254.20.10", "10.96.0.10"]
    ipb = copy.deepcopy(load_one("networkpolicy/user-dns-allow-via-ipblock-for-nodelocaldns.yaml"))
    ipb["spec"]["egress"][0]["to"] = [{"ipBlock": {"cidr": "169.254.20.10/32"}},
                                      {"ipBlock": {"cidr": "10.96.0.10/32"}}]
    ipb.update(apiVersion="networking.k8s.io/v1", kind="NetworkPolicy",
               metadata={"name": "allow-nodelocal-dns", "namespace": "shop"})
    sc.objects.append(ipb)
    fixed = run_netpol(sc, {"cni": CNI_CALICO})
    assert not [x for x in fixed.findings if x.subject == "namespace/shop"]


def test_dns_namespace_ingress_default_deny_blocks_everyone() -> None:
    sc = scenarios.get("b")
    deny = copy.deepcopy(load_one("networkpolicy/ahmetb-03-default-deny-ingress-namespace.yaml"))
    deny["metadata"]["namespace"] = "kube-system"
    sc.objects.append(deny)
    insp = run_netpol(sc, {"cni": CNI_CALICO})
    f = one(insp.findings, "NP009", "namespace/kube-system")
    assert f.severity.value == "critical"
    assert set(f.evidence["blocked"]) >= {"shop", "web", "default"}


def test_egress_without_policy_type_is_flagged() -> None:
    sc = scenarios.get("b")
    sc.objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": "meant-to-deny-egress", "namespace": "web"},
                       "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "egress": []}})
    insp = run_netpol(sc, {"cni": CNI_CALICO})
    one(insp.findings, "NP012", "networkpolicy/web/meant-to-deny-egress")
    assert insp.facts["namespaces"]["web"]["egress"] == "none"


def test_dns_service_missing_is_unknown() -> None:
    sc = scenarios.get("case-dns-allow-or-selectors")
    replace(sc, "Service", "kube-dns", None)
    insp = run_netpol(sc, {"cni": CNI_CALICO})
    one(insp.findings, "NP010")
    assert insp.facts["namespaces"]["example"]["dns_egress"] == "unknown"
    assert "DNS egress not evaluated" in insp.facts["undecided"]
    assert not [f for f in insp.findings if f.code == "NP002"]


def test_findings_are_plain_sentences_with_valid_codes() -> None:
    for name in ("a", "b", "case-dns-allow-or-selectors", "case-flannel-netpol-not-enforced",
                 "case-metallb-l2-ipvs-no-strictarp"):
        rep = report(name)
        for s in (section(rep, "metallb"), section(rep, "networkpolicy")):
            assert s.summary and "\n" not in s.summary
            for f in s.findings:
                assert f.code[:2] in ("ML", "LB", "NP")
                assert f.message.endswith(".") and "\n" not in f.message
                assert not re.search(r"[*`]|<https?:|:[a-z_]+:", f.message), f.message
                assert f.section == s.name
