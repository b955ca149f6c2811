"""NetworkPolicy semantics as pure functions over API objects (plain JSON dicts).

Used by the ``networkpolicy`` status probe and by the ``netpol-dns-allow`` runbook.

Kubernetes rules implemented here (sources in DOMAIN.md §4):

- **Label selectors** (``metav1.LabelSelector``): ``matchLabels`` AND ``matchExpressions``
  (operators ``In``, ``NotIn``, ``Exists``, ``DoesNotExist``). An empty selector ``{}`` matches
  everything; a null (absent) selector matches nothing where the API says so. See
  https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/.
- **policyTypes defaulting**: when ``spec.policyTypes`` is empty, ``Ingress`` is always implied
  and ``Egress`` only when ``spec.egress`` is a non-empty list (``len(Egress) != 0`` in
  kubernetes/kubernetes ``pkg/apis/networking/v1/defaults.go``). So ``egress: []`` without
  ``policyTypes`` restricts nothing: the API server stores ``policyTypes: [Ingress]``.
- **Peers**: the items of ``from``/``to`` are OR'ed; inside one item ``namespaceSelector`` and
  ``podSelector`` are AND'ed; a lone ``podSelector`` selects pods in the *policy's own*
  namespace; a lone ``namespaceSelector`` selects every pod of the matching namespaces; an
  absent or empty ``from``/``to`` list matches every source/destination (ahmetb recipes #98,
  projectcalico/calico#5170).
- **Ports**: absent/empty ``ports`` = all ports; ``protocol`` defaults to TCP; ``port`` may be a
  number or a container-port *name*; ``endPort`` gives a range. Policies match after DNAT, so
  the DNS port that counts is the pod's port (EndpointSlice), not the Service port.
- **Host-network pods** (NodeLocal DNSCache) cannot be matched by pod/namespace selectors: only
  an ``ipBlock`` reaches them (kubernetes/kubernetes#70555, projectcalico/calico#3795).
- ``ipBlock`` is matched against pod IPs too (what Calico and Cilium do; the API calls the
  behaviour implementation-defined).

Nothing here raises on odd input: unknown operators, bad CIDRs and non-dict values simply
match nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

INGRESS = "Ingress"
EGRESS = "Egress"
NAME_LABEL = "kubernetes.io/metadata.name"
"""Label the API server sets on every Namespace (k8s ≥ 1.21/1.22), usable in namespaceSelector."""

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
"""Namespaces left out of default-deny coverage counts (their policies are still analysed)."""

Obj = dict[str, Any]


# --------------------------------------------------------------------------- label selectors


def selector_is_empty(selector: Any) -> bool:
    """True for ``{}`` (or a selector with empty ``matchLabels``/``matchExpressions``), which
    matches every object. ``None`` is *not* empty (it is absent)."""
    if not isinstance(selector, dict):
        return False
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def label_selector_matches(selector: Any, labels: Mapping[str, str] | None) -> bool:
    """Whether ``labels`` satisfy a ``metav1.LabelSelector`` dict.

    ``{}`` matches everything; ``None`` (absent) matches nothing. ``matchLabels`` entries and
    each ``matchExpressions`` requirement must all hold. Operators: ``In`` (key present and value
    in ``values``), ``NotIn`` (key absent or value not in ``values``), ``Exists``,
    ``DoesNotExist``; any other operator matches nothing (the API server would reject it).
    """
    if selector is None or not isinstance(selector, dict):
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(str(k)) != str(v):
            return False
    for expr in selector.get("matchExpressions") or []:
        if not isinstance(expr, dict):
            return False
        key = str(expr.get("key", ""))
        op = expr.get("operator")
        values = [str(x) for x in (expr.get("values") or [])]
        present = key in labels
        if op == "In":
            if not present or labels[key] not in values:
                return False
        elif op == "NotIn":
            if present and labels[key] in values:
                return False
        elif op == "Exists":
            if not present:
                return False
        elif op == "DoesNotExist":
            if present:
                return False
        else:
            return False
    return True


def describe_selector(selector: Any) -> str:
    """A short human form of a selector: ``k8s-app=kube-dns``, ``app in (a,b)``, ``{}`` = all."""
    if not isinstance(selector, dict):
        return "none"
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for e in selector.get("matchExpressions") or []:
        if not isinstance(e, dict):
            continue
        op = e.get("operator")
        vals = ",".join(str(v) for v in e.get("values") or [])
        if op == "In":
            parts.append(f"{e.get('key')} in ({vals})")
        elif op == "NotIn":
            parts.append(f"{e.get('key')} notin ({vals})")
        elif op == "Exists":
            parts.append(str(e.get("key")))
        elif op == "DoesNotExist":
            parts.append(f"!{e.get('key')}")
        else:
            parts.append(f"{e.get('key')} {op} ({vals})")
    return ",".join(parts) if parts else "{}"


# --------------------------------------------------------------------------- policy shape


def _spec(policy: Obj) -> Obj:
    spec = policy.get("spec")
    return spec if isinstance(spec, dict) else {}


def policy_ref(policy: Obj) -> str:
    """``networkpolicy/<namespace>/<name>`` (namespace ``default`` when missing)."""
    meta = policy.get("metadata") or {}
    return f"networkpolicy/{meta.get('namespace') or 'default'}/{meta.get('name', '?')}"


def policy_namespace(policy: Obj) -> str:
    """The policy's namespace (``default`` when the manifest has none)."""
    return str((policy.get("metadata") or {}).get("namespace") or "default")


