"""Live reads for NetworkPolicy work, over a ``bot.sdk.KubeReader``: does the CNI enforce
NetworkPolicy, where do pods' DNS queries go, which namespaces serve admission webhooks.

The pure semantics (selectors, peers, ports, the DNS verdict) are in
:mod:`runbooks._lib.netpol`; CNI recognition in :mod:`runbooks._lib.cni`. This module only adds
the reads, so that the ``netpol-dns-allow`` runbook (inspect, plan and verify) and the status
probes come to the same answers from the same objects.

Domain sources (DOMAIN.md):

- §5.1 / §4.2 "The CNI must enforce policy": plain Flannel does not (flannel-io/flannel#1293,
  #2183, #2004) unless its DaemonSet runs the kube-network-policies container
  (``Documentation/netpol.md``); Canal, Calico, Antrea enforce; Cilium unless
  ``enable-policy: never``; kube-router unless ``--run-firewall=false``; Weave Net through
  ``weave-npc``.
- §4.2 "DNS pod labels vary" / "Port is the pod's port": the DNS backend is the
  ``kube-system/kube-dns`` Service's *selector* (CoreDNS Helm labels pods ``k8s-app: coredns``;
  RKE2 names the Service ``rke2-coredns-rke2-coredns``) and the pod port comes from its
  EndpointSlices (``kubernetes.io/service-name=<svc>``; OpenShift DNS pods listen on 5353).
- §4.2 "NodeLocal DNSCache": the ``node-local-dns`` DaemonSet's ``-localip`` IPs (host network;
  only an ipBlock reaches them). The addon's ``kube-dns-upstream`` Service is also labelled
  ``k8s-app: kube-dns`` and is never taken for the cluster DNS Service.
- §4.2 "Webhooks/control-plane": a default-deny ingress in a namespace hosting admission
  webhooks blocks the API server's calls to them (metallb/metallb#1597).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.sdk import KubeError, KubeReader
from runbooks._lib import cni as c
from runbooks._lib import netpol as np
from runbooks._lib.kobj import Obj, labels, name, namespace

NODELOCAL_NAME = "node-local-dns"
UPSTREAM_SERVICE = "kube-dns-upstream"
WEBHOOK_API = "admissionregistration.k8s.io/v1"
WEBHOOK_KINDS = ("validatingwebhookconfigurations", "mutatingwebhookconfigurations")


# --------------------------------------------------------------------------- enforcement


@dataclass(frozen=True)
class Enforcement:
    """Whether the cluster's CNI enforces NetworkPolicy.

    ``cni``: ``flannel``/``canal``/``calico``/``cilium``/``kube-router``/``antrea``/``weave``/
    ``unknown``; ``display``: its product name; ``enforces``: True, False, or None when it
    cannot be told (no known agent, embedded Flannel without a DaemonSet); ``detail``: one
    plain clause saying why; ``namespace``: where the agent DaemonSet runs (None when none).
    """

    cni: str
    display: str
    enforces: bool | None
    detail: str
    namespace: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form for facts."""
        return {"cni": self.cni, "display": self.display, "enforces": self.enforces,
                "detail": self.detail, "namespace": self.namespace}


