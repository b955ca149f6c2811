"""Case: MetalLB layer 2 on kube-proxy IPVS without strictARP.

Seeded from ``cases/metallb-l2-with-ipvs-no-strictarp``: the kube-proxy ConfigMap
(``mode: ipvs``, ``strictARP: false``) and ``metallb.yaml`` (pool ``lan``
192.0.2.240-192.0.2.250, L2Advertisement ``lan``, Service ``default/app`` with
``externalTrafficPolicy: Local`` holding 192.0.2.240). ``node-facts.yaml`` is not used (node
access comes later). Around them: nodes node-1..3 on 192.0.2.0/24 (the names the case's node
facts use), Flannel VXLAN (upstream manifest), the kubeadm kube-proxy DaemonSet with the IPVS
startup log, CoreDNS, MetalLB v0.14.8 (CRDs, controller, speaker, webhook) and the ``app``
Deployment behind the Service.

Expected: critical "MetalLB L2 will be answered by every node" with runbook
``kube-proxy-mode`` (``strict_arp: true``).
"""

from __future__ import annotations

import copy

from tests.lab.paths import CASES
from tests.lab.scenarios import _common
from tests.lab.scenarios._build import (
    Scenario,
    endpointslice_for,
    load,
    load_one,
    node,
    pods_for,
)

CASE = CASES / "metallb-l2-with-ipvs-no-strictarp"


def build() -> Scenario:
    sc = Scenario("case-metallb-l2-ipvs-no-strictarp",
                  "kube-proxy IPVS with strictARP false + MetalLB 0.14.8 layer 2 "
                  "(externalTrafficPolicy Local)")
    nodes = []
    for i, nm in enumerate(("node-1", "node-2", "node-3")):
        ip = f"192.0.2.{11 + i}"
        nodes.append(node(nm, ip, control_plane=(i == 0), annotations={
            "flannel.alpha.coreos.com/backend-type": "vxlan",
            "flannel.alpha.coreos.com/kube-subnet-manager": "true",
            "flannel.alpha.coreos.com/public-ip": ip}))
    sc.objects += nodes
    sc.objects += _common.base_namespaces("kube-flannel", "metallb-system")

    cfg = load_one("flannel/kube-flannel-cfg.head-kube-flannel-ns.yaml")
    ds = copy.deepcopy(load_one("flannel/kube-flannel-ds.head.daemonset.yaml"))
    sc.objects += [cfg, ds, *pods_for(ds, nodes)]

    _common.kube_proxy(sc, nodes, load_one(CASE / "kube-proxy.configmap.yaml"),
                       log_file="kube-proxy-startup-ipvs.txt")
    _common.coredns(sc, nodes)
    _common.metallb(sc, nodes, "v0.14.8")

    objs = load(CASE / "metallb.yaml")
    sc.objects += objs
    svc = next(o for o in objs if o["kind"] == "Service")
    _deploy, pods = _common.app(sc, nodes, "app", "default", port=8443)
    sc.objects.append(endpointslice_for(svc, pods))
    return sc
