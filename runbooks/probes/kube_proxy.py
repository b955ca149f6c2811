"""Status probe for the ``kube-proxy`` section: deployed or replaced, configured and running
mode, strictARP, where the configuration comes from, pod health, pending restarts
(DOMAIN.md sections 1.1, 1.5, 1.8, 1.9, 5.1).

Facts (contract in ``runbooks/probes/__init__.py``): ``deployed``, ``replaced_by``, ``mode``
(the configured effective mode; the running mode from the logs when the configuration is not
visible), ``strict_arp``, ``config_source``, ``version``; also ``configured_mode``,
``mode_raw``, ``running_mode``, ``running_modes`` (pod → mode), ``scheduler``, ``conntrack``
(see ``runbooks._lib.kubeproxy.ConntrackSettings.as_dict``), ``configmap``,
``component_config_hash``, ``config_changed_at``, ``pods`` (name, node, ready, restarts,
waiting, started, fatal log lines), ``log_errors``, ``server_version``,
``obsolete_fields``, ``unknown_fields``; ``no_pods`` (True: the DaemonSet exists but schedules
no pod, so no kube-proxy runs), ``not_running`` (why no kube-proxy runs although the DaemonSet
exists: no pod, or none Ready) and ``replacement_unknown`` (kube-proxy does not run and the
``cni`` facts cannot tell whether the CNI replaces it: the section is then undecided, neither
KP001 nor KP002).

When no kube-proxy runs (absent, a DaemonSet without pods, or no pod Ready) it is KP002
(critical) unless the CNI replaces it (KP001); when neither the configured nor the running
mode is known the section is undecided.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml

from bot.sdk import Finding, Inspection, KubeError, Probe, ProbeContext, Severity
from runbooks._lib import kobj as k
from runbooks._lib import kubeproxy as kp
from runbooks._lib.versions import fmt, image_version, parse_version, server_version

SECTION = "kube-proxy"
NS = "kube-system"
HASH_ANN = "kubeadm.kubernetes.io/component-config.hash"
#: Log lines read per kube-proxy pod (startup lines are near the top of a quiet log).
LOG_TAIL_LINES = 1000
#: At most this many pod logs are read per report (bounded API calls, DESIGN.md section 4).
MAX_LOGS = 5
_BROKEN_WAITING = ("CrashLoopBackOff", "CreateContainerConfigError", "ImagePullBackOff",
                   "ErrImagePull", "RunContainerError", "CreateContainerError")


def _f(code: str, sev: Severity, subj: str, msg: str, ev: dict[str, Any],
       runbook: str | None = None, params: dict[str, Any] | None = None) -> Finding:
    return Finding(code=code, severity=sev, section=SECTION, subject=subj, message=msg,
                   evidence=ev, runbook=runbook, params=params)


def pod_logs(ctx: ProbeContext, pods: list[k.Obj]) -> tuple[dict[str, kp.ProxyLog],
                                                             dict[str, str]]:
    """Startup-log facts for up to :data:`MAX_LOGS` kube-proxy pods (broken pods first, then
    by name), and the read error per pod whose log could not be read (403/404 are not fatal:
    the running mode is then unknown). Shared with the conntrack probe; reads are cached for
    the report."""
    def rank(p: k.Obj) -> tuple[int, str]:
        broken = any(r in _BROKEN_WAITING for r in k.waiting_reasons(p)) or \
            k.pod_ready(p) is False
        return (0 if broken else 1, k.name(p))
    logs: dict[str, kp.ProxyLog] = {}
    errors: dict[str, str] = {}
    for p in sorted(pods, key=rank)[:MAX_LOGS]:
        nm = k.name(p)
        try:
            text = ctx.kube.pod_log(k.namespace(p) or NS, nm, None, LOG_TAIL_LINES)
        except KubeError as e:
            errors[nm] = str(e)
            continue
        logs[nm] = kp.parse_startup_log(text)
    return logs, errors


def list_pods(ctx: ProbeContext) -> list[k.Obj]:
    """kube-proxy pods in kube-system: label ``k8s-app=kube-proxy`` (kubeadm, kubespray),
    else ``component=kube-proxy`` (RKE2 static pods)."""
    pods = ctx.kube.list("v1", "pods", NS, label_selector="k8s-app=kube-proxy")
    if not pods:
        pods = ctx.kube.list("v1", "pods", NS, label_selector="component=kube-proxy")
    return sorted(pods, key=k.name)


def _container(spec: k.Obj) -> k.Obj | None:
    cs = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    return next((c for c in cs if c.get("name") == "kube-proxy"), cs[0] if cs else None)


class KubeProxyProbe(Probe):
    """kube-proxy: deployed or replaced, configured and running mode, strictARP, health."""

    section = SECTION
    title = "kube-proxy"
    order = 30
    position = 20

    def inspect(self, ctx: ProbeContext) -> Inspection:
        """Read the kube-proxy DaemonSet (a 403 makes the section unknown), its pods, its
        configuration and (best effort) its startup logs. Findings KP001-KP015 (see
        ``docs/findings.md``). Reads ``ctx.facts["cni"]`` (kube-proxy
        replacement) and ``ctx.facts["nodes"]`` (kernels for nftables)."""
        return _Run(ctx).inspect()


class _Run:
    def __init__(self, ctx: ProbeContext) -> None:
        self.ctx = ctx
        self.kube = ctx.kube
        self.findings: list[Finding] = []
        self.undecided: list[str] = []
        self.pods_listed = True
        self.facts: dict[str, Any] = {
            "deployed": False, "replaced_by": None, "mode": None, "strict_arp": None,
            "config_source": None, "version": None}

    def inspect(self) -> Inspection:
        ds = self.kube.get("apps/v1", "daemonsets", "kube-proxy", NS)
        try:
            pods = list_pods(self.ctx)
        except KubeError as e:
            if ds is None:
                raise
            self.undecided.append(f"kube-proxy pods could not be read: {e}")
            self.pods_listed = False
            pods = []
        sv = server_version(self.kube.server_version())
        self.facts["server_version"] = fmt(sv) if sv else None
        cni = self.ctx.facts.get("cni")
        if ds is None and not pods:
            summary = self._absent(cni)
        else:
            summary = self._deployed(ds, pods, cni, sv)
        if self.undecided:
            self.facts["undecided"] = "; ".join(self.undecided)
        return Inspection(summary=summary, findings=tuple(self.findings), facts=self.facts)

    # -- not deployed ---------------------------------------------------------------------
    def _absent(self, cni: dict[str, Any] | None) -> str:
        subj = f"daemonset/{NS}/kube-proxy"
        if self._embedded_in_k3s():
            self.facts.update(deployed=True, config_source="unknown", embedded="k3s")
            self.findings.append(_f(
                "KP014", Severity.INFO, subj,
                "kube-proxy runs embedded in the k3s agent (no pods), so its mode and "
                "configuration are not visible through the API.", {"embedded": "k3s"}))
            self.undecided.append("kube-proxy is embedded in k3s; its mode needs node access")
            return "kube-proxy embedded in k3s, mode unknown"
        if cni is None:
            self.undecided.append("kube-proxy is not deployed and the CNI is unknown, so whether "
                                  "something replaces it cannot be decided")
            return "kube-proxy not deployed, replacement unknown (CNI unknown)"
        if cni.get("kube_proxy_replacement") is None:
            self._replacement_unknown(cni, "kube-proxy is not deployed")
            return (f"kube-proxy not deployed, replacement unknown (whether "
                    f"{cni.get('display') or 'the CNI'} replaces it could not be determined)")
        if cni.get("kube_proxy_replacement"):
            who = str(cni.get("display") or cni.get("cni"))
            detail = cni.get("replacement_detail")
            self.facts["replaced_by"] = cni.get("cni")
            self.facts["replacement_detail"] = detail
            self.findings.append(_f(
                "KP001", Severity.INFO, subj,
                f"kube-proxy is not deployed because {who} does service load-balancing"
                f"{' (' + detail + ')' if detail else ''}, so a KubeProxyDown alert on this "
                f"cluster is a false alarm.",
                {"kube_proxy_daemonset": None, "kube_proxy_configmap": None,
                 "replaced_by": cni.get("cni"), "replacement_detail": detail,
                 "cni_agent": cni.get("agent")}))
            return (f"kube-proxy not deployed — service load-balancing by {who}"
                    f"{' (' + detail + ')' if detail else ''}")
        self.findings.append(_f(
            "KP002", Severity.CRITICAL, subj,
            f"kube-proxy is not deployed and {cni.get('display') or 'the CNI'} does not replace "
            f"it, so Service ClusterIPs and NodePorts are not programmed on any node.",
            {"kube_proxy_daemonset": None, "kube_proxy_pods": 0, "cni": cni.get("cni"),
             "kube_proxy_replacement": cni.get("kube_proxy_replacement"),
             "replacement_detail": cni.get("replacement_detail")}))
        return "kube-proxy not deployed and nothing replaces it"

    def _replacement_unknown(self, cni: dict[str, Any], situation: str) -> None:
        """Mark the section undecided: kube-proxy does not run, and whether the CNI replaces it
        is unknown (``kube_proxy_replacement`` None, e.g. ``cilium-config`` unreadable). Neither
        KP001 nor KP002: that would state a guess as fact."""
        why = cni.get("undecided") or (
            "no known CNI agent was found" if cni.get("cni") in (None, "unknown")
            else "its configuration could not be read or is missing; see its findings")
        self.facts["replacement_unknown"] = True
        self.undecided.append(
            f"{situation} and whether {cni.get('display') or cni.get('cni') or 'the CNI'} "
            f"replaces it is unknown (CNI section: {why})")

    def _embedded_in_k3s(self) -> bool:
        try:
            nodes = self.kube.list("v1", "nodes")
        except KubeError:
            return False
        return any("+k3s" in str(k.dig(n, "status", "nodeInfo", "kubeletVersion", default=""))
                   for n in nodes)

    # -- deployed -------------------------------------------------------------------------
    def _deployed(self, ds: k.Obj | None, pods: list[k.Obj], cni: dict[str, Any] | None,
                  sv: tuple[int, int, int] | None) -> str:
        self.facts["deployed"] = True
        ds_subj = f"daemonset/{NS}/kube-proxy"
        spec = k.template_spec(ds) if ds else k.dig(pods[0], "spec", default={}) if pods else {}
        container = _container(spec)
        args = kp.parse_args((container or {}).get("command"), (container or {}).get("args"))
        src = kp.config_source(spec, container)
        assumed = False
        if src.kind == "unknown" and self.kube.get("v1", "configmaps", "kube-proxy", NS):
            src, assumed = kp.ConfigSource("configmap", "kube-proxy", "config.conf"), True
        cfg, cm = self._config(src, args, ds_subj)
        self.facts["config_source"] = {"configmap": "configmap", "flags": "flags"}.get(
            src.kind, "unknown")
        if assumed:
            self.facts["config_source_assumed"] = True
        if args.proxy_flags and src.kind == "configmap":
            self.facts["ignored_flags"] = args.proxy_flags

        # versions
        images = [str((container or {}).get("image", ""))] + \
            [img for p in pods for img in k.container_images(k.dig(p, "spec", default={}))]
        version = next((v for v in (image_version(i) for i in images if i) if v), None)
        logs, log_errors = pod_logs(self.ctx, pods)
        if version is None:
            version = next((lg.version for lg in logs.values() if lg.version), None)
        self.facts["version"] = version

        # modes
        configured = cfg.mode if cfg else None
        running_modes = {p: lg.running_mode for p, lg in logs.items() if lg.running_mode}
        running = Counter(running_modes.values()).most_common(1)[0][0] if running_modes else None
        self.facts.update(
            configured_mode=configured, mode_raw=cfg.mode_raw if cfg else None,
            running_mode=running, running_modes=running_modes,
            mode=configured or running, strict_arp=cfg.strict_arp if cfg else None,
            scheduler=(cfg.scheduler or "rr") if cfg else None,
            conntrack=cfg.conntrack.as_dict() if cfg else None,
            obsolete_fields=list(cfg.obsolete_fields) if cfg else [],
            unknown_fields=list(cfg.unknown_fields) if cfg else [],
            log_errors=log_errors)
        changed = k.last_changed(cm) if cm else None
        self.facts["config_changed_at"] = changed.isoformat() if changed else None
        self.facts["config_changed_by"] = k.last_manager(cm) if cm else None
        if cm is not None:
            self.facts["configmap"] = k.subject("configmap", cm)
            self.facts["component_config_hash"] = k.annotations_of(cm).get(HASH_ANN)

        pod_facts = self._pods(pods, logs)
        self.facts["pods"] = pod_facts
        cm_subj = self.facts.get("configmap") or ds_subj
        if cfg is not None:
            self._config_findings(cfg, src, cm_subj, logs, sv)
        if src.kind in ("flags", "file") or (src.kind == "unknown" and not assumed):
            self.findings.append(_f(
                "KP013", Severity.INFO, ds_subj,
                {"flags": "kube-proxy is configured by command-line flags, not the kube-proxy "
                          "ConfigMap, so runbooks that edit config.conf do not apply.",
                 "file": f"kube-proxy reads its configuration from {src.path} on the node, not "
                         f"from a ConfigMap, so runbooks that edit config.conf do not apply.",
                 }.get(src.kind, "kube-proxy's command line is not visible, so where its "
                                 "configuration comes from is unknown."),
                {"config_source": src.kind, "path": src.path, "flags": args.proxy_flags}))
        self._restart_pending(pods, changed, cm_subj)
        self._mode_mismatch(configured, logs, pods, changed, cm_subj)
        idle = self._not_running(ds, pods)
        if idle is not None:
            self.facts["not_running"] = idle
            self._idle(idle, cni, ds_subj)
        else:
            self._replacement_overlap(cni, ds_subj)
        self._pod_health(pods, logs, version)
        if configured is None and running is None and not self.facts.get("no_pods"):
            self.undecided.append(
                "kube-proxy's mode is unknown: "
                + ("its configuration is not visible" if cfg is None else "configured mode "
                   "unknown")
                + " and the running mode could not be read from the pod logs"
                + (f" ({'; '.join(sorted(set(log_errors.values())))})" if log_errors else ""))
        return self._summary(cfg, src, running, pod_facts, log_errors, version)

    def _not_running(self, ds: k.Obj | None, pods: list[k.Obj]) -> dict[str, Any] | None:
        """Why no kube-proxy programs Services although the DaemonSet exists: it schedules no
        pod (``desiredNumberScheduled`` 0, or no pod listed) or none of its pods is Ready.
        None when some pod runs, or when this cannot be told (the pods could not be listed
        and the DaemonSet reports no status)."""
        if ds is None:
            return None
        st = ds.get("status") or {}
        desired, ready = st.get("desiredNumberScheduled"), st.get("numberReady")
        pods_known = self.pods_listed
        ready_pods = sum(1 for p in pods if k.pod_ready(p))
        ev = {"desiredNumberScheduled": desired, "numberReady": ready,
              "pods": len(pods) if pods_known else None,
              "node_selector": k.template_spec(ds).get("nodeSelector")}
        if desired == 0 or (pods_known and not pods):
            self.facts["no_pods"] = True
            return {**ev, "reason": "no-pods"}
        if (pods_known and pods and ready_pods == 0) or \
                (not pods_known and isinstance(ready, int) and ready == 0):
            return {**ev, "reason": "none-ready"}
        return None

    def _idle(self, idle: dict[str, Any], cni: dict[str, Any] | None, subj: str) -> None:
        """The DaemonSet exists but no kube-proxy runs: the same situation as an absent
        kube-proxy (KP002, or KP001 when the CNI replaces it)."""
        what = ("the kube-proxy DaemonSet runs no pod" if idle["reason"] == "no-pods"
                else "no kube-proxy pod is Ready")
        if cni is None:
            self.undecided.append(f"{what} and the CNI is unknown, so whether something "
                                  "replaces kube-proxy cannot be decided")
            return
        if cni.get("kube_proxy_replacement") is None:
            self._replacement_unknown(cni, what)
            return
        if cni.get("kube_proxy_replacement"):
            who = str(cni.get("display") or cni.get("cni"))
            detail = cni.get("replacement_detail")
            self.facts["replaced_by"] = cni.get("cni")
            self.facts["replacement_detail"] = detail
            if idle["reason"] == "no-pods":
                self.findings.append(_f(
                    "KP001", Severity.INFO, subj,
                    f"The kube-proxy DaemonSet exists but runs no pod, and {who} does service "
                    f"load-balancing{' (' + detail + ')' if detail else ''}; delete the "
                    f"leftover DaemonSet (a KubeProxyDown alert on this cluster is a false "
                    f"alarm).",
                    {**idle, "replaced_by": cni.get("cni"), "replacement_detail": detail,
                     "cni_agent": cni.get("agent")}))
            else:
                self._replacement_overlap(cni, subj)
            return
        self.findings.append(_f(
            "KP002", Severity.CRITICAL, subj,
            f"kube-proxy is not running: {what}"
            + (f" (desired {idle['desiredNumberScheduled']}, ready {idle['numberReady']})"
               if idle.get("desiredNumberScheduled") is not None else "")
            + f", and {cni.get('display') or 'the CNI'} does not replace it, so Service "
            "ClusterIPs and NodePorts are not programmed on any node.",
            {**idle, "kube_proxy_daemonset": f"{NS}/kube-proxy", "cni": cni.get("cni"),
             "kube_proxy_replacement": cni.get("kube_proxy_replacement"),
             "replacement_detail": cni.get("replacement_detail")}))

    def _config(self, src: kp.ConfigSource, args: kp.ProxyArgs, ds_subj: str
                ) -> tuple[kp.KubeProxyConfig | None, k.Obj | None]:
        """The configuration and (when from a ConfigMap) the ConfigMap object."""
        if src.kind == "flags":
            return kp.config_from_flags(args), None
        if src.kind != "configmap" or not src.configmap:
            return None, None
        cm = self.kube.get("v1", "configmaps", src.configmap, NS)
        if cm is None:
            self.findings.append(_f(
                "KP005", Severity.CRITICAL, ds_subj,
                f"The kube-proxy DaemonSet reads its configuration from ConfigMap "
                f"{NS}/{src.configmap}, which does not exist, so kube-proxy pods cannot start "
                f"on a restart.", {"configmap": f"{NS}/{src.configmap}", "path": src.path}))
            return None, None
        key = src.key or "config.conf"
        subj = k.subject("configmap", cm)
        text = (cm.get("data") or {}).get(key)
        if text is None:
            self.findings.append(_f(
                "KP010", Severity.CRITICAL, subj,
                f"The kube-proxy ConfigMap has no {key} key, so kube-proxy cannot load its "
                f"configuration on a restart.",
                {"key": key, "keys": sorted((cm.get("data") or {}).keys())}))
            return None, cm
        try:
            cfg = kp.parse_config(str(text))
        except kp.KubeProxyConfigError as e:
            self.findings.append(_f(
                "KP010", Severity.CRITICAL, subj,
                f"The kube-proxy {key} cannot be parsed ({e}), so kube-proxy will fail to "
                f"start on the next restart.", {"key": key, "error": str(e),
                                                "text": str(text)[:2000]}))
            return None, cm
        return cfg, cm

    def _config_findings(self, cfg: kp.KubeProxyConfig, src: kp.ConfigSource, subj: str,
                         logs: dict[str, kp.ProxyLog], sv: tuple[int, int, int] | None
                         ) -> None:
        base = {"mode_raw": cfg.mode_raw, "mode": cfg.mode, "strict_arp": cfg.strict_arp,
                "scheduler": cfg.scheduler or "rr", "config_source": src.kind,
                "component_config_hash": self.facts.get("component_config_hash"),
                "config_changed_at": self.facts.get("config_changed_at"),
                "config_changed_by": self.facts.get("config_changed_by")}
        if cfg.problems:
            self.findings.append(_f(
                "KP010", Severity.CRITICAL, subj,
                f"The kube-proxy configuration has values of the wrong type "
                f"({'; '.join(cfg.problems)}), so kube-proxy will refuse it on the next restart.",
                {**base, "problems": list(cfg.problems)}))
        if not cfg.mode_valid:
            self.findings.append(_f(
                "KP015", Severity.CRITICAL, subj,
                f"The kube-proxy mode {cfg.mode_raw!r} is not a supported Linux proxy mode "
                f"(iptables, ipvs, nftables), so kube-proxy will refuse to start on a restart.",
                base, runbook="kube-proxy-mode", params=self._suggest(sv, cfg)))
        lenient = [ln for lg in logs.values() for ln in lg.lines if "lenient" in ln]
        if cfg.obsolete_fields or cfg.unknown_fields:
            fields = [*cfg.obsolete_fields, *cfg.unknown_fields]
            self.findings.append(_f(
                "KP011", Severity.WARNING, subj,
                f"The kube-proxy configuration has obsolete or unknown fields "
                f"({', '.join(fields)}), so kube-proxy falls back to lenient decoding and a "
                f"typo in any field would be silently ignored.",
                {"obsolete_fields": {f: kp.OBSOLETE_FIELDS[f] for f in cfg.obsolete_fields},
                 "unknown_fields": list(cfg.unknown_fields), "lenient_log": lenient[:3]}))
        if cfg.mode == "iptables":
            why = ' (mode "" means iptables on Linux)' if cfg.mode_raw == "" else ""
            self.findings.append(_f(
                "KP004", Severity.INFO, subj,
                f"kube-proxy is configured for iptables mode{why}.",
                base, runbook="kube-proxy-mode", params=self._suggest(sv, cfg)))
        if cfg.mode == "ipvs" and sv and sv >= kp.IPVS_DEPRECATED_SINCE:
            old = [n["name"] for n in self._nodes()
                   if kp.kernel_supports_nftables(n.get("kernel")) is False]
            self.findings.append(_f(
                "KP006", Severity.WARNING, subj,
                f"kube-proxy IPVS mode is deprecated since Kubernetes 1.35 (this cluster runs "
                f"{fmt(sv)}); plan a move to nftables mode, which needs node kernels 5.13 or "
                f"newer.",
                {**base, "server_version": fmt(sv),
                 "deprecation_logged": any(lg.ipvs_deprecated for lg in logs.values()),
                 "nodes_below_kernel_5_13": old},
                runbook="kube-proxy-mode", params={"mode": "nftables"}))
        if cfg.mode == "nftables":
            for n in self._nodes():
                if kp.kernel_supports_nftables(n.get("kernel")) is False:
                    self.findings.append(_f(
                        "KP012", Severity.WARNING, f"node/{n['name']}",
                        f"kube-proxy is configured for nftables mode but node {n['name']} runs "
                        f"kernel {n['kernel']}, older than the 5.13 the nftables proxier needs.",
                        {"kernel": n.get("kernel"), "required": "5.13", "mode": "nftables"},
                        runbook="kube-proxy-mode", params={"mode": "iptables"}))

    def _nodes(self) -> list[dict[str, Any]]:
        nodes = (self.ctx.facts.get("nodes") or {}).get("nodes")
        return [n for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []

    def _suggest(self, sv: tuple[int, int, int] | None,
                 cfg: kp.KubeProxyConfig) -> dict[str, Any]:
        """Params for the kube-proxy-mode runbook: nftables from 1.35 on (IPVS deprecated)
        when every known kernel supports it, else ipvs (+ strictARP when an ARP-based load
        balancer is installed)."""
        kernels_ok = all(kp.kernel_supports_nftables(n.get("kernel")) is not False
                         for n in self._nodes())
        if sv and sv >= kp.IPVS_DEPRECATED_SINCE and kernels_ok:
            return {"mode": "nftables"}
        params: dict[str, Any] = {"mode": "ipvs"}
        if self._arp_lb_present():
            params["strict_arp"] = True
        return params

    def _arp_lb_present(self) -> bool:
        """Whether MetalLB layer 2 is configured (an L2Advertisement, or — only when MetalLB's
        CRDs are not installed, i.e. MetalLB <= 0.12 — a legacy ConfigMap with a layer2 pool):
        IPVS then needs strictARP (DOMAIN.md section 1.4). With the CRDs the legacy ConfigMap
        is dead config (DOMAIN.md section 3.2) and does not count."""
        try:
            for api in ("metallb.io/v1beta1", "metallb.io/v1beta2"):
                if self.kube.served(api, "l2advertisements") and \
                        self.kube.list(api, "l2advertisements"):
                    return True
            if self.kube.served("metallb.io/v1beta1", "ipaddresspools"):
                return False
            for ns in ("metallb-system", "metallb"):
                cm = self.kube.get("v1", "configmaps", "config", ns)
                text = (cm.get("data") or {}).get("config") if cm else None
                if text:
                    try:
                        doc = yaml.safe_load(str(text))
                    except yaml.YAMLError:
                        continue
                    pools = doc.get("address-pools") if isinstance(doc, dict) else None
                    if any(isinstance(p, dict) and p.get("protocol") == "layer2"
                           for p in pools or []):
                        return True
        except KubeError:
            return False
        return False

    # -- pods -----------------------------------------------------------------------------
    def _pods(self, pods: list[k.Obj], logs: dict[str, kp.ProxyLog]) -> list[dict[str, Any]]:
        out = []
        for p in pods:
            started = k.pod_started(p)
            nm = k.name(p)
            out.append({"name": nm, "node": k.pod_node(p), "ready": k.pod_ready(p),
                        "restarts": k.restart_count(p), "waiting": k.waiting_reasons(p),
                        "started": started.isoformat() if started else None,
                        "fatal": list(logs[nm].fatal) if nm in logs else []})
        return out

    def _pod_health(self, pods: list[k.Obj], logs: dict[str, kp.ProxyLog],
                    version: str | None) -> None:
        for p in pods:
            nm, node = k.name(p), k.pod_node(p)
            waiting = k.waiting_reasons(p)
            ready = k.pod_ready(p)
            broken = [w for w in waiting if w in _BROKEN_WAITING]
            if not broken and ready is not False:
                continue
            fatal = list(logs[nm].fatal) if nm in logs else []
            restarts = k.restart_count(p)
            ev = {"node": node, "restarts": restarts, "waiting": waiting, "ready": ready,
                  "image_version": version, "log_fatal": fatal[:5]}
            if broken:
                why = ""
                if any("IPVS" in ln for ln in fatal):
                    why = " because IPVS cannot be used on that node"
                elif any("conntrack" in ln or "hashsize" in ln for ln in fatal):
                    why = " because it cannot write the conntrack sysctls"
                elif self._conntrack_suspect(version):
                    why = (", possibly because kube-proxy 1.36 cannot write the conntrack "
                           "sysctls on this node (see the conntrack section)")
                self.findings.append(_f(
                    "KP009", Severity.CRITICAL, f"pod/{k.namespace(p) or NS}/{nm}",
                    f"kube-proxy on node {node or 'unknown'} is in {broken[0]} ({restarts} "
                    f"restarts){why}, so Service rules on that node are not being updated.", ev))
            else:
                self.findings.append(_f(
                    "KP009", Severity.WARNING, f"pod/{k.namespace(p) or NS}/{nm}",
                    f"kube-proxy on node {node or 'unknown'} is not Ready ({restarts} restarts"
                    f"{', ' + ', '.join(waiting) if waiting else ''}).", ev))

    def _conntrack_suspect(self, version: str | None) -> bool:
        """kube-proxy >= 1.36 that still sizes conntrack (kubernetes/kubernetes#141943)."""
        v = parse_version(version or "")
        ct = self.facts.get("conntrack") or {}
        return bool(v and v >= kp.CONNTRACK_CAP_SINCE and ct.get("managed"))

    def _restart_pending(self, pods: list[k.Obj], changed: Any, subj: str) -> None:
        if changed is None:
            return
        stale = []
        for p in pods:
            started = k.pod_started(p)
            if started is not None and started < changed:
                stale.append({"pod": k.name(p), "node": k.pod_node(p),
                              "started": started.isoformat()})
        if stale:
            self.findings.append(_f(
                "KP008", Severity.WARNING, subj,
                f"{len(stale)} of {len(pods)} kube-proxy pods started before the kube-proxy "
                f"configuration last changed ({changed.isoformat()}), so they still run the "
                f"previous configuration until restarted.",
                {"config_changed_at": changed.isoformat(), "pods": stale}))

    def _mode_mismatch(self, configured: str | None, logs: dict[str, kp.ProxyLog],
                       pods: list[k.Obj], changed: Any, subj: str) -> None:
        if configured is None:
            return
        by_name = {k.name(p): p for p in pods}
        bad = []
        for nm, lg in sorted(logs.items()):
            if not lg.running_mode or lg.running_mode == configured:
                continue
            started = k.pod_started(by_name[nm]) if nm in by_name else None
            if changed is not None and started is not None and started < changed:
                continue  # explained by a pending restart (KP008)
            bad.append({"pod": nm, "node": k.pod_node(by_name.get(nm, {})),
                        "running_mode": lg.running_mode, "fallback": lg.fallback,
                        "log": list(lg.lines)[:4]})
        if bad:
            fb = any(b["fallback"] for b in bad)
            self.findings.append(_f(
                "KP007", Severity.CRITICAL, subj,
                f"kube-proxy is configured for {configured} but {len(bad)} pod(s) run "
                f"{bad[0]['running_mode']}"
                f"{' (IPVS could not be used and kube-proxy fell back)' if fb else ''}, so "
                f"Services are handled differently from what the configuration says.",
                {"configured_mode": configured, "pods": bad},
                runbook="kube-proxy-mode", params={"mode": configured}))

    def _replacement_overlap(self, cni: dict[str, Any] | None, subj: str) -> None:
        if cni and cni.get("kube_proxy_replacement"):
            self.findings.append(_f(
                "KP003", Severity.INFO, subj,
                f"kube-proxy is deployed although {cni.get('display') or cni.get('cni')} also "
                f"replaces it ({cni.get('replacement_detail')}); both program Service rules, "
                f"so remove one of them.",
                {"cni": cni.get("cni"), "replacement_detail": cni.get("replacement_detail")}))

    def _summary(self, cfg: kp.KubeProxyConfig | None, src: kp.ConfigSource,
                 running: str | None, pods: list[dict[str, Any]], log_errors: dict[str, str],
                 version: str | None) -> str:
        parts = []
        if cfg is not None:
            m = cfg.mode or f"invalid mode {cfg.mode_raw!r}"
            if cfg.mode_raw == "" and cfg.mode == "iptables":
                m = 'iptables (mode "")'
            parts.append(m)
            if cfg.mode == "ipvs":
                parts.append(f"strictARP {str(cfg.strict_arp).lower()}, scheduler "
                             f"{cfg.scheduler or 'rr'}")
            else:
                parts.append(f"strictARP {str(cfg.strict_arp).lower()}")
        else:
            parts.append("configured mode unknown")
        parts.append({"configmap": f"config from ConfigMap {NS}/{src.configmap}",
                      "flags": "config from flags", "file": f"config from node file {src.path}"
                      }.get(src.kind, "config source unknown"))
        if version:
            parts.append(f"kube-proxy {version}")
        if pods:
            ready = sum(1 for p in pods if p["ready"])
            parts.append(f"{ready}/{len(pods)} pods Ready")
        elif self.facts.get("no_pods"):
            parts.append("no kube-proxy pod scheduled")
        if running:
            parts.append(f"running mode {running} (from logs)")
        elif log_errors:
            parts.append("running mode unknown (logs not readable)")
        else:
            parts.append("running mode unknown")
        return ", ".join(parts)
