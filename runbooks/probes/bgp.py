"""Status probe for the ``bgp`` section: Calico BGP mesh, peers and peer state as far as the
API shows them (DOMAIN.md sections 5.2, 5.3; projectcalico/calico#2785, #3541, #8607).

Only Calico with the BGP backend (``bird``) is checked; Canal (Flannel data plane), Calico
with the ``vxlan``/``none`` backend and every other CNI get "BGP not in use" (never "0 peers
established": projectcalico/calico#4333).

Facts: ``{"in_use": bool, "backend": str|None, "mesh": bool|None, "as_number": int|None,
"peers": [{"name", "peerIP", "asNumber", "node"}], "session_peers": [{"node", "peer_ip",
"type", "state", "since"}], "calico_addresses": {node: "ip/prefix"},
"not_ready": {pod: {"node", "peers"}}}`` and ``undecided`` when the session state could not
be seen at all.
"""

from __future__ import annotations

from typing import Any

from bot.sdk import Finding, Inspection, KubeError, Probe, ProbeContext, ProbeError, Severity
from runbooks._lib import calico as cal
from runbooks._lib import kobj as k

SECTION = "bgp"
CALICO_GROUPS = ("crd.projectcalico.org/v1", "projectcalico.org/v3")
DEFAULT_ASN = 64512


def _f(code: str, sev: Severity, subj: str, msg: str, ev: dict[str, Any],
       runbook: str | None = None, params: dict[str, Any] | None = None) -> Finding:
    return Finding(code=code, severity=sev, section=SECTION, subject=subj, message=msg,
                   evidence=ev, runbook=runbook, params=params)


class BgpProbe(Probe):
    """Calico BGP: mesh, peers, session state, node address autodetection."""

    section = SECTION
    title = "Calico BGP"
    order = 70
    position = 60

    def inspect(self, ctx: ProbeContext) -> Inspection:
        """Reads ``ctx.facts["cni"]`` (raises ``ProbeError`` when the CNI section failed), then
        for Calico/bird: Nodes, BGPConfiguration ``default``, BGPPeers, CalicoNodeStatus,
        calico-node pods and their Events. Findings BGP001-BGP007."""
        cni = ctx.facts.get("cni")
        if cni is None:
            raise ProbeError("The CNI could not be detected (its probe failed), so whether "
                             "Calico BGP is in use is unknown.")
        return _Run(ctx, cni).inspect()