def policy_types(policy: Obj) -> frozenset[str]:
    """Effective ``policyTypes``: the explicit list, or ``{Ingress}`` plus ``Egress`` when
    ``spec.egress`` is a non-empty list (Kubernetes defaulting, see module docstring)."""
    spec = _spec(policy)
    explicit = spec.get("policyTypes")
    if isinstance(explicit, list) and explicit:
        return frozenset(str(t) for t in explicit if t in (INGRESS, EGRESS))
    types = {INGRESS}
    if isinstance(spec.get("egress"), list) and spec["egress"]:
        types.add(EGRESS)
    return frozenset(types)


def rules(policy: Obj, direction: str) -> list[Obj]:
    """The policy's rules for ``direction`` (``Ingress``/``Egress``) when that type applies,
    else ``[]``. Non-dict items (which the API would reject) are treated as ``{}``."""
    if direction not in policy_types(policy):
        return []
    raw = _spec(policy).get("ingress" if direction == INGRESS else "egress") or []
    return [r if isinstance(r, dict) else {} for r in raw] if isinstance(raw, list) else []


def selects_all_pods(policy: Obj) -> bool:
    """Whether ``spec.podSelector`` is ``{}`` (every pod of the namespace). A missing
    podSelector is treated as ``{}`` (the field is required; kubectl defaults it)."""
    sel = _spec(policy).get("podSelector")
    return sel is None or selector_is_empty(sel)


def is_default_deny(policy: Obj, direction: str) -> bool:
    """podSelector ``{}``, ``direction`` in policyTypes and no rules for it: every pod of the
    namespace is isolated for that direction and this policy allows nothing."""
    return (selects_all_pods(policy) and direction in policy_types(policy)
            and not rules(policy, direction))


def rule_is_allow_all(rule: Obj, direction: str) -> bool:
    """A rule with no peers and no ports (e.g. ``ingress: [{}]``): allows everything."""
    peers = rule.get("from" if direction == INGRESS else "to")
    return not peers and not rule.get("ports")


def allow_all_policies(policies: Iterable[Obj], direction: str) -> list[Obj]:
    """Policies holding an allow-all rule for ``direction`` (rke2-flannel-host-networking)."""
    return [p for p in policies
            if any(rule_is_allow_all(r, direction) for r in rules(p, direction))]


@dataclass(frozen=True)
class Isolation:
    """One namespace's state for one direction.

    ``state``: ``none`` (no policy isolates any pod), ``partial`` (only some pods are selected),
    ``default-deny`` (every pod isolated; what is allowed is the union of rules), ``allow-all``
    (every pod isolated but an allow-all rule defeats it). ``deny_policies``: names of policies
    with podSelector {} for this direction and no rules; ``isolating``: names of all policies
    with this direction; ``allow_all``: names of policies with an allow-all rule.
    """

    state: str
    deny_policies: tuple[str, ...] = ()
    isolating: tuple[str, ...] = ()
    allow_all: tuple[str, ...] = ()


