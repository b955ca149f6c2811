"""MetalLB configuration as pure functions: address parsing, pools, advertisements, Services.

Used by the ``metallb`` status probe and by the ``metallb-pool`` runbook. Sources (DOMAIN.md §3):
metallb/metallb ``internal/config/config.go`` (``ParseCIDR``, overlap check, advertisement
selection) @7938d3f8 and @v0.12.1, ``manifests/example-config.yaml`` @v0.12.1, the CRDs in
``config/crd/bases``, the release notes and ``website/content/usage/_index.md``.

Address forms (``spec.addresses`` of an IPAddressPool, ``addresses`` of a legacy pool):

- ``a.b.c.d/nn`` (or IPv6) — Go ``net.ParseCIDR``: *not* trimmed, and the network is kept, so
  ``192.168.1.5/24`` means all of ``192.168.1.0/24`` (:attr:`AddressRange.host_bits_set`).
- ``start-end`` — split at the first ``-``, each side trimmed; both must parse, be of the same
  family and ``start <= end``.

Every range is held as an exact, inclusive interval of integers (``first``..``last``), so
overlap and containment are exact (no CIDR widening, cf. metallb/metallb#2779).

Nothing here raises on bad input except :func:`parse_address` (``AddressError``); pool and
config parsers collect errors into their results instead.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from runbooks._lib.netpol import label_selector_matches

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Obj = dict[str, Any]

GROUP = "metallb.io"
POOL_API = "metallb.io/v1beta1"
L2ADV_API = "metallb.io/v1beta1"
BGPADV_API = "metallb.io/v1beta1"
BGPPEER_APIS = ("metallb.io/v1beta2", "metallb.io/v1beta1")
ADDRESSPOOL_API = "metallb.io/v1beta1"
"""Deprecated ``AddressPool`` (0.13.x only; removed in 0.14.2/0.14.3)."""

CRD_SINCE = (0, 13, 2)
"""First release that reads CRDs and ignores the legacy ConfigMap (release notes)."""

ANNOTATION_PREFIXES = ("metallb.io/", "metallb.universe.tf/")
"""Service annotation prefixes; ``metallb.universe.tf/`` deprecated in 0.14.9, still honoured."""

ADDRESSPOOL_REMOVED = (0, 14, 2)
"""First release that no longer reads ``AddressPool`` objects (release notes 0.14.2/0.14.3)."""

EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
"""Nodes with this label are not used to announce LoadBalancer IPs unless the speaker runs with
``--ignore-exclude-lb`` (MetalLB troubleshooting docs; DOMAIN.md §3.4, metallb/metallb#2353)."""


class AddressError(ValueError):
    """An address entry MetalLB would reject; the message quotes it and says why."""


# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class AddressRange:
    """One ``addresses`` entry as an exact inclusive interval.

    ``text``: the entry as written; ``kind``: ``cidr`` or ``range``; ``version``: 4 or 6;
    ``first``/``last``: integer values of the first/last address; ``host_bits_set``: a CIDR
    written with host bits (``192.168.1.5/24``), which MetalLB silently widens to its network.
    """

    text: str
    kind: str
    version: int
    first: int
    last: int
    host_bits_set: bool = False

    @property
    def size(self) -> int:
        """Number of addresses in the interval."""
        return self.last - self.first + 1

    @property
    def start(self) -> IPAddress:
        return ipaddress.ip_address(self.first) if self.version == 4 else \
            ipaddress.IPv6Address(self.first)

    @property
    def end(self) -> IPAddress:
        return ipaddress.ip_address(self.last) if self.version == 4 else \
            ipaddress.IPv6Address(self.last)

    @property
    def normalized(self) -> str:
        """``start-end`` for ranges, ``network/prefix`` for CIDRs."""
        if self.kind == "cidr":
            for net in ipaddress.summarize_address_range(self.start, self.end):
                return str(net)
        return f"{self.start}-{self.end}"

    def contains(self, ip: str | IPAddress) -> bool:
        """Whether ``ip`` (string or address) lies inside; unparseable input -> False."""
        try:
            addr = ipaddress.ip_address(str(ip).strip())
        except ValueError:
            return False
        return addr.version == self.version and self.first <= int(addr) <= self.last

    def overlaps(self, other: AddressRange) -> bool:
        """Whether the two intervals share at least one address (identical ranges overlap)."""
        return (self.version == other.version and self.first <= other.last
                and other.first <= self.last)

    def buggy_count(self) -> int:
        """IPv4 addresses ending in .0 or .255 inside the interval (skipped by
        ``avoidBuggyIPs``); 0 for IPv6."""
        if self.version != 4:
            return 0

        def count(r: int) -> int:
            return (self.last - r) // 256 - (self.first - 1 - r) // 256

        return count(0) + count(255)


def parse_address(text: Any) -> AddressRange:
    """Parse one ``addresses`` entry the way MetalLB's ``ParseCIDR`` does.

    Raises :class:`AddressError` for anything MetalLB would reject: not a string, a CIDR that
    does not parse (including surrounding spaces), a range whose ends do not parse, mixed
    families, or start after end.
    """
    if not isinstance(text, str):
        raise AddressError(f"address entry {text!r} is not a string")
    if "-" not in text:
        if "/" not in text:
            raise AddressError(f"invalid CIDR {text!r}: missing /prefix")
        try:
            net = ipaddress.ip_network(text, strict=False)
            iface = ipaddress.ip_interface(text)
        except ValueError as e:
            raise AddressError(f"invalid CIDR {text!r}: {e}") from None
        return AddressRange(text=text, kind="cidr", version=net.version,
                            first=int(net.network_address), last=int(net.broadcast_address),
                            host_bits_set=iface.ip != net.network_address)
    left, right = text.split("-", 1)
    try:
        start = ipaddress.ip_address(left.strip())
    except ValueError:
        raise AddressError(
            f"invalid IP range {text!r}: invalid start IP {left.strip()!r}") from None
    try:
        end = ipaddress.ip_address(right.strip())
    except ValueError:
        raise AddressError(f"invalid IP range {text!r}: invalid end IP {right.strip()!r}") from None
    if start.version != end.version:
        raise AddressError(f"invalid IP range {text!r}: start and end are different IP families")
    if int(start) > int(end):
        raise AddressError(f"invalid IP range {text!r}: start IP {start} is after the end IP {end}")
    return AddressRange(text=text, kind="range", version=start.version,
                        first=int(start), last=int(end))


# --------------------------------------------------------------------------- pools


@dataclass(frozen=True)
class Pool:
    """An address pool from either generation.

    ``name``; ``namespace`` (CRD) or the ConfigMap's namespace (legacy); ``source``:
    ``ipaddresspool``, ``addresspool`` (deprecated CRD) or ``configmap``; ``subject``: the
    finding subject (``ipaddresspool/metallb-system/lan``,
    ``configmap/metallb-system/config#default``); ``protocol``: ``layer2``/``bgp`` for legacy
    and AddressPool, None for IPAddressPool (announced by advertisements); ``ranges``: parsed
    entries; ``errors``: why MetalLB would reject this pool (bad addresses, missing fields);
    ``auto_assign`` (default True); ``avoid_buggy_ips``; ``labels`` (for
    ``ipAddressPoolSelectors``); ``allocation``: the CRD ``serviceAllocation`` block or None;
    ``status``: the CRD status counters (MetalLB ≥ 0.15) or {}.
    """

    name: str
    namespace: str
    source: str
    subject: str
    protocol: str | None = None
    ranges: tuple[AddressRange, ...] = ()
    errors: tuple[str, ...] = ()
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    allocation: Mapping[str, Any] | None = None
    status: Mapping[str, Any] = field(default_factory=dict)
    bgp_advertisements: tuple[Mapping[str, Any], ...] = ()

    @property
    def size(self) -> int:
        """Allocatable addresses: sum of range sizes minus .0/.255 when ``avoid_buggy_ips``."""
        total = sum(r.size for r in self.ranges)
        if self.avoid_buggy_ips:
            total -= sum(r.buggy_count() for r in self.ranges)
        return total

    @property
    def families(self) -> frozenset[int]:
        return frozenset(r.version for r in self.ranges)

    def contains(self, ip: str) -> bool:
        """Whether any range holds ``ip``."""
        return any(r.contains(ip) for r in self.ranges)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace, "source": self.source,
                "protocol": self.protocol, "addresses": [r.text for r in self.ranges],
                "size": self.size, "auto_assign": self.auto_assign,
                "avoid_buggy_ips": self.avoid_buggy_ips, "errors": list(self.errors)}


