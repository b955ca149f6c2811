"""Building blocks for lab scenarios: load real fixtures, make the objects a live cluster has
around them (namespaces, pods of DaemonSets, EndpointSlices), never edit the fixture files."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.lab.paths import REAL
from tests.lab.store import Store

Obj = dict[str, Any]
CLUSTER_CREATED = "2025-11-05T09:50:00Z"


@dataclass
class Scenario:
    """A seeded cluster: objects, pod logs by (namespace, pod), ``/version``, and a one-line
    description for ``python -m tests.lab list``."""

    name: str
    description: str
    objects: list[Obj] = field(default_factory=list)
    logs: dict[tuple[str, str], str] = field(default_factory=dict)
    version: dict[str, Any] = field(
        default_factory=lambda: {"major": "1", "minor": "34", "gitVersion": "v1.34.0",
                                 "platform": "linux/amd64"})

    def store(self) -> Store:
        """A fresh Store holding the scenario's objects (CRDs first)."""
        s = Store()
        for o in sorted(self.objects, key=lambda o: o["kind"] != "CustomResourceDefinition"):
            o = copy.deepcopy(o)
            meta = o.setdefault("metadata", {})
            # an object the fixture shows without one was created with the cluster, before
            # the pods started (pods_for default 10:00): never "changed after the pods"
            meta.setdefault("creationTimestamp", CLUSTER_CREATED)
            s.add(o)
        return s


def load(path: str | Path) -> list[Obj]:
    """All objects of a YAML file (multi-document; ``kind: List``/``*List`` expanded; empty
    documents skipped). Relative paths are under ``fixtures/real``."""
    p = Path(path)
    if not p.is_absolute():
        p = REAL / p
    out: list[Obj] = []
    for doc in yaml.safe_load_all(p.read_text(encoding="utf-8")):
        if not doc:
            continue
        if isinstance(doc, dict) and doc.get("kind", "").endswith("List") and "items" in doc:
            for item in doc["items"]:
                item.setdefault("apiVersion", doc.get("apiVersion", "v1"))
                out.append(item)
        else:
            out.append(doc)
    return out


def load_one(path: str | Path) -> Obj:
    """The single object of a YAML file."""
    objs = load(path)
    assert len(objs) == 1, f"{path}: expected one object, found {len(objs)}"
    return objs[0]


def uid(*parts: str) -> str:
    """A stable UUID-shaped uid from names."""
    h = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def namespace(name: str, labels: dict[str, str] | None = None) -> Obj:
    """A Namespace with the label the API server sets (``kubernetes.io/metadata.name``)."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": uid("ns", name),
                         "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def node(name: str, ip: str, *, cpus: int = 4, kernel: str = "6.8.0-51-generic",
         os_image: str = "Ubuntu 24.04.1 LTS", control_plane: bool = False,
         ready: bool = True, annotations: dict[str, str] | None = None,
         kubelet: str = "v1.34.0") -> Obj:
    """A Node shaped like the real kubeadm dump (``cluster-dumps/canal-two-node``)."""
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64"}
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": uid("node", name), "labels": labels,
                     "annotations": dict(annotations or {}),
                     "creationTimestamp": "2025-11-05T09:56:00Z"},
        "spec": {},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": name}],
            "capacity": {"cpu": str(cpus), "memory": "16318180Ki", "pods": "110"},
            "allocatable": {"cpu": str(cpus), "memory": "16215780Ki", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                            "reason": "KubeletReady" if ready else "KubeletNotReady",
                            "message": "kubelet is posting ready status" if ready
                            else "container runtime network not ready",
                            "lastTransitionTime": "2025-11-05T09:57:00Z"}],
            "nodeInfo": {"kernelVersion": kernel, "osImage": os_image,
                         "operatingSystem": "linux", "architecture": "amd64",
                         "kubeletVersion": kubelet, "kubeProxyVersion": "",
                         "bootID": uid("boot", name), "machineID": uid("machine", name)[:8],
                         "systemUUID": uid("uuid", name),
                         "containerRuntimeVersion": "containerd://1.7.27"},
        },
    }


def pods_for(owner: Obj, nodes: list[Obj], *, started: str = "2025-11-05T10:00:00Z",
             ready: bool = True, restart_count: int = 0, waiting_reason: str | None = None,
             host_ip_from_node: bool = True, suffixes: list[str] | None = None) -> list[Obj]:
    """One Running pod per node for a DaemonSet (or ``len(nodes)`` pods for a Deployment),
    with the template's labels and containers, owner reference, start time and status."""
    tmpl = owner["spec"]["template"]
    meta = owner["metadata"]
    out = []
    for i, n in enumerate(nodes):
        sfx = (suffixes or [])[i] if suffixes and i < len(suffixes) else \
            hashlib.sha256(f"{meta['name']}{n['metadata']['name']}".encode()).hexdigest()[:5]
        name = f"{meta['name']}-{sfx}"
        ip = n["status"]["addresses"][0]["address"]
        host_net = tmpl["spec"].get("hostNetwork", False)
        containers = copy.deepcopy(tmpl["spec"]["containers"])
        statuses = []
        for c in containers:
            st: Obj = {"name": c["name"], "image": c.get("image", ""), "ready": ready,
                       "imageID": f"{c.get('image', '')}@sha256:{uid(c.get('image', ''))[:8]}",
                       "restartCount": restart_count, "started": ready}
            if waiting_reason:
                st["state"] = {"waiting": {"reason": waiting_reason}}
            else:
                st["state"] = {"running": {"startedAt": started}}
            statuses.append(st)
        out.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": meta["namespace"], "uid": uid("pod", name),
                         "labels": dict(tmpl["metadata"].get("labels", {})),
                         "creationTimestamp": started,
                         "ownerReferences": [{"apiVersion": owner["apiVersion"],
                                              "kind": owner["kind"], "name": meta["name"],
                                              "uid": meta.get("uid", uid("owner", meta["name"])),
                                              "controller": True}]},
            "spec": {"nodeName": n["metadata"]["name"], "containers": containers,
                     "hostNetwork": host_net},
            "status": {"phase": "Running", "startTime": started,
                       "hostIP": ip, "podIP": ip if host_net else f"10.244.{i}.{10 + i}",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": statuses},
        })
    return out


