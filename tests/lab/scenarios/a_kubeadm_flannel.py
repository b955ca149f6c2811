"""Scenario (a): a typical bare-metal cluster before tuning.

kubeadm v1.34, three nodes, Flannel VXLAN (namespace kube-flannel), kube-proxy ``mode: ""``
(= iptables), MetalLB 0.12.1 with the legacy ConfigMap (layer2 range), no NetworkPolicies,
one LoadBalancer Service with an address and one pending (its requested IP is outside the
pool).
"""

from __future__ import annotations

import copy

from tests.lab.scenarios import _common
from tests.lab.scenarios._build import (
    Scenario,
    deployment,
    load_one,
    node,
    pods_for,
    service_lb,
)

ALIASES = ("a",)


def build() -> Scenario:
    sc = Scenario("a-kubeadm-flannel", "kubeadm + Flannel VXLAN + kube-proxy mode \"\" + "
                  "MetalLB 0.12 legacy ConfigMap + no NetworkPolicies")
    flannel_ann = {"flannel.alpha.coreos.com/backend-type": "vxlan",
                   "flannel.alpha.coreos.com/kube-subnet-manager": "true"}
    nodes = []
    for i, nm in enumerate(("node-1", "node-2", "node-3")):
        ip = f"192.168.10.{11 + i}"
        ann = {**flannel_ann, "flannel.alpha.coreos.com/public-ip": ip,
               "flannel.alpha.coreos.com/backend-data":
                   f'{{"VNI":1,"VtepMAC":"76:a6:b2:1e:9b:b{i}"}}'}
        nodes.append(node(nm, ip, cpus=8, control_plane=(i == 0), annotations=ann))
    sc.objects += nodes
    sc.objects += _common.base_namespaces("kube-flannel", "metallb-system", "shop", "monitoring")

    # Flannel, upstream manifest (namespace kube-flannel)
    cfg = load_one("flannel/kube-flannel-cfg.head-kube-flannel-ns.yaml")
    ds = copy.deepcopy(load_one("flannel/kube-flannel-ds.head.daemonset.yaml"))
    sc.objects += [cfg, ds, *pods_for(ds, nodes)]

    # kube-proxy, kubeadm: ConfigMap with mode "" and the real DaemonSet
    cm = load_one("kube-proxy/kubeadm-v1.34-default-mode-empty.configmap.yaml")
    _common.kube_proxy(sc, nodes, cm)
    _common.coredns(sc, nodes)

    # MetalLB 0.12.1 (legacy ConfigMap)
    mlb_cm = load_one("metallb-legacy-configmap/user-layer2-range.configmap.yaml")
    ctrl = deployment("controller", "metallb-system", "quay.io/metallb/controller:v0.12.1",
                      {"app": "metallb", "component": "controller"})
    speaker = {"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "speaker", "namespace": "metallb-system",
                            "labels": {"app": "metallb", "component": "speaker"}},
               "spec": {"selector": {"matchLabels": {"app": "metallb", "component": "speaker"}},
                        "template": {
                            "metadata": {"labels": {"app": "metallb", "component": "speaker"}},
                            "spec": {"hostNetwork": True, "containers": [
                                {"name": "speaker",
                                 "image": "quay.io/metallb/speaker:v0.12.1"}]}}},
               "status": {"desiredNumberScheduled": 3, "numberReady": 3}}
    sc.objects += [mlb_cm, ctrl, *pods_for(ctrl, nodes[1:2]), speaker, *pods_for(speaker, nodes)]

    # Workloads: one LoadBalancer with an address from the pool, one pending
    sc.objects += [
        service_lb("web", "shop", ip="192.168.10.177", cluster_ip="10.96.41.7"),
        service_lb("grafana", "monitoring", ip=None, cluster_ip="10.96.52.3",
                   requested_ip="192.168.20.5", port=3000, target=3000),
    ]
    return sc
