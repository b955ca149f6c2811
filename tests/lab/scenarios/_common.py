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
    deploy, svc = (copy.deepcopy(o)
                   for o in load("coredns/coredns-deployment-and-service.sed-template.yaml"))
    svc["spec"]["clusterIP"] = DNS_IP
    deploy["status"] = {"replicas": replicas, "readyReplicas": replicas}
    pods = pods_for(deploy, nodes[:replicas], host_ip_from_node=False)
    for i, p in enumerate(pods):
        p["metadata"]["name"] = f"coredns-5d78c9869d-{'abcdefgh'[i]}x{i}z{i}"
        p["status"]["podIP"] = f"10.244.{i}.2"
    sc.objects += [deploy, svc, *pods, endpointslice_for(svc, pods)]
    return deploy, svc, pods


def kube_proxy(sc: Scenario, nodes: list[Obj], configmap: Obj | None, *,
               started: str = "2025-11-05T10:00:00Z",
               log_file: str | None = "kube-proxy-startup-iptables.txt",
               version: str = "v1.34.0") -> tuple[Obj, list[Obj]]:
    """The real kubeadm kube-proxy DaemonSet (``--config=/var/lib/kube-proxy/config.conf``),
    one pod per node started at ``started``, the given ConfigMap and the startup log from
    ``fixtures/api`` for each pod."""
    ds = copy.deepcopy(load_one("cluster-dumps/kubeadm-v1.34-canal.kube-proxy.daemonset.yaml"))
    container = ds["spec"]["template"]["spec"]["containers"][0]
    container["image"] = f"registry.k8s.io/kube-proxy:{version}"
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
    names = ("default", "kube-system", "kube-public", "kube-node-lease", *extra)
    return [namespace(n) for n in names]


# --- MetalLB / Calico / NetworkPolicy helpers (appended for scenarios b and the MetalLB and
# NetworkPolicy cases) ----------------------------------------------------------------------


def metallb(sc: Scenario, nodes: list[Obj], version: str, *, ns: str = "metallb-system",
            crds: bool = True, controller_args: list[str] | None = None,
            speaker_ready: bool = True) -> tuple[Obj, Obj]:
    """MetalLB as the upstream manifests install it: controller Deployment (one pod on the
    second node) and speaker DaemonSet (hostNetwork, a pod per node), images
    ``quay.io/metallb/{controller,speaker}:<version>``. With ``crds`` (>= 0.13) also the real
    metallb.io CRDs, the ``metallb-webhook-service`` Service and the
    ``metallb-webhook-configuration`` ValidatingWebhookConfiguration (port 9443 on the
    controller, failurePolicy Fail), as in MetalLB's ``config/manifests/metallb-native.yaml``."""
    from tests.lab.scenarios._build import deployment, metallb_crds

    ctrl_labels = {"app": "metallb", "component": "controller"}
    ctrl = deployment("controller", ns, f"quay.io/metallb/controller:{version}", ctrl_labels,
                      containers=[{"name": "controller",
                                   "image": f"quay.io/metallb/controller:{version}",
                                   "args": ["--port=7472", "--log-level=info",
                                            *(controller_args or [])],
                                   "ports": [{"containerPort": 7472, "name": "monitoring"},
                                             {"containerPort": 9443, "name": "webhook-server",
                                              "protocol": "TCP"}]}])
    ctrl["metadata"]["labels"].update(ctrl_labels)
    spk_labels = {"app": "metallb", "component": "speaker"}
    n = len(nodes)
    speaker: Obj = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "speaker", "namespace": ns, "labels": dict(spk_labels)},
        "spec": {"selector": {"matchLabels": dict(spk_labels)},
                 "template": {"metadata": {"labels": dict(spk_labels)},
                              "spec": {"hostNetwork": True, "containers": [
                                  {"name": "speaker", "image": f"quay.io/metallb/speaker:{version}",
                                   "args": ["--port=7472", "--log-level=info"]}]}}},
        "status": {"desiredNumberScheduled": n, "currentNumberScheduled": n,
                   "numberReady": n if speaker_ready else 0,
                   "numberAvailable": n if speaker_ready else 0}}
    sc.objects += [ctrl, *pods_for(ctrl, nodes[1:2] or nodes[:1]), speaker,
                   *pods_for(speaker, nodes, ready=speaker_ready)]
    if crds:
        sc.objects += metallb_crds()
        sc.objects.append({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "metallb-webhook-service", "namespace": ns},
            "spec": {"selector": dict(ctrl_labels), "clusterIP": "10.96.7.93",
                     "ports": [{"port": 443, "targetPort": 9443, "protocol": "TCP"}]}})
        hooks = []
        for kind in ("ipaddresspool", "l2advertisement", "bgpadvertisement", "bgppeer"):
            hooks.append({
                "name": f"{kind}validationwebhook.metallb.io",
                "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
                "sideEffects": "None",
                "clientConfig": {"service": {"name": "metallb-webhook-service", "namespace": ns,
                                             "path": f"/validate-metallb-io-v1beta1-{kind}",
                                             "port": 443}},
                "rules": [{"apiGroups": ["metallb.io"], "apiVersions": ["v1beta1"],
                           "operations": ["CREATE", "UPDATE"], "resources": [f"{kind}s"]}]})
        sc.objects.append({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "metallb-webhook-configuration"}, "webhooks": hooks})
    return ctrl, speaker