def isolation(policies: Iterable[Obj], direction: str) -> Isolation:
    """Classify the policies of ONE namespace for ``direction`` (see :class:`Isolation`)."""
    pols = [p for p in policies if direction in policy_types(p)]
    names = tuple(sorted(str((p.get("metadata") or {}).get("name")) for p in pols))
    deny = tuple(sorted(str((p.get("metadata") or {}).get("name"))
                        for p in pols if is_default_deny(p, direction)))
    allow_all_all_pods = [p for p in allow_all_policies(pols, direction) if selects_all_pods(p)]
    allow = tuple(sorted(str((p.get("metadata") or {}).get("name"))
                         for p in allow_all_policies(pols, direction)))
    if not pols:
        return Isolation("none")
    if any(selects_all_pods(p) for p in pols):
        state = "allow-all" if allow_all_all_pods else "default-deny"
        return Isolation(state, deny, names, allow)
    return Isolation("partial", deny, names, allow)


# --------------------------------------------------------------------------- peers and ports


@dataclass(frozen=True)
class Endpoint:
    """A traffic endpoint to evaluate a rule against.

    ``namespace``/``labels``: the pod's namespace and labels (ignored when ``host_network``);
    ``ip``: its IP (for ipBlock); ``host_network``: True for hostNetwork pods and node-local
    IPs, which only ipBlock can match; ``named_ports``: container port name ->
    (protocol, number) for policies that name ports.
    """

    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None
    host_network: bool = False
    named_ports: Mapping[str, tuple[str, int]] = field(default_factory=dict)


def ip_in_block(ip: str | None, block: Any) -> bool:
    """Whether ``ip`` is inside ``ipBlock.cidr`` and outside every ``except`` CIDR. Bad or
    missing values match nothing."""
    if not ip or not isinstance(block, dict):
        return False
    try:
        addr = ipaddress.ip_address(ip)
        net = ipaddress.ip_network(str(block.get("cidr", "")).strip(), strict=False)
    except ValueError:
        return False
    if addr.version != net.version or addr not in net:
        return False
    for ex in block.get("except") or []:
        try:
            exn = ipaddress.ip_network(str(ex).strip(), strict=False)
        except ValueError:
            continue
        if exn.version == addr.version and addr in exn:
            return False
    return True


def peer_matches(peer: Any, policy_ns: str, namespaces: Mapping[str, Mapping[str, str]],
                 target: Endpoint) -> bool:
    """Whether one ``from``/``to`` item selects ``target``.

    ``namespaces`` maps namespace name -> labels (a namespace missing from it is assumed to
    carry only ``kubernetes.io/metadata.name``). ipBlock items match by IP; selector items
    never match host-network endpoints.
    """
    if not isinstance(peer, dict):
        return False
    if "ipBlock" in peer:
        return ip_in_block(target.ip, peer.get("ipBlock"))
    if target.host_network:
        return False
    ns_sel = peer.get("namespaceSelector")
    pod_sel = peer.get("podSelector")
    if ns_sel is None and pod_sel is None:
        return False
    if ns_sel is None:
        if target.namespace != policy_ns:
            return False
    else:
        ns_labels = namespaces.get(target.namespace, {NAME_LABEL: target.namespace})
        if not label_selector_matches(ns_sel, ns_labels):
            return False
    if pod_sel is None:
        return True
    return label_selector_matches(pod_sel, target.labels)


def port_matches(port_item: Any, protocol: str, port: int, target: Endpoint) -> bool:
    """Whether one ``ports`` item admits ``protocol``/``port`` on ``target``."""
    if not isinstance(port_item, dict):
        return False
    proto = str(port_item.get("protocol") or "TCP").upper()
    if proto != protocol.upper():
        return False
    p = port_item.get("port")
    if p is None:
        return True
    if isinstance(p, str) and not p.isdigit():
        named = target.named_ports.get(p)
        return named is not None and named[0].upper() == protocol.upper() and named[1] == port
    try:
        start = int(p)
    except (TypeError, ValueError):
        return False
    end = port_item.get("endPort")
    try:
        end_i = int(end) if end is not None else start
    except (TypeError, ValueError):
        end_i = start
    return start <= port <= end_i


def rule_allows(rule: Obj, direction: str, policy_ns: str,
                namespaces: Mapping[str, Mapping[str, str]], target: Endpoint,
                protocol: str, port: int) -> bool:
    """Whether one ingress/egress rule admits traffic to (egress) or from (ingress) ``target``
    on ``protocol``/``port``."""
    peers = rule.get("from" if direction == INGRESS else "to")
    if peers and not any(peer_matches(p, policy_ns, namespaces, target) for p in peers):
        return False
    ports = rule.get("ports")
    return not ports or any(port_matches(pi, protocol, port, target) for pi in ports)