def _parse_ranges(addresses: Any) -> tuple[tuple[AddressRange, ...], list[str]]:
    ranges: list[AddressRange] = []
    errors: list[str] = []
    if not isinstance(addresses, list) or not addresses:
        return (), ["pool has no addresses defined"]
    for a in addresses:
        try:
            ranges.append(parse_address(a))
        except AddressError as e:
            errors.append(str(e))
    return tuple(ranges), errors


def pool_from_crd(obj: Obj) -> Pool:
    """An ``IPAddressPool`` (or deprecated ``AddressPool``, which has ``spec.protocol``) object
    as a :class:`Pool`. Malformed specs give a pool with ``errors``, never an exception."""
    meta = obj.get("metadata") or {}
    raw = obj.get("spec")
    spec: Obj = raw if isinstance(raw, dict) else {}
    ns = str(meta.get("namespace") or "metallb-system")
    name = str(meta.get("name") or "")
    kind = str(obj.get("kind") or "IPAddressPool")
    source = "addresspool" if kind == "AddressPool" else "ipaddresspool"
    ranges, errors = _parse_ranges(spec.get("addresses"))
    protocol = None
    if source == "addresspool":
        protocol = spec.get("protocol")
        if protocol not in ("layer2", "bgp"):
            errors.append(f"unknown protocol {protocol!r}")
    alloc = spec.get("serviceAllocation")
    return Pool(name=name, namespace=ns, source=source,
                subject=f"{source}/{ns}/{name}", protocol=protocol,
                ranges=ranges, errors=tuple(errors),
                auto_assign=spec.get("autoAssign", True) is not False,
                avoid_buggy_ips=bool(spec.get("avoidBuggyIPs", False)),
                labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
                allocation=alloc if isinstance(alloc, dict) else None,
                status=dict(obj["status"]) if isinstance(obj.get("status"), dict) else {})


