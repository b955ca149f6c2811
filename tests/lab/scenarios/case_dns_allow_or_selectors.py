"""Case: an "allow DNS" policy that allows nothing (OR'ed selectors + missing ``name`` label).

Seeded from ``cases/dns-allow-policy-or-selectors-and-name-label``: its namespaces (``example``
and ``kube-system``, labelled only with ``kubernetes.io/metadata.name``), the user's policies
(``deny-all`` + ``allow-cluster-dns`` with ``- podSelector`` and ``- namespaceSelector
{name: kube-system}`` as two items) and the CoreDNS pod (10.42.9.138, ``k8s-app: kube-dns``).
Around them, what the live cluster (Calico, projectcalico/calico#5170) also has: the other
built-in namespaces, three nodes, Calico, kube-proxy (iptables), the upstream CoreDNS
Deployment and ``kube-dns`` Service whose EndpointSlice points at that pod, and a workload in
``example``.

Expected: critical NP002 for ``namespace/example`` naming both reasons; runbook
``netpol-dns-allow``.
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
    namespace,
    node,
)

CASE = CASES / "dns-allow-policy-or-selectors-and-name-label"


def build() -> Scenario:
    sc = Scenario("case-dns-allow-or-selectors",
                  "Calico; namespace example default-denied with an 'allow DNS' policy whose "
                  "selectors are OR'ed and use a namespace label nobody has")
    nodes = []
    for i, nm in enumerate(("node-1", "node-2", "node-3")):
        ip = f"192.168.50.{21 + i}"
        nodes.append(node(nm, ip, control_plane=(i == 0), annotations={
            "projectcalico.org/IPv4Address": f"{ip}/24",
            "projectcalico.org/IPv4IPIPTunnelAddr": f"10.42.{i + 7}.0"}))
    sc.objects += nodes
    case_ns = load(CASE / "namespaces.yaml")
    have = {n["metadata"]["name"] for n in case_ns}
    sc.objects += case_ns + [namespace(n) for n in ("default", "kube-public", "kube-node-lease")
                             if n not in have]

    pools = _common.calico_pool_v1("calico/ippool-ipip-always.crd-v1.list.yaml")
    _common.calico(sc, nodes, pools=pools)
    _common.kube_proxy(
        sc, nodes, load_one("kube-proxy/kubeadm-v1.34-default-mode-empty.configmap.yaml"))

    # CoreDNS: upstream Deployment + kube-dns Service, the case's pod as its only backend
    deploy, svc = (copy.deepcopy(o) for o in
                   load("coredns/coredns-deployment-and-service.sed-template.yaml"))
    svc["spec"]["clusterIP"] = _common.DNS_IP
    deploy["spec"]["replicas"] = 1
    deploy["status"] = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}
    pod = copy.deepcopy(load_one(CASE / "coredns-pods.yaml"))
    pod["metadata"]["labels"].update(deploy["spec"]["template"]["metadata"]["labels"])
    pod["spec"] = {"nodeName": nodes[1]["metadata"]["name"],
                   "containers": copy.deepcopy(deploy["spec"]["template"]["spec"]["containers"])}
    pod["status"].update({"hostIP": nodes[1]["status"]["addresses"][0]["address"],
                          "conditions": [{"type": "Ready", "status": "True"}]})
    sc.objects += [deploy, svc, pod, endpointslice_for(svc, [pod])]

    # A workload in example and the user's policies
    _common.app(sc, nodes, "web", "example", port=8080)
    sc.objects += load(CASE / "existing-policies.yaml")
    return sc
