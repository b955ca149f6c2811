"""Runbook ``netpol-dns-allow``: default-deny plus DNS-allow NetworkPolicies for namespaces.

What it writes, per target namespace (all names fixed, all labelled
``app.kubernetes.io/managed-by: k8snet`` and ``k8snet.io/run-id: <run>``), in this order:

1. ``k8snet-allow-dns``: egress from every pod to the DNS pods, ONE ``to`` item holding both
   ``namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: <dns ns>}}`` AND
   ``podSelector: {matchLabels: <the DNS Service's selector>}``, on UDP and TCP of the pods'
   real port (EndpointSlice: 53, or 5353...); with NodeLocal DNSCache also
   ``ipBlock: <each -localip>/32`` on its port (53) UDP and TCP (DOMAIN.md §4.1, §4.2 "OR vs
   AND", "Namespace label", "DNS pod labels vary", "Port is the pod's port", "TCP 53 is
   mandatory", "NodeLocal DNSCache").
2. ``k8snet-allow-from-<ns>`` per ``allow_from_namespaces`` entry: ingress from every pod of
   that namespace (namespaceSelector on ``kubernetes.io/metadata.name`` AND ``podSelector {}``
   in one item; recipe 07 shape, §4.1).
3. ``k8snet-allow-egress-cidrs`` when ``extra_egress_cidrs`` is set: egress to those ipBlocks.
4. ``k8snet-default-deny`` when ``default_deny``: ``podSelector: {}``, ``policyTypes:
   [Ingress, Egress]``, no rules (§4.1).

Allows come before the deny so that DNS is never down (§4.3 step 3); the generic rollback undoes
in reverse order, so the deny goes first, then the allows (§4.3 step 5). Objects k8snet created
earlier that are no longer wanted (``default_deny=false``, a namespace dropped from
``allow_from_namespaces``) are deleted: the deny first, stale allows last.

What it never does: touch a NetworkPolicy without the ``managed-by: k8snet`` label (a foreign
policy that has one of our names makes the namespace skipped, with a warning); write to
kube-system, kube-public, kube-node-lease or the namespace of the DNS pods; claim isolation on a
CNI that does not enforce NetworkPolicy (§4.2 "The CNI must enforce policy": it refuses unless
``allow_unenforced``, and then says "NOT enforced" everywhere).

Plan warnings: allow-all policies that defeat the deny (§4.2 "Existing allow-all policies",
rancher/rke2#5315), namespaces serving admission webhooks (§4.2 "Webhooks/control-plane",
metallb/metallb#1597), NodeLocal DNSCache (ipBlock added), ``allow_from_namespaces`` whose pods
use the host network (§4.2 "Ingress controller on hostNetwork": a namespace allow does not match
node IPs), a CNI that does not enforce.
Every planned change is sent as a server-side dry run during plan, so schema validation and
admission webhooks judge it before anyone approves; a rejection refuses the plan with the API
server's message.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from bot.sdk import (
    Applied,
    Change,
    Check,
    InputError,
    Inspection,
    K8snetError,
    KubeError,
    Params,
    Plan,
    Refused,
    Risk,
    Runbook,
    RunContext,
    Verification,
    strip_noise,
)
from bot.sdk.runbook import ParamsBase, execute_change, undo_change
from runbooks._lib import netpol as np
from runbooks._lib import netpol_live as live

API = "networking.k8s.io/v1"
PLURAL = "networkpolicies"
KIND = "NetworkPolicy"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "k8snet"
RUN_ID = "k8snet.io/run-id"
PREFIX = "k8snet-"
ALLOW_DNS = "k8snet-allow-dns"
ALLOW_FROM = "k8snet-allow-from-"
ALLOW_CIDRS = "k8snet-allow-egress-cidrs"
DEFAULT_DENY = "k8snet-default-deny"
ALL = "all"
MAX_ITEMS = 100
_DONE = {"create": "created", "replace": "replaced", "patch": "patched", "delete": "deleted"}

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SHOWABLE = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")
_LABEL_RULE = ("RFC 1123 label: lower-case letters, digits and '-', at most 63 characters, "
               "starting and ending with a letter or digit")

Obj = dict[str, Any]


# --------------------------------------------------------------------------- params


def _shown(value: Any) -> str:
    """The value quoted when it is made of harmless characters; otherwise a description, so
    that markup or shell text a person typed is never echoed back."""
    text = str(value)
    if _SHOWABLE.match(text):
        return repr(text)
    return "a value with characters other than letters, digits, '.', '-', ':' and '/'"


def _namespace_name(value: str) -> str:
    if len(value) > 63 or not _LABEL.match(value):
        raise ValueError(f"{_shown(value)} is not a valid namespace name ({_LABEL_RULE})")
    return value


def _strict_cidr(value: Any) -> Any:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    text = str(value).strip()
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{_shown(text)} is not an IPv4 or IPv6 network in CIDR "
                             "notation (e.g. 10.0.0.0/24)") from e
        raise ValueError(f"{_shown(text)} has host bits set; the network is {net}") from e


NamespaceName = Annotated[str, AfterValidator(_namespace_name)]
Cidr = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_strict_cidr)]


class NetpolDnsAllowParams(Params):
    """Parameters of ``netpol-dns-allow`` (descriptions are the help text)."""

    namespaces: list[NamespaceName] = Field(
        min_length=1, max_length=MAX_ITEMS,
        description="Namespaces to protect (RFC 1123 names), or the single value 'all' for "
                    "every namespace except kube-system, kube-public, kube-node-lease and the "
                    "DNS pods' namespace.")
    default_deny: bool = Field(
        default=True,
        description="Also create k8snet-default-deny (all ingress and egress denied unless "
                    "another policy allows it). false: only the allow policies, and a "
                    "k8snet-default-deny created earlier is removed.")
    allow_from_namespaces: list[NamespaceName] = Field(
        default_factory=list, max_length=MAX_ITEMS,
        description="Namespaces whose pods may reach every pod of the protected namespaces "
                    "(e.g. the ingress controller's namespace).")
    extra_egress_cidrs: list[Cidr] = Field(
        default_factory=list, max_length=MAX_ITEMS,
        description="Extra networks the protected pods may reach (CIDRs without host bits, "
                    "e.g. 10.20.0.0/16 for a database subnet).")
    allow_unenforced: bool = Field(
        default=False,
        description="Create the policies even though the CNI does not enforce NetworkPolicy "
                    "(they then isolate nothing until an enforcing CNI is installed).")

    @field_validator("namespaces")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        names = list(dict.fromkeys(v))
        if ALL in names and len(names) > 1:
            raise ValueError("'all' stands for every non-system namespace and cannot be "
                             "combined with namespace names")
        system = [n for n in names if n in np.SYSTEM_NAMESPACES]
        if system:
            raise ValueError(f"{', '.join(system)} is a system namespace: a default deny there "
                             "cuts the cluster's own add-ons (DNS, CNI), so k8snet never "
                             "writes policies in it")
        return names

    @field_validator("allow_from_namespaces", "extra_egress_cidrs")
    @classmethod
    def _unique(cls, v: list[Any]) -> list[Any]:
        return list(dict.fromkeys(v))


# --------------------------------------------------------------------------- helpers


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _labels(obj: Obj) -> dict[str, str]:
    lab = (obj.get("metadata") or {}).get("labels")
    return lab if isinstance(lab, dict) else {}


def is_ours(obj: Obj) -> bool:
    """Whether k8snet manages this object (label ``app.kubernetes.io/managed-by: k8snet``)."""
    return _labels(obj).get(MANAGED_BY) == MANAGER


def _run_label(run_id: str) -> str | None:
    """``run_id`` as a valid label value (≤ 63 characters of ``[A-Za-z0-9._-]``, starting and
    ending alphanumeric), or None when nothing usable is left."""
    text = re.sub(r"[^A-Za-z0-9._-]", "-", run_id)[:63].strip("._-")
    return text or None


def _normal_spec(spec: Any) -> Obj:
    """A NetworkPolicy spec as the API server would store it, for comparisons: ``protocol``
    defaulted to TCP, ``policyTypes`` defaulted and order-free, empty lists dropped."""
    s = copy.deepcopy(spec) if isinstance(spec, dict) else {}
    s["policyTypes"] = sorted(np.policy_types({"spec": s}))
    for key in ("ingress", "egress"):
        rules = s.get(key)
        if not rules:
            s.pop(key, None)
            continue
        for r in rules:
            if not isinstance(r, dict):
                continue
            for peer_key in ("from", "to"):
                if peer_key in r and not r[peer_key]:
                    r.pop(peer_key)
            if "ports" in r and not r["ports"]:
                r.pop("ports")
            for p in r.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")
    if s.get("podSelector") is None:
        s["podSelector"] = {}
    return s


def same_policy(live_obj: Obj, desired: Obj) -> bool:
    """Whether the live policy needs no change: same normalised spec and ours. Other labels
    (the run id) and annotations do not count, so a second plan is empty."""
    return is_ours(live_obj) and (_normal_spec(live_obj.get("spec"))
                                  == _normal_spec(desired.get("spec")))


def _ports(protocol_ports: dict[str, tuple[int, ...]]) -> list[Obj]:
    return [{"protocol": proto, "port": port}
            for proto in ("UDP", "TCP") for port in protocol_ports.get(proto, ())]


def _dns_ports(dns: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The DNS pods' ports per protocol from the facts; TCP falls back to the UDP ports (and
    the other way round) because DNS needs both (§4.2 "TCP 53 is mandatory")."""
    raw = {str(k).upper(): tuple(int(p) for p in v) for k, v in (dns.get("ports") or {}).items()}
    udp = raw.get("UDP") or raw.get("TCP") or (53,)
    tcp = raw.get("TCP") or raw.get("UDP") or (53,)
    return {"UDP": tuple(sorted(set(udp))), "TCP": tuple(sorted(set(tcp)))}


