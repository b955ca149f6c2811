"""kube-proxy configuration, flags, conntrack sizing and startup logs: pure parsers.

Used by the ``kube-proxy`` and ``conntrack`` status probes and, later, by the
``kube-proxy-mode`` and ``conntrack-limits`` runbooks. Domain source: DOMAIN.md sections 1
and 2 (kubeadm ConfigMap shape, ``mode: ""`` = iptables on Linux, strictARP, conntrack
computation, obsolete fields and lenient decoding, startup log lines).

Shapes:

- ``config.conf`` (the ``kube-system/kube-proxy`` ConfigMap key, or an on-node ``--config``
  file): a ``kubeproxy.config.k8s.io/v1alpha1`` (or ``v1alpha2``) ``KubeProxyConfiguration``
  YAML document → :func:`parse_config` → :class:`KubeProxyConfig`. The parsed document is
  kept whole in ``KubeProxyConfig.raw`` (unknown and obsolete fields included) so a runbook
  can round-trip it.
- kube-proxy command line (DaemonSet/pod ``command`` + ``args``) → :func:`parse_args` →
  :class:`ProxyArgs`; with the pod spec's volumes → :func:`config_source`.
- kube-proxy container log → :func:`parse_startup_log` → :class:`ProxyLog`.
- conntrack: :func:`conntrack_target` computes what kube-proxy writes to
  ``net.netfilter.nf_conntrack_max`` at start on a node with N CPUs.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from runbooks._lib.versions import Version, parse_version

# Defaults applied by kube-proxy's v1alpha1 defaulting to absent/null fields
# (kubernetes/kubernetes pkg/proxy/apis/config/v1alpha1/defaults.go:
# ``if obj.Conntrack.MaxPerCore == nil { ... 32 * 1024 }``, ``Min ... 128 * 1024``).
DEFAULT_MAX_PER_CORE = 32_768
DEFAULT_MIN = 131_072
#: kube-proxy >= 1.36 caps ``maxPerCore x CPUs`` at this value before comparing with ``min``
#: (DOMAIN.md section 0 / 2.1; kubernetes/kubernetes#141943).
CONNTRACK_CAP = 1_048_576
CONNTRACK_CAP_SINCE: Version = (1, 36, 0)
#: IPVS mode deprecated from this release (KEP-5495).
IPVS_DEPRECATED_SINCE: Version = (1, 35, 0)
#: nftables mode needs this kernel (KEP-3866).
NFTABLES_MIN_KERNEL: tuple[int, int] = (5, 13)

LINUX_MODES = ("iptables", "ipvs", "nftables")

#: Fields kube-proxy no longer knows; their presence makes strict decoding fail and kube-proxy
#: falls back to lenient decoding (DOMAIN.md section 1.8, 2.1). Dotted path → why.
OBSOLETE_FIELDS: dict[str, str] = {
    "udpIdleTimeout": "removed in Kubernetes 1.26 together with the userspace proxier",
    "conntrack.max": "absolute conntrack limit removed long ago; only maxPerCore/min are read",
    "resourceContainer": "removed from KubeProxyConfiguration (kube-proxy no longer moves "
                         "itself into a cgroup)",
}

# Top-level fields of KubeProxyConfiguration (v1alpha1 up to 1.36, plus v1alpha2 work).
_KNOWN_TOP = frozenset({
    "apiVersion", "kind", "featureGates", "clientConnection", "logging", "hostnameOverride",
    "bindAddress", "healthzBindAddress", "metricsBindAddress", "bindAddressHardFail",
    "enableProfiling", "showHiddenMetricsForVersion", "mode", "iptables", "ipvs", "nftables",
    "winkernel", "detectLocalMode", "detectLocal", "clusterCIDR", "nodePortAddresses",
    "oomScoreAdj", "conntrack", "configSyncPeriod", "portRange", "windowsRunAsService",
    # v1alpha2
    "linux", "windows", "syncPeriod", "minSyncPeriod", "healthzBindAddresses",
    "metricsBindAddresses", "clusterCIDRs", "ipFamilyPolicy",
})
_KNOWN_CONNTRACK = frozenset({
    "maxPerCore", "min", "tcpEstablishedTimeout", "tcpCloseWaitTimeout", "tcpBeLiberal",
    "udpTimeout", "udpStreamTimeout",
})
_KNOWN_IPVS = frozenset({
    "syncPeriod", "minSyncPeriod", "scheduler", "excludeCIDRs", "strictARP", "tcpTimeout",
    "tcpFinTimeout", "udpTimeout",
})


class KubeProxyConfigError(ValueError):
    """``config.conf`` cannot be used at all: not YAML, not a mapping, or not a
    ``KubeProxyConfiguration``. The message is one sentence naming the problem (for YAML
    errors, with line and column)."""


@dataclass(frozen=True)
class ConntrackSettings:
    """kube-proxy's conntrack settings after defaulting.

    ``max_per_core``/``min``: effective values (absent or ``null`` → 32768 / 131072, the
    v1alpha1 defaults; ``max_per_core == 0`` means kube-proxy leaves ``nf_conntrack_max``
    alone and ignores ``min``). ``max_per_core_raw``/``min_raw``: as written (None for
    absent/null). Timeouts are the duration strings as written (``"24h0m0s"``, ``"0s"`` =
    leave that sysctl alone) or None. ``shape``: where they were found: ``conntrack``
    (v1alpha1), ``linux.conntrack`` (v1alpha2), ``flags`` or ``default`` (nothing set).
    ``obsolete_max``: the value of the removed ``conntrack.max`` field, when present.
    """

    max_per_core: int = DEFAULT_MAX_PER_CORE
    min: int = DEFAULT_MIN
    max_per_core_raw: Any = None
    min_raw: Any = None
    tcp_established_timeout: str | None = None
    tcp_close_wait_timeout: str | None = None
    shape: str = "default"
    obsolete_max: Any = None

    @property
    def managed(self) -> bool:
        """Whether kube-proxy sets ``nf_conntrack_max`` at start (``maxPerCore > 0``)."""
        return self.max_per_core > 0

    def as_dict(self) -> dict[str, Any]:
        """JSON form used in facts and evidence."""
        return {"max_per_core": self.max_per_core, "min": self.min,
                "max_per_core_raw": self.max_per_core_raw, "min_raw": self.min_raw,
                "tcp_established_timeout": self.tcp_established_timeout,
                "tcp_close_wait_timeout": self.tcp_close_wait_timeout,
                "shape": self.shape, "managed": self.managed, "obsolete_max": self.obsolete_max}


@dataclass(frozen=True)
class KubeProxyConfig:
    """A parsed kube-proxy configuration.

    ``mode_raw``: the ``mode`` field as written (``""`` when absent or null). ``mode``: the
    effective mode on Linux (``""`` → ``iptables``), None when ``mode_raw`` is not a Linux
    mode (see ``mode_valid``). ``strict_arp``: ``ipvs.strictARP`` (absent → False).
    ``scheduler``: ``ipvs.scheduler`` as written (``""`` = ``rr``). ``obsolete_fields``/
    ``unknown_fields``: dotted paths that make kube-proxy fall back to lenient decoding.
    ``problems``: values of the wrong type (one sentence each). ``raw``: the whole document.
    """

    raw: dict[str, Any]
    api_version: str | None
    mode_raw: str
    mode: str | None
    mode_valid: bool
    strict_arp: bool
    scheduler: str
    conntrack: ConntrackSettings
    obsolete_fields: tuple[str, ...] = ()
    unknown_fields: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON form for facts/evidence (without ``raw``)."""
        return {"api_version": self.api_version, "mode_raw": self.mode_raw, "mode": self.mode,
                "strict_arp": self.strict_arp, "scheduler": self.scheduler or "rr",
                "conntrack": self.conntrack.as_dict(),
                "obsolete_fields": list(self.obsolete_fields),
                "unknown_fields": list(self.unknown_fields), "problems": list(self.problems)}


