"""Status probe for the ``cni`` section: which CNI runs, its encapsulation, whether it
enforces NetworkPolicy and whether it replaces kube-proxy (DOMAIN.md section 5.1).

Facts (contract in ``runbooks/probes/__init__.py``): ``cni``, ``encapsulation``,
``calico_backend``, ``enforces_networkpolicy``, ``kube_proxy_replacement``; also ``display``
(product name), ``version``, ``agent`` (subject of the agent DaemonSet), ``namespace``,
``agents`` (every agent found), ``replacement_detail`` (e.g. ``kube-proxy-replacement=true,
routing-mode native``), ``flannel`` / ``cilium`` / ``calico_pools`` details,
``read_errors`` (optional reads that failed) and ``undecided`` (why the section could not be
decided: a read that failed kept the CNI's configuration from being read, so nothing is
reported as missing or assumed).

``kube_proxy_replacement`` is False for CNIs that never replace kube-proxy, True/False from
Cilium's ``cilium-config``, kube-router's flags or Calico's eBPF data plane settings, and None
when it cannot be told (Cilium's ``cilium-config`` unreadable or missing, Calico's Installation
or FelixConfiguration unreadable, no known CNI): readers must treat None as unknown, never as
"no".
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from bot.sdk import Finding, Inspection, KubeError, Probe, ProbeContext, Severity
from runbooks._lib import calico as cal
from runbooks._lib import cni as c
from runbooks._lib.kobj import (
    Obj,
    annotations_of,
    name,
    namespace,
    subject,
    template_spec,
)
from runbooks._lib.kobj import container_env as env_of
from runbooks._lib.versions import image_version

SECTION = "cni"
FLANNEL_NAMESPACES = ("kube-flannel", "kube-system")


def _f(code: str, sev: Severity, subj: str, msg: str, ev: dict[str, Any],
       runbook: str | None = None, params: dict[str, Any] | None = None) -> Finding:
    return Finding(code=code, severity=sev, section=SECTION, subject=subj, message=msg,
                   evidence=ev, runbook=runbook, params=params)


def _bare(v: str | None) -> str | None:
    return v[1:] if v and v.startswith("v") else v


class CniProbe(Probe):
    """CNI: which agent runs, encapsulation, NetworkPolicy enforcement, kube-proxy
    replacement."""

    section = SECTION
    title = "CNI"
    order = 20
    position = 10

    def inspect(self, ctx: ProbeContext) -> Inspection:
        """List DaemonSets cluster-wide (a 403 there makes the section unknown), then read the
        detected CNI's own configuration. Findings CNI001-CNI010 (see
        ``docs/findings.md``). Malformed ``net-conf.json`` is a finding, never an
        exception; a CRD that is not installed is not an error; a configuration read that
        fails (403, timeout) is not "missing": the section is then unknown
        (``facts["undecided"]``) with the error."""
        run = _Run(ctx)
        return run.inspect()


class _Run:
    """One inspection: keeps the reads, findings and facts together."""

    def __init__(self, ctx: ProbeContext) -> None:
        self.ctx = ctx
        self.kube = ctx.kube
        self.findings: list[Finding] = []
        self.read_errors: list[str] = []
        self.undecided: list[str] = []
        self.facts: dict[str, Any] = {
            "cni": "unknown", "encapsulation": None, "calico_backend": None,
            "enforces_networkpolicy": None, "kube_proxy_replacement": False,
            "display": c.DISPLAY["unknown"], "version": None, "agent": None,
            "namespace": None, "agents": [], "replacement_detail": None}

    # -- optional reads: failures are recorded, not raised ------------------------------
    # A failed read is never taken for "absent": callers that could not decide because of one
    # (the ``failed`` list) put the section in ``undecided`` with the error.
    def _get(self, api: str, plural: str, nm: str, ns: str | None = None,
             failed: list[str] | None = None) -> Obj | None:
        try:
            return self.kube.get(api, plural, nm, ns)
        except KubeError as e:
            msg = f"{plural} {ns + '/' if ns else ''}{nm}: {e}"
            self.read_errors.append(msg)
            if failed is not None:
                failed.append(msg)
            return None

    def _list(self, api: str, plural: str, ns: str | None = None,
              failed: list[str] | None = None) -> list[Obj]:
        try:
            if not self.kube.served(api, plural):
                return []
            return self.kube.list(api, plural, ns)
        except KubeError as e:
            msg = f"{plural}.{api}: {e}"
            self.read_errors.append(msg)
            if failed is not None:
                failed.append(msg)
            return []

    def _cannot_decide(self, what: str, failed: list[str]) -> None:
        """Record that ``what`` is unknown because of the failed reads (section unknown)."""
        self.undecided.append(f"{what} ({'; '.join(failed)})")

    def inspect(self) -> Inspection:
        daemonsets = self.kube.list("apps/v1", "daemonsets")  # 403 → section unknown
        nodes_failed: list[str] = []
        try:
            nodes = self.kube.list("v1", "nodes")
        except KubeError as e:
            self.read_errors.append(f"nodes: {e}")
            nodes_failed.append(f"nodes: {e}")
            nodes = []
        agents = c.find_agents(daemonsets)
        cni = c.primary_cni(agents) or c.cni_from_nodes(nodes) or "unknown"
        if cni == "unknown" and nodes_failed:
            self._cannot_decide("no CNI agent DaemonSet was found and the nodes could not be "
                                "read to detect an embedded one", nodes_failed)
        self.facts["agents"] = sorted(agents)
        self.facts["cni"] = cni
        self.facts["display"] = c.DISPLAY[cni]
        handler = {"flannel": self._flannel, "canal": self._canal, "calico": self._calico,
                   "cilium": self._cilium, "kube-router": self._kube_router,
                   "antrea": self._antrea, "weave": self._weave}.get(cni, self._unknown)
        summary = handler(agents, nodes)
        self._agent_health(agents, cni)
        self._extra_agents(agents, cni)
        if self.read_errors:
            self.facts["read_errors"] = self.read_errors
        if self.undecided:
            self.facts["undecided"] = "; ".join(self.undecided)
        return Inspection(summary=summary, findings=tuple(self.findings), facts=self.facts)

    def _set_agent(self, ds: Obj | None, prefer: tuple[str, ...] = ()) -> None:
        if ds:
            self.facts["agent"] = subject("daemonset", ds)
            self.facts["namespace"] = namespace(ds)
            self.facts["version"] = c.agent_version(ds, prefer)

    # -- Flannel ------------------------------------------------------------------------
    def _flannel_conf(self, ds: Obj | None, cm_names: tuple[str, ...],
                      nodes: list[Obj]) -> c.FlannelNetConf | None:
        """Find and parse ``net-conf.json``; findings for a missing or malformed one. When the
        ConfigMap could not be read (403...), it is not called missing: the section is
        undecided (the backend may still come from node annotations)."""
        ref = c.flannel_configmap_ref(ds) if ds else None
        names = tuple(dict.fromkeys(n for n in (ref, *cm_names) if n))
        spaces = tuple(dict.fromkeys(n for n in ((namespace(ds) if ds else None),
                                                 *FLANNEL_NAMESPACES) if n))
        cm = None
        failed: list[str] = []
        for ns in spaces:
            for nm in names:
                cm = self._get("v1", "configmaps", nm, ns, failed)
                if cm is not None:
                    break
            if cm is not None:
                break
        if cm is None and failed:
            conf = _flannel_from_nodes(nodes)
            if ds is not None or conf is None:
                self._cannot_decide(
                    f"Flannel's ConfigMap {names[0]} could not be read, so net-conf.json was "
                    "not checked" + (" (backend taken from node annotations)" if conf else
                                     " and the backend is unknown"), failed)
            return conf
        if cm is None or "net-conf.json" not in (cm.get("data") or {}):
            conf = _flannel_from_nodes(nodes)
            if conf is None and ds is not None:
                self.findings.append(_f(
                    "CNI009", Severity.WARNING, subject("daemonset", ds),
                    f"Flannel's ConfigMap {names[0]} with net-conf.json was not found, so the "
                    f"backend cannot be read and new flannel pods may fail to start.",
                    {"configmaps_tried": list(names), "namespaces_tried": list(spaces)}))
            return conf
        text = str((cm.get("data") or {})["net-conf.json"])
        try:
            conf = c.parse_net_conf(text)
        except c.NetConfError as e:
            self.findings.append(_f(
                "CNI002", Severity.CRITICAL, subject("configmap", cm),
                f"{e}; flanneld will refuse to start with it on the next pod restart.",
                {"error": str(e), "net-conf.json": text[:2000]}))
            return None
        self.facts["flannel"] = {**conf.as_dict(), "configmap": subject("configmap", cm)}
        return conf

    def _flannel(self, agents: dict[str, Obj], nodes: list[Obj]) -> str:
        ds = agents.get("flannel")
        self._set_agent(ds, ("kube-flannel",))
        conf = self._flannel_conf(ds, ("kube-flannel-cfg",), nodes)
        sidecar = bool(ds and c.flannel_netpol_sidecar(ds))
        self.facts["encapsulation"] = conf.backend if conf else None
        # embedded Flannel (k3s/RKE2, no DaemonSet) may run beside a policy controller the API
        # does not show: unknown, as runbooks._lib.netpol_live.cni_enforcement says
        enforces: bool | None = sidecar if ds is not None else None
        self.facts["enforces_networkpolicy"] = enforces
        subj = self.facts["agent"] or "cni/flannel"
        if enforces is False:
            self.findings.append(_f(
                "CNI003", Severity.INFO, subj,
                "Flannel does not enforce NetworkPolicy, so NetworkPolicy objects on this "
                "cluster have no effect.",
                {"cni": "flannel", "containers": [n for n, _ in c.container_names_images(ds)]
                 if ds else [], "netpol_sidecar": False}))
        ver = _bare(self.facts["version"])
        head = f"Flannel {ver}" if ver else "Flannel"
        if ds is None:
            head += " (embedded, no DaemonSet)"
        pol = ("NetworkPolicy enforcement unknown (embedded: a policy controller may run "
               "beside it)" if enforces is None
               else "enforces NetworkPolicy (kube-network-policies)" if enforces
               else "does not enforce NetworkPolicy")
        return f"{head}, {_backend_text(conf)}, {pol}"

    # -- Canal --------------------------------------------------------------------------
    def _canal(self, agents: dict[str, Obj], nodes: list[Obj]) -> str:
        ds = agents.get("canal") or agents.get("calico")
        self._set_agent(ds, ("calico-node",))
        fl_ds = agents.get("flannel")
        conf = self._flannel_conf(ds if "canal" in agents else fl_ds,
                                  ("canal-config", "kube-flannel-cfg"), nodes)
        cfg_ns = namespace(ds) if ds else "kube-system"
        failed: list[str] = []
        cfg = self._get("v1", "configmaps", "canal-config", cfg_ns, failed) or \
            self._get("v1", "configmaps", "calico-config", cfg_ns, failed)
        backend = ((cfg or {}).get("data") or {}).get("calico_backend") if cfg else None
        if cfg is None and failed:
            # Canal's Calico runs policy-only unless told otherwise; what it was told is unknown
            self.facts["calico_backend"] = None
            self._cannot_decide("Canal's configuration (canal-config / calico-config) could not "
                                "be read, so its Calico backend is unknown", failed)
        else:
            self.facts["calico_backend"] = backend or "none"
        self.facts["encapsulation"] = conf.backend if conf else None
        self.facts["enforces_networkpolicy"] = True
        calico_v = _bare(c.agent_version(ds, ("calico-node",))) if ds else None
        flannel_v = None
        if ds:
            for n, img in c.container_names_images(ds):
                if "flannel" in n or "flannel" in img:
                    flannel_v = _bare(image_version(img))
        if fl_ds and not flannel_v:
            flannel_v = _bare(c.agent_version(fl_ds, ("kube-flannel",)))
        parts = [f"Calico {calico_v}" if calico_v else "Calico",
                 f"Flannel {flannel_v}" if flannel_v else "Flannel"]
        head = f"Canal ({parts[0]} policy + {parts[1]} data plane)"
        if ds is None:
            head = "Canal (Flannel data plane + Calico policy, detected from node annotations)"
        return f"{head}, {_backend_text(conf)}, enforces NetworkPolicy"

    # -- Calico -------------------------------------------------------------------------
    def _calico(self, agents: dict[str, Obj], nodes: list[Obj]) -> str:
        ds = agents.get("calico")
        self._set_agent(ds, ("calico-node",))
        ns = namespace(ds) if ds else "kube-system"
        self.facts["enforces_networkpolicy"] = True
        # backend: calico-config, then the agent's env, then the operator Installation
        backend, source = None, None
        failed: list[str] = []
        for cns in dict.fromkeys(("kube-system", ns)):
            cm = self._get("v1", "configmaps", "calico-config", cns, failed)
            if cm and (cm.get("data") or {}).get("calico_backend"):
                backend, source = str(cm["data"]["calico_backend"]), subject("configmap", cm)
                break
        if backend is None and ds:
            for ctr in template_spec(ds).get("containers") or []:
                val = env_of(ctr, "CALICO_NETWORKING_BACKEND")
                if val:
                    backend, source = val, f"{subject('daemonset', ds)} env"
                    break
        installation = None
        inst_failed: list[str] = []
        if self.kube.served("operator.tigera.io/v1", "installations"):
            installation = self._get("operator.tigera.io/v1", "installations", "default",
                                     failed=inst_failed)
        failed += inst_failed
        pool_failed: list[str] = []
        pools = self._calico_pools(pool_failed)
        if not pools and installation:
            pools = cal.installation_pools(installation)
        if backend is None and installation:
            backend = cal.backend_from_installation(installation, pools)
            source = "installation/default"
        if backend is None and failed:
            self._cannot_decide("Calico's backend could not be read", failed)
        if not pools and pool_failed:
            self._cannot_decide("Calico's IP pools could not be read, so the encapsulation is "
                                "unknown", pool_failed)
        self._calico_ebpf(ds, installation, inst_failed)
        self.facts["calico_backend"] = backend
        self.facts["calico_backend_source"] = source
        self.facts["calico_install"] = "operator" if installation else "manifest"
        self.facts["calico_pools"] = [p.as_dict() for p in pools]
        self.facts["encapsulation"] = cal.cluster_encapsulation(pools)
        for p in pools:
            psubj = f"ippool/{p.name}" if p.source != "operator.tigera.io/v1" \
                else "installation/default"
            if p.both_enabled:
                self.findings.append(_f(
                    "CNI004", Severity.WARNING, psubj,
                    f"Calico IP pool {p.name} enables both IPIP ({p.ipip_mode}) and VXLAN "
                    f"({p.vxlan_mode}), which Calico does not support on one pool.",
                    {"pool": p.as_dict()}))
            if p.tunnel_on_ipv6:
                self.findings.append(_f(
                    "CNI007", Severity.WARNING, psubj,
                    f"Calico IPv6 pool {p.name} requests IPIP or VXLAN encapsulation, which "
                    f"Calico does not support for IPv6 pools.", {"pool": p.as_dict()}))
        ver = _bare(self.facts["version"])
        head = f"Calico {ver}" if ver else "Calico"
        enc = _calico_encap_text(self.facts["encapsulation"])
        bk = {"bird": "BGP (bird)", "vxlan": "no BGP (vxlan backend)",
              "none": "no BGP (policy-only backend)"}.get(backend or "", "backend unknown")
        ebpf = ", eBPF data plane (replaces kube-proxy)" \
            if self.facts["kube_proxy_replacement"] else ""
        return f"{head}, {enc}, {bk}{ebpf}, enforces NetworkPolicy"

    def _calico_ebpf(self, ds: Obj | None, installation: Obj | None,
                     failed: list[str]) -> None:
        """``kube_proxy_replacement`` for Calico: True when the eBPF data plane is on (it
        replaces kube-proxy), False when nothing visible turns it on, None when the objects
        that would say so (``failed``: the Installation read) could not be read."""
        felix, felix_failed = None, list(failed)
        for api in ("crd.projectcalico.org/v1", "projectcalico.org/v3"):
            if self.kube.served(api, "felixconfigurations"):
                felix = self._get(api, "felixconfigurations", "default", failed=felix_failed)
                if felix is not None:
                    break
        bpf_env = None
        for ctr in template_spec(ds).get("containers") or [] if ds else []:
            if isinstance(ctr, dict) and env_of(ctr, "FELIX_BPFENABLED") is not None:
                bpf_env = env_of(ctr, "FELIX_BPFENABLED")
                break
        where = cal.ebpf_dataplane(installation, felix, {"FELIX_BPFENABLED": bpf_env})
        if where:
            self.facts["kube_proxy_replacement"] = True
            self.facts["replacement_detail"] = f"eBPF data plane, {where}"
        elif felix_failed:
            self.facts["kube_proxy_replacement"] = None
        else:
            self.facts["kube_proxy_replacement"] = False

    def _calico_pools(self, failed: list[str]) -> list[cal.Pool]:
        """IPPools from both API groups, de-duplicated by name (v3 wins); failed reads are
        added to ``failed``."""
        pools: dict[str, cal.Pool] = {}
        for api in ("crd.projectcalico.org/v1", "projectcalico.org/v3"):
            for obj in self._list(api, "ippools", failed=failed):
                p = cal.parse_pool(obj)
                pools[p.name] = p
        return [pools[k] for k in sorted(pools)]

    # -- Cilium -------------------------------------------------------------------------
    def _cilium(self, agents: dict[str, Obj], nodes: list[Obj]) -> str:
        ds = agents.get("cilium")
        self._set_agent(ds, ("cilium-agent",))
        ns = namespace(ds) if ds else "kube-system"
        failed: list[str] = []
        cm = self._get("v1", "configmaps", "cilium-config", ns, failed)
        if cm is None and ns != "kube-system":
            cm = self._get("v1", "configmaps", "cilium-config", "kube-system", failed)
        version = c.cilium_version(ds)
        subj = self.facts["agent"] or "cni/cilium"
        if cm is None:
            # whether Cilium replaces kube-proxy is unknown, never "no" (that would raise a
            # false KP002 when kube-proxy is absent by design)
            self.facts["kube_proxy_replacement"] = None
            self.facts["enforces_networkpolicy"] = True
            ver = _bare(self.facts["version"])
            if failed:
                self._cannot_decide("Cilium's ConfigMap cilium-config could not be read, so its "
                                    "routing mode and kube-proxy replacement are unknown", failed)
                return (f"Cilium{' ' + ver if ver else ''}, configuration not readable, "
                        "enforces NetworkPolicy (Cilium's default)")
            self.findings.append(_f(
                "CNI009", Severity.WARNING, subj,
                "Cilium's ConfigMap cilium-config was not found, so routing mode and "
                "kube-proxy replacement cannot be read.",
                {"configmap": f"{ns}/cilium-config"}))
            return (f"Cilium{' ' + ver if ver else ''}, configuration unknown, "
                    "enforces NetworkPolicy")
        cfg = c.parse_cilium_config(cm.get("data") or {}, version)
        cm_subj = subject("configmap", cm)
        self.facts["cilium"] = cfg.as_dict()
        self.facts["encapsulation"] = cfg.encapsulation
        self.facts["enforces_networkpolicy"] = cfg.enforces_networkpolicy
        self.facts["kube_proxy_replacement"] = cfg.kpr
        self.facts["replacement_detail"] = (
            f"kube-proxy-replacement={cfg.kpr_raw if cfg.kpr_raw is not None else 'unset'}, "
            f"routing-mode {cfg.routing_mode}")
        if cfg.kpr_legacy:
            honoured = "is no longer honoured (Cilium 1.15 and later only accept true/false)" \
                if version and version >= (1, 15, 0) else \
                "is deprecated since Cilium 1.14 and not honoured from 1.15"
            self.findings.append(_f(
                "CNI005", Severity.WARNING, cm_subj,
                f"Cilium kube-proxy-replacement is set to the legacy value "
                f"{cfg.kpr_raw!r}, which {honoured}; set it to \"true\" or \"false\".",
                {"kube-proxy-replacement": cfg.kpr_raw,
                 "cilium_version": ".".join(map(str, version)) if version else None,
                 "treated_as_replacement": cfg.kpr}))
        if cfg.legacy_tunnel is not None:
            if cfg.legacy_tunnel_ignored:
                msg = (f"cilium-config sets the legacy tunnel option ({cfg.legacy_tunnel!r}), "
                       f"which Cilium {_bare(self.facts['version']) or '>= 1.15'} ignores (it "
                       f"was removed in 1.15), so Cilium runs routing-mode {cfg.routing_mode}"
                       + (f" ({cfg.tunnel_protocol})" if cfg.tunnel_protocol else "")
                       + "; set routing-mode and tunnel-protocol instead.")
            else:
                msg = (f"Cilium uses the legacy tunnel option ({cfg.legacy_tunnel!r}), removed "
                       f"in Cilium 1.15; use routing-mode and tunnel-protocol instead.")
            self.findings.append(_f(
                "CNI006", Severity.WARNING, cm_subj, msg,
                {"tunnel": cfg.legacy_tunnel, "routing-mode": cfg.routing_mode,
                 "ignored": cfg.legacy_tunnel_ignored,
                 "cilium_version": ".".join(map(str, version)) if version else None}))
        if not cfg.enforces_networkpolicy:
            self.findings.append(_f(
                "CNI003", Severity.INFO, cm_subj,
                "Cilium runs with enable-policy=never, so NetworkPolicy objects have no effect.",
                {"enable-policy": "never"}))
        ver = _bare(self.facts["version"])
        head = f"Cilium {ver}" if ver else "Cilium"
        route = (f"tunnel ({cfg.tunnel_protocol})" if cfg.routing_mode == "tunnel"
                 else "native routing (no tunnel)")
        kpr = "kube-proxy replacement on" if cfg.kpr else "kube-proxy replacement off"
        pol = "enforces NetworkPolicy" if cfg.enforces_networkpolicy \
            else "does not enforce NetworkPolicy"
        return f"{head}, {route}, {kpr}, {pol}"

    # -- others -------------------------------------------------------------------------
    def _kube_router(self, agents: dict[str, Obj], nodes: list[Obj]) -> str:
        ds = agents["kube-router"]
        self._set_agent(ds, ("kube-router",))
        feats = c.kube_router_features(ds)
        flags = c.agent_flags(ds, "kube-router")
        overlay = flags.get("enable-overlay", "true").lower() in ("true", "1", "t")
        otype = flags.get("overlay-type", "subnet")
        self.facts["encapsulation"] = ("ipip" if otype == "full" else "ipip-crosssubnet") \
            if overlay else "none"
        self.facts["enforces_networkpolicy"] = feats["firewall"]
        self.facts["kube_proxy_replacement"] = feats["service_proxy"]
        self.facts["replacement_detail"] = \
            f"--run-service-proxy={str(feats['service_proxy']).lower()}"
        self.facts["kube_router"] = feats
        if not feats["firewall"]:
            self.findings.append(_f(
                "CNI003", Severity.INFO, subject("daemonset", ds),
                "kube-router runs with --run-firewall=false, so NetworkPolicy objects have no "
                "effect.", {"flags": flags}))
        ver = _bare(self.facts["version"])
        return (f"kube-router{' ' + ver if ver else ''}, BGP routing"
                f"{', IPIP overlay' if overlay else ''}, "
                f"service proxy {'on' if feats['service_proxy'] else 'off'}, "
                f"{'enforces' if feats['firewall'] else 'does not enforce'} NetworkPolicy")

    def _antrea(self, agents: dict[str, Obj], nodes: list[Obj]) -> str:
        """Antrea always enforces NetworkPolicy; AntreaProxy with ``proxyAll: true`` in the
        agent's ``antrea-agent.conf`` replaces kube-proxy entirely (antrea-io/antrea
        ``docs/antrea-proxy.md``, "Removing kube-proxy"). The config lives in ConfigMap
        ``antrea-config`` (older manifests: ``antrea-config-<hash>``) in the agent's namespace;
        when it cannot be read or parsed, kube-proxy replacement is unknown, never "no"."""
        ds = agents["antrea"]
        self._set_agent(ds, ("antrea-agent",))
        self.facts["enforces_networkpolicy"] = True
        failed: list[str] = []
        cms = [cm for cm in self._list("v1", "configmaps", namespace(ds) or "kube-system",
                                       failed)
               if name(cm) == "antrea-config" or name(cm).startswith("antrea-config-")]
        conf_text = next((str((cm.get("data") or {}).get("antrea-agent.conf"))
                          for cm in cms if (cm.get("data") or {}).get("antrea-agent.conf")),
                         None)
        proxy_all: bool | None = None
        if conf_text is not None:
            try:
                conf = yaml.safe_load(conf_text) or {}
                ap = conf.get("antreaProxy") if isinstance(conf, dict) else None
                proxy_all = bool(ap.get("proxyAll", False)) if isinstance(ap, dict) else False
            except yaml.YAMLError:
                proxy_all = None
        self.facts["kube_proxy_replacement"] = proxy_all
        if proxy_all:
            self.facts["replacement_detail"] = "AntreaProxy proxyAll"
        if failed:
            self._cannot_decide("whether AntreaProxy replaces kube-proxy", failed)
        ver = _bare(self.facts["version"])
        kpr = ", AntreaProxy replaces kube-proxy (proxyAll)" if proxy_all else ""
        return f"Antrea{' ' + ver if ver else ''}{kpr}, enforces NetworkPolicy"

    def _weave(self, agents: dict[str, Obj], nodes: list[Obj]) -> str:
        ds = agents["weave"]
        self._set_agent(ds, ("weave",))
        enforces = c.weave_enforces(ds)
        self.facts["enforces_networkpolicy"] = enforces
        self.facts["encapsulation"] = "vxlan"
        if not enforces:
            self.findings.append(_f(
                "CNI003", Severity.INFO, subject("daemonset", ds),
                "Weave Net runs without its weave-npc container, so NetworkPolicy objects have "
                "no effect.", {"containers": [n for n, _ in c.container_names_images(ds)]}))
        ver = _bare(self.facts["version"])
        return (f"Weave Net{' ' + ver if ver else ''}, "
                f"{'enforces' if enforces else 'does not enforce'} NetworkPolicy")

    def _unknown(self, agents: dict[str, Obj], nodes: list[Obj]) -> str:
        # an unrecognised CNI may well replace kube-proxy: unknown, not "no"
        self.facts["kube_proxy_replacement"] = None
        self.findings.append(_f(
            "CNI001", Severity.WARNING, "cluster",
            "No known CNI agent (Flannel, Canal, Calico, Cilium, kube-router, Antrea, Weave) was "
            "found, so encapsulation and NetworkPolicy enforcement are unknown.",
            {"daemonsets_checked": True, "agents_known": list(c.AGENT_DAEMONSETS)}))
        return "unknown CNI"

    # -- cross-cutting ------------------------------------------------------------------
    def _agent_health(self, agents: dict[str, Obj], cni: str) -> None:
        for key in dict.fromkeys(("canal", "calico", "flannel") if cni == "canal" else (cni,)):
            ds = agents.get(key)
            if not ds:
                continue
            st = ds.get("status") or {}
            desired, ready = st.get("desiredNumberScheduled"), st.get("numberReady")
            if isinstance(desired, int) and isinstance(ready, int) and ready < desired:
                self.findings.append(_f(
                    "CNI008", Severity.WARNING, subject("daemonset", ds),
                    f"The {name(ds)} agent is Ready on {ready} of {desired} nodes, so pod "
                    f"networking on the other nodes may be broken.",
                    {"desiredNumberScheduled": desired, "numberReady": ready,
                     "numberUnavailable": st.get("numberUnavailable")}))

    def _extra_agents(self, agents: dict[str, Obj], cni: str) -> None:
        expected = {cni} | ({"calico", "flannel"} if cni == "canal" else set())
        extra = sorted(set(agents) - expected)
        if extra:
            self.findings.append(_f(
                "CNI010", Severity.INFO, self.facts["agent"] or "cluster",
                f"Besides {c.DISPLAY[cni]}, agents of {', '.join(c.DISPLAY[e] for e in extra)} "
                f"are deployed; check that only one CNI owns the pod network (chaining aside).",
                {"primary": cni, "others": {e: subject("daemonset", agents[e]) for e in extra}}))


def _backend_text(conf: c.FlannelNetConf | None) -> str:
    if conf is None:
        return "backend unknown"
    if conf.backend == "vxlan":
        extra = f"VNI {conf.vni}"
        if conf.port:
            extra += f", port {conf.port}"
        if conf.direct_routing:
            extra += ", DirectRouting"
        return f"VXLAN ({extra})"
    names = {"host-gw": "host-gw (no encapsulation)", "wireguard": "WireGuard",
             "udp": "UDP", "ipip": "IPIP", "ipsec": "IPsec"}
    return names.get(conf.backend, conf.backend)


def _calico_encap_text(token: str | None) -> str:
    if not token:
        return "encapsulation unknown"
    words = {"ipip": "IPIP", "ipip-crosssubnet": "IPIP CrossSubnet", "vxlan": "VXLAN",
             "vxlan-crosssubnet": "VXLAN CrossSubnet", "none": "no encapsulation",
             "invalid": "IPIP and VXLAN on one pool"}
    return " + ".join(words.get(t, t) for t in token.split("+"))


def _flannel_from_nodes(nodes: list[Obj]) -> c.FlannelNetConf | None:
    """Backend from node annotations (embedded Flannel in k3s/RKE2 has no ConfigMap)."""
    for n in nodes:
        ann = annotations_of(n)
        bt = ann.get("flannel.alpha.coreos.com/backend-type")
        if bt:
            vni = None
            data = ann.get("flannel.alpha.coreos.com/backend-data")
            if bt == "vxlan":
                vni = 1
                try:
                    vni = int(json.loads(data or "{}").get("VNI", 1))
                except (ValueError, TypeError, AttributeError):
                    vni = 1
            return c.FlannelNetConf(network=None, backend=str(bt).lower(), vni=vni, port=None,
                                    direct_routing=False, enable_nftables=False,
                                    raw={"from": f"node/{name(n)} annotations"})
    return None


__all__ = ["CniProbe"]