def cni_enforcement(kube: KubeReader) -> Enforcement:
    """Detect the CNI from DaemonSets (then node annotations) and decide enforcement the way
    the ``cni`` status probe does. Raises ``KubeError`` when DaemonSets cannot be listed;
    other reads (nodes, ``cilium-config``) are optional."""
    daemonsets = kube.list("apps/v1", "daemonsets")
    agents = c.find_agents(daemonsets)
    cni = c.primary_cni(agents)
    if cni is None:
        try:
            cni = c.cni_from_nodes(kube.list("v1", "nodes"))
        except KubeError:
            cni = None
    cni = cni or "unknown"
    display = c.DISPLAY.get(cni, cni)
    ds = agents.get(cni) or (agents.get("calico") if cni == "canal" else None)

    def result(enforces: bool | None, detail: str) -> Enforcement:
        return Enforcement(cni, display, enforces, detail,
                           namespace(ds) if ds else None)

    if cni in ("canal", "calico", "antrea"):
        return result(True, f"{display} implements NetworkPolicy")
    if cni == "flannel":
        if ds is None:
            return result(None, "Flannel runs embedded (no DaemonSet), so whether a policy "
                                "controller runs beside it cannot be read from the API")
        if c.flannel_netpol_sidecar(ds):
            return result(True, "Flannel runs the kube-network-policies container")
        return result(False, "Flannel does not implement NetworkPolicy and its DaemonSet has "
                             "no kube-network-policies container")
    if cni == "cilium":
        cm = None
        for ns in dict.fromkeys((namespace(ds) if ds else "kube-system", "kube-system")):
            try:
                cm = kube.get("v1", "configmaps", "cilium-config", ns)
            except KubeError:
                cm = None
            if cm is not None:
                break
        if cm is None:
            return result(True, "Cilium enforces NetworkPolicy by default (cilium-config not "
                                "readable)")
        cfg = c.parse_cilium_config(cm.get("data") or {}, c.cilium_version(ds))
        if cfg.enforces_networkpolicy:
            return result(True, "Cilium enforces NetworkPolicy")
        return result(False, "Cilium runs with enable-policy=never")
    if cni == "kube-router" and ds is not None:
        fw = c.kube_router_features(ds)["firewall"]
        return result(fw, "kube-router runs its firewall" if fw
                      else "kube-router runs with --run-firewall=false")
    if cni == "weave" and ds is not None:
        on = c.weave_enforces(ds)
        return result(on, "Weave Net runs weave-npc" if on
                      else "Weave Net runs without its weave-npc container")
    return result(None, "no known CNI agent was found")


# --------------------------------------------------------------------------- DNS


@dataclass(frozen=True)
class DnsDiscovery:
    """The DNS target (None when it cannot be found, with ``note`` saying why) and what was
    found about NodeLocal DNSCache: ``nodelocal`` (``<ns>/<name>`` of its DaemonSet or None)
    and ``nodelocal_unparsed`` (``-localip`` values that are not IPs, e.g. an unrendered
    ``__PILLAR__DNS__SERVER__`` placeholder)."""

    target: np.DnsTarget | None
    note: str = ""
    nodelocal: str | None = None
    nodelocal_unparsed: tuple[str, ...] = ()


def _is_nodelocal(ds: Obj) -> bool:
    return name(ds) == NODELOCAL_NAME or labels(ds).get("k8s-app") == NODELOCAL_NAME


def find_dns_service(kube: KubeReader) -> Obj | None:
    """The cluster DNS Service: ``kube-system/kube-dns``; else the only kube-system Service
    with port 53 whose name contains ``dns`` (``coredns`` names preferred), never NodeLocal's
    ``kube-dns-upstream``; None when there is no single answer."""
    svc = kube.get("v1", "services", "kube-dns", "kube-system")
    if svc is not None:
        return svc
    cands = [s for s in kube.list("v1", "services", namespace="kube-system")
             if name(s) != UPSTREAM_SERVICE and "dns" in name(s)
             and any(isinstance(p, dict) and p.get("port") == 53
                     for p in (s.get("spec") or {}).get("ports") or [])]
    core = [s for s in cands if "coredns" in name(s)]
    pick = core if len(core) == 1 else cands
    return pick[0] if len(pick) == 1 else None


