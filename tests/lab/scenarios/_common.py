"""Pieces most scenarios share: a kubeadm control plane's CoreDNS and kube-proxy."""

from __future__ import annotations

import copy

from tests.lab.paths import API
from tests.lab.scenarios._build import (
    Obj,
    Scenario,
    endpointslice_for,
    load,
    load_one,
    namespace,
    pods_for,
)

DNS_IP = "10.96.0.10"


def coredns(sc: Scenario, nodes: list[Obj], replicas: int = 2) -> tuple[Obj, Obj, list[Obj]]:
    """Upstream CoreDNS Deployment + ``kube-dns`` Service (CLUSTER_DNS_IP = 10.96.0.10), its
    pods on the first ``replicas`` nodes and the EndpointSlice (pod port 53)."""
    deploy, svc = (copy.deepcopy(o) for o in load("coredns/coredns-deployment-and-service.sed-template.yaml"))
    svc["spec"]["clusterIP"] = DNS_IP
    deploy["status"] = {"replicas": replicas, "readyReplicas": replicas}
    pods = pods_for(deploy, nodes[:replicas], host_ip_from_node=False)
    for i, p in enumerate(pods):
        p["metadata"]["name"] = f"coredns-5d78c9869d-{'abcdefgh'[i]}x{i}z{i}"
        p["status"]["podIP"] = f"10.244.{i}.2"
    sc.objects += [deploy, svc, *pods, endpointslice_for(svc, pods)]
    return deploy, svc, pods


def kube_proxy(sc: Scenario, nodes: list[Obj], configmap: Obj | None, *,
               started: str = "2025-11-05T10:00:00Z", log_file: str | None = "kube-proxy-startup-iptables.txt",
               version: str = "v1.34.0") -> tuple[Obj, list[Obj]]:
    """The real kubeadm kube-proxy DaemonSet (``--config=/var/lib/kube-proxy/config.conf``),
    one pod per node started at ``started``, the given ConfigMap and the startup log from
    ``fixtures/api`` for each pod."""
    ds = copy.deepcopy(load_one("cluster-dumps/kubeadm-v1.34-canal.kube-proxy.daemonset.yaml"))
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = f"registry.k8s.io/kube-proxy:{version}"
    n = len(nodes)
    ds["status"] = {"currentNumberScheduled": n, "desiredNumberScheduled": n, "numberReady": n,
                    "numberAvailable": n, "updatedNumberScheduled": n, "numberMisscheduled": 0,
                    "observedGeneration": 1}
    pods = pods_for(ds, nodes, started=started)
    sc.objects += [ds, *pods]
    if configmap is not None:
        sc.objects.append(configmap)
    if log_file:
        text = (API / log_file).read_text(encoding="utf-8")
        for p in pods:
            sc.logs[(p["metadata"]["namespace"], p["metadata"]["name"])] = text
    return ds, pods


def base_namespaces(*extra: str) -> list[Obj]:
    """default, kube-system, kube-public, kube-node-lease and ``extra``."""
    return [namespace(n) for n in ("default", "kube-system", "kube-public", "kube-node-lease", *extra)]