def effective_mode(mode: Any, os: str = "linux") -> str | None:
    """The proxy mode kube-proxy uses for a configured ``mode`` value.

    ``""``/None → ``iptables`` on Linux ("blank means the best-available proxy [currently
    iptables]", kubernetes/kubernetes validation; DOMAIN.md section 1.1) and ``kernelspace``
    on Windows. ``iptables``/``ipvs``/``nftables`` are returned as is on Linux; anything else
    (``userspace``, removed in 1.26; typos; wrong case) → None (kube-proxy refuses it).
    """
    m = "" if mode is None else str(mode)
    if os == "windows":
        return "kernelspace" if m in ("", "kernelspace") else None
    if m == "":
        return "iptables"
    return m if m in LINUX_MODES else None


def _int_or_none(v: Any) -> int | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    try:
        return int(str(v).strip())
    except ValueError:
        return None


def _conntrack_from(block: Any, shape: str, problems: list[str]) -> ConntrackSettings:
    if not isinstance(block, dict):
        if block is not None:
            problems.append(f"{shape} is not a mapping")
        return ConntrackSettings(shape="default")
    mpc_raw, min_raw = block.get("maxPerCore"), block.get("min")
    mpc, mn = _int_or_none(mpc_raw), _int_or_none(min_raw)
    if mpc_raw is not None and mpc is None:
        problems.append(f"{shape}.maxPerCore is not an integer: {mpc_raw!r}")
    if min_raw is not None and mn is None:
        problems.append(f"{shape}.min is not an integer: {min_raw!r}")
    if mpc is not None and mpc < 0:
        problems.append(f"{shape}.maxPerCore is negative: {mpc}")
    def _dur(key: str) -> str | None:
        v = block.get(key)
        return None if v is None else str(v)
    return ConntrackSettings(
        max_per_core=DEFAULT_MAX_PER_CORE if mpc is None else max(mpc, 0),
        min=DEFAULT_MIN if mn is None else mn,
        max_per_core_raw=mpc_raw, min_raw=min_raw,
        tcp_established_timeout=_dur("tcpEstablishedTimeout"),
        tcp_close_wait_timeout=_dur("tcpCloseWaitTimeout"),
        shape=shape if block else "default",
        obsolete_max=block.get("max"))


