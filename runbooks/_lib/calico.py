"""Calico: IP pools, encapsulation, networking backend and BGP signals visible from the API.

Domain source: DOMAIN.md sections 5.1-5.3 (IPPool fields in both API groups
``crd.projectcalico.org/v1`` and ``projectcalico.org/v3``; operator ``Installation``
``spec.calicoNetwork.ipPools[].encapsulation``; ``calico-config`` ``calico_backend``; node
annotation ``projectcalico.org/IPv4Address``; readiness message "BGP not established with
<ips>" from projectcalico/calico#2785, #3541; ``CalicoNodeStatus`` ``status.bgp.peersV4``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from runbooks._lib.kobj import Obj, annotations_of, dig, name

#: Encapsulation as the operator names it → the lower-case token used in facts.
ENCAP_TOKENS = {"IPIP": "ipip", "IPIPCrossSubnet": "ipip-crosssubnet", "VXLAN": "vxlan",
                "VXLANCrossSubnet": "vxlan-crosssubnet", "None": "none"}

_MODES = {"always": "Always", "crosssubnet": "CrossSubnet", "cross-subnet": "CrossSubnet",
          "never": "Never", "": "Never"}

ANN_IPV4 = "projectcalico.org/IPv4Address"


@dataclass(frozen=True)
class Pool:
    """One Calico IP pool.

    ``ipip_mode``/``vxlan_mode``: ``Always`` | ``CrossSubnet`` | ``Never`` (absent =
    ``Never``; legacy v2 ``spec.ipip: {enabled, mode: cross-subnet}`` understood).
    ``encapsulation``: operator enum (``IPIP``, ``IPIPCrossSubnet``, ``VXLAN``,
    ``VXLANCrossSubnet``, ``None``), or ``Invalid`` when IPIP and VXLAN are both enabled (Calico
    rejects that: libcalico-go validator). ``tunnel_on_ipv6``: an IPv6 pool with IPIP/VXLAN
    (unsupported). ``source``: ``crd.projectcalico.org/v1``, ``projectcalico.org/v3``,
    ``operator.tigera.io/v1`` or ``table``.
    """

    name: str
    cidr: str
    ipip_mode: str
    vxlan_mode: str
    disabled: bool
    node_selector: str
    encapsulation: str
    ipv6: bool
    source: str

    @property
    def both_enabled(self) -> bool:
        """IPIP and VXLAN both enabled on this pool."""
        return self.ipip_mode != "Never" and self.vxlan_mode != "Never"

    @property
    def tunnel_on_ipv6(self) -> bool:
        """IPIP or VXLAN requested on an IPv6 pool."""
        return self.ipv6 and (self.ipip_mode != "Never" or self.vxlan_mode != "Never")

    @property
    def token(self) -> str:
        """Lower-case encapsulation token (``ipip-crosssubnet``...; ``invalid``)."""
        return ENCAP_TOKENS.get(self.encapsulation, self.encapsulation.lower())

    def as_dict(self) -> dict[str, Any]:
        """JSON form for facts/evidence."""
        return {"name": self.name, "cidr": self.cidr, "ipipMode": self.ipip_mode,
                "vxlanMode": self.vxlan_mode, "disabled": self.disabled,
                "nodeSelector": self.node_selector, "encapsulation": self.encapsulation,
                "source": self.source}


def _mode(v: Any) -> str:
    return _MODES.get(str(v or "").strip().lower(), str(v))


def _encap(ipip: str, vxlan: str) -> str:
    if ipip != "Never" and vxlan != "Never":
        return "Invalid"
    if ipip == "Always":
        return "IPIP"
    if ipip == "CrossSubnet":
        return "IPIPCrossSubnet"
    if vxlan == "Always":
        return "VXLAN"
    if vxlan == "CrossSubnet":
        return "VXLANCrossSubnet"
    return "None"


def _is_v6(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).version == 6
    except ValueError:
        return ":" in cidr


def parse_pool(obj: Obj) -> Pool:
    """An IPPool object (either API group) or a flat row (``name``, ``cidr``, ``ipipMode``,
    ``vxlanMode``, ``disabled``, ``selector`` — the ``calicoctl get ippool -o wide`` table
    turned into YAML) as a :class:`Pool`. Never raises: odd values are kept verbatim."""
    spec_block = obj.get("spec")
    spec: dict[str, Any] = spec_block if isinstance(spec_block, dict) else obj
    ipip = spec.get("ipipMode")
    legacy = spec.get("ipip")
    if ipip is None and isinstance(legacy, dict):
        ipip = (legacy.get("mode") or "always") if legacy.get("enabled") else "Never"
    ipip_mode, vxlan_mode = _mode(ipip), _mode(spec.get("vxlanMode"))
    cidr = str(spec.get("cidr", ""))
    api = str(obj.get("apiVersion", "table")) if "spec" in obj else "table"
    return Pool(
        name=name(obj) or str(obj.get("name", "")), cidr=cidr, ipip_mode=ipip_mode,
        vxlan_mode=vxlan_mode, disabled=bool(spec.get("disabled", False)),
        node_selector=str(spec.get("nodeSelector", spec.get("selector", "all()")) or "all()"),
        encapsulation=_encap(ipip_mode, vxlan_mode), ipv6=_is_v6(cidr), source=api)


def installation_pools(installation: Obj) -> list[Pool]:
    """Pools declared in an operator ``Installation`` (``operator.tigera.io/v1``)
    ``spec.calicoNetwork.ipPools[]``; ``encapsulation`` is already the operator enum
    (default ``IPIP`` per the operator API when omitted)."""
    out = []
    for p in dig(installation, "spec", "calicoNetwork", "ipPools", default=[]):
        if not isinstance(p, dict):
            continue
        enc = str(p.get("encapsulation") or "IPIP")
        ipip = {"IPIP": "Always", "IPIPCrossSubnet": "CrossSubnet"}.get(enc, "Never")
        vxlan = {"VXLAN": "Always", "VXLANCrossSubnet": "CrossSubnet"}.get(enc, "Never")
        cidr = str(p.get("cidr", ""))
        out.append(Pool(name=str(p.get("name", "")), cidr=cidr, ipip_mode=ipip,
                        vxlan_mode=vxlan, disabled=False,
                        node_selector=str(p.get("nodeSelector", "all()")),
                        encapsulation=enc, ipv6=_is_v6(cidr),
                        source="operator.tigera.io/v1"))
    return out


def cluster_encapsulation(pools: list[Pool]) -> str | None:
    """One token for the cluster: the encapsulation of every enabled pool (``ipip``,
    ``ipip-crosssubnet``, ``vxlan``, ``vxlan-crosssubnet``, ``none``), several joined with
    ``+`` in sorted order; None when no enabled pool is known."""
    tokens = sorted({p.token for p in pools if not p.disabled})
    return "+".join(tokens) if tokens else None


def ebpf_dataplane(installation: Obj | None, felix: Obj | None,
                   env: dict[str, str | None]) -> str | None:
    """Where Calico's eBPF data plane — which does service load-balancing itself and replaces
    kube-proxy — is switched on, or None when nothing visible switches it on: operator
    ``Installation`` ``spec.calicoNetwork.linuxDataplane: BPF``, FelixConfiguration
    ``default`` ``spec.bpfEnabled: true``, or calico-node env ``FELIX_BPFENABLED=true``
    (Calico docs "Enabling the eBPF data plane", docs.tigera.io
    ``operations/ebpf/enabling-ebpf``)."""
    if installation is not None and \
            str(dig(installation, "spec", "calicoNetwork", "linuxDataplane", default="")) == "BPF":
        return "Installation linuxDataplane: BPF"
    if felix is not None and dig(felix, "spec", "bpfEnabled") in (True, "true", "True"):
        return "FelixConfiguration default bpfEnabled: true"
    if str(env.get("FELIX_BPFENABLED") or "").lower() == "true":
        return "calico-node FELIX_BPFENABLED=true"
    return None


def backend_from_installation(installation: Obj, pools: list[Pool]) -> str | None:
    """Networking backend implied by an operator Installation: ``spec.calicoNetwork.bgp``
    ``Enabled`` → ``bird``; ``Disabled`` → ``vxlan`` when any pool uses VXLAN, else
    ``none``; absent → ``bird`` unless every pool is VXLAN (inferred from the operator
    defaults). None when there is no ``calicoNetwork`` at all."""
    net = dig(installation, "spec", "calicoNetwork")
    if not isinstance(net, dict):
        return None
    bgp = str(net.get("bgp") or "")
    vx = [p for p in pools if p.vxlan_mode != "Never"]
    if bgp == "Enabled":
        return "bird"
    if bgp == "Disabled":
        return "vxlan" if vx else "none"
    if pools and len(vx) == len(pools):
        return "vxlan"
    return "bird"


def node_ipv4(node: Obj) -> tuple[str, int | None] | None:
    """(address, prefix length) from the node annotation ``projectcalico.org/IPv4Address``
    (``172.21.0.1/16``), None when the annotation is absent or unparseable. CrossSubnet
    decides "same subnet" from this prefix (DOMAIN.md section 5.1, 5.3)."""
    raw = annotations_of(node).get(ANN_IPV4)
    if not raw:
        return None
    try:
        iface = ipaddress.ip_interface(str(raw).strip())
    except ValueError:
        return None
    prefix = iface.network.prefixlen if "/" in str(raw) else None
    return str(iface.ip), prefix


_NOT_ESTABLISHED = re.compile(r"BGP not established with\s*([0-9A-Fa-f.:,\s]+)")


def bgp_not_established_peers(message: str) -> list[str]:
    """Peer IPs named in a calico-node readiness message ("calico/node is not ready: BIRD is
    not ready: BGP not established with 172.21.0.1,10.0.0.2"); empty when the message does
    not say so (projectcalico/calico#2785, #3541)."""
    m = _NOT_ESTABLISHED.search(message or "")
    if not m:
        return []
    out = []
    for tok in re.split(r"[,\s]+", m.group(1)):
        tok = tok.strip().rstrip(".")
        try:
            out.append(str(ipaddress.ip_address(tok)))
        except ValueError:
            continue
    return list(dict.fromkeys(out))


def node_status_peers(cns: Obj) -> list[dict[str, Any]]:
    """BGP peers of a ``CalicoNodeStatus`` object (``status.bgp.peersV4`` + ``peersV6``), each
    ``{"node", "peer_ip", "type", "state", "since"}``; ``node`` from ``spec.node``."""
    node = str(dig(cns, "spec", "node", default=name(cns)))
    out = []
    for fam in ("peersV4", "peersV6"):
        for p in dig(cns, "status", "bgp", fam, default=[]):
            if isinstance(p, dict):
                out.append({"node": node, "peer_ip": str(p.get("peerIP", "")),
                            "type": str(p.get("type", "")), "state": str(p.get("state", "")),
                            "since": p.get("since")})
    return out