# --------------------------------------------------------------------------- DNS


@dataclass(frozen=True)
class DnsTarget:
    """Where pods' DNS queries go, as discovered from the live cluster.

    ``service``: ``<ns>/<name>`` of the cluster DNS Service (``kube-system/kube-dns``);
    ``selector``: its ``spec.selector`` (the DNS pods' real labels); ``backends``: one
    :class:`Endpoint` per DNS pod (labels and IP from the pods / EndpointSlices);
    ``ports``: protocol -> pod ports from the EndpointSlices (``{"UDP": (53,), "TCP": (53,)}``);
    ``nodelocal_ips``: the link-local (and intercepted) IPs NodeLocal DNSCache listens on, from
    the ``node-local-dns`` DaemonSet's ``-localip`` argument (empty when not deployed);
    ``nodelocal_port``: its DNS port (53); ``cluster_ip``: the Service's ClusterIP (an ipBlock
    for it does not work without NodeLocal DNSCache: policies see the pod IP after DNAT).
    """

    service: str
    selector: Mapping[str, str]
    backends: tuple[Endpoint, ...]
    ports: Mapping[str, tuple[int, ...]]
    nodelocal_ips: tuple[str, ...] = ()
    nodelocal_port: int = 53
    cluster_ip: str | None = None

    @property
    def namespace(self) -> str:
        return self.service.split("/", 1)[0]

    def endpoints(self) -> list[tuple[Endpoint, dict[str, tuple[int, ...]]]]:
        """What a pod's query must reach: node-local IPs (host network, port 53) when NodeLocal
        DNSCache runs, else every DNS backend pod on its pod ports."""
        if self.nodelocal_ips:
            ports: dict[str, tuple[int, ...]] = {"UDP": (self.nodelocal_port,),
                                                 "TCP": (self.nodelocal_port,)}
            return [(Endpoint(namespace=self.namespace, ip=ip, host_network=True), ports)
                    for ip in self.nodelocal_ips]
        return [(b, dict(self.ports)) for b in self.backends]

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "cluster_ip": self.cluster_ip,
                "selector": dict(self.selector),
                "pods": [{"namespace": b.namespace, "ip": b.ip, "labels": dict(b.labels)}
                         for b in self.backends],
                "ports": {k: list(v) for k, v in self.ports.items()},
                "nodelocal_ips": list(self.nodelocal_ips)}


