"""CNI detection from API objects: which agent runs, its data plane, whether it enforces
NetworkPolicy and whether it replaces kube-proxy.

Domain source: DOMAIN.md section 5.1 (Flannel ``kube-flannel-ds`` / ``kube-flannel-cfg``
``net-conf.json``; Canal = Flannel data plane + Calico policy, nodes with both annotation
families; Calico ``calico-node``; Cilium ``cilium-config``; kube-router, Antrea, Weave by
DaemonSet name), section 4.2 (plain Flannel does not enforce NetworkPolicy unless the
kube-network-policies sidecar is deployed: flannel-io/flannel ``Documentation/netpol.md``) and
cilium/cilium#29053, #27060, #32711 (``routing-mode``/``tunnel-protocol``, legacy ``tunnel``;
``kube-proxy-replacement`` ``true``/``false`` and legacy ``strict``/``partial``/``probe``/
``disabled``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from runbooks._lib.kobj import Obj, annotations_of, labels, name, template_spec
from runbooks._lib.kubeproxy import parse_args
from runbooks._lib.versions import Version, image_version, parse_version

#: CNI name → DaemonSet names its agent runs as (any namespace).
AGENT_DAEMONSETS: dict[str, tuple[str, ...]] = {
    "canal": ("canal",),
    "calico": ("calico-node",),
    "cilium": ("cilium",),
    "kube-router": ("kube-router",),
    "antrea": ("antrea-agent",),
    "weave": ("weave-net",),
    "flannel": ("kube-flannel-ds", "kube-flannel", "flannel"),
}
#: Label values that identify an agent DaemonSet renamed by a Helm release.
_AGENT_LABELS: dict[str, tuple[tuple[str, str], ...]] = {
    "canal": (("k8s-app", "canal"),),
    "calico": (("k8s-app", "calico-node"),),
    "cilium": (("k8s-app", "cilium"),),
    "kube-router": (("k8s-app", "kube-router"),),
    "antrea": (("component", "antrea-agent"),),
    "weave": (("name", "weave-net"),),
    "flannel": (("app", "flannel"), ("k8s-app", "flannel")),
}
#: Detection priority when several agents are present: Canal before Calico/Flannel, and a
#: full CNI before Flannel (which may be chained under another plugin).
PRIORITY = ("canal", "cilium", "calico", "antrea", "kube-router", "weave", "flannel")

DISPLAY = {"flannel": "Flannel", "canal": "Canal", "calico": "Calico", "cilium": "Cilium",
           "kube-router": "kube-router", "antrea": "Antrea", "weave": "Weave Net",
           "unknown": "unknown CNI"}

FLANNEL_ANN = "flannel.alpha.coreos.com/"
CALICO_ANN = "projectcalico.org/"
CILIUM_ANN = ("network.cilium.io/", "io.cilium.network.")


def _is_agent(ds: Obj, cni: str) -> bool:
    n = name(ds)
    names = AGENT_DAEMONSETS[cni]
    if n in names or (cni == "flannel" and n.startswith("kube-flannel-ds-")):
        return True
    lab = labels(ds)
    # label match only for DaemonSets not named after another agent
    if any(n in other for other in AGENT_DAEMONSETS.values()):
        return False
    return any(lab.get(k) == v for k, v in _AGENT_LABELS[cni])


def find_agents(daemonsets: list[Obj]) -> dict[str, Obj]:
    """CNI name → its agent DaemonSet, for every known agent found (first match per CNI, in
    list order). Names first (``kube-flannel-ds`` also with an ``-amd64``-style suffix), then
    the agent's usual labels for DaemonSets renamed by Helm."""
    found: dict[str, Obj] = {}
    for ds in daemonsets:
        for cni in PRIORITY:
            if cni not in found and _is_agent(ds, cni):
                found[cni] = ds
                break
    return found