def discover_dns(kube: KubeReader) -> DnsDiscovery:
    """Find where pods' DNS queries go: the DNS Service, the pods its selector matches, their
    EndpointSlices (pod ports per protocol) and the ``node-local-dns`` DaemonSet. Never
    raises for a missing or unreadable object: the note says what is missing."""
    try:
        svc = find_dns_service(kube)
        if svc is None:
            return DnsDiscovery(None, "no kube-dns Service found in kube-system")
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not selector:
            return DnsDiscovery(None, f"Service kube-system/{name(svc)} has no selector")
        ns = namespace(svc) or "kube-system"
        sel = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = kube.list("v1", "pods", namespace=ns, label_selector=sel)
        slices = kube.list("discovery.k8s.io/v1", "endpointslices", namespace=ns,
                           label_selector=f"kubernetes.io/service-name={name(svc)}")
        nodelocal = next((d for d in kube.list("apps/v1", "daemonsets") if _is_nodelocal(d)),
                         None)
    except KubeError as e:
        return DnsDiscovery(None, f"cannot read the DNS Service or its endpoints ({e})")
    unparsed: tuple[str, ...] = ()
    ref = None
    if nodelocal is not None:
        unparsed = tuple(np.nodelocal_ips(nodelocal)[1])
        ref = f"{namespace(nodelocal)}/{name(nodelocal)}"
    return DnsDiscovery(np.dns_target(svc, slices, pods, nodelocal), "", ref, unparsed)


# --------------------------------------------------------------------------- webhooks


@dataclass(frozen=True)
class Webhook:
    """One admission webhook served from inside the cluster: ``configuration`` (its
    Validating/MutatingWebhookConfiguration), ``webhook`` (its name), ``namespace``/``service``
    and ``port`` (the Service port the API server calls, default 443), ``target_port`` (the pod
    port after DNAT, which is what a NetworkPolicy sees; None when it cannot be resolved),
    ``failure_policy``."""

    configuration: str
    webhook: str
    namespace: str
    service: str
    port: int
    target_port: int | str | None = None
    failure_policy: str = "Fail"

    def to_json(self) -> dict[str, Any]:
        """JSON form for facts."""
        return {"configuration": self.configuration, "webhook": self.webhook,
                "namespace": self.namespace, "service": self.service, "port": self.port,
                "target_port": self.target_port, "failurePolicy": self.failure_policy}


def _target_port(kube: KubeReader, ns: str, svc_name: str, port: int) -> int | str | None:
    try:
        svc = kube.get("v1", "services", svc_name, ns)
    except KubeError:
        return None
    for p in ((svc or {}).get("spec") or {}).get("ports") or []:
        if isinstance(p, dict) and p.get("port") == port:
            tp = p.get("targetPort", port)
            return int(tp) if isinstance(tp, int) or str(tp).isdigit() else str(tp)
    return None


def webhook_services(kube: KubeReader) -> dict[str, list[Webhook]]:
    """Namespace -> admission webhooks whose ``clientConfig.service`` lives there (validating
    and mutating configurations). Webhooks called by URL are skipped (outside the cluster or
    unknowable). Empty for a kind the server does not serve or cannot be read: this only adds
    warnings."""
    out: dict[str, list[Webhook]] = {}
    ports: dict[tuple[str, str, int], int | str | None] = {}
    for plural in WEBHOOK_KINDS:
        try:
            if not kube.served(WEBHOOK_API, plural):
                continue
            items = kube.list(WEBHOOK_API, plural)
        except KubeError:
            continue
        for cfg in items:
            for wh in cfg.get("webhooks") or []:
                if not isinstance(wh, dict):
                    continue
                svc = (wh.get("clientConfig") or {}).get("service") or {}
                if not isinstance(svc, dict) or not svc.get("namespace"):
                    continue
                ns, sname = str(svc["namespace"]), str(svc.get("name", ""))
                port = int(svc.get("port") or 443)
                key = (ns, sname, port)
                if key not in ports:
                    ports[key] = _target_port(kube, ns, sname, port)
                out.setdefault(ns, []).append(Webhook(
                    configuration=name(cfg), webhook=str(wh.get("name", "")), namespace=ns,
                    service=sname, port=port, target_port=ports[key],
                    failure_policy=str(wh.get("failurePolicy") or "Fail")))
    return out
