"""Case: NetworkPolicies on a Flannel-only cluster are silently ignored.

Seeded from ``cases/flannel-networkpolicy-not-enforced``: the Flannel DaemonSet (v0.26.1, one
``kube-flannel`` container, no kube-network-policies sidecar) from ``daemonsets.yaml``, the
``kube-flannel-cfg`` ConfigMap (VXLAN) and the policy ``default/deny-cross-namespace``. The
case's DaemonSet list is "trimmed to what matters", so the builder completes the Flannel
DaemonSet with the selector/labels/status a live object has, and uses the full kubeadm
kube-proxy DaemonSet (``_common.kube_proxy``) in place of the trimmed one. Around them: the
built-in namespaces and ``kube-flannel``, three nodes with Flannel annotations, CoreDNS, and a
workload in ``default``.

Expected: Flannel, no enforcement, ``default/deny-cross-namespace`` listed as not enforced, and
no namespace reported as isolated.
"""

from __future__ import annotations

import copy

from tests.lab.paths import CASES
from tests.lab.scenarios import _common
from tests.lab.scenarios._build import Scenario, load, load_one, node, pods_for

CASE = CASES / "flannel-networkpolicy-not-enforced"


def build() -> Scenario:
    sc = Scenario("case-flannel-netpol-not-enforced",
                  "Flannel 0.26.1 VXLAN without kube-network-policies + a deny-cross-namespace "
                  "NetworkPolicy that nothing enforces")
    nodes = []
    for i, nm in enumerate(("node-1", "node-2", "node-3")):
        ip = f"10.0.10.{11 + i}"
        nodes.append(node(nm, ip, control_plane=(i == 0), annotations={
            "flannel.alpha.coreos.com/backend-type": "vxlan",
            "flannel.alpha.coreos.com/kube-subnet-manager": "true",
            "flannel.alpha.coreos.com/public-ip": ip,
            "flannel.alpha.coreos.com/backend-data":
                f'{{"VNI":1,"VtepMAC":"9a:3c:51:0e:7d:{i:02x}"}}'}))
    sc.objects += nodes
    sc.objects += _common.base_namespaces("kube-flannel")

    flannel = None
    for ds in load(CASE / "daemonsets.yaml"):
        if ds["metadata"]["name"] == "kube-flannel-ds":
            flannel = copy.deepcopy(ds)
    assert flannel is not None
    labels = {"app": "flannel", "k8s-app": "flannel", "tier": "node"}
    flannel["spec"]["selector"] = {"matchLabels": {"app": "flannel"}}
    flannel["spec"]["template"].setdefault("metadata", {"labels": labels})
    flannel["spec"]["template"]["spec"]["hostNetwork"] = True
    n = len(nodes)
    flannel["status"] = {"desiredNumberScheduled": n, "currentNumberScheduled": n,
                         "numberReady": n, "numberAvailable": n}
    sc.objects += [load_one(CASE / "kube-flannel-cfg.configmap.yaml"), flannel,
                   *pods_for(flannel, nodes)]

    _common.kube_proxy(
        sc, nodes, load_one("kube-proxy/kubeadm-v1.34-default-mode-empty.configmap.yaml"))
    _common.coredns(sc, nodes)
    _common.app(sc, nodes, "web", "default", port=8080)
    sc.objects += load(CASE / "existing-policies.yaml")
    return sc
