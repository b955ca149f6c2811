"""Helpers for the CNI / kube-proxy scenarios (c, d and the case scenarios): complete trimmed
case objects the way a live API server would show them, and build the agent DaemonSets a
live cluster runs next to them. Fixture and case files are only read, never modified."""

from __future__ import annotations

import copy
from typing import Any

from tests.lab.scenarios._build import (
    Obj,
    Scenario,
    deployment,
    load_one,
    namespace,
    node,
    pods_for,
    uid,
)


def complete_node(case_node: Obj, *, cpus: int = 4, kernel: str = "6.8.0-51-generic",
                  control_plane: bool = False, kubelet: str = "v1.34.0") -> Obj:
    """A full Node built with ``_build.node`` (Ready condition, capacity, nodeInfo) overlaid with
    everything the trimmed case object states (its annotations, labels, addresses and any
    status fields it has win)."""
    meta = case_node.get("metadata") or {}
    nm = meta["name"]
    addrs = (case_node.get("status") or {}).get("addresses") or []
    ip = next((a["address"] for a in addrs if a.get("type") == "InternalIP"), "192.0.2.1")
    full = node(nm, ip, cpus=cpus, kernel=kernel, control_plane=control_plane, kubelet=kubelet,
                annotations=dict(meta.get("annotations") or {}))
    full["metadata"]["labels"].update(meta.get("labels") or {})
    for key, value in (case_node.get("status") or {}).items():
        full["status"][key] = copy.deepcopy(value)
    for key, value in (case_node.get("spec") or {}).items():
        full["spec"][key] = copy.deepcopy(value)
    return full


def daemonset(name: str, ns: str, labels: dict[str, str], containers: list[Obj], *,
              nodes: int, ready: int | None = None, volumes: list[Obj] | None = None,
              host_network: bool = True) -> Obj:
    """An agent DaemonSet with a status for ``nodes`` scheduled pods (``ready`` of them
    Ready; default all)."""
    ready = nodes if ready is None else ready
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels),
                     "uid": uid("ds", ns, name), "generation": 1,
                     "creationTimestamp": "2025-11-05T09:58:00Z"},
        "spec": {"selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"hostNetwork": host_network,
                                       "containers": containers,
                                       "volumes": volumes or []}},
                 "updateStrategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": 1}}},
        "status": {"currentNumberScheduled": nodes, "desiredNumberScheduled": nodes,
                   "numberReady": ready, "numberAvailable": ready,
                   "numberUnavailable": nodes - ready or None,
                   "updatedNumberScheduled": nodes, "numberMisscheduled": 0,
                   "observedGeneration": 1},
    }


def calico_node_ds(ns: str, *, version: str, backend: str, nodes: int,
                   ready: int | None = None) -> Obj:
    """Calico's manifest-install ``calico-node`` DaemonSet (label ``k8s-app: calico-node``,
    ``CALICO_NETWORKING_BACKEND`` and ``IP=autodetect`` as in the upstream manifest)."""
    env = [{"name": "DATASTORE_TYPE", "value": "kubernetes"},
           {"name": "CALICO_NETWORKING_BACKEND", "value": backend},
           {"name": "IP", "value": "autodetect"},
           {"name": "CALICO_IPV4POOL_IPIP", "value": "Always"},
           {"name": "FELIX_IPINIPMTU", "value": "1440"}]
    ctr = {"name": "calico-node", "image": f"docker.io/calico/node:{version}", "env": env,
           "securityContext": {"privileged": True},
           "readinessProbe": {"exec": {"command": ["/bin/calico-node", "-felix-ready",
                                                   "-bird-ready"]}, "periodSeconds": 10}}
    return daemonset("calico-node", ns, {"k8s-app": "calico-node"}, [ctr], nodes=nodes,
                     ready=ready)


def metallb_runtime(sc: Scenario, nodes: list[Obj], version: str = "v0.14.9") -> None:
    """MetalLB controller Deployment and speaker DaemonSet in ``metallb-system`` with their
    pods (CRD generation; add the CRDs and configuration separately)."""
    labels = {"app": "metallb", "component": "controller"}
    ctrl = deployment("controller", "metallb-system", f"quay.io/metallb/controller:{version}",
                      labels)
    sp_labels = {"app": "metallb", "component": "speaker"}
    speaker = daemonset("speaker", "metallb-system", sp_labels,
                        [{"name": "speaker", "image": f"quay.io/metallb/speaker:{version}"}],
                        nodes=len(nodes))
    sc.objects += [ctrl, *pods_for(ctrl, nodes[1:2] or nodes), speaker,
                   *pods_for(speaker, nodes)]


def pod_log_for(sc: Scenario, pods: list[Obj], text: str) -> None:
    """Give every pod in ``pods`` the same log text."""
    for p in pods:
        sc.logs[(p["metadata"]["namespace"], p["metadata"]["name"])] = text


def version(git: str) -> dict[str, Any]:
    """A ``/version`` answer for ``git`` (``v1.36.0``)."""
    major, minor = git.lstrip("v").split(".")[:2]
    return {"major": major, "minor": minor, "gitVersion": git, "platform": "linux/amd64"}


def flannel(sc: Scenario, nodes: list[Obj]) -> None:
    """Upstream Flannel (namespace ``kube-flannel``: the real ``kube-flannel-cfg`` ConfigMap and
    ``kube-flannel-ds`` DaemonSet) with one pod per node and the flannel node annotations."""
    for i, n in enumerate(nodes):
        ip = n["status"]["addresses"][0]["address"]
        n["metadata"].setdefault("annotations", {}).update({
            "flannel.alpha.coreos.com/backend-type": "vxlan",
            "flannel.alpha.coreos.com/kube-subnet-manager": "true",
            "flannel.alpha.coreos.com/public-ip": ip,
            "flannel.alpha.coreos.com/backend-data":
                '{"VNI":1,"VtepMAC":"76:a6:b2:1e:9b:b' + str(i) + '"}'})
    cfg = load_one("flannel/kube-flannel-cfg.head-kube-flannel-ns.yaml")
    ds = copy.deepcopy(load_one("flannel/kube-flannel-ds.head.daemonset.yaml"))
    n = len(nodes)
    ds["status"] = {"currentNumberScheduled": n, "desiredNumberScheduled": n, "numberReady": n,
                    "numberAvailable": n, "updatedNumberScheduled": n, "numberMisscheduled": 0}
    if not any(o.get("kind") == "Namespace" and o["metadata"]["name"] == "kube-flannel"
               for o in sc.objects):
        sc.objects.append(namespace("kube-flannel"))
    sc.objects += [cfg, ds, *pods_for(ds, nodes)]