def _host_cidr(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    return f"{addr}/{addr.max_prefixlen}"


def _sel_text(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _port_text(ports: dict[str, tuple[int, ...]]) -> str:
    return " and ".join(f"{proto} {', '.join(str(p) for p in ports[proto])}"
                        for proto in ("UDP", "TCP") if ports.get(proto))


def _policy(ns: str, name: str, spec: Obj) -> Obj:
    return {"apiVersion": API, "kind": KIND,
            "metadata": {"name": name, "namespace": ns, "labels": {MANAGED_BY: MANAGER}},
            "spec": spec}


def desired_policies(ns: str, p: NetpolDnsAllowParams, dns: dict[str, Any]
                     ) -> list[tuple[Obj, str]]:
    """The policies wanted in ``ns``, in apply order (allows, then the deny), each with a
    one-line description. ``dns`` is the inspection's DNS fact (``DnsTarget.to_json()`` plus
    ``nodelocal_port``)."""
    out: list[tuple[Obj, str]] = []
    dns_ns = str(dns["service"]).split("/", 1)[0]
    selector = {str(k): str(v) for k, v in sorted((dns.get("selector") or {}).items())}
    ports = _dns_ports(dns)
    local_ips = [str(i) for i in dns.get("nodelocal_ips") or []]
    local_port = int(dns.get("nodelocal_port") or 53)
    local_ports: dict[str, tuple[int, ...]] = {"UDP": (local_port,), "TCP": (local_port,)}
    pods_item = {"namespaceSelector": {"matchLabels": {np.NAME_LABEL: dns_ns}},
                 "podSelector": {"matchLabels": dict(selector)}}
    egress: list[Obj] = [{"to": [pods_item], "ports": _ports(ports)}]
    what = (f"egress to the DNS pods ({_sel_text(selector)} in namespace {dns_ns}) on "
            f"{_port_text(ports)}")
    if local_ips:
        blocks = [{"ipBlock": {"cidr": _host_cidr(ip)}} for ip in local_ips]
        if local_ports == ports:
            egress[0]["to"] += blocks
        else:
            egress.append({"to": blocks, "ports": _ports(local_ports)})
        what += (f", and to NodeLocal DNSCache {', '.join(local_ips)} on "
                 f"{_port_text(local_ports)}")
    out.append((_policy(ns, ALLOW_DNS, {"podSelector": {}, "policyTypes": ["Egress"],
                                        "egress": egress}), what))
    for src in p.allow_from_namespaces:
        item = {"namespaceSelector": {"matchLabels": {np.NAME_LABEL: src}}, "podSelector": {}}
        out.append((_policy(ns, f"{ALLOW_FROM}{src}", {
            "podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [item]}]}),
            f"ingress from every pod of namespace {src}"))
    if p.extra_egress_cidrs:
        cidrs = [str(c) for c in p.extra_egress_cidrs]
        out.append((_policy(ns, ALLOW_CIDRS, {
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": c}} for c in cidrs]}]}),
            f"egress to {', '.join(cidrs)} on every port"))
    if p.default_deny:
        out.append((_policy(ns, DEFAULT_DENY, {"podSelector": {},
                                               "policyTypes": ["Ingress", "Egress"]}),
                    f"default deny of all ingress and egress for every pod in {ns}"))
    return out


def _params(params: ParamsBase) -> NetpolDnsAllowParams:
    if isinstance(params, NetpolDnsAllowParams):
        return params
    try:
        return NetpolDnsAllowParams.model_validate(params.model_dump())
    except ValueError as e:
        raise InputError(f"netpol-dns-allow got parameters of another runbook: {e}",
                         field="params") from e


def _lean(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    (out.get("metadata") or {}).pop("managedFields", None)
    return out


def _enforcement_text(enf: dict[str, Any]) -> str:
    if enf.get("enforces") is False:
        return f"{enf['display']} does not enforce NetworkPolicy ({enf['detail']})"
    return f"whether {enf['display']} enforces NetworkPolicy is unknown ({enf['detail']})"


# --------------------------------------------------------------------------- the runbook


class NetpolDnsAllow(Runbook):
    """Default-deny plus DNS-allow NetworkPolicies for namespaces

    Creates, per namespace, an egress allow to the cluster DNS pods (AND-form selectors from
    the live kube-dns Service, UDP and TCP on the pods' real port, NodeLocal DNSCache ipBlocks),
    optional ingress allows from other namespaces and egress allows to extra CIDRs, then a
    default deny. See the module docstring and docs/runbooks.md.
    """

    name = "netpol-dns-allow"
    version = "1.0.0"
    risk = Risk.DISRUPTIVE
    Params = NetpolDnsAllowParams

    # ------------------------------------------------------------------ inspect
    def inspect(self, ctx: RunContext) -> Inspection:
        """Read CNI enforcement, the DNS backend (Service selector, EndpointSlice ports,
        NodeLocal DNSCache IPs), every Namespace and NetworkPolicy, and admission webhook
        Services. Facts::

            {"enforcement": {"cni", "display", "enforces": bool|None, "detail"},
             "dns": {"service", "selector", "ports", "nodelocal_ips", "nodelocal_port",
                     "cluster_ip", "pods", "nodelocal", "nodelocal_unparsed"} | None,
             "dns_note": str,
             "namespaces": {"<ns>": {"labels": {...}, "phase": str}},
             "policies": {"<ns>": [NetworkPolicy, ...]},
             "webhooks": {"<ns>": [{"configuration", "webhook", "service", "port",
                                    "target_port", ...}]}}

        Raises ``KubeError`` when DaemonSets, Namespaces or NetworkPolicies cannot be read.
        """
        kube = ctx.kube
        enf = live.cni_enforcement(kube)
        disc = live.discover_dns(kube)
        namespaces = kube.list("v1", "namespaces")
        policies = kube.list(API, PLURAL)
        hooks = live.webhook_services(kube)
        ns_facts = {_name(n): {"labels": dict(_labels(n)),
                               "phase": str((n.get("status") or {}).get("phase") or "Active")}
                    for n in namespaces}
        by_ns: dict[str, list[Obj]] = {}
        for pol in policies:
            by_ns.setdefault(np.policy_namespace(pol), []).append(_lean(pol))
        dns: dict[str, Any] | None = None
        if disc.target is not None:
            dns = {**disc.target.to_json(), "nodelocal_port": disc.target.nodelocal_port,
                   "nodelocal": disc.nodelocal, "nodelocal_unparsed": list(disc.nodelocal_unparsed)}
        ours = sum(1 for pols in by_ns.values() for pol in pols if is_ours(pol))
        if enf.enforces:
            head = f"{enf.display} enforces NetworkPolicy"
        elif enf.enforces is False:
            head = f"{enf.display} does not enforce NetworkPolicy"
        else:
            head = f"NetworkPolicy enforcement by {enf.display} unknown"
        dns_text = (f"DNS {dns['service']} ({_sel_text(dns['selector'])}) on "
                    f"{_port_text(_dns_ports(dns))}" if dns else f"DNS unknown: {disc.note}")
        summary = f"{head}; {dns_text}; {ours} NetworkPolicies managed by k8snet"
        facts = {"enforcement": enf.to_json(), "dns": dns, "dns_note": disc.note,
                 "namespaces": ns_facts, "policies": by_ns,
                 "webhooks": {ns: [h.to_json() for h in hs] for ns, hs in hooks.items()}}
        return Inspection(summary=summary, facts=facts)

    # ------------------------------------------------------------------ plan
    def plan(self, ctx: RunContext, params: ParamsBase, inspection: Inspection) -> Plan:
        """Desired policies per target namespace; create what is missing, replace ours that
        differ (on the live resourceVersion), delete ours no longer wanted, leave equal ones
        alone; every change is dry-run on the server.

        Raises ``Refused`` (``not-enforced``: the CNI does not or may not enforce NetworkPolicy
        and ``allow_unenforced`` is false; ``dns-unknown``: no DNS backend found;
        ``dry-run``: the API server rejected a planned change, with its message) and
        ``InputError`` (field ``namespaces``) for a namespace that does not exist.
        """
        p = _params(params)
        facts = inspection.facts if "policies" in inspection.facts else self.inspect(ctx).facts
        enf = facts["enforcement"]
        warnings: list[str] = []
        notes: list[str] = []
        if enf.get("enforces") is not True:
            if not p.allow_unenforced:
                raise Refused(
                    f"Refused: {_enforcement_text(enf)}, so these NetworkPolicies would isolate "
                    "nothing. Install an enforcing CNI (or Flannel's kube-network-policies), or "
                    "run again with allow_unenforced=true to create them anyway.",
                    reason="not-enforced")
            warnings.append(f"Objects will be created but NOT enforced by {enf['display']}: "
                            "no namespace becomes isolated.")
        dns = facts.get("dns")
        if not dns:
            raise Refused(
                f"Refused: the cluster DNS backend cannot be found ({facts.get('dns_note')}), "
                "so no DNS allow can be written and a default deny would cut name resolution.",
                reason="dns-unknown")
        dns_ns = str(dns["service"]).split("/", 1)[0]
        existing: dict[str, Obj] = facts["namespaces"]

        if p.namespaces == [ALL]:
            infra = {dns_ns, enf.get("namespace") or dns_ns}
            targets = sorted(n for n, f in existing.items()
                             if n not in np.SYSTEM_NAMESPACES and n not in infra
                             and f.get("phase") != "Terminating")
            left = sorted(n for n in infra if n in existing and n not in np.SYSTEM_NAMESPACES)
            notes.append(f"'all' resolved to {len(targets)} namespaces: "
                         f"{', '.join(targets) or 'none'}"
                         + (f" (left out: {', '.join(left)}, where the DNS or CNI pods run)"
                            if left else "") + ".")
        else:
            missing = [n for n in p.namespaces if n not in existing]
            if missing:
                raise InputError(
                    f"namespaces: {', '.join(missing)} "
                    f"{'does' if len(missing) == 1 else 'do'} not exist on cluster "
                    f"{ctx.cluster!r}.", field="namespaces")
            targets = []
            for n in p.namespaces:
                if n == dns_ns:
                    warnings.append(f"Namespace {n} is skipped: it runs the cluster DNS pods, "
                                    "and policies there would decide every namespace's DNS.")
                elif existing[n].get("phase") == "Terminating":
                    warnings.append(f"Namespace {n} is skipped: it is being deleted.")
                else:
                    targets.append(n)
        absent = [n for n in p.allow_from_namespaces if n not in existing]
        if absent:
            warnings.append(f"allow_from_namespaces {', '.join(absent)} "
                            f"{'does' if len(absent) == 1 else 'do'} not exist yet; the allow "
                            "takes effect once created.")
        for src in p.allow_from_namespaces:
            if src not in existing:
                continue
            try:
                pods = ctx.kube.list("v1", "pods", namespace=src)
            except KubeError:
                continue
            host = sorted(_name(q) for q in pods if (q.get("spec") or {}).get("hostNetwork"))
            if host:
                warnings.append(
                    f"Pods of {src} use the host network ({', '.join(host[:3])}"
                    f"{', ...' if len(host) > 3 else ''}): their traffic comes from node IPs, "
                    f"which k8snet-allow-from-{src} does not match; those pods stay blocked.")
        for c in p.extra_egress_cidrs:
            if c.prefixlen == 0:
                warnings.append(f"extra_egress_cidrs {c} allows egress to everything, so the "
                                "default deny restricts no egress.")

        local_ips = list(dns.get("nodelocal_ips") or [])
        if local_ips and targets:
            warnings.append(
                f"NodeLocal DNSCache detected ({dns.get('nodelocal')}): pods query "
                f"{', '.join(local_ips)} on host-network pods that selectors cannot match, so "
                f"{ALLOW_DNS} also allows ipBlock "
                f"{', '.join(_host_cidr(i) for i in local_ips)} on UDP and TCP "
                f"{dns.get('nodelocal_port', 53)}.")
        if dns.get("nodelocal_unparsed"):
            warnings.append(
                f"NodeLocal DNSCache {dns.get('nodelocal')} has -localip values that are not IP "
                f"addresses ({', '.join(map(str, dns['nodelocal_unparsed']))}); pods sending DNS "
                "there are not covered by k8snet-allow-dns.")

        changes: list[Change] = []
        policies: dict[str, list[Obj]] = facts["policies"]
        hooks: dict[str, list[Obj]] = facts.get("webhooks") or {}
        for ns in targets:
            pols = policies.get(ns, [])
            by_name = {_name(pol): pol for pol in pols}
            wanted = desired_policies(ns, p, dns)
            wanted_names = {_name(obj) for obj, _ in wanted}
            foreign = sorted(n for n in wanted_names if n in by_name and not is_ours(by_name[n]))
            if foreign:
                warnings.append(
                    f"Namespace {ns} is skipped: NetworkPolicy {', '.join(foreign)} there has a "
                    f"name k8snet uses but not the label {MANAGED_BY}={MANAGER}, so it was not "
                    "created by k8snet and is left untouched; rename it or pick other "
                    "namespaces.")
                continue
            changes += self._namespace_changes(ctx, ns, wanted, by_name, pols)
            if p.default_deny:
                warnings += self._deny_warnings(ns, pols, hooks.get(ns, []))

        if not targets:
            notes.append("No namespace to protect.")
        elif p.default_deny and any(ch.name == DEFAULT_DENY and ch.action != "delete"
                                    for ch in changes):
            open_ = ["egress to DNS"]
            if p.extra_egress_cidrs:
                open_.append(f"egress to {', '.join(str(c) for c in p.extra_egress_cidrs)}")
            if p.allow_from_namespaces:
                open_.append(f"ingress from {', '.join(p.allow_from_namespaces)}")
            allowed = open_[0] if len(open_) == 1 else \
                ", ".join(open_[:-1]) + " and " + open_[-1]
            warnings.append(
                "The default deny also blocks egress to the Kubernetes API server, traffic "
                "between pods of the same namespace and traffic to and from outside the "
                f"cluster: only {allowed} {'stays' if len(open_) == 1 else 'stay'} allowed.")
        notes.append("Order: allow policies first, then the default deny (rollback removes the "
                      "deny first).")
        self._dry_run(ctx, changes)
        return Plan(changes=tuple(changes), warnings=tuple(dict.fromkeys(warnings)),
                    notes=tuple(notes))

    def _namespace_changes(self, ctx: RunContext, ns: str, wanted: list[tuple[Obj, str]],
                           by_name: dict[str, Obj], pols: list[Obj]) -> list[Change]:
        """Changes for one namespace: delete a stale deny of ours, create/replace allows and
        the deny in order, then delete our stale allows."""
        wanted_names = {_name(obj) for obj, _ in wanted}
        stale = [pol for pol in pols if is_ours(pol) and _name(pol).startswith(PREFIX)
                 and _name(pol) not in wanted_names]
        first = [self._delete(ns, pol) for pol in stale if _name(pol) == DEFAULT_DENY]
        last = [self._delete(ns, pol) for pol in stale if _name(pol) != DEFAULT_DENY]
        middle: list[Change] = []
        for obj, what in wanted:
            name = _name(obj)
            cur = by_name.get(name)
            if cur is not None and same_policy(cur, obj):
                continue
            after = copy.deepcopy(obj)
            if cur is None:
                middle.append(Change(api_version=API, plural=PLURAL, kind=KIND, namespace=ns,
                                     name=name, action="create", after=after,
                                     summary=f"Create NetworkPolicy {ns}/{name}: {what}."))
                continue
            meta = cur.get("metadata") or {}
            kept = {k: v for k, v in _labels(cur).items() if k != RUN_ID}  # set by apply
            after["metadata"]["labels"] = {**kept, **after["metadata"]["labels"]}
            if meta.get("annotations"):
                after["metadata"]["annotations"] = copy.deepcopy(meta["annotations"])
            after["metadata"]["resourceVersion"] = meta.get("resourceVersion")
            middle.append(Change(api_version=API, plural=PLURAL, kind=KIND, namespace=ns,
                                 name=name, action="replace", before=strip_noise(cur),
                                 after=after,
                                 summary=f"Replace NetworkPolicy {ns}/{name} (created by k8snet, "
                                         f"differs from the wanted spec): {what}."))
        return first + middle + last

    @staticmethod
    def _delete(ns: str, pol: Obj) -> Change:
        name = _name(pol)
        return Change(api_version=API, plural=PLURAL, kind=KIND, namespace=ns, name=name,
                      action="delete", before=strip_noise(pol),
                      summary=f"Delete NetworkPolicy {ns}/{name}: created by k8snet and no "
                              "longer wanted.")

    @staticmethod
    def _deny_warnings(ns: str, pols: list[Obj], hooks: list[Obj]) -> list[str]:
        out: list[str] = []
        for direction in (np.INGRESS, np.EGRESS):
            for pol in np.allow_all_policies([q for q in pols if not is_ours(q)], direction):
                sel = np.describe_selector((pol.get("spec") or {}).get("podSelector", {}))
                who = f"every pod in {ns}" if np.selects_all_pods(pol) else f"pods matching {sel}"
                out.append(f"NetworkPolicies are additive: {ns}/{_name(pol)} allows all "
                           f"{direction.lower()}, so the default deny will not isolate these "
                           f"pods ({who}).")
        grouped: dict[tuple[str, Any], list[str]] = {}
        for h in hooks:
            port = h.get("target_port") if isinstance(h.get("target_port"), int) else h["port"]
            grouped.setdefault((str(h.get("service")), port), []).append(str(h["webhook"]))
        for (svc, port), names in grouped.items():
            label = "webhook" if len(names) == 1 else "webhooks"
            out.append(f"default-deny ingress in {ns} blocks the API server's calls to {label} "
                       f"{', '.join(names)} on port {port} (Service {svc}); add an allow or "
                       "exclude the namespace.")
        return out

    @staticmethod
    def _dry_run(ctx: RunContext, changes: list[Change]) -> None:
        """Send every change with ``dryRun=All``; refuse the plan with the API server's
        messages when any is rejected."""
        rejected: list[str] = []
        for ch in changes:
            try:
                execute_change(ctx.writer, ch, dry_run=True)
            except KubeError as e:
                rejected.append(f"{ch.action} {ch.target}: {e}")
        if rejected:
            raise Refused("Refused: the API server rejected the plan in a dry run (nothing was "
                          "changed): " + " | ".join(rejected), reason="dry-run")

    # ------------------------------------------------------------------ apply
    def prepare_write(self, ctx: RunContext, change: Change) -> Change:
        """Set the ``k8snet.io/run-id`` label to this run on every created or replaced policy.
        The label is added at write time, not in the plan, so that a second plan stays empty
        and the engine's re-plan before apply hashes the same."""
        run_label = _run_label(ctx.run_id)
        if not run_label or change.after is None or change.action not in ("create", "replace"):
            return change
        after = copy.deepcopy(change.after)
        after.setdefault("metadata", {}).setdefault("labels", {})[RUN_ID] = run_label
        return change.model_copy(update={"after": after})

    # ------------------------------------------------------------------ verify
    def verify(self, ctx: RunContext, params: ParamsBase, plan: Plan,
               applied: tuple[Applied, ...]) -> Verification:
        """The generic read-back of every applied object, then per namespace: "DNS egress
        allowed in AND form on UDP and TCP" (the status probe's analysis,
        ``runbooks._lib.netpol.dns_egress``, over the live policies) and, with
        ``default_deny``, "default deny present". When the CNI does not enforce (or may not
        enforce) NetworkPolicy these checks say "present but NOT enforced" and pass only with
        ``allow_unenforced``; they never say a namespace is isolated then."""
        p = _params(params)
        checks = list(super().verify(ctx, params, plan, applied).checks)
        enf = live.cni_enforcement(ctx.kube)
        disc = live.discover_dns(ctx.kube)
        ns_labels = {_name(n): {str(k): str(v) for k, v in _labels(n).items()}
                     for n in ctx.kube.list("v1", "namespaces")}
        namespaces = list(dict.fromkeys(ch.namespace for ch in plan.changes if ch.namespace))
        for ns in namespaces:
            pols = ctx.kube.list(API, PLURAL, namespace=ns)
            checks.append(self._dns_check(ns, pols, ns_labels, disc, enf, p))
            if p.default_deny:
                checks.append(self._deny_check(ns, pols, enf, p))
        return Verification(checks=tuple(checks))

    @staticmethod
    def _dns_check(ns: str, pols: list[Obj], ns_labels: dict[str, dict[str, str]],
                   disc: live.DnsDiscovery, enf: live.Enforcement,
                   p: NetpolDnsAllowParams) -> Check:
        name = f"{ns}: DNS egress allowed in AND form on UDP and TCP"
        if disc.target is None:
            return Check(name=name, passed=False, message=f"DNS backend unknown: {disc.note}")
        ours = next((q for q in pols if _name(q) == ALLOW_DNS and is_ours(q)), None)
        if ours is None:
            return Check(name=name, passed=False, message=f"{ALLOW_DNS} not found in {ns}")
        and_form = any(isinstance(item, dict) and "namespaceSelector" in item
                       and "podSelector" in item
                       for r in np.rules(ours, np.EGRESS) for item in r.get("to") or [])
        all_pods = [q for q in pols if np.EGRESS in np.policy_types(q) and np.selects_all_pods(q)]
        v = np.dns_egress(all_pods, ns_labels, disc.target)
        ok = v.allowed and ALLOW_DNS in v.allowing and and_form
        where = disc.target.service
        if disc.target.nodelocal_ips:
            where += f" and NodeLocal DNSCache {', '.join(disc.target.nodelocal_ips)}"
        if ok:
            msg = f"{ALLOW_DNS} allows DNS to {where} over UDP and TCP"
        else:
            denied = [proto for proto, yes in (("UDP", v.udp), ("TCP", v.tcp)) if not yes]
            msg = (f"DNS to {where} is not allowed"
                   + (f" over {' and '.join(denied)}" if denied else
                      f" by {ALLOW_DNS} in AND form")
                   + (f": {'; '.join(v.reasons)}" if v.reasons else ""))
        if enf.enforces is not True:
            state = ("NOT enforced" if enf.enforces is False else "enforcement unknown")
            return Check(name=name, passed=ok and p.allow_unenforced,
                         message=f"present but {state} by {enf.display}: {msg}; the policy "
                                 "has no effect on traffic")
        return Check(name=name, passed=ok, message=msg)

    @staticmethod
    def _deny_check(ns: str, pols: list[Obj], enf: live.Enforcement,
                    p: NetpolDnsAllowParams) -> Check:
        name = f"{ns}: default deny present"
        deny = next((q for q in pols if _name(q) == DEFAULT_DENY and is_ours(q)), None)
        present = deny is not None and np.is_default_deny(deny, np.INGRESS) \
            and np.is_default_deny(deny, np.EGRESS)
        if not present:
            return Check(name=name, passed=False,
                         message=f"{DEFAULT_DENY} is missing or no longer denies ingress and "
                                 f"egress in {ns}")
        if enf.enforces is not True:
            state = ("NOT enforced" if enf.enforces is False else "enforcement unknown")
            return Check(name=name, passed=p.allow_unenforced,
                         message=f"{DEFAULT_DENY} present but {state} by {enf.display}: it "
                                 f"blocks nothing in {ns}")
        defeated = [f"{d.lower()} ({', '.join(iso.allow_all)})"
                    for d, iso in ((np.INGRESS, np.isolation(pols, np.INGRESS)),
                                   (np.EGRESS, np.isolation(pols, np.EGRESS)))
                    if iso.state == "allow-all"]
        if defeated:
            return Check(name=name, passed=True,
                         message=f"{DEFAULT_DENY} present and enforced by {enf.display}, but "
                                 f"allow-all policies defeat it for {' and '.join(defeated)}")
        return Check(name=name, passed=True,
                     message=f"{DEFAULT_DENY} present and enforced by {enf.display}: pods in "
                             f"{ns} are isolated for ingress and egress except what the allow "
                             "policies permit")

    # ------------------------------------------------------------------ rollback
    def rollback(self, ctx: RunContext, params: ParamsBase, plan: Plan,
                 applied: tuple[Applied, ...]) -> tuple[Applied, ...]:
        """The generic reverse-order undo (deny removed first, then the allows; replaced and
        deleted policies restored from ``before``), except that an object this run created is
        deleted only while it still carries our managed-by label (and this run's id): a
        policy someone else put in its place is never deleted."""
        out: list[Applied] = []
        run_label = _run_label(ctx.run_id)
        for a in reversed([a for a in applied if a.ok]):
            ch = plan.changes[a.index]
            ctx.progress(f"undo {ch.action} {ch.target}")
            try:
                if ch.action == "create":
                    cur = ctx.kube.get(ch.api_version, ch.plural, ch.name, ch.namespace)
                    if cur is not None and (not is_ours(cur) or (
                            run_label and _labels(cur).get(RUN_ID) != run_label)):
                        out.append(Applied(index=a.index, target=ch.target,
                                           action="undo-create", ok=False,
                                           message=f"{ch.target} is no longer the object this "
                                                   "run created; left untouched"))
                        continue
                    if cur is None:
                        out.append(Applied(index=a.index, target=ch.target,
                                           action="undo-create", ok=True,
                                           message=f"{ch.target} already gone"))
                        continue
                undo_change(ctx.kube, ctx.writer, ch)
            except K8snetError as e:
                out.append(Applied(index=a.index, target=ch.target, action=f"undo-{ch.action}",
                                   ok=False, message=str(e)))
                continue
            out.append(Applied(index=a.index, target=ch.target, action=f"undo-{ch.action}",
                               ok=True, message=f"restored {ch.target}"))
        return tuple(out)