@dataclass(frozen=True)
class LegacyConfig:
    """The parsed ``config`` key of a MetalLB ≤ 0.12 ConfigMap.

    ``subject``: ``configmap/<ns>/<name>``; ``pools``; ``peers``: number of BGP peers;
    ``errors``: problems that make MetalLB reject the *whole* configuration (YAML syntax, wrong
    shape, duplicate pool names); per-pool problems are in each ``Pool.errors``.
    """

    subject: str
    namespace: str
    name: str
    pools: tuple[Pool, ...] = ()
    peers: int = 0
    errors: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors and not any(p.errors for p in self.pools)


def configmap_has_address_pools(cm: Obj) -> bool:
    """Whether a ConfigMap looks like a MetalLB legacy config: its ``config`` key mentions
    ``address-pools`` (used to find Helm ``configInline`` ConfigMaps with other names)."""
    text = (cm.get("data") or {}).get("config")
    return isinstance(text, str) and "address-pools" in text


def parse_legacy_config(cm: Obj) -> LegacyConfig:
    """Parse a legacy MetalLB ConfigMap (key ``config``) with ``yaml.safe_load``.

    Mirrors v0.12.1 ``config.Parse``: each pool needs ``name``, ``protocol`` (``layer2`` or
    ``bgp``) and at least one address; names are unique; ``bgp-advertisements`` are only valid
    for ``bgp`` pools and their ``aggregation-length`` must be ≥ every CIDR prefix of the pool.
    YAML errors and wrong shapes go to ``errors``.
    """
    meta = cm.get("metadata") or {}
    ns = str(meta.get("namespace") or "metallb-system")
    name = str(meta.get("name") or "config")
    subject = f"configmap/{ns}/{name}"
    text = (cm.get("data") or {}).get("config")
    if not isinstance(text, str):
        return LegacyConfig(subject, ns, name, errors=("the ConfigMap has no 'config' key",))
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return LegacyConfig(subject, ns, name, errors=(f"YAML error{where}: {first}",))
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        return LegacyConfig(subject, ns, name,
                            errors=(f"config is a {type(doc).__name__}, not a mapping",))
    errors: list[str] = []
    raw_pools = doc.get("address-pools") or []
    if not isinstance(raw_pools, list):
        errors.append("address-pools is not a list")
        raw_pools = []
    peers = doc.get("peers") or []
    pools: list[Pool] = []
    seen: set[str] = set()
    for i, p in enumerate(raw_pools, 1):
        if not isinstance(p, dict):
            errors.append(f"address-pools item {i} is not a mapping")
            continue
        pname = str(p.get("name") or "")
        perr: list[str] = []
        if not pname:
            perr.append("missing pool name")
        elif pname in seen:
            errors.append(f"duplicate definition of pool {pname!r}")
        seen.add(pname)
        proto = p.get("protocol")
        if proto is None:
            perr.append("missing protocol")
        elif proto not in ("layer2", "bgp"):
            perr.append(f"unknown protocol {proto!r}")
        ranges, aerr = _parse_ranges(p.get("addresses"))
        perr += aerr
        advs = p.get("bgp-advertisements") or []
        if advs and proto == "layer2":
            perr.append("bgp-advertisements is only valid with protocol bgp")
        if isinstance(advs, list):
            for a in advs:
                if not isinstance(a, dict):
                    continue
                agg = a.get("aggregation-length")
                if isinstance(agg, int):
                    for r in ranges:
                        if r.version == 4 and r.kind == "cidr":
                            prefix = 32 - (r.size.bit_length() - 1)
                            if agg < prefix:
                                perr.append(f"aggregation-length {agg} is shorter than the "
                                            f"prefix of {r.text}")
        pools.append(Pool(name=pname or f"#{i}", namespace=ns, source="configmap",
                          subject=f"{subject}#{pname or i}", protocol=proto
                          if isinstance(proto, str) else None, ranges=ranges,
                          errors=tuple(perr),
                          auto_assign=p.get("auto-assign", True) is not False,
                          avoid_buggy_ips=bool(p.get("avoid-buggy-ips", False)),
                          bgp_advertisements=tuple(a for a in advs if isinstance(a, dict))
                          if isinstance(advs, list) else ()))
    return LegacyConfig(subject, ns, name, tuple(pools),
                        len(peers) if isinstance(peers, list) else 0, tuple(errors))