def _pick_document(text: str) -> dict[str, Any]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise KubeProxyConfigError(f"config.conf is not valid YAML{where}: {problem}") from e
    if not docs:
        raise KubeProxyConfigError("config.conf is empty")
    maps = [d for d in docs if isinstance(d, dict)]
    if not maps:
        raise KubeProxyConfigError(
            f"config.conf is not a YAML mapping (found {type(docs[0]).__name__})")
    for d in maps:
        if d.get("kind") == "KubeProxyConfiguration":
            return d
    kind = maps[0].get("kind")
    if kind is not None:
        raise KubeProxyConfigError(
            f"config.conf holds a {kind!r} document, not a KubeProxyConfiguration")
    return maps[0]


def parse_config(text: str) -> KubeProxyConfig:
    """Parse a ``KubeProxyConfiguration`` YAML document (multi-document input: the
    ``KubeProxyConfiguration`` one).

    Unknown and obsolete fields are kept in ``raw`` and listed, not dropped (kube-proxy
    decodes leniently when strict decoding fails: kubernetes/kubernetes#84143, #82927).
    Raises :class:`KubeProxyConfigError` when the text is not YAML, not a mapping, or a
    different kind. Values of the wrong type are reported in ``problems``, not raised.
    """
    doc = _pick_document(text)
    problems: list[str] = []
    api_version = doc.get("apiVersion")
    mode_value = doc.get("mode")
    if mode_value is not None and not isinstance(mode_value, str):
        problems.append(f"mode is not a string: {mode_value!r}")
    mode_raw = "" if mode_value is None else str(mode_value)
    mode = effective_mode(mode_raw)

    ipvs_block = doc.get("ipvs")
    ipvs: dict[str, Any] = ipvs_block if isinstance(ipvs_block, dict) else {}
    sa = ipvs.get("strictARP")
    if sa is not None and not isinstance(sa, bool):
        problems.append(f"ipvs.strictARP is not a boolean: {sa!r}")
    scheduler = ipvs.get("scheduler")

    linux = doc.get("linux")
    if isinstance(linux, dict) and "conntrack" in linux:
        conntrack = _conntrack_from(linux.get("conntrack"), "linux.conntrack", problems)
    else:
        conntrack = _conntrack_from(doc.get("conntrack"), "conntrack", problems)

    obsolete: list[str] = []
    unknown: list[str] = []
    for key in doc:
        if key in OBSOLETE_FIELDS:
            obsolete.append(key)
        elif key not in _KNOWN_TOP:
            unknown.append(str(key))
    for prefix, block, known in (("conntrack", doc.get("conntrack"), _KNOWN_CONNTRACK),
                                 ("ipvs", doc.get("ipvs"), _KNOWN_IPVS)):
        if isinstance(block, dict):
            for key in block:
                path = f"{prefix}.{key}"
                if path in OBSOLETE_FIELDS:
                    obsolete.append(path)
                elif key not in known:
                    unknown.append(path)
    return KubeProxyConfig(
        raw=doc, api_version=str(api_version) if api_version is not None else None,
        mode_raw=mode_raw, mode=mode, mode_valid=mode is not None,
        strict_arp=sa is True, scheduler="" if scheduler is None else str(scheduler),
        conntrack=conntrack, obsolete_fields=tuple(obsolete), unknown_fields=tuple(unknown),
        problems=tuple(problems))


