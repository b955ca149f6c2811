"""Case: "kube-proxy down" on a cluster that intentionally has no kube-proxy.

Seeds ``cases/kube-proxy-absent-cilium-false-alarm`` as given (``cilium-config`` and the
``cilium`` DaemonSet; no kube-proxy DaemonSet or ConfigMap) plus what the live cluster also
has: namespaces and two nodes. Expected (``expected.md``): kube-proxy "not deployed — service
load-balancing by Cilium (kube-proxy-replacement=true, routing-mode native)", not an error;
CNI = Cilium, native routing.
"""

from __future__ import annotations

from tests.lab.paths import CASES
from tests.lab.scenarios import _common
from tests.lab.scenarios._build import Scenario, load, node

CASE = CASES / "kube-proxy-absent-cilium-false-alarm"


def build() -> Scenario:
    sc = Scenario("case-kube-proxy-absent-cilium",
                  "case: Cilium kube-proxy replacement, KubeProxyDown false alarm")
    sc.objects += _common.base_namespaces()
    sc.objects += [node("node-1", "192.0.2.11", control_plane=True),
                   node("node-2", "192.0.2.12")]
    sc.objects += load(CASE / "cilium-config.configmap.yaml")
    sc.objects += load(CASE / "daemonsets.yaml")
    return sc
