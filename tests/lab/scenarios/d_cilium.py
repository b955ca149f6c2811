"""Scenario (d): Cilium with kube-proxy replacement and no kube-proxy at all.

Built from ``cases/kube-proxy-absent-cilium-false-alarm`` (``cilium-config`` with
``kube-proxy-replacement: "true"``, ``routing-mode: native``; the ``cilium`` DaemonSet; no
kube-proxy DaemonSet and no ``kube-system/kube-proxy`` ConfigMap, as kube-proxy-free installs
delete both: cilium/cilium#14847), completed with what the live cluster shows around them:
three nodes, the agent's pod template and pods, CoreDNS. Expected: kube-proxy "not deployed —
service load-balancing by Cilium", an info, never a critical.
"""

from __future__ import annotations

import copy

from tests.lab.paths import CASES
from tests.lab.scenarios import _common, _net
from tests.lab.scenarios._build import Scenario, load, load_one, node, pods_for

ALIASES = ("d",)

CASE = CASES / "kube-proxy-absent-cilium-false-alarm"
CILIUM = "v1.16.5"


def build() -> Scenario:
    sc = Scenario("d-cilium", "kubeadm + Cilium kube-proxy replacement (native routing), "
                  "no kube-proxy")
    nodes = [node(f"node-{i + 1}", f"192.0.2.{11 + i}", cpus=8, control_plane=(i == 0))
             for i in range(3)]
    sc.objects += nodes
    sc.objects += _common.base_namespaces()
    sc.objects.append(load_one(CASE / "cilium-config.configmap.yaml"))
    for ds in load(CASE / "daemonsets.yaml"):
        ds = copy.deepcopy(ds)
        if ds["metadata"]["name"] == "cilium":
            full = _net.daemonset(
                "cilium", "kube-system", {"k8s-app": "cilium"},
                [{"name": "cilium-agent", "image": f"quay.io/cilium/cilium:{CILIUM}",
                  "command": ["cilium-agent"], "args": ["--config-dir=/tmp/cilium/config-map"]}],
                nodes=len(nodes))
            full["metadata"].update(ds["metadata"])
            ds = full
            sc.objects += pods_for(ds, nodes)
        sc.objects.append(ds)
    _common.coredns(sc, nodes)
    return sc