class _Run:
    def __init__(self, ctx: ProbeContext, cni: dict[str, Any]) -> None:
        self.ctx = ctx
        self.kube = ctx.kube
        self.cni = cni
        self.findings: list[Finding] = []
        self.undecided: list[str] = []
        self.facts: dict[str, Any] = {"in_use": False, "backend": cni.get("calico_backend"),
                                      "mesh": None, "as_number": None, "peers": [],
                                      "session_peers": [], "calico_addresses": {},
                                      "not_ready": {}}

    def _served_list(self, plural: str, ns: str | None = None) -> list[k.Obj]:
        out: dict[str, k.Obj] = {}
        for api in CALICO_GROUPS:
            try:
                if self.kube.served(api, plural):
                    for o in self.kube.list(api, plural, ns):
                        out[k.name(o)] = o
            except KubeError as e:
                self.undecided.append(f"{plural}.{api} could not be read: {e}")
        return [out[n] for n in sorted(out)]

    def inspect(self) -> Inspection:
        name = self.cni.get("cni")
        backend = self.cni.get("calico_backend")
        subj = self.cni.get("agent") or "cluster"
        nodes = self._nodes() if name == "calico" else []
        if name == "calico":
            self._crosssubnet(nodes)
        if name in (None, "unknown"):
            self.undecided.append("the CNI is unknown, so whether Calico BGP is in use cannot "
                                  "be decided")
            return self._done("BGP state unknown (CNI unknown)")
        if name != "calico" or backend in ("vxlan", "none"):
            why = {
                "canal": "Canal routes pod traffic over Flannel and uses Calico only for "
                         "policy, so Calico BGP is not in use.",
                "calico": f"Calico runs with the {backend} backend, so BGP is not in use.",
                "kube-router": "Calico is not installed; kube-router's own BGP sessions are not "
                               "checked here.",
            }.get(str(name), f"Calico is not installed ({self.cni.get('display') or name}), so "
                             f"Calico BGP is not in use.")
            self.findings.append(_f("BGP001", Severity.INFO, subj, why,
                                    {"cni": name, "calico_backend": backend}))
            short = {"canal": "Canal: Flannel data plane", "calico": f"{backend} backend"
                     }.get(str(name), str(self.cni.get("display") or name))
            return self._done(f"BGP not in use ({short})")
        self.facts["in_use"] = True
        self._addresses(nodes)
        self._config()
        self._node_status()
        pods_ok = self._pods(nodes)
        if not pods_ok and not self.facts["session_peers"]:
            self.undecided.append("BGP session state unknown: no calico-node pods or "
                                  "CalicoNodeStatus objects are visible")
        return self._done(self._summary(backend))

    def _done(self, summary: str) -> Inspection:
        if self.undecided:
            self.facts["undecided"] = "; ".join(self.undecided)
        return Inspection(summary=summary, findings=tuple(self.findings), facts=self.facts)

    def _nodes(self) -> list[k.Obj]:
        try:
            return self.kube.list("v1", "nodes")
        except KubeError as e:
            self.undecided.append(f"nodes could not be read: {e}")
            return []

    # -- node addresses ---------------------------------------------------------------------
    def _addresses(self, nodes: list[k.Obj]) -> None:
        operator = self.cni.get("calico_install") == "operator"
        knob = ("spec.calicoNetwork.nodeAddressAutodetectionV4 in the Installation"
                if operator else "IP_AUTODETECTION_METHOD on the calico-node DaemonSet")
        for n in sorted(nodes, key=k.name):
            got = cal.node_ipv4(n)
            if got is None:
                continue
            ip, prefix = got
            self.facts["calico_addresses"][k.name(n)] = \
                f"{ip}/{prefix}" if prefix is not None else ip
            internal = k.node_internal_ip(n)
            if internal and ip != internal:
                self.findings.append(_f(
                    "BGP004", Severity.WARNING, f"node/{k.name(n)}",
                    f"Calico uses {ip} for node {k.name(n)} but its Kubernetes InternalIP is "
                    f"{internal}, which suggests wrong IP autodetection; set {knob} (for "
                    f"example interface=eth0, kubernetes-internal-ip or can-reach=<gateway>).",
                    {"calico_ipv4": k.annotations_of(n).get(cal.ANN_IPV4),
                     "internal_ip": internal, "install": "operator" if operator else "manifest",
                     "setting": "nodeAddressAutodetectionV4" if operator
                     else "IP_AUTODETECTION_METHOD",
                     "examples": ["interface=eth0", "kubernetes-internal-ip",
                                  "can-reach=<gateway>"]}))

    def _crosssubnet(self, nodes: list[k.Obj]) -> None:
        pools = [p for p in self.cni.get("calico_pools") or []
                 if not p.get("disabled") and "CrossSubnet" in
                 (str(p.get("ipipMode")), str(p.get("vxlanMode")))]
        addrs = [cal.node_ipv4(n) for n in nodes]
        known = [a for a in addrs if a is not None and a[1] is not None]
        if not pools or not known or any(a[1] != 32 for a in known):
            return
        for p in pools:
            self.findings.append(_f(
                "BGP007", Severity.WARNING, f"ippool/{p.get('name')}",
                f"IP pool {p.get('name')} uses CrossSubnet but every node's Calico address is a "
                f"/32, so Calico treats all nodes as remote subnets and encapsulates all "
                f"traffic.", {"pool": p, "node_prefixes": sorted({a[1] for a in known})}))

    # -- configuration ----------------------------------------------------------------------
    def _config(self) -> None:
        confs = {k.name(o): o for o in self._served_list("bgpconfigurations")}
        default = confs.get("default")
        spec = (default or {}).get("spec") or {}
        mesh = spec.get("nodeToNodeMeshEnabled")
        self.facts["mesh"] = True if mesh is None else bool(mesh)
        asn = spec.get("asNumber")
        self.facts["as_number"] = int(asn) if isinstance(asn, int) else DEFAULT_ASN
        peers = self._served_list("bgppeers")
        self.facts["peers"] = [{"name": k.name(p), "peerIP": k.dig(p, "spec", "peerIP"),
                                "asNumber": k.dig(p, "spec", "asNumber"),
                                "node": k.dig(p, "spec", "node")} for p in peers]
        if not self.facts["mesh"] and not peers:
            self.findings.append(_f(
                "BGP002", Severity.CRITICAL, "bgpconfiguration/default",
                "Calico's node-to-node BGP mesh is disabled and no BGPPeer is defined, so nodes "
                "exchange no pod routes.",
                {"nodeToNodeMeshEnabled": False, "bgppeers": 0}))

    def _node_status(self) -> None:
        for cns in self._served_list("caliconodestatuses"):
            for peer in cal.node_status_peers(cns):
                self.facts["session_peers"].append(peer)
                if peer["state"] != "Established":
                    self.findings.append(_f(
                        "BGP003", Severity.CRITICAL, f"caliconodestatus/{k.name(cns)}",
                        f"BGP session from node {peer['node']} to {peer['peer_ip']} "
                        f"({peer['type'] or 'peer'}) is {peer['state'] or 'not established'}, "
                        f"so routes to that peer's pods are missing.", peer))

    # -- calico-node pods ---------------------------------------------------------------------
    def _pods(self, nodes: list[k.Obj]) -> bool:
        ns = self.cni.get("namespace") or "kube-system"
        try:
            pods = self.kube.list("v1", "pods", ns, label_selector="k8s-app=calico-node")
        except KubeError as e:
            self.undecided.append(f"calico-node pods could not be read: {e}")
            return False
        if not pods:
            return False
        not_ready = [p for p in pods if k.pod_ready(p) is False]
        if not not_ready:
            return True
        messages: dict[str, list[str]] = {k.name(p): [] for p in not_ready}
        for p in not_ready:
            msg = k.pod_condition_message(p)
            if msg:
                messages[k.name(p)].append(msg)
        try:
            events = self.kube.list("v1", "events", ns)
        except KubeError as e:
            self.undecided.append(f"events in {ns} could not be read: {e}")
            events = []
        for ev in events:
            inv = ev.get("involvedObject") or {}
            if inv.get("name") in messages and inv.get("kind", "Pod") == "Pod":
                messages[str(inv["name"])].append(str(ev.get("message") or ""))
        owner = self._peer_owners(nodes)
        for p in not_ready:
            nm, node = k.name(p), k.pod_node(p)
            peers: list[str] = []
            for m in messages[nm]:
                peers += cal.bgp_not_established_peers(m)
            peers = list(dict.fromkeys(peers))
            self.facts["not_ready"][nm] = {"node": node, "peers": peers}
            subj = f"pod/{k.namespace(p) or ns}/{nm}"
            if peers:
                hints = [owner[ip] for ip in peers if ip in owner]
                hint = ""
                if hints:
                    h = hints[0]
                    hint = (f" ({h['node']}'s Calico address, which differs from its InternalIP "
                            f"{h['internal_ip']})" if h["mismatch"]
                            else f" (node {h['node']})")
                self.findings.append(_f(
                    "BGP005", Severity.CRITICAL, subj,
                    f"calico-node on node {node or 'unknown'} is not Ready: BGP not established "
                    f"with {', '.join(peers)}{hint}, so pod traffic between these nodes is "
                    f"broken.",
                    {"node": node, "peers": peers, "peer_nodes": hints,
                     "messages": sorted(set(messages[nm]))[:3]}))
            else:
                self.findings.append(_f(
                    "BGP006", Severity.WARNING, subj,
                    f"calico-node on node {node or 'unknown'} is not Ready, so its BGP sessions "
                    f"may be down.",
                    {"node": node, "restarts": k.restart_count(p),
                     "waiting": k.waiting_reasons(p), "messages": sorted(set(messages[nm]))[:3]}))
        return True

    def _peer_owners(self, nodes: list[k.Obj]) -> dict[str, dict[str, Any]]:
        """Peer IP → the node it belongs to (Calico address or InternalIP)."""
        out: dict[str, dict[str, Any]] = {}
        for n in nodes:
            internal = k.node_internal_ip(n)
            got = cal.node_ipv4(n)
            if got:
                out[got[0]] = {"node": k.name(n), "internal_ip": internal,
                               "calico_ipv4": got[0], "mismatch": bool(internal)
                               and got[0] != internal}
            if internal and internal not in out:
                out[internal] = {"node": k.name(n), "internal_ip": internal,
                                 "calico_ipv4": got[0] if got else None, "mismatch": False}
        return out

    def _summary(self, backend: str | None) -> str:
        npeers = len(self.facts["peers"])
        parts = [f"Calico BGP ({backend or 'backend unknown'})",
                 f"node-to-node mesh {'on' if self.facts['mesh'] else 'off'}",
                 f"AS {self.facts['as_number']}",
                 f"{npeers} BGPPeer{'s' if npeers != 1 else ''}"]
        nr = self.facts["not_ready"]
        if nr:
            bgp = sorted({ip for v in nr.values() for ip in v["peers"]})
            parts.append(f"{len(nr)} calico-node not Ready"
                         + (f" (BGP not established with {', '.join(bgp)})" if bgp else ""))
        down = [p for p in self.facts["session_peers"] if p["state"] != "Established"]
        if self.facts["session_peers"]:
            parts.append(f"{len(self.facts['session_peers']) - len(down)}/"
                         f"{len(self.facts['session_peers'])} sessions Established")
        elif not nr and "undecided" not in self.facts and not self.undecided:
            parts.append("all calico-node pods Ready")
        return ", ".join(parts)
