"""Status probe for the ``metallb`` section: MetalLB and LoadBalancer Services (API only).

What it reads (one list per kind, cluster-wide unless noted; the engine caches reads):
Deployments and DaemonSets (MetalLB controller/speaker by image or Helm labels), discovery of
``metallb.io`` kinds, IPAddressPools / L2Advertisements / BGPAdvertisements / BGPPeers
(and the deprecated AddressPool when served — ignored from MetalLB 0.14.2 on), ConfigMaps in
MetalLB's namespace(s), Services, Namespaces, Nodes (for node addresses only when the ``nodes``
probe published nothing; for their labels when a Service address is announced in layer 2),
the speaker pods (which nodes can announce) and, when LoadBalancers are pending, Service
Events. Facts read from earlier probes: ``nodes`` (InternalIPs) and ``kube-proxy`` (mode,
strict_arp); a missing entry — or an unknown kube-proxy mode — is reported as "could not
check", never guessed.

Facts published (``ctx.facts["metallb"]``)::

    {"installed": bool, "generation": "crd"|"legacy"|None, "version": "v0.13.10"|None,
     "namespace": "metallb-system", "controller_ready": bool|None, "lb_class": str|None,
     "pools": [{"name", "namespace", "source", "protocol", "addresses": [...], "size": int,
                "used": int, "free": int, "auto_assign": bool, "advertised_by":
                {"l2": [...], "bgp": [...]}, "errors": [...]}],
     "l2_in_use": bool, "bgp_in_use": bool, "dead_configmaps": ["configmap/ns/name"],
     "ignored_addresspools": ["addresspool/ns/name"],
     "loadbalancers": {"total": int, "with_ip": int, "pending": ["ns/name", ...]}}

Domain sources: DOMAIN.md §3 (MetalLB shapes, generations, validation, pending reasons) and §1.4
(strictARP); finding codes are documented in ``docs/findings.md``.
"""

from __future__ import annotations

from typing import Any

from bot.sdk import Finding, Inspection, KubeError, Probe, ProbeContext, Severity
from runbooks._lib import kobj
from runbooks._lib import metallb as mlb

Obj = dict[str, Any]
SECTION = "metallb"
DEFAULT_NS = "metallb-system"


def _f(code: str, severity: Severity, subject: str, message: str, evidence: dict[str, Any],
       runbook: str | None = None, params: dict[str, Any] | None = None) -> Finding:
    return Finding(code=code, severity=severity, section=SECTION, subject=subject,
                   message=message, evidence=evidence, runbook=runbook, params=params)


def _containers(obj: Obj) -> list[Obj]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c for c in spec.get("containers") or [] if isinstance(c, dict)]


def _labels(obj: Obj) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    tmpl = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return {**(tmpl.get("labels") or {}), **(meta.get("labels") or {})}


def _is_component(obj: Obj, component: str) -> bool:
    if any(mlb.is_metallb_image(c.get("image"), component) for c in _containers(obj)):
        return True
    lab = _labels(obj)
    name_ok = lab.get("app.kubernetes.io/name") == "metallb" or lab.get("app") == "metallb"
    comp_ok = component in (lab.get("app.kubernetes.io/component"), lab.get("component"))
    return name_ok and comp_ok