def endpointslice_for(service: Obj, pods: list[Obj]) -> Obj:
    """The EndpointSlice the endpoint-slice controller would write for a Service and its
    ready pods: ports named as the Service's, with the *target* (container) port."""
    meta = service["metadata"]
    ports = []
    for p in service["spec"].get("ports", []):
        tp = p.get("targetPort", p["port"])
        ports.append({"name": p.get("name", ""), "port": tp if isinstance(tp, int) else p["port"],
                      "protocol": p.get("protocol", "TCP")})
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{meta['name']}-abcde", "namespace": meta["namespace"],
                     "labels": {"kubernetes.io/service-name": meta["name"],
                                "endpointslice.kubernetes.io/managed-by":
                                    "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [p["status"]["podIP"]],
                       "conditions": {"ready": True},
                       "nodeName": p["spec"]["nodeName"],
                       "targetRef": {"kind": "Pod", "name": p["metadata"]["name"],
                                     "namespace": p["metadata"]["namespace"]}} for p in pods],
        "ports": ports,
    }


def crd(group: str, kind: str, plural: str, versions: list[str], scope: str = "Namespaced") -> Obj:
    """A minimal CustomResourceDefinition (for kinds with no CRD file in the fixtures, e.g.
    Calico's ``crd.projectcalico.org``). Schema: preserve unknown fields."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": scope,
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                           "listKind": f"{kind}List"},
                 "versions": [{"name": v, "served": True, "storage": i == 0,
                               "schema": {"openAPIV3Schema": {
                                   "type": "object",
                                   "x-kubernetes-preserve-unknown-fields": True}}}
                              for i, v in enumerate(versions)]},
    }


def metallb_crds() -> list[Obj]:
    """The real MetalLB CRDs (IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer)."""
    out = []
    for f in ("ipaddresspools", "l2advertisements", "bgpadvertisements", "bgppeers"):
        out += load(f"metallb-crds/crd-definitions/metallb.io_{f}.yaml")
    return out


def calico_crds() -> list[Obj]:
    """Calico's CRDs as installed by the manifest (crd.projectcalico.org/v1)."""
    g = "crd.projectcalico.org"
    return [crd(g, "IPPool", "ippools", ["v1"], "Cluster"),
            crd(g, "BGPConfiguration", "bgpconfigurations", ["v1"], "Cluster"),
            crd(g, "BGPPeer", "bgppeers", ["v1"], "Cluster"),
            crd(g, "CalicoNodeStatus", "caliconodestatuses", ["v1"], "Cluster")]


def deployment(name: str, ns: str, image: str, labels: dict[str, str],
               containers: list[Obj] | None = None) -> Obj:
    """A Deployment with one container (or the given ones)."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": dict(labels),
                         "uid": uid("deploy", ns, name)},
            "spec": {"replicas": 1, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)},
                                  "spec": {"containers": containers or
                                           [{"name": name, "image": image}]}}},
            "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}


def service_lb(name: str, ns: str, *, ip: str | None, selector: dict[str, str] | None = None,
               port: int = 443, target: int = 8443, etp: str = "Cluster",
               cluster_ip: str = "10.96.100.10", lb_class: str | None = None,
               requested_ip: str | None = None) -> Obj:
    """A ``type: LoadBalancer`` Service, with ``status.loadBalancer.ingress[0].ip`` = ``ip``
    (None: pending)."""
    spec: Obj = {"type": "LoadBalancer", "selector": selector or {"app": name},
                 "clusterIP": cluster_ip, "externalTrafficPolicy": etp,
                 "ports": [{"port": port, "targetPort": target, "protocol": "TCP",
                            "nodePort": 30000 + port % 2000}]}
    if lb_class:
        spec["loadBalancerClass"] = lb_class
    if requested_ip:
        spec["loadBalancerIP"] = requested_ip
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": uid("svc", ns, name)},
            "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]} if ip else {}}}