def nodelocal_ips(daemonset: Obj) -> tuple[list[str], list[str]]:
    """The IPs in a ``node-local-dns`` DaemonSet's ``-localip`` argument.

    Returns (valid IPs, unparseable values) — e.g. an unrendered ``__PILLAR__LOCAL__DNS__``
    placeholder ends up in the second list. Accepts ``-localip a,b`` and ``-localip=a,b``.
    """
    good: list[str] = []
    bad: list[str] = []
    spec = ((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {}
    for c in spec.get("containers") or []:
        args = [str(a) for a in (c.get("args") or []) + (c.get("command") or [])]
        for i, a in enumerate(args):
            val = None
            if a in ("-localip", "--localip") and i + 1 < len(args):
                val = args[i + 1]
            elif a.startswith(("-localip=", "--localip=")):
                val = a.split("=", 1)[1]
            if val is None:
                continue
            for part in val.split(","):
                part = part.strip()
                if not part:
                    continue
                try:
                    good.append(str(ipaddress.ip_address(part)))
                except ValueError:
                    bad.append(part)
    return good, bad


def dns_target(service: Obj, endpointslices: list[Obj], pods: list[Obj],
               nodelocal: Obj | None = None) -> DnsTarget:
    """Build a :class:`DnsTarget` from the DNS Service, its EndpointSlices
    (``kubernetes.io/service-name=<name>``), the pods its selector matches and, optionally, the
    ``node-local-dns`` DaemonSet.

    Ports: for each Service port whose ``port`` is 53, the EndpointSlice port of the same name
    and protocol (the container port after DNAT); without slices, the Service ``targetPort`` if
    numeric, else the pods' container port of that name, else 53.
    """
    meta = service.get("metadata") or {}
    ns = str(meta.get("namespace") or "kube-system")
    raw_sel = (service.get("spec") or {}).get("selector") or {}
    selector = {str(k): str(v) for k, v in raw_sel.items()}
    svc_ports = [p for p in (service.get("spec") or {}).get("ports") or []
                 if isinstance(p, dict) and p.get("port") == 53]
    named: dict[str, tuple[str, int]] = {}
    for pod in pods:
        for c in ((pod.get("spec") or {}).get("containers") or []):
            for cp in c.get("ports") or []:
                if cp.get("name") and cp.get("containerPort"):
                    named[str(cp["name"])] = (str(cp.get("protocol") or "TCP").upper(),
                                              int(cp["containerPort"]))
    ports: dict[str, set[int]] = {}
    slice_ports = [p for s in endpointslices for p in (s.get("ports") or []) if isinstance(p, dict)]
    for sp in svc_ports:
        proto = str(sp.get("protocol") or "TCP").upper()
        found = [int(p["port"]) for p in slice_ports
                 if p.get("port") is not None and str(p.get("protocol") or "TCP").upper() == proto
                 and (p.get("name") or "") == (sp.get("name") or "")]
        if not found:
            tp = sp.get("targetPort", 53)
            if isinstance(tp, int):
                found = [tp]
            elif isinstance(tp, str) and tp.isdigit():
                found = [int(tp)]
            elif isinstance(tp, str) and tp in named:
                found = [named[tp][1]]
            else:
                found = [53]
        ports.setdefault(proto, set()).update(found)
    # backends: the EndpointSlice addresses, labels from the matching pod
    by_ip = {str((p.get("status") or {}).get("podIP")): p for p in pods}
    backends: list[Endpoint] = []
    seen: set[str] = set()
    for s in endpointslices:
        for ep in s.get("endpoints") or []:
            for addr in ep.get("addresses") or []:
                if addr in seen:
                    continue
                seen.add(addr)
                owner: Obj = by_ip.get(addr) or {}
                labels = (owner.get("metadata") or {}).get("labels") or selector
                backends.append(Endpoint(namespace=ns, labels=dict(labels), ip=addr,
                                         named_ports=named))
    if not backends:
        for pod in pods:
            backends.append(Endpoint(
                namespace=ns, labels=dict((pod.get("metadata") or {}).get("labels") or {}),
                ip=(pod.get("status") or {}).get("podIP"), named_ports=named))
    if not backends and selector:
        backends.append(Endpoint(namespace=ns, labels=dict(selector), named_ports=named))
    local: tuple[str, ...] = ()
    local_port = 53
    if nodelocal is not None:
        local = tuple(nodelocal_ips(nodelocal)[0])
        tmpl = ((nodelocal.get("spec") or {}).get("template") or {}).get("spec") or {}
        for c in tmpl.get("containers") or []:
            for cp in c.get("ports") or []:
                if str(cp.get("protocol") or "TCP").upper() == "UDP" and cp.get("containerPort"):
                    local_port = int(cp["containerPort"])
                    break
    return DnsTarget(service=f"{ns}/{meta.get('name', 'kube-dns')}", selector=selector,
                     backends=tuple(backends),
                     ports={k: tuple(sorted(v)) for k, v in sorted(ports.items())},
                     nodelocal_ips=local, nodelocal_port=local_port,
                     cluster_ip=(service.get("spec") or {}).get("clusterIP") or None)


@dataclass(frozen=True)
class DnsVerdict:
    """Whether egress rules let pods reach DNS.

    ``udp``/``tcp``: every DNS endpoint reachable on that protocol; ``reasons``: one plain
    clause per peer/port that does not reach DNS (why the allow fails); ``allowing``: names of
    the policies whose rules allow DNS (at least on one protocol).
    """

    udp: bool
    tcp: bool
    reasons: tuple[str, ...] = ()
    allowing: tuple[str, ...] = ()
    peers: tuple[dict[str, Any], ...] = ()

    @property
    def allowed(self) -> bool:
        return self.udp and self.tcp


def _explain_peer(peer: Any, policy_ns: str, namespaces: Mapping[str, Mapping[str, str]],
                  dns: DnsTarget) -> str | None:
    """Why one ``to`` item does not reach the DNS endpoints (None when it does)."""
    targets = [t for t, _ in dns.endpoints()]
    if not isinstance(peer, dict):
        return "an empty peer item matches nothing"
    if all(peer_matches(peer, policy_ns, namespaces, t) for t in targets):
        return None
    if "ipBlock" in peer:
        cidr = (peer.get("ipBlock") or {}).get("cidr")
        want = ", ".join(str(t.ip) for t in targets if t.ip) or "unknown"
        why = f"ipBlock {cidr} does not contain the DNS address(es) {want}"
        if dns.cluster_ip and ip_in_block(dns.cluster_ip, peer.get("ipBlock")):
            why += (f" (it holds the Service IP {dns.cluster_ip}, but policies see the pod "
                    "address after DNAT)")
        return why
    ns_sel = peer.get("namespaceSelector")
    pod_sel = peer.get("podSelector")
    if dns.nodelocal_ips:
        return (f"selector item ({_describe_peer(peer)}) cannot match NodeLocal DNSCache, whose "
                f"hostNetwork pods listen on {', '.join(dns.nodelocal_ips)}; an ipBlock is needed")
    if ns_sel is None:
        if policy_ns != dns.namespace:
            return (f"podSelector {describe_selector(pod_sel)} without namespaceSelector only "
                    f"matches pods in {policy_ns}, not the DNS pods in {dns.namespace}")
    else:
        ns_labels = namespaces.get(dns.namespace, {NAME_LABEL: dns.namespace})
        if not label_selector_matches(ns_sel, ns_labels):
            matched = sorted(n for n, lab in namespaces.items()
                             if label_selector_matches(ns_sel, lab))
            missing = [k for k in (ns_sel.get("matchLabels") or {})
                       if not any(k in lab for lab in namespaces.values())]
            if not matched:
                why = f"namespaceSelector {describe_selector(ns_sel)} matches no namespace"
            else:
                why = (f"namespaceSelector {describe_selector(ns_sel)} matches "
                       f"{', '.join(matched)}, not {dns.namespace}")
            if missing:
                why += (f" because no namespace has the label {', '.join(missing)} "
                        f"({dns.namespace} is labelled {NAME_LABEL}={dns.namespace})")
            return why
    if pod_sel is not None:
        bad = [b for b in dns.backends if not label_selector_matches(pod_sel, b.labels)]
        if bad:
            return (f"podSelector {describe_selector(pod_sel)} does not match the DNS pods, "
                    f"whose labels are {describe_selector({'matchLabels': dict(dns.selector)})}")
    return f"item ({_describe_peer(peer)}) does not select the DNS pods"


def _describe_peer(peer: Obj) -> str:
    parts = []
    if "namespaceSelector" in peer:
        parts.append(f"namespaceSelector {describe_selector(peer.get('namespaceSelector'))}")
    if "podSelector" in peer:
        parts.append(f"podSelector {describe_selector(peer.get('podSelector'))}")
    if "ipBlock" in peer:
        parts.append(f"ipBlock {(peer.get('ipBlock') or {}).get('cidr')}")
    return " AND ".join(parts) or "empty"


def dns_egress(policies: Iterable[Obj], namespaces: Mapping[str, Mapping[str, str]],
               dns: DnsTarget) -> DnsVerdict:
    """Evaluate whether the union of the egress rules of ``policies`` (all in one namespace,
    all selecting the pods in question) allows DNS over UDP and TCP to ``dns``.

    Each protocol is allowed when, for every DNS endpoint, some rule admits it on that
    protocol's port. ``reasons`` explain, per ``to`` item of rules that mention DNS-ish ports
    or no ports, why it does not reach DNS, and per rule whose ports miss a protocol.
    """
    pols = [p for p in policies if EGRESS in policy_types(p)]
    endpoints = dns.endpoints()
    ok: dict[str, bool] = {}
    allowing: set[str] = set()
    for proto in ("UDP", "TCP"):
        all_ok = bool(endpoints)
        for target, ports in endpoints:
            tports = ports.get(proto) or ()
            if not tports:
                continue
            hit = False
            for p in pols:
                ns = policy_namespace(p)
                for r in rules(p, EGRESS):
                    if all(rule_allows(r, EGRESS, ns, namespaces, target, proto, port)
                           for port in tports):
                        hit = True
                        allowing.add(str((p.get("metadata") or {}).get("name")))
            all_ok = all_ok and hit
        ok[proto] = all_ok
    reasons: list[str] = []
    peers_ev: list[dict[str, Any]] = []
    if not (ok["UDP"] and ok["TCP"]):
        for p in pols:
            ns = policy_namespace(p)
            name = str((p.get("metadata") or {}).get("name"))
            prules = rules(p, EGRESS)
            for ri, r in enumerate(prules, 1):
                peers = r.get("to") or []
                where = f"{name} rule {ri}" if len(prules) > 1 else name
                for i, peer in enumerate(peers, 1):
                    why = _explain_peer(peer, ns, namespaces, dns)
                    if why is not None:
                        reasons.append(f"{where} item {i}: {why}")
                        peers_ev.append({"policy": name, "rule": ri, "item": i, "peer": peer,
                                         "reason": why})
                # ports: a rule that reaches DNS but lacks a protocol
                reach = not peers or any(
                    all(peer_matches(pe, ns, namespaces, t) for t, _ in endpoints) for pe in peers)
                if reach and r.get("ports"):
                    for proto in ("UDP", "TCP"):
                        if ok[proto]:
                            continue
                        wanted = [port for _, ps in endpoints for port in ps.get(proto, ())]
                        if wanted and not any(
                                port_matches(pi, proto, port, t) for pi in r["ports"]
                                for port in wanted for t, _ in endpoints):
                            reasons.append(f"{where}: ports do not include {proto} "
                                           f"{sorted(set(wanted))[0]}")
    return DnsVerdict(udp=ok["UDP"], tcp=ok["TCP"], reasons=tuple(reasons),
                      allowing=tuple(sorted(allowing)), peers=tuple(peers_ev))


def dns_ingress_blocked(policies: Iterable[Obj], namespaces: Mapping[str, Mapping[str, str]],
                        dns: DnsTarget, source_namespaces: Iterable[str]) -> dict[str, list[str]]:
    """For the DNS pods' own namespace: if ingress policies select the DNS pods, which of
    ``source_namespaces`` cannot reach them (protocol list per namespace).

    The source pod's labels are unknown, so a peer with a non-empty podSelector is counted as
    admitting the namespace (optimistic: only sure blocks are reported). Ignored when NodeLocal
    DNSCache is in use (the sources are then node IPs).
    """
    if dns.nodelocal_ips or not dns.backends:
        return {}
    selecting = [p for p in policies if INGRESS in policy_types(p) and any(
        label_selector_matches(_spec(p).get("podSelector") or {}, b.labels)
        for b in dns.backends)]
    if not selecting:
        return {}
    blocked: dict[str, list[str]] = {}
    for src in source_namespaces:
        src_labels = namespaces.get(src, {NAME_LABEL: src})
        for proto in ("UDP", "TCP"):
            ports = dns.ports.get(proto) or ()
            if not ports:
                continue
            admitted = False
            for p in selecting:
                pns = policy_namespace(p)
                for r in rules(p, INGRESS):
                    peers = r.get("from")
                    if peers:
                        peer_ok = False
                        for pe in peers:
                            if not isinstance(pe, dict) or "ipBlock" in pe:
                                continue
                            ns_sel = pe.get("namespaceSelector")
                            if ns_sel is None:
                                peer_ok = peer_ok or src == pns
                            else:
                                peer_ok = peer_ok or label_selector_matches(ns_sel, src_labels)
                        if not peer_ok:
                            continue
                    src_ep = dns.backends[0]
                    pp = r.get("ports")
                    if pp and not all(any(port_matches(pi, proto, port, src_ep) for pi in pp)
                                      for port in ports):
                        continue
                    admitted = True
            if not admitted:
                blocked.setdefault(src, []).append(proto)
    return blocked


def namespace_selectors_matching_nothing(policy: Obj,
                                         namespaces: Mapping[str, Mapping[str, str]]
                                         ) -> list[dict[str, Any]]:
    """Peers of ``policy`` whose ``namespaceSelector`` matches no existing namespace, each as
    ``{"direction", "rule", "item", "selector", "missing_labels"}`` (``missing_labels``: keys
    of matchLabels that no namespace carries, e.g. ``name``)."""
    out: list[dict[str, Any]] = []
    for direction, key in ((INGRESS, "from"), (EGRESS, "to")):
        for ri, r in enumerate(rules(policy, direction), 1):
            for pi, peer in enumerate(r.get(key) or [], 1):
                if not isinstance(peer, dict) or peer.get("namespaceSelector") is None:
                    continue
                sel = peer["namespaceSelector"]
                if any(label_selector_matches(sel, lab) for lab in namespaces.values()):
                    continue
                missing = [k for k in (sel.get("matchLabels") or {})
                           if not any(k in lab for lab in namespaces.values())]
                out.append({"direction": direction, "rule": ri, "item": pi,
                            "selector": describe_selector(sel), "missing_labels": missing})
    return out