def primary_cni(agents: dict[str, Obj]) -> str | None:
    """The CNI that owns the pod network given the agents found: ``canal`` when a Canal
    DaemonSet exists or Calico and Flannel agents run side by side (Calico policy on a
    Flannel data plane); otherwise the first of :data:`PRIORITY`; None when there is none."""
    if "canal" in agents or ("calico" in agents and "flannel" in agents):
        return "canal"
    for cni in PRIORITY:
        if cni in agents:
            return cni
    return None


def cni_from_nodes(nodes: list[Obj]) -> str | None:
    """Fallback when no agent DaemonSet is visible (embedded agents such as k3s/RKE2 Flannel):
    ``canal`` if nodes carry both ``flannel.alpha.coreos.com/*`` and ``projectcalico.org/*``
    annotations, else ``flannel``/``calico``/``cilium`` by the annotation family present; None
    when nodes carry none of them. (Stale annotations survive CNI migrations, so DaemonSets
    are always preferred: projectcalico/calico#9010.)"""
    fl = ca = ci = False
    for n in nodes:
        keys = annotations_of(n).keys()
        fl = fl or any(k.startswith(FLANNEL_ANN) for k in keys)
        ca = ca or any(k.startswith(CALICO_ANN) for k in keys)
        ci = ci or any(k.startswith(CILIUM_ANN) for k in keys)
    if fl and ca:
        return "canal"
    if ci:
        return "cilium"
    if fl:
        return "flannel"
    if ca:
        return "calico"
    return None


def agent_version(ds: Obj, prefer: tuple[str, ...] = ()) -> str | None:
    """Version tag of the agent image: the first container whose name is in ``prefer``, else
    the first container with a version-like tag (``v0.28.9``); None when untagged."""
    containers = [c for c in template_spec(ds).get("containers") or [] if isinstance(c, dict)]
    ordered = [c for c in containers if c.get("name") in prefer] + containers
    for c in ordered:
        v = image_version(str(c.get("image", "")))
        if v:
            return v
    return None


def container_names_images(ds: Obj) -> list[tuple[str, str]]:
    """(name, image) of every container (init containers excluded) of a DaemonSet template."""
    return [(str(c.get("name", "")), str(c.get("image", "")))
            for c in template_spec(ds).get("containers") or [] if isinstance(c, dict)]


def flannel_netpol_sidecar(ds: Obj) -> bool:
    """Whether a Flannel DaemonSet runs the kube-network-policies container (Helm
    ``netpol.enabled``, flannel >= 0.25.5: ``Documentation/netpol.md``)."""
    for n, img in container_names_images(ds):
        if "network-policies" in n or "netpol" in n or "kube-network-policies" in img:
            return True
    return False


def agent_flags(ds: Obj, container: str | None = None) -> dict[str, str]:
    """Command-line flags of an agent container (the named one, else the first)."""
    containers = [c for c in template_spec(ds).get("containers") or [] if isinstance(c, dict)]
    pick = next((c for c in containers if c.get("name") == container), None) if container \
        else None
    pick = pick or (containers[0] if containers else None)
    if not pick:
        return {}
    return parse_args(pick.get("command"), pick.get("args")).flags


def _flag_true(flags: dict[str, str], key: str, default: bool) -> bool:
    v = flags.get(key)
    return default if v is None else v.lower() in ("true", "1", "t")


def kube_router_features(ds: Obj) -> dict[str, bool]:
    """kube-router's enabled features from its flags: ``router``, ``firewall`` (NetworkPolicy)
    and ``service_proxy`` (kube-proxy replacement); each defaults to true in kube-router when
    the flag is absent (kube-router ``--run-*`` flag defaults)."""
    flags = agent_flags(ds, "kube-router")
    return {"router": _flag_true(flags, "run-router", True),
            "firewall": _flag_true(flags, "run-firewall", True),
            "service_proxy": _flag_true(flags, "run-service-proxy", True)}


def weave_enforces(ds: Obj) -> bool:
    """Weave Net enforces NetworkPolicy through its ``weave-npc`` container; a template that
    lists containers without it does not (no template visible: assume the standard
    manifest, which has it)."""
    names = [n for n, _ in container_names_images(ds)]
    return not names or "weave-npc" in names