def calico(sc: Scenario, nodes: list[Obj], *, version: str = "v3.28.2",
           pools: list[Obj] | None = None,
           calico_config: str | None = "calico/kubespray-bgp.calico-config.configmap.yaml"
           ) -> Obj:
    """Manifest-installed Calico in kube-system: the crd.projectcalico.org CRDs, the given
    IPPools (``crd.projectcalico.org/v1``), ``calico-config`` (real kubespray dump by default:
    ``calico_backend: bird``), the ``calico-node`` DaemonSet (hostNetwork, label
    ``k8s-app: calico-node``) with one pod per node, and ``calico-kube-controllers``."""
    from tests.lab.scenarios._build import calico_crds, deployment

    sc.objects += calico_crds()
    sc.objects += [copy.deepcopy(p) for p in pools or []]
    if calico_config:
        sc.objects.append(load_one(calico_config))
    labels = {"k8s-app": "calico-node"}
    ds: Obj = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "calico-node", "namespace": "kube-system", "labels": dict(labels)},
        "spec": {"selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"hostNetwork": True, "containers": [{
                                  "name": "calico-node",
                                  "image": f"docker.io/calico/node:{version}",
                                  "env": [{"name": "DATASTORE_TYPE", "value": "kubernetes"},
                                          {"name": "CALICO_NETWORKING_BACKEND",
                                           "valueFrom": {"configMapKeyRef": {
                                               "name": "calico-config",
                                               "key": "calico_backend"}}},
                                          {"name": "IP", "value": "autodetect"},
                                          {"name": "CALICO_IPV4POOL_IPIP",
                                           "value": "CrossSubnet"}]}]}}},
        "status": {"desiredNumberScheduled": len(nodes), "numberReady": len(nodes),
                   "numberAvailable": len(nodes)}}
    kc = deployment("calico-kube-controllers", "kube-system",
                    f"docker.io/calico/kube-controllers:{version}",
                    {"k8s-app": "calico-kube-controllers"})
    sc.objects += [ds, *pods_for(ds, nodes), kc, *pods_for(kc, nodes[:1])]
    return ds


def calico_pool_v1(path: str) -> list[Obj]:
    """IPPools from a fixture file (``calicoctl`` ``projectcalico.org/v3`` output or CRD
    ``crd.projectcalico.org/v1``) as the CRD API serves them when there is no Calico API
    server (``crd.projectcalico.org/v1``, same spec); calicoctl-only metadata is dropped."""
    out = []
    for p in load(path):
        p = copy.deepcopy(p)
        p["apiVersion"] = "crd.projectcalico.org/v1"
        meta = p.setdefault("metadata", {})
        meta.pop("resourceVersion", None)
        meta["creationTimestamp"] = str(meta.get("creationTimestamp", ""))
        out.append(p)
    return out


def app(sc: Scenario, nodes: list[Obj], name: str, ns: str, *, image: str = "nginx:1.27",
        port: int = 8443) -> tuple[Obj, list[Obj]]:
    """A one-replica Deployment ``name`` in ``ns`` (label ``app: <name>``, container port
    ``port``) with its pod on the last node."""
    from tests.lab.scenarios._build import deployment

    d = deployment(name, ns, image, {"app": name},
                   containers=[{"name": name, "image": image,
                                "ports": [{"containerPort": port, "protocol": "TCP"}]}])
    pods = pods_for(d, nodes[-1:])
    sc.objects += [d, *pods]
    return d, pods