def _ref(kind: str, obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{kind}/{meta.get('namespace', '')}/{meta.get('name', '')}"


def _svc_name(svc: Obj) -> str:
    meta = svc.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class MetalLBProbe(Probe):
    """MetalLB generation, address pools, advertisements and LoadBalancer Services."""

    section = "metallb"
    title = "MetalLB / LoadBalancers"
    order = 50
    position = 40

    def inspect(self, ctx: ProbeContext) -> Inspection:
        """Read MetalLB's objects and every LoadBalancer Service; return findings (MLB*, LB*)
        and the facts above. Raises ``KubeError`` when Deployments, DaemonSets or Services
        cannot be listed (the section is then unknown)."""
        kube = ctx.kube
        findings: list[Finding] = []
        undecided: list[str] = []
        deployments = kube.list("apps/v1", "deployments")
        daemonsets = kube.list("apps/v1", "daemonsets")
        services = [s for s in kube.list("v1", "services")
                    if (s.get("spec") or {}).get("type") == "LoadBalancer"]

        controllers = [d for d in deployments if _is_component(d, "controller")]
        speakers = [d for d in daemonsets if _is_component(d, "speaker")]
        controller = controllers[0] if controllers else None
        ctrl_containers = _containers(controller) if controller else []
        version = None
        for obj in [*controllers, *speakers]:
            for c in _containers(obj):
                version = version or mlb.image_version(c.get("image"))
        if version is None:
            for obj in [*controllers, *speakers]:
                v = _labels(obj).get("app.kubernetes.io/version")
                if v and mlb.parse_version(v):
                    version = v
                    break
        vt = mlb.parse_version(version)
        crds = kube.served(mlb.POOL_API, "ipaddresspools")
        mlb_ns = str(((controller or (speakers[0] if speakers else None)) or {})
                     .get("metadata", {}).get("namespace") or DEFAULT_NS)
        lb_class = mlb.container_arg(ctrl_containers, "lb-class")

        # ---------------------------------------------------------------- legacy ConfigMaps
        search_ns = sorted({DEFAULT_NS, mlb_ns,
                            *((o.get("metadata") or {}).get("namespace") or DEFAULT_NS
                              for o in [*controllers, *speakers])})
        legacy_cms: list[Obj] = []
        cm_error: str | None = None
        for ns in search_ns:
            try:
                legacy_cms += [cm for cm in kube.list("v1", "configmaps", namespace=ns)
                               if mlb.configmap_has_address_pools(cm)]
            except KubeError as e:
                cm_error = str(e)

        if vt is not None:
            generation: str | None = "crd" if vt >= (0, 13, 0) else "legacy"
        elif crds:
            generation = "crd"
        elif controllers or speakers or legacy_cms:
            generation = "legacy"
        else:
            generation = None
        if cm_error and generation == "legacy":
            raise KubeError(f"cannot read MetalLB's legacy ConfigMap: {cm_error}")
        installed = bool(controllers or speakers or crds)

        # ---------------------------------------------------------------- pools
        pools: list[mlb.Pool] = []
        legacy: mlb.LegacyConfig | None = None
        dead: list[str] = []
        l2_advs: list[Obj] = []
        bgp_advs: list[Obj] = []
        peers = 0
        advertised: dict[str, dict[str, list[str]]] = {}
        legacy_layer2 = False
        ignored_addresspools: list[str] = []

        if generation == "crd" and installed:
            for cm in legacy_cms:
                cfg = mlb.parse_legacy_config(cm)
                dead.append(cfg.subject)
                findings.append(_f(
                    "MLB004", Severity.WARNING, cfg.subject,
                    f"The legacy MetalLB ConfigMap {cfg.namespace}/{cfg.name} is ignored since "
                    "MetalLB 0.13.2 (configuration is read from CRDs); migrate it with "
                    "configmaptocrs or delete it.",
                    {"metallb_version": version, "crds_served": crds,
                     "pools_in_configmap": [p.name for p in cfg.pools],
                     "addresses": [r.text for p in cfg.pools for r in p.ranges],
                     "parse_errors": list(cfg.errors)}))
            all_pools = [mlb.pool_from_crd(o) for o in kube.list(mlb.POOL_API, "ipaddresspools")] \
                if crds else []
            if kube.served(mlb.ADDRESSPOOL_API, "addresspools"):
                old = [mlb.pool_from_crd(o) for o in kube.list(mlb.ADDRESSPOOL_API, "addresspools")]
                removed = vt is not None and vt >= mlb.ADDRESSPOOL_REMOVED
                for p in old:
                    if p.namespace == mlb_ns:
                        if removed:
                            msg = (f"AddressPool {p.name} is ignored: MetalLB {version} no longer "
                                   "reads the deprecated AddressPool kind (dropped in 0.14.2), "
                                   "so its addresses are not allocated; convert it to an "
                                   "IPAddressPool plus an advertisement, then delete it.")
                        else:
                            msg = (f"AddressPool {p.name} uses the deprecated AddressPool kind, "
                                   "which MetalLB stops reading in 0.14.2; convert it to an "
                                   "IPAddressPool plus an advertisement before upgrading.")
                        findings.append(_f(
                            "MLB018", Severity.WARNING, p.subject, msg,
                            {"protocol": p.protocol, "addresses": [r.text for r in p.ranges],
                             "metallb_version": version, "ignored": removed}))
                if removed:
                    ignored_addresspools = [p.subject for p in old if p.namespace == mlb_ns]
                else:
                    all_pools += old
            for p in all_pools:
                if p.namespace != mlb_ns:
                    findings.append(_f(
                        "MLB017", Severity.WARNING, p.subject,
                        f"IPAddressPool {p.name} is in namespace {p.namespace}, but MetalLB only "
                        f"reads its own namespace {mlb_ns}, so the pool is ignored.",
                        {"pool_namespace": p.namespace, "metallb_namespace": mlb_ns}))
                else:
                    pools.append(p)
            if kube.served(mlb.L2ADV_API, "l2advertisements"):
                l2_advs = [a for a in kube.list(mlb.L2ADV_API, "l2advertisements")
                           if (a.get("metadata") or {}).get("namespace") == mlb_ns]
            if kube.served(mlb.BGPADV_API, "bgpadvertisements"):
                bgp_advs = [a for a in kube.list(mlb.BGPADV_API, "bgpadvertisements")
                            if (a.get("metadata") or {}).get("namespace") == mlb_ns]
            for api in mlb.BGPPEER_APIS:
                if kube.served(api, "bgppeers"):
                    peers = len([o for o in kube.list(api, "bgppeers")
                                 if (o.get("metadata") or {}).get("namespace") == mlb_ns])
                    break
            crd_pools = [p for p in pools if p.source == "ipaddresspool"]
            for kind, advs in (("l2", l2_advs), ("bgp", bgp_advs)):
                for adv in advs:
                    chosen, unknown = mlb.advertisement_pools(adv, crd_pools)
                    for name in chosen:
                        advertised.setdefault(name, {"l2": [], "bgp": []})[kind].append(
                            str(adv["metadata"]["name"]))
                    spec = adv.get("spec") or {}
                    selective = spec.get("ipAddressPools") or spec.get("ipAddressPoolSelectors")
                    if unknown or (selective and not chosen):
                        akind = "l2advertisement" if kind == "l2" else "bgpadvertisement"
                        findings.append(_f(
                            "MLB015", Severity.WARNING, _ref(akind, adv),
                            f"{'L2' if kind == 'l2' else 'BGP'}Advertisement "
                            f"{adv['metadata']['name']} selects "
                            + (f"pools that do not exist ({', '.join(unknown)})"
                               if unknown else "no existing pool")
                            + "; MetalLB skips unknown pool names silently.",
                            {"ipAddressPools": spec.get("ipAddressPools") or [],
                             "ipAddressPoolSelectors": spec.get("ipAddressPoolSelectors") or [],
                             "selected": chosen, "unknown_pools": unknown,
                             "existing_pools": sorted(p.name for p in crd_pools)}))
            for p in pools:
                if p.source == "addresspool" and p.protocol in ("layer2", "bgp"):
                    key = "l2" if p.protocol == "layer2" else "bgp"
                    advertised.setdefault(p.name, {"l2": [], "bgp": []})[key].append(
                        f"addresspool:{p.name}")
            if not pools:
                findings.append(_f(
                    "MLB005", Severity.CRITICAL, f"namespace/{mlb_ns}",
                    f"MetalLB {version or '>= 0.13'} reads IPAddressPools but none exists in "
                    f"{mlb_ns}, so no LoadBalancer Service can get an address"
                    + (" (the legacy ConfigMap is ignored)" if legacy_cms else "")
                    + (" (the leftover AddressPool objects are ignored)"
                       if ignored_addresspools else "") + ".",
                    {"metallb_version": version, "namespace": mlb_ns,
                     "legacy_configmaps": dead, "ignored_addresspools": ignored_addresspools},
                    runbook="metallb-pool", params={"namespace": mlb_ns}))
        elif generation == "legacy" and installed:
            configured = mlb.container_arg(ctrl_containers, "config")
            want = configured or "config"
            active = [cm for cm in legacy_cms
                      if cm["metadata"].get("name") == want
                      and cm["metadata"].get("namespace") == mlb_ns]
            if not active and configured is None:
                in_ns = [cm for cm in legacy_cms if cm["metadata"].get("namespace") == mlb_ns]
                if len(in_ns) == 1:
                    active = in_ns
            if active:
                legacy = mlb.parse_legacy_config(active[0])
                pools = list(legacy.pools)
                peers = legacy.peers
                for p in pools:
                    if p.protocol in ("layer2", "bgp"):
                        key = "l2" if p.protocol == "layer2" else "bgp"
                        advertised.setdefault(p.name, {"l2": [], "bgp": []})[key].append(
                            f"protocol:{p.protocol}")
                legacy_layer2 = any(p.protocol == "layer2" for p in pools)
                if legacy.errors:
                    findings.append(_f(
                        "MLB006", Severity.CRITICAL, legacy.subject,
                        f"MetalLB's configuration in {legacy.namespace}/{legacy.name} cannot be "
                        f"parsed ({legacy.errors[0]}), so MetalLB rejects all of it.",
                        {"errors": list(legacy.errors), "metallb_version": version}))
            else:
                findings.append(_f(
                    "MLB006", Severity.CRITICAL, f"configmap/{mlb_ns}/{want}",
                    f"MetalLB {version or '< 0.13'} reads its configuration from ConfigMap "
                    f"{mlb_ns}/{want}, which does not exist, so it has no address pools.",
                    {"expected": f"{mlb_ns}/{want}", "metallb_version": version,
                     "other_configmaps": [_ref("configmap", c) for c in legacy_cms]},
                    runbook="metallb-pool", params={"namespace": mlb_ns}))
            for cm in legacy_cms:
                if active and cm is active[0]:
                    continue
                findings.append(_f(
                    "MLB019", Severity.INFO, _ref("configmap", cm),
                    f"ConfigMap {cm['metadata'].get('namespace')}/{cm['metadata'].get('name')} "
                    "holds a MetalLB configuration that the controller does not read.",
                    {"controller_reads": f"{mlb_ns}/{want}"}))

        # ---------------------------------------------------------------- pool checks
        for p in pools:
            if p.errors:
                findings.append(_f(
                    "MLB007", Severity.CRITICAL, p.subject,
                    f"Pool {p.name} is invalid ({p.errors[0]}), and MetalLB rejects the whole "
                    "configuration when one pool is invalid.",
                    {"errors": list(p.errors), "addresses": [r.text for r in p.ranges]}))
            for r in p.ranges:
                if r.host_bits_set:
                    findings.append(_f(
                        "MLB008", Severity.WARNING, p.subject,
                        f"Pool {p.name} lists {r.text}, which MetalLB reads as the whole network "
                        f"{r.normalized} ({r.size} addresses), not from {r.text.split('/')[0]}.",
                        {"address": r.text, "network": r.normalized, "size": r.size}))
        for ov in mlb.overlaps(pools):
            sub = next(p.subject for p in pools if p.name == ov.a[0])
            findings.append(_f(
                "MLB009", Severity.CRITICAL, sub,
                f"Pool {ov.a[0]} range {ov.a[1]} overlaps pool {ov.b[0]} range {ov.b[1]} "
                f"({ov.first}-{ov.last}); MetalLB rejects overlapping configuration.",
                ov.to_json()))

        nodes, nodes_source = self._node_addresses(ctx)
        if nodes is None:
            undecided.append("node addresses unavailable: pools were not checked against node IPs")
        for p, node_name, ip in mlb.node_ips_in_pools(pools, nodes or []):
            findings.append(_f(
                "MLB012", Severity.CRITICAL, p.subject,
                f"Pool {p.name} contains {ip}, the address of node {node_name}; MetalLB could "
                "hand it to a Service and break the node's traffic.",
                {"node": node_name, "ip": ip, "addresses": [r.text for r in p.ranges],
                 "nodes_from": nodes_source},
                runbook="metallb-pool", params={"pool": p.name, "namespace": p.namespace}))

        # ---------------------------------------------------------------- Services
        ns_labels: dict[str, dict[str, str]] = {}
        if any(p.allocation for p in pools):
            try:
                ns_labels = {str(n["metadata"]["name"]): dict(n["metadata"].get("labels") or {})
                             for n in kube.list("v1", "namespaces")}
            except KubeError:
                ns_labels = {}
        used: dict[str, set[str]] = {p.name: set() for p in pools}
        ip_owner: dict[str, list[Obj]] = {}
        for s in services:
            for ip in mlb.ingress_ips(s):
                ip_owner.setdefault(ip, []).append(s)
                for p in pools:
                    if p.contains(ip):
                        used[p.name].add(ip)
        free = {p.name: max(p.size - len(used[p.name]), 0) for p in pools}
        config_invalid = bool(
            (legacy is not None and legacy.errors) or any(p.errors for p in pools)
            or mlb.overlaps(pools))
        ctrl_ready = None
        if controller is not None:
            st = controller.get("status") or {}
            ctrl_ready = int(st.get("readyReplicas") or 0) >= 1

        pending = [s for s in services if mlb.is_pending(s)]
        events = self._allocation_events(ctx) if pending else {}
        pools_wanted: set[str] = set()
        for s in pending:
            findings.append(self._pending_finding(
                s, installed=installed, generation=generation, version=version,
                controller=controller, ctrl_ready=ctrl_ready, lb_class=lb_class, pools=pools,
                free=free, legacy_cms=legacy_cms, legacy=legacy, config_invalid=config_invalid,
                ip_owner=ip_owner, ns_labels=ns_labels, events=events,
                pools_wanted=pools_wanted, mlb_ns=mlb_ns))

        for s in services:
            if mlb.is_pending(s):
                continue
            for ip in mlb.ingress_ips(s):
                holders = [p for p in pools if p.contains(ip)]
                if not holders:
                    if installed and pools and not (s.get("spec") or {}).get("loadBalancerClass"):
                        findings.append(_f(
                            "LB004", Severity.INFO, f"service/{_svc_name(s)}",
                            f"Service {_svc_name(s)} has address {ip}, which is in no MetalLB "
                            "pool (assigned by another controller, or the pool was changed).",
                            {"ip": ip, "pools": [p.name for p in pools]}))
                    continue
                if generation == "crd":
                    for p in holders:
                        adv = advertised.get(p.name, {"l2": [], "bgp": []})
                        if not adv["l2"] and not adv["bgp"]:
                            findings.append(_f(
                                "LB003", Severity.CRITICAL, f"service/{_svc_name(s)}",
                                f"Service {_svc_name(s)} has address {ip} from pool {p.name}, but "
                                "no L2Advertisement or BGPAdvertisement selects that pool, so "
                                "the address is never announced.",
                                {"ip": ip, "pool": p.name,
                                 "l2advertisements": [a["metadata"]["name"] for a in l2_advs],
                                 "bgpadvertisements": [a["metadata"]["name"] for a in bgp_advs]},
                                runbook="metallb-pool",
                                params={"pool": p.name, "namespace": p.namespace,
                                        "advertise": "l2"}))

        # ---------------------------------------------------------------- L2 announcers
        if generation == "crd" and installed and speakers:
            findings += self._unannounced_l2(ctx, services, pools, advertised, l2_advs,
                                             speakers, undecided)

        # ---------------------------------------------------------------- pool usage
        for p in pools:
            if p.size and free[p.name] == 0:
                crit = p.name in pools_wanted
                findings.append(_f(
                    "MLB010", Severity.CRITICAL if crit else Severity.WARNING, p.subject,
                    f"Pool {p.name} is exhausted: all {p.size} addresses are in use"
                    + (", and a LoadBalancer Service is waiting for one." if crit
                       else ", so the next LoadBalancer Service will stay pending."),
                    {"size": p.size, "used": len(used[p.name]), "free": 0,
                     "addresses": [r.text for r in p.ranges], "status": dict(p.status)},
                    runbook="metallb-pool", params={"pool": p.name, "namespace": p.namespace}))
            if generation == "crd" and p.source == "ipaddresspool":
                adv = advertised.get(p.name, {"l2": [], "bgp": []})
                if not adv["l2"] and not adv["bgp"]:
                    in_use = sorted(used[p.name])
                    findings.append(_f(
                        "MLB011", Severity.CRITICAL if in_use else Severity.WARNING, p.subject,
                        f"No L2Advertisement or BGPAdvertisement selects pool {p.name}, so its "
                        "addresses are assigned to Services but never announced"
                        + (f" ({len(in_use)} in use)." if in_use else "."),
                        {"in_use": in_use,
                         "l2advertisements": [a["metadata"]["name"] for a in l2_advs],
                         "bgpadvertisements": [a["metadata"]["name"] for a in bgp_advs],
                         "pool_labels": dict(p.labels)},
                        runbook="metallb-pool",
                        params={"pool": p.name, "namespace": p.namespace, "advertise": "l2"}))

        # ---------------------------------------------------------------- components
        lb_expected = [s for s in services if not (s.get("spec") or {}).get("loadBalancerClass")
                       or (s.get("spec") or {}).get("loadBalancerClass") == lb_class]
        if installed and controller is None:
            findings.append(_f(
                "MLB002", Severity.CRITICAL if lb_expected else Severity.WARNING,
                f"deployment/{mlb_ns}/controller",
                "MetalLB's CRDs or speaker are installed but no MetalLB controller Deployment "
                "exists, so no LoadBalancer Service gets an address.",
                {"crds_served": crds, "speakers": [_ref("daemonset", d) for d in speakers],
                 "loadbalancer_services": len(services)}))
        elif controller is not None and not ctrl_ready:
            st = controller.get("status") or {}
            findings.append(_f(
                "MLB002", Severity.CRITICAL, _ref("deployment", controller),
                f"The MetalLB controller {_ref('deployment', controller).split('/', 1)[1]} has "
                "no ready replica, so no new address is assigned.",
                {"replicas": (controller.get("spec") or {}).get("replicas", 1),
                 "readyReplicas": int(st.get("readyReplicas") or 0),
                 "availableReplicas": int(st.get("availableReplicas") or 0)}))
        if controller is not None:
            if not speakers:
                findings.append(_f(
                    "MLB003", Severity.CRITICAL if services else Severity.WARNING,
                    f"daemonset/{mlb_ns}/speaker",
                    "No MetalLB speaker DaemonSet exists, so assigned addresses are never "
                    "announced on the network.",
                    {"controller": _ref("deployment", controller)}))
            for d in speakers:
                st = d.get("status") or {}
                desired = int(st.get("desiredNumberScheduled") or 0)
                ready = int(st.get("numberReady") or 0)
                if desired and ready == 0:
                    findings.append(_f(
                        "MLB003", Severity.CRITICAL, _ref("daemonset", d),
                        "No MetalLB speaker pod is ready, so no address is announced.",
                        {"desired": desired, "ready": ready}))
                elif ready < desired:
                    findings.append(_f(
                        "MLB003", Severity.WARNING, _ref("daemonset", d),
                        f"Only {ready} of {desired} MetalLB speaker pods are ready; addresses "
                        "whose announcing node lost its speaker are not reachable.",
                        {"desired": desired, "ready": ready}))

        l2_in_use = bool(l2_advs) or legacy_layer2 or any(
            p.source == "addresspool" and p.protocol == "layer2" for p in pools)
        bgp_in_use = bool(bgp_advs) or any(p.protocol == "bgp" for p in pools)
        if installed and bgp_in_use and peers == 0:
            bgp_subject = legacy.subject if legacy is not None else (
                _ref("bgpadvertisement", bgp_advs[0]) if bgp_advs else f"namespace/{mlb_ns}")
            findings.append(_f(
                "MLB016", Severity.WARNING, bgp_subject,
                "MetalLB is configured to announce addresses over BGP but has no BGP peer, so "
                "those addresses are announced to nobody.",
                {"bgpadvertisements": [a["metadata"]["name"] for a in bgp_advs],
                 "bgp_pools": [p.name for p in pools if p.protocol == "bgp"], "peers": 0}))

        # ---------------------------------------------------------------- strictARP
        if installed and l2_in_use:
            f = self._strict_arp(ctx, l2_advs, pools, services, advertised, undecided)
            if f is not None:
                findings.append(f)

        if not installed:
            findings.append(_f(
                "MLB001", Severity.INFO, "cluster/metallb",
                "MetalLB is not installed (no controller, speaker or metallb.io CRDs), so "
                "nothing assigns addresses to LoadBalancer Services"
                + (" unless another implementation does." if not services else "."),
                {"loadbalancer_services": len(services),
                 "leftover_configmaps": [_ref("configmap", c) for c in legacy_cms]}))

        # ---------------------------------------------------------------- summary and facts
        total_size = sum(p.size for p in pools)
        total_used = sum(len(v) for v in used.values())
        if installed:
            gen = {"crd": "CRDs", "legacy": "legacy ConfigMap"}.get(generation or "", "unknown")
            head = (f"MetalLB {version or 'version unknown'} ({gen}), "
                    f"{_plural(len(pools), 'pool')}, {total_size} addresses, {total_used} used")
        else:
            head = "MetalLB not installed"
        if pending:
            tail = f"{_plural(len(pending), 'LoadBalancer')} pending"
        else:
            tail = f"{_plural(len(services), 'LoadBalancer')}, none pending"
        facts: dict[str, Any] = {
            "installed": installed, "generation": generation if installed else None,
            "version": version, "namespace": mlb_ns, "controller_ready": ctrl_ready,
            "lb_class": lb_class,
            "pools": [{**p.to_json(), "used": len(used[p.name]), "free": free[p.name],
                       "advertised_by": advertised.get(p.name, {"l2": [], "bgp": []})}
                      for p in pools],
            "l2_in_use": l2_in_use, "bgp_in_use": bgp_in_use, "dead_configmaps": dead,
            "ignored_addresspools": ignored_addresspools,
            "loadbalancers": {"total": len(services),
                              "with_ip": len(services) - len(pending),
                              "pending": [_svc_name(s) for s in pending]},
        }
        if undecided:
            facts["undecided"] = "; ".join(undecided)
        return Inspection(summary=f"{head}; {tail}", findings=tuple(findings), facts=facts)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _node_addresses(ctx: ProbeContext) -> tuple[list[dict[str, Any]] | None, str]:
        """Node name + addresses: from the ``nodes`` probe's facts (InternalIP), else from the
        Node objects (InternalIP and ExternalIP). (None, reason) when neither is available."""
        facts = ctx.facts.get("nodes")
        if facts and isinstance(facts.get("nodes"), list):
            return ([{"name": n.get("name"), "addresses": [n["internal_ip"]]}
                     for n in facts["nodes"] if n.get("internal_ip")], "nodes-facts")
        try:
            items = ctx.kube.list("v1", "nodes")
        except KubeError:
            return None, "unavailable"
        out = []
        for n in items:
            addrs = [a.get("address") for a in (n.get("status") or {}).get("addresses") or []
                     if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address")]
            out.append({"name": n["metadata"]["name"], "addresses": addrs})
        return out, "api"

    @staticmethod
    def _unannounced_l2(ctx: ProbeContext, services: list[Obj], pools: list[mlb.Pool],
                        advertised: dict[str, dict[str, list[str]]], l2_advs: list[Obj],
                        speakers: list[Obj], undecided: list[str]) -> list[Finding]:
        """LB005: a Service address announced only in layer 2 that no node can announce —
        every node the L2Advertisements select is labelled
        ``node.kubernetes.io/exclude-from-external-load-balancers`` (and the speaker does not
        run with ``--ignore-exclude-lb``), their ``nodeSelectors`` match no node, or no speaker
        pod is Ready on the remaining ones (DOMAIN.md §3.4/§3.5; metallb/metallb#2353, #1958).
        Addresses also announced over BGP are left out."""
        by_name = {str((a.get("metadata") or {}).get("name")): a for a in l2_advs}
        todo: list[tuple[Obj, str, mlb.Pool, list[str]]] = []
        for s in services:
            if mlb.is_pending(s):
                continue
            for ip in mlb.ingress_ips(s):
                for p in pools:
                    adv = advertised.get(p.name, {"l2": [], "bgp": []})
                    if p.contains(ip) and adv["l2"] and not adv["bgp"]:
                        todo.append((s, ip, p, adv["l2"]))
        if not todo:
            return []
        try:
            node_objs = ctx.kube.list("v1", "nodes")
        except KubeError as e:
            undecided.append(f"nodes could not be read, so which node announces the layer 2 "
                             f"addresses was not checked ({e})")
            return []
        nodes = [{"name": kobj.name(n), "labels": kobj.labels(n),
                  "ready": kobj.node_ready(n)[0]} for n in node_objs]
        speaker_ready: set[str] | None = set()
        ignore_exclude = False
        for d in speakers:
            ignore_exclude = ignore_exclude or mlb.ignores_exclude_label(_containers(d))
            sel = ((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            if not sel or speaker_ready is None:
                speaker_ready = None
                continue
            try:
                pods = ctx.kube.list("v1", "pods", (d.get("metadata") or {}).get("namespace"),
                                     label_selector=",".join(f"{k}={v}"
                                                             for k, v in sorted(sel.items())))
            except KubeError:
                speaker_ready = None
                continue
            speaker_ready |= {kobj.pod_node(pod) for pod in pods if kobj.pod_ready(pod)}
        out: list[Finding] = []
        for s, ip, p, adv_names in todo:
            selectors = [list((by_name[a].get("spec") or {}).get("nodeSelectors") or [])
                         if a in by_name else [] for a in adv_names]
            who = mlb.l2_announcers(selectors, nodes, speaker_ready,
                                    ignore_exclude=ignore_exclude)
            if who.eligible:
                continue
            why = []
            if who.excluded:
                why.append(f"{', '.join(who.excluded)} "
                           f"{'is' if len(who.excluded) == 1 else 'are'} labelled "
                           f"{mlb.EXCLUDE_LB_LABEL}")
            if who.no_speaker:
                why.append(f"no MetalLB speaker is Ready on {', '.join(who.no_speaker)}")
            if not who.excluded and not who.no_speaker:
                why.append("the L2Advertisement nodeSelectors match no node")
            out.append(_f(
                "LB005", Severity.CRITICAL, f"service/{_svc_name(s)}",
                f"Service {_svc_name(s)} has address {ip} from pool {p.name}, but no node can "
                f"announce it in layer 2 ({'; '.join(why)}), so nobody answers ARP/NDP for it "
                "and it is unreachable.",
                {"ip": ip, "pool": p.name, "l2advertisements": list(adv_names),
                 "node_selectors": selectors, "nodes": who.to_json(),
                 "speaker_ready_nodes": sorted(speaker_ready) if speaker_ready is not None
                 else None, "ignore_exclude_lb": ignore_exclude}))
        return out

    @staticmethod
    def _allocation_events(ctx: ProbeContext) -> dict[str, list[str]]:
        """``ns/name`` -> messages of Warning events MetalLB wrote on Services (e.g.
        ``AllocationFailed``). One cluster-wide list; empty on any error."""
        try:
            evs = ctx.kube.list("v1", "events", field_selector="involvedObject.kind=Service")
        except KubeError:
            return {}
        out: dict[str, list[str]] = {}
        for e in evs:
            if e.get("type") != "Warning":
                continue
            io = e.get("involvedObject") or {}
            key = f"{io.get('namespace', 'default')}/{io.get('name', '')}"
            out.setdefault(key, []).append(f"{e.get('reason', '')}: {e.get('message', '')}")
        return out

    def _pending_finding(self, svc: Obj, *, installed: bool, generation: str | None,
                         version: str | None, controller: Obj | None, ctrl_ready: bool | None,
                         lb_class: str | None, pools: list[mlb.Pool], free: dict[str, int],
                         legacy_cms: list[Obj], legacy: mlb.LegacyConfig | None,
                         config_invalid: bool, ip_owner: dict[str, list[Obj]],
                         ns_labels: dict[str, dict[str, str]], events: dict[str, list[str]],
                         pools_wanted: set[str], mlb_ns: str) -> Finding:
        """One LB001/LB002 finding for a pending Service, with the most likely reason first
        and every applicable reason in ``evidence.reasons``."""
        name = _svc_name(svc)
        subject = f"service/{name}"
        spec = svc.get("spec") or {}
        cls = spec.get("loadBalancerClass")
        req_ips = mlb.requested_ips(svc)
        req_pool = mlb.requested_pool(svc)
        evidence: dict[str, Any] = {"requested_ips": req_ips, "requested_pool": req_pool,
                                    "loadBalancerClass": cls, "metallb_lb_class": lb_class,
                                    "events": events.get(name, [])[-5:]}
        if cls and cls != lb_class:
            return _f("LB002", Severity.WARNING, subject,
                      f"LoadBalancer Service {name} is pending and asks for loadBalancerClass "
                      f"{cls}, which "
                      + ("MetalLB does not handle" if installed
                         else "no installed implementation handles")
                      + ", so only that class's controller can give it an address.",
                      {**evidence, "reason": "foreign-class"})
        if lb_class and not cls:
            return _f("LB002", Severity.WARNING, subject,
                      f"LoadBalancer Service {name} is pending because MetalLB runs with "
                      f"--lb-class={lb_class} and ignores Services without that class.",
                      {**evidence, "reason": "foreign-class"})
        reasons: list[tuple[str, str]] = []  # (code, sentence clause)
        runbook: str | None = None
        params: dict[str, Any] | None = None
        if not installed:
            reasons.append(("no-metallb", "no load-balancer implementation is installed "
                                          "(MetalLB is absent)"))
        else:
            if controller is None or not ctrl_ready:
                reasons.append(("controller-not-ready",
                                "the MetalLB controller is not running or not ready"))
            if generation == "crd" and not pools:
                reasons.append(("no-pools", f"MetalLB {version or '>= 0.13'} has no IPAddressPool"
                                + (" and ignores the legacy ConfigMap" if legacy_cms else "")))
                runbook, params = "metallb-pool", {"namespace": mlb_ns}
            if generation == "legacy" and legacy is None:
                reasons.append(("no-config", "MetalLB has no configuration ConfigMap"))
                runbook, params = "metallb-pool", {"namespace": mlb_ns}
            if config_invalid:
                reasons.append(("config-invalid", "MetalLB rejects its configuration as invalid"))
            names = {p.name for p in pools}
            candidates: list[mlb.Pool] = []
            if req_pool and req_pool not in names and pools:
                reasons.append(("unknown-pool", f"it asks for pool {req_pool}, which does not "
                                                f"exist (pools: {', '.join(sorted(names))})"))
            elif req_ips and pools:
                outside = [ip for ip in req_ips if not any(p.contains(ip) for p in pools)]
                if outside:
                    reasons.append(("requested-ip-outside-pools",
                                    f"it requests {', '.join(outside)}, which is outside every "
                                    "MetalLB pool"))
                    runbook = "metallb-pool"
                    params = {"namespace": mlb_ns, "addresses": [
                        f"{ip}/32" if ":" not in ip else f"{ip}/128" for ip in outside]}
                for ip in req_ips:
                    others = [o for o in ip_owner.get(ip, []) if o is not svc]
                    if others and not (mlb.annotation(svc, "allow-shared-ip")):
                        reasons.append(("requested-ip-in-use",
                                        f"it requests {ip}, which Service {_svc_name(others[0])} "
                                        "already uses"))
                candidates = [p for p in pools if any(p.contains(ip) for ip in req_ips)]
            elif pools:
                candidates = [p for p in pools if p.name == req_pool] if req_pool else \
                    [p for p in pools if p.auto_assign]
                if not req_pool and not candidates:
                    reasons.append(("no-auto-assign-pool", "every pool has autoAssign false and "
                                                           "the Service names no pool or IP"))
                fams = mlb.service_families(svc)
                fam_ok = [p for p in candidates if p.families & fams]
                if candidates and not fam_ok:
                    want = "/".join(f"IPv{f}" for f in sorted(fams))
                    reasons.append(("ip-family", f"it wants {want} but the pools only hold "
                                                 "other families"))
                ns = str((svc.get("metadata") or {}).get("namespace") or "default")
                eligible = [p for p in fam_ok
                            if mlb.pool_serves(p, svc, ns_labels.get(ns, {}),
                                               ns_labels or None)]
                if fam_ok and not eligible:
                    reasons.append(("not-eligible", "serviceAllocation of every pool excludes "
                                                    f"namespace {ns} or this Service"))
                candidates = eligible
            if candidates:
                for p in candidates:
                    pools_wanted.add(p.name)
                if all(free.get(p.name, 0) == 0 for p in candidates) and not req_ips:
                    reasons.append(("pools-exhausted",
                                    "every pool it can use is exhausted ("
                                    + ", ".join(f"{p.name} {p.size}/{p.size} used"
                                                for p in candidates) + ")"))
                    if runbook is None:
                        runbook, params = "metallb-pool", {"namespace": mlb_ns,
                                                           "pool": candidates[0].name}
        if not reasons:
            reasons.append(("unknown", "MetalLB gave no reason visible through the API; check "
                                       "the controller log and the Service's events"))
        code, clause = reasons[0]
        if code == "no-metallb":
            msg = f"LoadBalancer Service {name} is pending because {clause}."
        else:
            msg = f"LoadBalancer Service {name} is pending: {clause}."
        evidence.update({"reason": code, "reasons": [c for c, _ in reasons],
                         "explanations": [x for _, x in reasons],
                         "pools": [p.name for p in pools]})
        return _f("LB001", Severity.CRITICAL, subject, msg, evidence, runbook=runbook,
                  params=params)

    @staticmethod
    def _strict_arp(ctx: ProbeContext, l2_advs: list[Obj], pools: list[mlb.Pool],
                    services: list[Obj], advertised: dict[str, dict[str, list[str]]],
                    undecided: list[str]) -> Finding | None:
        """MLB013/MLB014: kube-proxy IPVS without strictARP while MetalLB L2 is in use. Only a
        known iptables/nftables mode (or no kube-proxy at all) rules the check out; an unknown
        mode gives MLB014 and marks the section undecided."""
        kp = ctx.facts.get("kube-proxy")
        l2_pools = sorted(n for n, a in advertised.items() if a["l2"])
        l2_ips = sorted(ip for s in services for ip in mlb.ingress_ips(s)
                        if any(p.contains(ip) for p in pools if p.name in l2_pools))
        base = {"l2advertisements": [a["metadata"]["name"] for a in l2_advs],
                "layer2_pools": l2_pools, "l2_addresses": l2_ips}
        if kp is None:
            undecided.append("kube-proxy facts unavailable: strictARP not checked")
            return _f("MLB014", Severity.INFO, "configmap/kube-system/kube-proxy",
                      "MetalLB layer 2 is in use but kube-proxy's mode and strictARP are unknown "
                      "(the kube-proxy section published no facts), so strictARP was not "
                      "checked.",
                      {**base, "kube_proxy": None})
        if kp.get("deployed") is False or kp.get("mode") in ("iptables", "nftables"):
            return None
        subject = ("configmap/kube-system/kube-proxy" if kp.get("config_source") in
                   (None, "configmap") else "daemonset/kube-system/kube-proxy")
        if kp.get("mode") != "ipvs":
            why = kp.get("undecided") or "neither its configuration nor its logs show it"
            undecided.append("kube-proxy's mode is unknown: strictARP not checked")
            return _f("MLB014", Severity.INFO, subject,
                      "MetalLB layer 2 is in use but kube-proxy's mode is unknown, so whether it "
                      "runs IPVS without strictARP (every node answering ARP) was not checked.",
                      {**base, "kube_proxy_mode": kp.get("mode"),
                       "strict_arp": kp.get("strict_arp"),
                       "config_source": kp.get("config_source"), "why": why})
        etp_local = sorted(_svc_name(s) for s in services
                           if (s.get("spec") or {}).get("externalTrafficPolicy") == "Local"
                           and any(ip in l2_ips for ip in mlb.ingress_ips(s)))
        evidence = {**base, "kube_proxy_mode": "ipvs", "strict_arp": kp.get("strict_arp"),
                    "config_source": kp.get("config_source"),
                    "services_external_traffic_policy_local": etp_local}
        if kp.get("strict_arp") is False:
            ips = f" ({', '.join(l2_ips[:5])}{', ...' if len(l2_ips) > 5 else ''})" \
                if l2_ips else ""
            return _f("MLB013", Severity.CRITICAL, subject,
                      "MetalLB L2 will be answered by every node: kube-proxy runs in IPVS mode "
                      "with strictARP false, so all nodes reply to ARP for the LoadBalancer "
                      f"addresses{ips} and client connections break when the answer flaps.",
                      evidence, runbook="kube-proxy-mode",
                      params={"mode": "ipvs", "strict_arp": True})
        if kp.get("strict_arp") is None:
            return _f("MLB014", Severity.WARNING, subject,
                      "MetalLB layer 2 is in use with kube-proxy in IPVS mode, but strictARP "
                      "could not be read, so ARP answers from every node cannot be ruled out.",
                      evidence, runbook="kube-proxy-mode",
                      params={"mode": "ipvs", "strict_arp": True})
        return None