# ---- command line ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyArgs:
    """kube-proxy's command line. ``flags`` maps each ``--flag`` (without dashes) to its value
    (``"true"`` for a bare boolean flag); the named attributes are the ones that matter here.
    ``binary_found``: whether a ``kube-proxy`` executable appeared in the command at all."""

    flags: dict[str, str] = field(default_factory=dict)
    binary_found: bool = False

    @property
    def config_path(self) -> str | None:
        """``--config`` (path of the config file inside the container)."""
        return self.flags.get("config") or None

    @property
    def proxy_mode(self) -> str | None:
        """``--proxy-mode`` as given (None when absent)."""
        return self.flags.get("proxy-mode")

    @property
    def strict_arp(self) -> bool | None:
        """``--ipvs-strict-arp`` (None when absent)."""
        v = self.flags.get("ipvs-strict-arp")
        return None if v is None else v.lower() in ("true", "1", "t")

    @property
    def proxy_flags(self) -> dict[str, str]:
        """The flags that also exist in the config file (mode, strict ARP, scheduler,
        conntrack): ignored by kube-proxy when ``--config`` is used (DOMAIN.md section 1.1,
        unverified per version)."""
        keys = ("proxy-mode", "ipvs-strict-arp", "ipvs-scheduler", "conntrack-max-per-core",
                "conntrack-min", "conntrack-tcp-timeout-established",
                "conntrack-tcp-timeout-close-wait")
        return {k: v for k, v in self.flags.items() if k in keys}


