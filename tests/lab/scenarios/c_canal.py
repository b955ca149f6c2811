"""Scenario (c): kubeadm + Canal (Flannel VXLAN data plane + Calico policy).

Built from the real two-node Canal dump (``cluster-dumps/canal-two-node.nodes.list.yaml``:
kubeadm v1.33.2, Calico v3.24.1 + Flannel v0.15.1, nodes with both flannel and
``projectcalico.org/*`` annotations), the real kubeadm kube-proxy DaemonSet and ConfigMap
(``mode: ""``), and the ``canal`` DaemonSet with its ``canal-config`` ConfigMap as the Canal
manifest creates them (``calico_backend: none``, ``net-conf.json`` VXLAN). Canal must never be
reported as Calico BGP.
"""

from __future__ import annotations

import copy
import json

from tests.lab.scenarios import _common, _net
from tests.lab.scenarios._build import Scenario, calico_crds, load, load_one, pods_for

ALIASES = ("c",)

K8S = "v1.33.2"
CALICO = "v3.24.1"
FLANNEL = "v0.15.1"


def canal_objects(n_nodes: int) -> list[dict]:
    """The ``canal`` DaemonSet (calico-node + kube-flannel containers, label
    ``k8s-app: canal``) and the ``kube-system/canal-config`` ConfigMap."""
    cfg = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "canal-config", "namespace": "kube-system",
                        "creationTimestamp": "2025-08-19T09:05:10Z"},
           "data": {"typha_service_name": "none", "calico_backend": "none",
                    "veth_mtu": "0", "canal_iface": "", "masquerade": "true",
                    "net-conf.json": json.dumps({"Network": "192.168.0.0/16",
                                                 "Backend": {"Type": "vxlan"}}, indent=2)}}
    calico = {"name": "calico-node", "image": f"docker.io/calico/node:{CALICO}",
              "env": [{"name": "DATASTORE_TYPE", "value": "kubernetes"},
                      {"name": "CALICO_NETWORKING_BACKEND", "value": "none"},
                      {"name": "CLUSTER_TYPE", "value": "k8s,canal"},
                      {"name": "FELIX_IPTABLESREFRESHINTERVAL", "value": "60"}]}
    flannel = {"name": "kube-flannel", "image": f"quay.io/coreos/flannel:{FLANNEL}",
               "command": ["/opt/bin/flanneld", "--ip-masq", "--kube-subnet-mgr"],
               "volumeMounts": [{"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"}]}
    vols = [{"name": "flannel-cfg", "configMap": {"name": "canal-config"}}]
    ds = _net.daemonset("canal", "kube-system", {"k8s-app": "canal"}, [calico, flannel],
                        nodes=n_nodes, volumes=vols)
    return [cfg, ds]


def build() -> Scenario:
    sc = Scenario("c-canal", "kubeadm v1.33 + Canal (Flannel VXLAN + Calico policy) + "
                  "kube-proxy mode \"\"", version=_net.version(K8S))
    nodes = [copy.deepcopy(n) for n in load("cluster-dumps/canal-two-node.nodes.list.yaml")]
    sc.objects += nodes
    sc.objects += _common.base_namespaces()
    sc.objects += calico_crds()
    cfg, ds = canal_objects(len(nodes))
    sc.objects += [cfg, ds, *pods_for(ds, nodes)]
    cm = load_one("kube-proxy/kubeadm-v1.34-default-mode-empty.configmap.yaml")
    _common.kube_proxy(sc, nodes, cm, version=K8S)
    _common.coredns(sc, nodes)
    return sc