# --------------------------------------------------------------------------- overlaps, nodes


@dataclass(frozen=True)
class Overlap:
    """Two ranges sharing addresses: ``a``/``b`` are (pool name, range text)."""

    a: tuple[str, str]
    b: tuple[str, str]
    first: str
    last: str

    def to_json(self) -> dict[str, Any]:
        return {"pool": self.a[0], "range": self.a[1], "other_pool": self.b[0],
                "other_range": self.b[1], "shared": f"{self.first}-{self.last}"}


def overlaps(pools: Iterable[Pool]) -> list[Overlap]:
    """Every pair of ranges (across pools and within one pool) that share an address,
    identical ranges included — MetalLB rejects all of them ("CIDR … overlaps with already
    defined CIDR …")."""
    items = [(p.name, r) for p in pools for r in p.ranges]
    out: list[Overlap] = []
    for i, (pa, ra) in enumerate(items):
        for pb, rb in items[i + 1:]:
            if ra.overlaps(rb):
                lo, hi = max(ra.first, rb.first), min(ra.last, rb.last)
                mk = (ipaddress.IPv4Address if ra.version == 4 else ipaddress.IPv6Address)
                out.append(Overlap((pa, ra.text), (pb, rb.text), str(mk(lo)), str(mk(hi))))
    return out


def overlapping_range(pools: Iterable[Pool], candidate: AddressRange) -> list[tuple[str, str]]:
    """(pool name, range text) of every existing range sharing an address with ``candidate``
    (for the ``metallb-pool`` runbook: "172.18.0.100/30 already belongs to pool kind-pool")."""
    return [(p.name, r.text) for p in pools for r in p.ranges if r.overlaps(candidate)]


def pools_containing(pools: Iterable[Pool], ip: str) -> list[Pool]:
    """Pools whose exact ranges contain ``ip``."""
    return [p for p in pools if p.contains(ip)]


def node_ips_in_pools(pools: Iterable[Pool], nodes: Iterable[Mapping[str, Any]]
                      ) -> list[tuple[Pool, str, str]]:
    """(pool, node name, ip) for every node address inside a pool (metallb/metallb#364,
    #2585). ``nodes`` are ``{"name", "addresses": [ip, ...]}`` dicts."""
    out = []
    plist = list(pools)
    for n in nodes:
        for ip in n.get("addresses") or []:
            for p in plist:
                if p.contains(ip):
                    out.append((p, str(n.get("name")), str(ip)))
    return out


# --------------------------------------------------------------------------- advertisements


