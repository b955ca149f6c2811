"""Case: kube-proxy 1.36 cannot write conntrack sysctls inside an LXC node.

Seeds ``cases/kube-proxy-conntrack-write-fails-in-container`` (the kube-proxy ConfigMap with
``conntrack.maxPerCore: null`` = defaults, the kube-proxy pod in CrashLoopBackOff with 14
restarts; ``node-facts.yaml`` is node access, a later issue) plus what the live cluster also
has: namespaces, node-1 with 32 CPUs, Flannel, the kubeadm kube-proxy DaemonSet at v1.36.0 (0 of 1
Ready) and a v1.36.0 API server. Expected: kube-proxy CrashLoopBackOff on node-1 linked to
conntrack sizing (target 32768 x 32 = 1,048,576, also the 1.36 cap), with
``conntrack.maxPerCore: 0`` suggested.
"""

from __future__ import annotations

import copy

from tests.lab.paths import CASES
from tests.lab.scenarios import _common, _net
from tests.lab.scenarios._build import Scenario, load_one, node

CASE = CASES / "kube-proxy-conntrack-write-fails-in-container"
K8S = "v1.36.0"


def build() -> Scenario:
    sc = Scenario("case-kube-proxy-conntrack-lxc",
                  "case: kube-proxy 1.36 CrashLoopBackOff writing conntrack sysctls in LXC",
                  version=_net.version(K8S))
    sc.objects += _common.base_namespaces()
    n1 = node("node-1", "10.20.0.11", cpus=32, control_plane=True, kubelet=K8S)
    sc.objects.append(n1)
    sc.objects.append(load_one(CASE / "kube-proxy.configmap.yaml"))
    sc.objects.append(load_one(CASE / "kube-proxy-pod.yaml"))
    ds = copy.deepcopy(load_one("cluster-dumps/kubeadm-v1.34-canal.kube-proxy.daemonset.yaml"))
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = f"registry.k8s.io/kube-proxy:{K8S}"
    ds["status"] = {"currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberReady": 0,
                    "numberAvailable": 0, "numberUnavailable": 1, "updatedNumberScheduled": 1,
                    "numberMisscheduled": 0, "observedGeneration": 1}
    sc.objects.append(ds)
    _net.flannel(sc, [n1])
    return sc