def parse_args(command: list[Any] | None, args: list[Any] | None = None) -> ProxyArgs:
    """Parse a container's ``command`` + ``args``.

    Accepts ``--flag=value``, ``--flag value`` and bare boolean ``--flag`` forms, and a shell
    wrapper (``["/bin/sh", "-c", "kube-proxy --config=..."]``). Unparseable shell text falls
    back to whitespace splitting.
    """
    tokens = [str(t) for t in (command or []) + (args or [])]
    if any(t in ("-c", "-ec", "-xc") for t in tokens[:3]) and tokens:
        expanded: list[str] = []
        for t in tokens:
            if " " in t:
                try:
                    expanded += shlex.split(t)
                except ValueError:
                    expanded += t.split()
            else:
                expanded.append(t)
        tokens = expanded
    binary = any(posixpath.basename(t) == "kube-proxy" for t in tokens)
    flags: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.startswith("-") and len(t) > 1:
            body = t.lstrip("-")
            if "=" in body:
                k, v = body.split("=", 1)
                flags[k] = v
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                flags[body] = tokens[i + 1]
                i += 1
            else:
                flags[body] = "true"
        i += 1
    return ProxyArgs(flags=flags, binary_found=binary)


@dataclass(frozen=True)
class ConfigSource:
    """Where kube-proxy reads its configuration from.

    ``kind``: ``configmap`` (``--config`` inside a volume backed by a ConfigMap: ``configmap``
    is its name, ``key`` the data key), ``file`` (``--config`` on a hostPath or other volume,
    ``path`` the file), ``flags`` (no ``--config``: flags and built-in defaults) or
    ``unknown`` (no command line visible).
    """

    kind: str
    configmap: str | None = None
    key: str | None = None
    path: str | None = None


def config_source(pod_spec: dict[str, Any], container: dict[str, Any] | None) -> ConfigSource:
    """Decide where a kube-proxy container gets its config: follow ``--config`` through the
    container's ``volumeMounts`` to the pod spec's ``volumes`` (ConfigMap ``items`` remapping
    honoured). DOMAIN.md section 1.5 ("check whether --config points at the ConfigMap")."""
    if not container or not (container.get("command") or container.get("args")):
        return ConfigSource("unknown")
    pa = parse_args(container.get("command"), container.get("args"))
    path = pa.config_path
    if not path:
        return ConfigSource("flags")
    best: tuple[int, dict[str, Any]] | None = None
    for m in container.get("volumeMounts") or []:
        mp = str(m.get("mountPath", "")).rstrip("/")
        if mp and (path == mp or path.startswith(mp + "/")) and (best is None or len(mp) > best[0]):
            best = (len(mp), m)
    if best is None:
        return ConfigSource("file", path=path)
    mount = best[1]
    rel = path[len(str(mount.get("mountPath", "")).rstrip("/")):].lstrip("/")
    if mount.get("subPath"):
        rel = str(mount["subPath"])
    vol = next((v for v in pod_spec.get("volumes") or []
                if isinstance(v, dict) and v.get("name") == mount.get("name")), None)
    cm = vol.get("configMap") if isinstance(vol, dict) else None
    if not isinstance(cm, dict) or not cm.get("name"):
        return ConfigSource("file", path=path)
    key = rel
    for item in cm.get("items") or []:
        if isinstance(item, dict) and item.get("path") == rel:
            key = str(item.get("key"))
    return ConfigSource("configmap", configmap=str(cm["name"]), key=key or None, path=path)


def config_from_flags(pa: ProxyArgs) -> KubeProxyConfig:
    """The configuration kube-proxy runs with when started without ``--config``: its flags
    over the built-in defaults (``--proxy-mode`` absent = ``""`` = iptables)."""
    problems: list[str] = []
    mode_raw = pa.proxy_mode or ""
    mpc_raw = pa.flags.get("conntrack-max-per-core")
    min_raw = pa.flags.get("conntrack-min")
    mpc, mn = _int_or_none(mpc_raw), _int_or_none(min_raw)
    if mpc_raw is not None and mpc is None:
        problems.append(f"--conntrack-max-per-core is not an integer: {mpc_raw!r}")
    ct = ConntrackSettings(
        max_per_core=DEFAULT_MAX_PER_CORE if mpc is None else max(mpc, 0),
        min=DEFAULT_MIN if mn is None else mn, max_per_core_raw=mpc, min_raw=mn,
        tcp_established_timeout=pa.flags.get("conntrack-tcp-timeout-established"),
        tcp_close_wait_timeout=pa.flags.get("conntrack-tcp-timeout-close-wait"),
        shape="flags" if (mpc_raw or min_raw) else "default")
    mode = effective_mode(mode_raw)
    return KubeProxyConfig(
        raw={}, api_version=None, mode_raw=mode_raw, mode=mode, mode_valid=mode is not None,
        strict_arp=bool(pa.strict_arp), scheduler=pa.flags.get("ipvs-scheduler", ""),
        conntrack=ct, problems=tuple(problems))


