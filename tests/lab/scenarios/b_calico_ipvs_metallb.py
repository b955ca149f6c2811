"""Scenario (b): Calico IPIP CrossSubnet, kube-proxy IPVS without strictARP, MetalLB 0.13 L2.

kubeadm v1.34 control plane, three nodes on 172.16.245.0/24. Calico (manifest install,
``calico_backend: bird``) with the real ``ipipMode: CrossSubnet`` pool (projectcalico/calico#3003,
served as ``crd.projectcalico.org/v1``); nodes annotated with ``projectcalico.org/IPv4Address``
= InternalIP/24. kube-proxy from the real kubespray dump (``mode: ipvs``, ``strictARP: false``)
run by the kubeadm DaemonSet, IPVS startup log. MetalLB v0.13.10 with CRDs: the real pool
``production`` 172.16.245.171-174 and an L2Advertisement with no spec (metallb/metallb#2013),
controller, speaker, webhook. One LoadBalancer Service ``shop/storefront`` holding
172.16.245.171. NetworkPolicies: namespace ``shop`` is covered (ahmetb recipe 03 default-deny
ingress, recipe 12 default-deny egress, recipe 11's DNS rule applied to every pod, and recipe
11's ``foo-deny-egress`` as published); namespace ``web`` has none.

Expected: MetalLB L2 answered by every node (IPVS, strictARP false) — critical; NetworkPolicy
coverage warnings for namespaces without default-deny; no DNS problem in ``shop``.
"""

from __future__ import annotations

import copy

from tests.lab.scenarios import _common
from tests.lab.scenarios._build import (
    Scenario,
    load,
    load_one,
    node,
    service_lb,
)

ALIASES = ("b",)


def build() -> Scenario:
    sc = Scenario("b-calico-ipvs-metallb", "kubeadm + Calico IPIP CrossSubnet (BGP) + kube-proxy "
                  "IPVS without strictARP + MetalLB 0.13.10 CRDs (L2) + NetworkPolicies in shop")
    nodes = []
    for i, nm in enumerate(("node-1", "node-2", "node-3")):
        ip = f"172.16.245.{161 + i}"
        ann = {"projectcalico.org/IPv4Address": f"{ip}/24",
               "projectcalico.org/IPv4IPIPTunnelAddr": f"10.151.{i}.1"}
        nodes.append(node(nm, ip, cpus=8, control_plane=(i == 0), annotations=ann))
    sc.objects += nodes
    sc.objects += _common.base_namespaces("metallb-system", "shop", "web")

    # Calico, CrossSubnet pool (calicoctl v3 list served through the CRD API group)
    _common.calico(sc, nodes,
                   pools=_common.calico_pool_v1("calico/ippool-ipip-crosssubnet.v3.list.yaml"))

    # kube-proxy: IPVS, strictARP false (kubespray dump), kubeadm DaemonSet, IPVS log
    cm = copy.deepcopy(load_one("kube-proxy/kubespray-ipvs-mode.configmap.yaml"))
    _common.kube_proxy(sc, nodes, cm, log_file="kube-proxy-startup-ipvs.txt")
    _common.coredns(sc, nodes)

    # MetalLB 0.13.10 (CRDs): the user's pool + L2Advertisement without spec
    _common.metallb(sc, nodes, "v0.13.10")
    sc.objects += load("metallb-crds/user-pool-and-l2adv-ipvs-cluster.yaml")

    # Workloads
    _common.app(sc, nodes, "storefront", "shop")
    _common.app(sc, nodes, "blog", "web", port=8080)
    sc.objects.append(service_lb("storefront", "shop", ip="172.16.245.171",
                                 cluster_ip="10.96.33.20", etp="Local"))

    # NetworkPolicies in shop (ahmetb recipes, namespace set to shop)
    def in_shop(obj: dict, name: str | None = None) -> dict:
        o = copy.deepcopy(obj)
        o["metadata"]["namespace"] = "shop"
        if name:
            o["metadata"]["name"] = name
        return o

    deny_in = load_one("networkpolicy/ahmetb-03-default-deny-ingress-namespace.yaml")
    deny_eg = load_one("networkpolicy/ahmetb-12-default-deny-egress-namespace.yaml")
    _foo_deny, foo_dns = load("networkpolicy/ahmetb-11-deny-egress-then-allow-dns.yaml")
    allow_dns = in_shop(foo_dns, "allow-dns")
    allow_dns["spec"]["podSelector"] = {}
    sc.objects += [in_shop(deny_in), in_shop(deny_eg), allow_dns, in_shop(foo_dns)]
    return sc
