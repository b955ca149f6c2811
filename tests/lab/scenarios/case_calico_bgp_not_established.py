"""Case: Calico BGP mesh not established because node-1 advertised the wrong interface address.

Seeds ``cases/calico-bgp-not-established-wrong-autodetect`` (nodes with their Calico
annotations, the not-Ready calico-node pod on node-2, its readiness Event "BGP not established
with 172.21.0.1"; ``node-facts.yaml`` is node access, a later issue) plus what a live
manifest-installed Calico cluster also has: namespaces, the nodes' status (Ready, capacity,
nodeInfo), the ``calico-node`` DaemonSet (bird backend; 1 of 2 Ready), node-1's Ready
calico-node pod, ``calico-config`` (real kubespray dump, ``calico_backend: bird``), Calico CRDs
with the IPIP pool the tunnel addresses come from, and kubeadm's kube-proxy.
"""

from __future__ import annotations

import copy

from tests.lab.paths import CASES
from tests.lab.scenarios import _common, _net
from tests.lab.scenarios._build import Scenario, calico_crds, load, load_one

CASE = CASES / "calico-bgp-not-established-wrong-autodetect"


def build() -> Scenario:
    sc = Scenario("case-calico-bgp-not-established",
                  "case: Calico BGP not established (wrong IP autodetection on node-1)")
    nodes = [_net.complete_node(n, cpus=4, control_plane=(n["metadata"]["name"] == "node-1"))
             for n in load(CASE / "nodes.yaml")]
    sc.objects += nodes
    sc.objects += _common.base_namespaces()
    sc.objects += calico_crds()
    sc.objects.append({"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
                       "metadata": {"name": "default-ipv4-ippool"},
                       "spec": {"cidr": "10.100.0.0/16", "blockSize": 26, "ipipMode": "Always",
                                "vxlanMode": "Never", "natOutgoing": True,
                                "nodeSelector": "all()"}})
    sc.objects.append(load_one("calico/kubespray-bgp.calico-config.configmap.yaml"))
    ds = _net.calico_node_ds("kube-system", version="v3.27.3", backend="bird",
                             nodes=len(nodes), ready=1)
    sc.objects.append(ds)
    case_pods = load(CASE / "calico-node-pods.yaml")
    sc.objects += case_pods
    # node-1's calico-node: Running and Ready (its readiness shows the same image and env)
    p1 = copy.deepcopy(case_pods[0])
    p1["metadata"]["name"] = "calico-node-bbbbb"
    p1["spec"]["nodeName"] = "node-1"
    p1["status"] = {"phase": "Running",
                    "containerStatuses": [{"name": "calico-node", "ready": True,
                                           "restartCount": 0}],
                    "conditions": [{"type": "Ready", "status": "True"}]}
    sc.objects.append(p1)
    sc.objects += load(CASE / "events.yaml")
    cm = load_one("kube-proxy/kubeadm-v1.34-default-mode-empty.configmap.yaml")
    _common.kube_proxy(sc, nodes, cm)
    return sc