# ---- conntrack -------------------------------------------------------------------------


@dataclass(frozen=True)
class ConntrackTarget:
    """What kube-proxy computes for ``nf_conntrack_max`` on one node.

    ``value``: the target (None: kube-proxy leaves the sysctl alone). ``scaled``:
    ``maxPerCore x cpus`` before the cap and ``min``. ``capped``: the 1.36 cap lowered
    ``scaled``. kube-proxy writes ``value`` at start only, and recent releases only when the
    current value is lower (DOMAIN.md section 2.1).
    """

    value: int | None
    scaled: int | None = None
    capped: bool = False


def conntrack_target(max_per_core: int | None, minimum: int | None, cpus: int,
                     version: Version | None = None) -> ConntrackTarget:
    """kube-proxy's ``getConntrackMax``: ``maxPerCore x cpus`` when that exceeds ``min``,
    else ``min`` (kubernetes/kubernetes ``cmd/kube-proxy/app/conntrack.go``).

    ``max_per_core`` 0 or None → ``value`` None (kube-proxy leaves ``nf_conntrack_max`` alone
    and ignores ``min``). ``cpus``: the node's CPU count (>= 1). For kube-proxy ``version`` >=
    1.36 the scaled value is capped at 1,048,576 in the "scaled wins" branch, so a ``min`` above
    the cap is ignored when the scaled value exceeds it (DOMAIN.md section 2.1; that upstream
    detail is unverified). Example: 65535/655350 on 8 CPUs → 655350; on 32 CPUs → 2,097,120
    before 1.36 (kubernetes/kubernetes#75575) and 1,048,576 from 1.36.
    """
    if not max_per_core or max_per_core <= 0:
        return ConntrackTarget(None)
    floor = minimum or 0
    scaled = max_per_core * max(cpus, 1)
    if scaled <= floor:
        return ConntrackTarget(floor, scaled=scaled)
    if version is not None and version >= CONNTRACK_CAP_SINCE and scaled > CONNTRACK_CAP:
        return ConntrackTarget(CONNTRACK_CAP, scaled=scaled, capped=True)
    return ConntrackTarget(scaled, scaled=scaled)


# ---- startup log -----------------------------------------------------------------------

_USING = re.compile(r"Using (iptables|ipvs|nftables|userspace|kernelspace|winkernel) [Pp]roxier")
_FALLBACK = re.compile(r"can't determine whether to use ipvs proxy[^\n]*")
_ASSUME_IPT = re.compile(
    r"(Unknown proxy mode[^\n]*assuming iptables proxy|proxy-mode=[^\n]*unknown, assuming "
    r"iptables proxy)")
_IPVS_DEPRECATED = re.compile(r"The ipvs proxier is now deprecated")
_VERSION = re.compile(r"(?:\"Version info\" version=\"|Version: )(v\d+\.\d+\.\d+[^\s\"]*)")
_LENIENT = re.compile(r"[Uu]sing lenient decoding as strict decoding failed[^\n]*")
_CT_SET = re.compile(r"(?:Setting nf_conntrack_max\"? nfConntrackMax=|Setting nf_conntrack_max "
                     r"to |nf_conntrack_max\"? value=)(\d+)")