# ---- Flannel ---------------------------------------------------------------------------


class NetConfError(ValueError):
    """``net-conf.json`` cannot be used: not JSON, not an object, or missing the network.
    The message is one sentence (with line/column for JSON errors)."""


@dataclass(frozen=True)
class FlannelNetConf:
    """A parsed Flannel ``net-conf.json``.

    ``backend``: ``Backend.Type`` lower-cased (``vxlan``, ``host-gw``, ``wireguard``, ``udp``,
    ``ipip``, ``ipsec``, ``alloc``...; no ``Backend`` at all → ``udp``, flanneld's own default
    in ``pkg/subnet/config.go``). ``vni``: VXLAN VNI (default 1). ``port``: VXLAN UDP port
    (None = kernel default 8472). ``direct_routing``: VXLAN ``DirectRouting``.
    ``enable_nftables``: ``EnableNFTables``. ``raw``: the whole object.
    """

    network: str | None
    backend: str
    vni: int | None
    port: int | None
    direct_routing: bool
    enable_nftables: bool
    raw: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON form for facts/evidence."""
        return {"network": self.network, "backend": self.backend, "vni": self.vni,
                "port": self.port, "direct_routing": self.direct_routing,
                "enable_nftables": self.enable_nftables}


def parse_net_conf(text: str) -> FlannelNetConf:
    """Parse Flannel's ``net-conf.json`` (flannel-io/flannel ``Documentation/backends.md``).

    Raises :class:`NetConfError` when the text is not JSON, not an object, ``Backend`` is not
    an object, or no ``Network``/``Networks``/``IPv6Network`` is set (flanneld refuses to
    start then)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise NetConfError(
            f"net-conf.json is not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from e
    if not isinstance(doc, dict):
        raise NetConfError(f"net-conf.json is not a JSON object (found {type(doc).__name__})")
    backend = doc.get("Backend")
    if backend is not None and not isinstance(backend, dict):
        raise NetConfError("net-conf.json Backend is not a JSON object")
    if not (doc.get("Network") or doc.get("Networks") or doc.get("IPv6Network")):
        raise NetConfError("net-conf.json sets no Network")
    btype = "udp" if backend is None else str(backend.get("Type") or "").lower()
    vni = port = None
    direct = False
    if btype == "vxlan" and isinstance(backend, dict):
        vni = _int(backend.get("VNI"), 1)
        port = _int(backend.get("Port"), 0) or None
        direct = bool(backend.get("DirectRouting", False))
    return FlannelNetConf(
        network=str(doc["Network"]) if doc.get("Network") else None, backend=btype or "unset",
        vni=vni, port=port, direct_routing=direct,
        enable_nftables=bool(doc.get("EnableNFTables", False)), raw=doc)


def _int(v: Any, default: int) -> int:
    try:
        return int(v) if v is not None else default
    except (TypeError, ValueError):
        return default


def flannel_configmap_ref(ds: Obj) -> str | None:
    """Name of the ConfigMap a Flannel (or Canal) DaemonSet mounts its ``net-conf.json`` from
    (the volume named ``flannel-cfg``, else the first ConfigMap volume)."""
    vols = [v for v in template_spec(ds).get("volumes") or [] if isinstance(v, dict)]
    named = [v for v in vols if v.get("name") == "flannel-cfg" and v.get("configMap")]
    for v in named + vols:
        cm = v.get("configMap")
        if isinstance(cm, dict) and cm.get("name"):
            return str(cm["name"])
    return None


# ---- Cilium ----------------------------------------------------------------------------

LEGACY_KPR = ("strict", "partial", "probe", "disabled")
#: First Cilium release that no longer reads the ``tunnel`` option (cilium/cilium#29053).
CILIUM_TUNNEL_REMOVED: Version = (1, 15, 0)


@dataclass(frozen=True)
class CiliumConfig:
    """What ``kube-system/cilium-config`` says about routing and kube-proxy replacement.

    ``routing_mode``: ``tunnel`` | ``native`` (from ``routing-mode``, else legacy ``tunnel``:
    ``disabled`` → native, honoured only before Cilium 1.15 or when the version is unknown;
    default ``tunnel``). ``tunnel_protocol``: ``vxlan`` | ``geneve`` in tunnel mode (default
    ``vxlan``), None in native mode. ``legacy_tunnel``: the value of the removed ``tunnel``
    option when set (cilium/cilium#29053); ``legacy_tunnel_ignored``: it is set but the agent is
    1.15 or newer, which no longer reads it. ``kpr_raw``: ``kube-proxy-replacement`` as
    written. ``kpr``: whether Cilium replaces kube-proxy. ``kpr_legacy``: a legacy value
    (``strict``...), honoured only before Cilium 1.15 (cilium/cilium#32711).
    ``enforces_networkpolicy``: ``enable-policy`` is not ``never``.
    """

    routing_mode: str
    tunnel_protocol: str | None
    legacy_tunnel: str | None
    kpr_raw: str | None
    kpr: bool
    kpr_legacy: bool
    enforces_networkpolicy: bool
    legacy_tunnel_ignored: bool = False

    @property
    def encapsulation(self) -> str:
        """``vxlan``/``geneve`` in tunnel mode, ``none`` in native routing."""
        return (self.tunnel_protocol or "vxlan") if self.routing_mode == "tunnel" else "none"

    def as_dict(self) -> dict[str, Any]:
        """JSON form for facts/evidence."""
        return {"routing_mode": self.routing_mode, "tunnel_protocol": self.tunnel_protocol,
                "legacy_tunnel": self.legacy_tunnel,
                "legacy_tunnel_ignored": self.legacy_tunnel_ignored,
                "kube_proxy_replacement": self.kpr_raw, "kpr": self.kpr,
                "kpr_legacy": self.kpr_legacy,
                "enforces_networkpolicy": self.enforces_networkpolicy}


def parse_cilium_config(data: dict[str, Any], version: Version | None = None) -> CiliumConfig:
    """Interpret ``cilium-config`` ``data``. ``version``: the Cilium agent version when known
    (legacy ``kube-proxy-replacement=strict`` means full replacement before 1.15, and is not
    honoured from 1.15 on; the legacy ``tunnel`` option was removed in 1.15 too
    (cilium/cilium#29053), so from 1.15 on it is ignored and the defaults apply; unknown
    version: both taken at face value, and flagged by the probe)."""
    d = {str(k): str(v) if v is not None else "" for k, v in (data or {}).items()}
    legacy_tunnel = d.get("tunnel") or None
    tunnel_read = version is None or version < CILIUM_TUNNEL_REMOVED
    honoured = legacy_tunnel if tunnel_read else None
    rm = (d.get("routing-mode") or "").strip().lower()
    if not rm:
        rm = "native" if honoured == "disabled" else "tunnel"
    proto = None
    if rm == "tunnel":
        proto = (d.get("tunnel-protocol") or
                 (honoured if honoured in ("vxlan", "geneve") else "") or "vxlan")
    raw = d.get("kube-proxy-replacement")
    val = (raw or "").strip().lower()
    legacy = val in LEGACY_KPR
    if val == "true":
        kpr = True
    elif val == "strict":
        kpr = version is None or version < (1, 15, 0)
    else:
        kpr = False
    return CiliumConfig(routing_mode=rm, tunnel_protocol=proto, legacy_tunnel=legacy_tunnel,
                        kpr_raw=raw, kpr=kpr, kpr_legacy=legacy,
                        enforces_networkpolicy=d.get("enable-policy", "default") != "never",
                        legacy_tunnel_ignored=legacy_tunnel is not None and not tunnel_read)


def cilium_version(ds: Obj | None) -> Version | None:
    """Cilium agent version from its DaemonSet image (``quay.io/cilium/cilium:v1.15.5``)."""
    if not ds:
        return None
    return parse_version(agent_version(ds, ("cilium-agent",)) or "")
