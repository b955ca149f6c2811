"""Case: a kubeadm upgrade silently reverted kube-proxy from IPVS to iptables.

Seeds ``cases/kubeadm-upgrade-reverts-ipvs-mode`` ``kube-proxy.configmap.after-upgrade.yaml``
(``mode: ""``, ``strictARP: false``, component-config hash ``...0002``; ``bot-state.yaml`` is
the bot's own record and must not be trusted; drift against it is a later issue), completed
with the metadata the API server keeps (creation time, and the upgrade's write in
``managedFields``), plus what the live cluster also has: three nodes, Flannel, the kubeadm
kube-proxy DaemonSet whose pods were restarted by the upgrade (logs: iptables), and MetalLB
with a layer 2 pool and L2Advertisement (real ``metallb-crds/user-pool-with-explicit-l2adv.yaml``)
so the reverted strictARP matters.
"""

from __future__ import annotations

import copy

from tests.lab.paths import CASES
from tests.lab.scenarios import _common, _net
from tests.lab.scenarios._build import Scenario, load, load_one, metallb_crds, node

CASE = CASES / "kubeadm-upgrade-reverts-ipvs-mode"
UPGRADED_AT = "2025-12-02T03:14:00Z"


def build() -> Scenario:
    sc = Scenario("case-kubeadm-upgrade-reverts-ipvs",
                  "case: kubeadm upgrade reverted kube-proxy to mode \"\" (iptables), MetalLB L2")
    nodes = [node(f"node-{i + 1}", f"192.168.1.{11 + i}", cpus=8, control_plane=(i == 0))
             for i in range(3)]
    sc.objects += nodes
    sc.objects += _common.base_namespaces("metallb-system")
    cm = copy.deepcopy(load_one(CASE / "kube-proxy.configmap.after-upgrade.yaml"))
    cm["metadata"].setdefault("creationTimestamp", "2025-11-05T09:56:43Z")
    cm["metadata"].setdefault("managedFields", [
        {"manager": "kubeadm", "operation": "Update", "apiVersion": "v1",
         "time": UPGRADED_AT, "fieldsType": "FieldsV1",
         "fieldsV1": {"f:data": {"f:config.conf": {}},
                      "f:metadata": {"f:annotations": {
                          "f:kubeadm.kubernetes.io/component-config.hash": {}}}}}])
    _common.kube_proxy(sc, nodes, cm, started="2025-12-02T03:16:30Z")
    sc.objects += metallb_crds()
    sc.objects += load("metallb-crds/user-pool-with-explicit-l2adv.yaml")
    _net.metallb_runtime(sc, nodes)
    _net.flannel(sc, nodes)
    _common.coredns(sc, nodes)
    return sc