_FATAL = re.compile(
    r"[^\n]*(?:can't use the IPVS proxier|hashsize: operation not supported|"
    r"nf_conntrack_max: (?:operation not supported|permission denied|read-only file system)|"
    r"write /proc/sys/net/netfilter/[^\s:]+: [^\n]*|"
    r"write /sys/module/nf_conntrack/parameters/hashsize[^\n]*|"
    r"failed to set conntrack[^\n]*|Error running ProxyServer|[Ff]ailed to run kube-proxy)"
    r"[^\n]*")


@dataclass(frozen=True)
class ProxyLog:
    """What a kube-proxy startup log says.

    ``running_mode``: from the last ``Using <mode> Proxier`` line (None when absent).
    ``fallback``: the pre-1.26 silent IPVS → iptables fallback was logged
    (``can't determine whether to use ipvs proxy``; kubernetes/kubernetes#63801).
    ``assumed_iptables``: the old ``Unknown proxy mode "", assuming iptables proxy`` line.
    ``ipvs_deprecated``: the 1.35 deprecation line (KEP-5495). ``version``: from ``Version
    info``/``Version:``. ``lenient``: lenient decoding was logged (unknown fields).
    ``conntrack_max_set``: the value kube-proxy logged for ``nf_conntrack_max``.
    ``fatal``: lines that explain a failing start (IPVS unusable, conntrack sysctl writes).
    ``lines``: the lines that proved each fact, for evidence.
    """

    running_mode: str | None = None
    fallback: bool = False
    assumed_iptables: bool = False
    ipvs_deprecated: bool = False
    version: str | None = None
    lenient: bool = False
    conntrack_max_set: int | None = None
    fatal: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON form for facts/evidence."""
        return {"running_mode": self.running_mode, "fallback": self.fallback,
                "assumed_iptables": self.assumed_iptables,
                "ipvs_deprecated": self.ipvs_deprecated, "version": self.version,
                "lenient": self.lenient, "conntrack_max_set": self.conntrack_max_set,
                "fatal": list(self.fatal), "lines": list(self.lines)}


def parse_startup_log(text: str) -> ProxyLog:
    """Extract the running mode and related facts from kube-proxy log text (klog text or
    structured format; container-runtime JSON wrapping tolerated since matching is by
    substring). Real samples: ``fixtures/api/kube-proxy-startup-{iptables,ipvs,nftables}.txt``.
    Never raises; an empty or unrelated text gives an empty :class:`ProxyLog`."""
    running = None
    evidence: list[str] = []
    for line in text.splitlines():
        m = _USING.search(line)
        if m:
            running = m.group(1)
            evidence.append(line.strip())
    fb = _FALLBACK.search(text)
    assumed = _ASSUME_IPT.search(text)
    dep = _IPVS_DEPRECATED.search(text)
    ver = None
    for m in _VERSION.finditer(text):
        ver = m.group(1)
    lenient = _LENIENT.search(text)
    ct = None
    for m in _CT_SET.finditer(text):
        ct = int(m.group(1))
    for found in (fb, assumed, lenient):
        if found:
            evidence.append(found.group(0).strip())
    fatal = tuple(dict.fromkeys(m.group(0).strip() for m in _FATAL.finditer(text)))
    return ProxyLog(running_mode=running, fallback=bool(fb), assumed_iptables=bool(assumed),
                    ipvs_deprecated=bool(dep), version=ver, lenient=bool(lenient),
                    conntrack_max_set=ct, fatal=fatal, lines=tuple(dict.fromkeys(evidence)))


def kernel_supports_nftables(kernel: str | None) -> bool | None:
    """Whether a node kernel (``6.8.0-51-generic``) is >= 5.13, the nftables proxier's minimum
    (KEP-3866; kube-proxy checks it unless ``KUBE_PROXY_NFTABLES_SKIP_KERNEL_VERSION_CHECK``
    is set). None when the version cannot be read."""
    v = parse_version(kernel or "")
    if v is None:
        return None
    return (v[0], v[1]) >= NFTABLES_MIN_KERNEL
