"""runbooks._lib.netpol: selectors, policyTypes defaulting, peers (OR vs AND), DNS evaluation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from runbooks._lib import netpol as np
from tests.lab.paths import CASES, REAL
from tests.lab.scenarios._build import endpointslice_for, load, load_one, pods_for

NP_DIR = REAL / "networkpolicy"
NP_FILES = sorted(NP_DIR.glob("*.yaml"))
NS = {"kube-system": {"kubernetes.io/metadata.name": "kube-system"},
      "example": {"kubernetes.io/metadata.name": "example"},
      "monitoring": {"kubernetes.io/metadata.name": "monitoring", "team": "operations"}}


def _pol(spec: dict, ns: str = "example", name: str = "p") -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


# --------------------------------------------------------------------------- fixtures parse


@pytest.mark.parametrize("path", NP_FILES, ids=lambda p: p.name)
def test_every_networkpolicy_fixture_parses(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    assert docs
    for d in docs:
        pol = d if "kind" in d else {"kind": "NetworkPolicy", "metadata": {"name": "fragment"}, **d}
        types = np.policy_types(pol)
        assert np.INGRESS in types or np.EGRESS in types
        for direction in (np.INGRESS, np.EGRESS):
            np.rules(pol, direction)
            np.is_default_deny(pol, direction)
        np.namespace_selectors_matching_nothing(pol, NS)


def test_flow_style_default_deny_all() -> None:
    pol = load_one(NP_DIR / "k8s-docs-default-deny-all.yaml")
    assert np.policy_types(pol) == {np.INGRESS, np.EGRESS}
    assert np.is_default_deny(pol, np.INGRESS) and np.is_default_deny(pol, np.EGRESS)
    assert np.policy_namespace(pol) == "default"
    assert np.isolation([pol], np.EGRESS).state == "default-deny"


# --------------------------------------------------------------------------- policyTypes


def test_policy_types_defaulting() -> None:
    deny_in = load_one(NP_DIR / "ahmetb-03-default-deny-ingress-namespace.yaml")
    assert np.policy_types(deny_in) == {np.INGRESS}
    assert np.is_default_deny(deny_in, np.INGRESS) and not np.is_default_deny(deny_in, np.EGRESS)
    with_egress = _pol({"podSelector": {}, "egress": [{"to": [{"podSelector": {}}]}]})
    assert np.policy_types(with_egress) == {np.INGRESS, np.EGRESS}
    # kubernetes/kubernetes pkg/apis/networking/v1/defaults.go: len(Egress) != 0
    empty_egress = _pol({"podSelector": {}, "egress": []})
    assert np.policy_types(empty_egress) == {np.INGRESS}
    assert not np.is_default_deny(empty_egress, np.EGRESS)
    explicit = load_one(NP_DIR / "ahmetb-12-default-deny-egress-namespace.yaml")
    assert np.policy_types(explicit) == {np.EGRESS}
    assert np.is_default_deny(explicit, np.EGRESS)


# --------------------------------------------------------------------------- selectors


def test_label_selector_semantics() -> None:
    labels = {"app": "web", "tier": "front"}
    assert np.label_selector_matches({}, labels)
    assert not np.label_selector_matches(None, labels)
    assert np.label_selector_matches({"matchLabels": {"app": "web"}}, labels)
    assert not np.label_selector_matches({"matchLabels": {"app": "web", "x": "y"}}, labels)
    ex = [("In", ["web", "api"], True), ("NotIn", ["web"], False), ("Exists", [], True),
          ("DoesNotExist", [], False), ("Bogus", [], False)]
    for op, vals, want in ex:
        sel = {"matchExpressions": [{"key": "app", "operator": op, "values": vals}]}
        assert np.label_selector_matches(sel, labels) is want, op
    missing = {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}
    assert np.label_selector_matches(missing, labels)
    both = {"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}
    assert not np.label_selector_matches(both, labels)
    assert np.describe_selector(both) == "app=web,tier in (back)"
    assert np.describe_selector({}) == "{}"


# --------------------------------------------------------------------------- peers


def test_and_form_requires_both_namespace_and_pod() -> None:
    pol = load_one(NP_DIR / "ahmetb-07-allow-from-pods-in-namespace.yaml")
    peer = np.rules(pol, np.INGRESS)[0]["from"][0]
    mon = np.Endpoint("monitoring", {"type": "monitoring"})
    assert np.peer_matches(peer, "default", NS, mon)
    assert not np.peer_matches(peer, "default", NS, np.Endpoint("monitoring", {"type": "x"}))
    assert not np.peer_matches(peer, "default", NS, np.Endpoint("example", {"type": "monitoring"}))


def test_or_form_items_are_independent() -> None:
    pol = load_one(NP_DIR / "k8s-docs-networkpolicy-example.yaml")
    rule = np.rules(pol, np.INGRESS)[0]
    ns_lab = {**NS, "proj": {"project": "myproject"}}
    # namespaceSelector item alone: any pod in a project=myproject namespace
    assert np.rule_allows(rule, np.INGRESS, "default", ns_lab, np.Endpoint("proj", {}), "TCP", 6379)
    # podSelector item alone: role=frontend, but only in the policy's own namespace
    assert np.rule_allows(rule, np.INGRESS, "default", ns_lab,
                          np.Endpoint("default", {"role": "frontend"}), "TCP", 6379)
    assert not np.rule_allows(rule, np.INGRESS, "default", ns_lab,
                              np.Endpoint("example", {"role": "frontend"}), "TCP", 6379)
    # ipBlock with except
    ext = np.Endpoint("", ip="172.17.2.9", host_network=True)
    assert np.rule_allows(rule, np.INGRESS, "default", ns_lab, ext, "TCP", 6379)
    assert not np.rule_allows(rule, np.INGRESS, "default", ns_lab,
                              np.Endpoint("", ip="172.17.1.9", host_network=True), "TCP", 6379)
    assert not np.rule_allows(rule, np.INGRESS, "default", ns_lab, ext, "UDP", 6379)


def test_ports_named_ranges_and_default_protocol() -> None:
    tgt = np.Endpoint("kube-system", {}, named_ports={"dns": ("UDP", 53), "dns-tcp": ("TCP", 53)})
    assert np.port_matches({"port": 53}, "TCP", 53, tgt)
    assert not np.port_matches({"port": 53}, "UDP", 53, tgt)
    assert np.port_matches({"protocol": "UDP", "port": "dns"}, "UDP", 53, tgt)
    assert not np.port_matches({"protocol": "UDP", "port": "dns-tcp"}, "UDP", 53, tgt)
    assert np.port_matches({"protocol": "TCP", "port": 50, "endPort": 60}, "TCP", 53, tgt)
    assert np.port_matches({"protocol": "UDP"}, "UDP", 5353, tgt)


def test_selectors_never_match_host_network() -> None:
    peer = {"namespaceSelector": {}, "podSelector": {}}
    assert not np.peer_matches(peer, "x", NS, np.Endpoint("kube-system", {}, "169.254.20.10",
                                                          host_network=True))
    assert np.peer_matches({"ipBlock": {"cidr": "169.254.20.10/32"}}, "x", NS,
                           np.Endpoint("kube-system", {}, "169.254.20.10", host_network=True))


def test_isolation_states() -> None:
    rke2 = load_one(NP_DIR / "rke2-flannel-host-networking.yaml")
    assert np.isolation([rke2], np.INGRESS).state == "allow-all"
    assert np.allow_all_policies([rke2], np.INGRESS) == [rke2]
    assert np.isolation([], np.INGRESS).state == "none"
    foo = load(NP_DIR / "ahmetb-11-deny-egress-then-allow-dns.yaml")[0]
    assert np.isolation([foo], np.EGRESS).state == "partial"
    both = load(NP_DIR / "user-broken-dns-allow-or-selectors.yaml")
    iso = np.isolation(both, np.EGRESS)
    assert (iso.state, iso.deny_policies, iso.isolating) == (
        "default-deny", ("deny-all",), ("allow-cluster-dns", "deny-all"))


# --------------------------------------------------------------------------- DNS


def _coredns(labels_override: dict | None = None, target_port: int | None = None,
             ) -> tuple[dict, list[dict], dict]:
    deploy, svc = (copy.deepcopy(o) for o in
                   load("coredns/coredns-deployment-and-service.sed-template.yaml"))
    if labels_override is not None:
        deploy["spec"]["template"]["metadata"]["labels"] = labels_override
        svc["spec"]["selector"] = labels_override
    if target_port is not None:
        for p in svc["spec"]["ports"]:
            if p["port"] == 53:
                p["targetPort"] = target_port
    node = {"metadata": {"name": "node-1"}, "status": {"addresses": [{"address": "10.0.0.1"}]}}
    pods = pods_for(deploy, [node])
    return svc, pods, endpointslice_for(svc, pods)


def _dns(**kw: object) -> np.DnsTarget:
    svc, pods, es = _coredns(**kw)  # type: ignore[arg-type]
    return np.dns_target(svc, [es], pods)


def test_dns_target_from_live_objects() -> None:
    t = _dns()
    assert t.service == "kube-system/kube-dns"
    assert t.selector == {"k8s-app": "kube-dns", "app.kubernetes.io/name": "coredns"}
    assert t.ports == {"TCP": (53,), "UDP": (53,)}
    assert len(t.backends) == 1 and t.backends[0].labels["k8s-app"] == "kube-dns"
    # the pod port counts, not the Service port (e.g. DNS pods on 5353)
    assert _dns(target_port=5353).ports == {"TCP": (5353,), "UDP": (5353,)}


def test_recipe_11_and_form_allows_dns_udp_and_tcp() -> None:
    pol = copy.deepcopy(load(NP_DIR / "ahmetb-11-deny-egress-then-allow-dns.yaml")[1])
    pol["metadata"]["namespace"] = "example"
    v = np.dns_egress([pol], NS, _dns())
    assert v.allowed and v.allowing == ("foo-deny-egress",) and not v.reasons


def test_broken_or_selectors_policy_explains_both_reasons() -> None:
    pols = load(CASES / "dns-allow-policy-or-selectors-and-name-label" / "existing-policies.yaml")
    ns = {n["metadata"]["name"]: n["metadata"]["labels"] for n in
          load(CASES / "dns-allow-policy-or-selectors-and-name-label" / "namespaces.yaml")}
    v = np.dns_egress(pols, ns, _dns())
    assert not v.udp and not v.tcp
    assert len(v.reasons) == 2
    assert "only matches pods in example" in v.reasons[0]
    assert "matches no namespace" in v.reasons[1] and "label name" in v.reasons[1]
    assert "kubernetes.io/metadata.name=kube-system" in v.reasons[1]
    assert [p["item"] for p in v.peers] == [1, 2]


def test_udp_only_allow_is_not_enough() -> None:
    pol = _pol({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
        "to": [{"namespaceSelector": {"matchLabels": {np.NAME_LABEL: "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}]}]})
    v = np.dns_egress([pol], NS, _dns())
    assert v.udp and not v.tcp
    assert any("TCP 53" in r for r in v.reasons)


def test_helm_coredns_labels_do_not_match_kube_dns_selector() -> None:
    pol = copy.deepcopy(load(NP_DIR / "ahmetb-14-deny-external-egress-allow-dns.yaml")[0])
    pol["metadata"]["namespace"] = "example"
    helm = _dns(labels_override={"k8s-app": "coredns", "app.kubernetes.io/name": "coredns"})
    v = np.dns_egress([pol], NS, helm)
    assert not v.udp
    assert "does not match the DNS pods" in v.reasons[0] and "k8s-app=coredns" in v.reasons[0]


def test_ipblock_of_the_service_ip_does_not_reach_pods() -> None:
    svc, pods, es = _coredns()
    svc["spec"]["clusterIP"] = "10.96.0.10"
    dns = np.dns_target(svc, [es], pods)
    pol = _pol({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
        "to": [{"ipBlock": {"cidr": "10.96.0.10/32"}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})
    v = np.dns_egress([pol], NS, dns)
    assert not v.udp and "after DNAT" in v.reasons[0]
    pod_ip = dns.backends[0].ip
    pol["spec"]["egress"][0]["to"] = [{"ipBlock": {"cidr": f"{pod_ip}/32"}}]
    assert np.dns_egress([pol], NS, dns).allowed  # the case's "this works" comment


def test_port_53_rule_misses_pods_listening_on_5353() -> None:
    pol = copy.deepcopy(load(NP_DIR / "ahmetb-14-deny-external-egress-allow-dns.yaml")[0])
    pol["metadata"]["namespace"] = "example"
    assert not np.dns_egress([pol], NS, _dns(target_port=5353)).udp


def test_nodelocal_dns_needs_an_ipblock() -> None:
    addon = load(REAL / "coredns" / "nodelocaldns.addon.yaml")
    ds = next(o for o in addon if o["kind"] == "DaemonSet")
    good, bad = np.nodelocal_ips(ds)
    assert good == [] and bad == ["__PILLAR__LOCAL__DNS__", "__PILLAR__DNS__SERVER__"]
    rendered = copy.deepcopy(ds)
    args = rendered["spec"]["template"]["spec"]["containers"][0]["args"]
    args[1] = "169.254.20.10,10.96.0.10"
    assert np.nodelocal_ips(rendered) == (["169.254.20.10", "10.96.0.10"], [])
    svc, pods, es = _coredns()
    dns = np.dns_target(svc, [es], pods, rendered)
    assert dns.nodelocal_ips == ("169.254.20.10", "10.96.0.10")
    selector_rule = copy.deepcopy(load(NP_DIR / "ahmetb-11-deny-egress-then-allow-dns.yaml")[1])
    selector_rule["metadata"]["namespace"] = "example"
    v = np.dns_egress([selector_rule], NS, dns)
    assert not v.udp and "NodeLocal DNSCache" in v.reasons[0]
    frag = load_one(NP_DIR / "user-dns-allow-via-ipblock-for-nodelocaldns.yaml")
    spec = copy.deepcopy(frag["spec"])
    spec["egress"][0]["to"] = [{"ipBlock": {"cidr": "169.254.20.10/32"}},
                               {"ipBlock": {"cidr": "10.96.0.10/32"}}]
    assert np.dns_egress([_pol(spec)], NS, dns).allowed


def test_dns_ingress_side() -> None:
    dns = _dns()
    deny = copy.deepcopy(load_one(NP_DIR / "ahmetb-03-default-deny-ingress-namespace.yaml"))
    deny["metadata"]["namespace"] = "kube-system"
    blocked = np.dns_ingress_blocked([deny], NS, dns, ["example", "monitoring"])
    assert blocked == {"example": ["UDP", "TCP"], "monitoring": ["UDP", "TCP"]}
    rke2 = load_one(NP_DIR / "rke2-flannel-host-networking.yaml")
    assert np.dns_ingress_blocked([deny, rke2], NS, dns, ["example"]) == {}
    ops = _pol({"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}, "ingress": [{
        "from": [{"namespaceSelector": {"matchLabels": {"team": "operations"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]},
        ns="kube-system")
    assert np.dns_ingress_blocked([deny, ops], NS, dns, ["example", "monitoring"]) == {
        "example": ["UDP", "TCP"]}


def test_namespace_selector_matching_nothing() -> None:
    pol = load(NP_DIR / "user-broken-dns-allow-or-selectors.yaml")[1]
    (bad,) = np.namespace_selectors_matching_nothing(pol, NS)
    assert bad == {"direction": "Egress", "rule": 1, "item": 2, "selector": "name=kube-system",
                   "missing_labels": ["name"]}
    ok = load(NP_DIR / "ahmetb-11-deny-egress-then-allow-dns.yaml")[1]
    assert np.namespace_selectors_matching_nothing(ok, NS) == []