def advertisement_pools(adv: Obj, pools: Iterable[Pool]) -> tuple[list[str], list[str]]:
    """Which pools an L2Advertisement/BGPAdvertisement selects, as (selected pool names,
    names it lists that do not exist).

    Empty spec (no ``ipAddressPools`` and no ``ipAddressPoolSelectors``) = every pool;
    otherwise the union of listed names and pools whose labels match any selector
    (``matchLabels`` + ``matchExpressions``). Unknown names are skipped by MetalLB
    (``setL2AdvertisementsToPools``) — they select nothing.
    """
    raw = adv.get("spec")
    spec: Obj = raw if isinstance(raw, dict) else {}
    plist = list(pools)
    names = [str(n) for n in spec.get("ipAddressPools") or []]
    selectors = [s for s in spec.get("ipAddressPoolSelectors") or [] if isinstance(s, dict)]
    if not names and not selectors:
        return sorted(p.name for p in plist), []
    known = {p.name for p in plist}
    chosen = {n for n in names if n in known}
    for p in plist:
        if any(label_selector_matches(s, p.labels) for s in selectors):
            chosen.add(p.name)
    return sorted(chosen), sorted(n for n in names if n not in known)


def ignores_exclude_label(containers: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a speaker runs with ``--ignore-exclude-lb`` (then it also announces from nodes
    labelled :data:`EXCLUDE_LB_LABEL`)."""
    for c in containers:
        for a in [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]:
            flag, _, val = a.lstrip("-").partition("=")
            if a.startswith("-") and flag == "ignore-exclude-lb":
                return val.lower() not in ("false", "0", "f")
    return False


@dataclass(frozen=True)
class Announcers:
    """Which nodes can announce an L2 address: ``eligible`` node names, and for every other
    node the advertisements consider, why it cannot (``excluded``: labelled
    :data:`EXCLUDE_LB_LABEL`; ``no_speaker``: no Ready speaker pod on it (or, when speaker pods
    are unknown, the node is not Ready)); ``unselected``: nodes no advertisement's
    ``nodeSelectors`` matches."""

    eligible: tuple[str, ...]
    excluded: tuple[str, ...] = ()
    no_speaker: tuple[str, ...] = ()
    unselected: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"eligible": list(self.eligible), "excluded": list(self.excluded),
                "no_ready_speaker": list(self.no_speaker), "not_selected": list(self.unselected)}


def l2_announcers(node_selectors: Iterable[list[Any]], nodes: Iterable[Mapping[str, Any]],
                  speaker_ready: set[str] | None, *, ignore_exclude: bool = False) -> Announcers:
    """The nodes that can announce an address in layer 2 (DOMAIN.md §3.4/§3.5).

    ``node_selectors``: one entry per L2 advertisement (or legacy layer2 pool) announcing the
    address — its ``spec.nodeSelectors`` list; an empty list means every node, several
    selectors are ORed. ``nodes``: ``{"name", "labels", "ready"}`` dicts. ``speaker_ready``:
    names of nodes with a Ready speaker pod, None when unknown (then a node counts if it is not
    NotReady). Nodes labelled :data:`EXCLUDE_LB_LABEL` never announce unless
    ``ignore_exclude`` (speaker ``--ignore-exclude-lb``)."""
    nlist = [n for n in nodes if isinstance(n, Mapping)]
    selected: set[str] = set()
    for sels in node_selectors:
        sel_list = [x for x in sels or [] if isinstance(x, dict)]
        for n in nlist:
            labels = n.get("labels") or {}
            if not sel_list or any(label_selector_matches(x, labels) for x in sel_list):
                selected.add(str(n.get("name")))
    eligible, excluded, no_speaker, unselected = [], [], [], []
    for n in sorted(nlist, key=lambda x: str(x.get("name"))):
        nm = str(n.get("name"))
        if nm not in selected:
            unselected.append(nm)
        elif not ignore_exclude and EXCLUDE_LB_LABEL in (n.get("labels") or {}):
            excluded.append(nm)
        elif (nm not in speaker_ready) if speaker_ready is not None \
                else n.get("ready") is False:
            no_speaker.append(nm)
        else:
            eligible.append(nm)
    return Announcers(tuple(eligible), tuple(excluded), tuple(no_speaker), tuple(unselected))


# --------------------------------------------------------------------------- versions


_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """``v0.13.10`` / ``0.14.8`` / ``v0.15.0-rc1`` -> (0, 13, 10); anything else -> None."""
    if not text:
        return None
    m = _VERSION.match(text.strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def image_version(image: str | None) -> str | None:
    """The tag of ``quay.io/metallb/controller:v0.13.10`` (``v0.13.10``) when it is a version;
    digests and ``latest``/``main`` give None."""
    if not image:
        return None
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    tag = last.rsplit(":", 1)[1]
    return tag if parse_version(tag) else None


def is_metallb_image(image: str | None, component: str) -> bool:
    """Whether ``image`` is MetalLB's ``controller``/``speaker`` (quay.io or the deprecated
    Docker Hub ``metallb/...``)."""
    if not image:
        return False
    ref = image.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    repo = f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]
    return repo.endswith(f"metallb/{component}")


def container_arg(containers: Iterable[Mapping[str, Any]], flag: str) -> str | None:
    """The value of ``--flag=value`` / ``-flag=value`` / ``--flag value`` in any container's
    args or command (e.g. ``lb-class``, ``config``); None when absent."""
    for c in containers:
        args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
        for i, a in enumerate(args):
            for prefix in (f"--{flag}", f"-{flag}"):
                if a.startswith(prefix + "="):
                    return a.split("=", 1)[1]
                if a == prefix and i + 1 < len(args):
                    return args[i + 1]
    return None


# --------------------------------------------------------------------------- Services


def annotation(svc: Obj, suffix: str) -> str | None:
    """A MetalLB Service annotation under either prefix (``metallb.io/`` wins)."""
    ann = (svc.get("metadata") or {}).get("annotations") or {}
    for prefix in ANNOTATION_PREFIXES:
        v = ann.get(prefix + suffix)
        if v:
            return str(v)
    return None


def requested_ips(svc: Obj) -> list[str]:
    """IPs a Service asks for: annotation ``loadBalancerIPs`` (comma-separated) or the
    deprecated ``spec.loadBalancerIP``."""
    ann = annotation(svc, "loadBalancerIPs")
    if ann:
        return [x.strip() for x in ann.split(",") if x.strip()]
    ip = (svc.get("spec") or {}).get("loadBalancerIP")
    return [str(ip).strip()] if ip else []


def requested_pool(svc: Obj) -> str | None:
    """The pool named by annotation ``address-pool``, if any."""
    return annotation(svc, "address-pool")


def ingress_ips(svc: Obj) -> list[str]:
    """``status.loadBalancer.ingress[].ip`` values."""
    ing = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i["ip"]) for i in ing if isinstance(i, dict) and i.get("ip")]


def is_pending(svc: Obj) -> bool:
    """A ``type: LoadBalancer`` Service with no ingress IP or hostname."""
    ing = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return not any(isinstance(i, dict) and (i.get("ip") or i.get("hostname")) for i in ing)


def pool_serves(pool: Pool, svc: Obj, ns_labels: Mapping[str, str],
                all_namespaces: Mapping[str, Mapping[str, str]] | None = None) -> bool:
    """Whether ``serviceAllocation`` lets ``pool`` allocate to ``svc`` (no block = all).

    Two conditions, each applying only when set, and both must hold (MetalLB
    ``isPoolCompatibleWithService`` in ``internal/allocator/allocator.go``): the namespace
    condition — the Service's namespace is listed in ``namespaces`` or matched by a
    ``namespaceSelectors`` entry (``ns_labels``: the labels of the Service's namespace) — and
    the Service condition — its labels match a ``serviceSelectors`` entry. A block with none of
    the three lists matches everything (``addressPoolServiceAllocationsFromCR``).

    MetalLB resolves ``namespaceSelectors`` to namespace names when it loads the pool; when
    ``namespaces`` is empty and the selectors match no namespace at all, the resolved set is
    empty and the namespace condition does not apply. ``all_namespaces`` (name → labels of
    every namespace) lets this mirror that; without it the condition always applies.
    """
    alloc = pool.allocation
    if not alloc:
        return True
    names = [str(n) for n in alloc.get("namespaces") or []]
    ns_sels = [s for s in alloc.get("namespaceSelectors") or [] if isinstance(s, dict)]
    svc_sels = [s for s in alloc.get("serviceSelectors") or [] if isinstance(s, dict)]
    meta = svc.get("metadata") or {}
    ns = str(meta.get("namespace") or "default")
    ns_condition = bool(names or ns_sels)
    if ns_condition and not names and all_namespaces is not None:
        ns_condition = any(label_selector_matches(s, labels)
                           for labels in all_namespaces.values() for s in ns_sels)
    if ns_condition and not (
            ns in names or any(label_selector_matches(s, ns_labels) for s in ns_sels)):
        return False
    return not svc_sels or any(label_selector_matches(s, meta.get("labels") or {})
                               for s in svc_sels)


def service_families(svc: Obj) -> frozenset[int]:
    """IP families a Service wants (``spec.ipFamilies``; default IPv4)."""
    fams = (svc.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    return frozenset(6 if str(f) == "IPv6" else 4 for f in fams)
