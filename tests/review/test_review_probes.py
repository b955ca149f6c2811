"""Reviewer tests for the status probes (runbooks/probes, runbooks/_lib).

Each test demonstrates one suspected defect: it asserts the behaviour DOMAIN.md / the shared
cases (or the upstream source named in the docstring) call for, and fails against the current
product code. Nothing here modifies product code or fixtures; scenarios are built fresh and
mutated in memory only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from bot.engine.status import build_report
from bot.sdk import ClusterReport, KubeForbidden, SectionReport, SectionStatus
from runbooks._lib import netpol_live
from runbooks.probes import all_probes
from tests.lab.scenarios import get
from tests.lab.scenarios._build import Scenario, crd, service_lb
from tests.lab.store import StaticKubeReader

# ------------------------------------------------------------------------------ helpers


def _reader(sc: Scenario, errors: dict[str, Exception] | None = None) -> StaticKubeReader:
    return StaticKubeReader(sc.store(), logs=sc.logs, version=sc.version, errors=errors)


def report(name: str, mutate: Callable[[Scenario], None] | None = None,
           errors: dict[str, Exception] | None = None) -> ClusterReport:
    sc = get(name)
    if mutate:
        mutate(sc)
    return build_report(name, _reader(sc, errors), all_probes())


def section(rep: ClusterReport, name: str) -> SectionReport:
    return next(s for s in rep.sections if s.name == name)


def codes(rep: ClusterReport, name: str) -> list[str]:
    return [f.code for f in section(rep, name).findings]


def objs(sc: Scenario, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in sc.objects if o.get("kind") == kind
            and (name is None or o["metadata"].get("name") == name)]


def forbidden(resource: str) -> KubeForbidden:
    return KubeForbidden(f"{resource} is forbidden: User \"k8snet\" cannot get/list {resource}",
                         verb="list", resource=resource)


# ------------------------------------------------------------------------------ kube-proxy


def test_cilium_config_unreadable_is_not_reported_as_kube_proxy_missing() -> None:
    """DOMAIN.md 5.1 "kube-proxy presence" / case kube-proxy-absent-cilium-false-alarm: no
    kube-proxy + Cilium KPR is expected, not "kube-proxy down". When cilium-config cannot be
    *read* (403), the CNI probe records a read error but publishes
    ``kube_proxy_replacement=False`` as if it knew, and the kube-proxy probe then raises KP002
    CRITICAL "nothing replaces it" — exactly the false alarm of rackerlabs/understack#559.
    Whether something replaces kube-proxy is unknown here: the section must be unknown."""
    rep = report("case-kube-proxy-absent-cilium", errors={"configmaps": forbidden("configmaps")})
    kp = section(rep, "kube-proxy")
    assert "KP002" not in codes(rep, "kube-proxy"), kp.findings
    assert kp.status is SectionStatus.UNKNOWN, (kp.status, kp.summary)


def test_cilium_config_forbidden_is_not_called_missing() -> None:
    """Wrong message: a 403 on cilium-config is reported as CNI009 "ConfigMap cilium-config was
    not found" (warning) with the section otherwise decided. A read failure must not be
    presented as a fact about the cluster (the CNI section's own docstring: optional reads that
    fail are recorded, not guessed)."""
    rep = report("case-kube-proxy-absent-cilium", errors={"configmaps": forbidden("configmaps")})
    cni = section(rep, "cni")
    msgs = [f.message for f in cni.findings if f.code == "CNI009"]
    assert not any("was not found" in m for m in msgs), msgs
    assert cni.status is SectionStatus.UNKNOWN, (cni.status, cni.summary)


def test_kube_proxy_daemonset_without_any_pod_is_not_ok() -> None:
    """A kube-proxy DaemonSet that runs no pod at all (e.g. the Cilium migration trick of
    patching a non-matching nodeSelector into ds/kube-proxy, or pods rejected by admission) with a
    CNI that does not replace kube-proxy means nothing programs Services — the same situation as
    KP002. The probe only looks at pods that exist, so with zero pods it reports the configured
    mode and "ok"."""
    def no_pods(sc: Scenario) -> None:
        sc.objects = [o for o in sc.objects if not (
            o["kind"] == "Pod" and o["metadata"]["name"].startswith("kube-proxy-"))]
        ds = objs(sc, "DaemonSet", "kube-proxy")[0]
        ds["spec"]["template"]["spec"]["nodeSelector"] = {"non-existing": "true"}
        ds["status"].update(currentNumberScheduled=0, desiredNumberScheduled=0, numberReady=0,
                            numberAvailable=0, updatedNumberScheduled=0)
        sc.logs = {k: v for k, v in sc.logs.items() if not k[1].startswith("kube-proxy-")}
    rep = report("a", no_pods)
    kp = section(rep, "kube-proxy")
    assert kp.status is not SectionStatus.OK, (kp.summary, kp.findings)


def _kube_proxy_from_node_file(sc: Scenario) -> None:
    """kube-proxy reads --config from a file on the node (not the ConfigMap)."""
    ds = objs(sc, "DaemonSet", "kube-proxy")[0]
    c = ds["spec"]["template"]["spec"]["containers"][0]
    c["command"] = ["/usr/local/bin/kube-proxy", "--config=/etc/kubernetes/kube-proxy.yaml",
                    "--hostname-override=$(NODE_NAME)"]


def test_kube_proxy_mode_unknown_is_not_ok() -> None:
    """DOMAIN.md 1.5: the running mode comes from the config or the pod logs. With the config in
    a node file (KP013) and pods/log forbidden, neither the configured nor the running mode is
    known ("configured mode unknown ... running mode unknown (logs not readable)") — yet the
    section is OK. A read failed and the key fact is missing: the section must be unknown."""
    rep = report("b", _kube_proxy_from_node_file, errors={"pods/log": forbidden("pods/log")})
    kp = section(rep, "kube-proxy")
    assert kp.facts["mode"] is None
    assert kp.status is SectionStatus.UNKNOWN, (kp.status, kp.summary)


def test_metallb_l2_strict_arp_not_checked_when_kube_proxy_mode_unknown() -> None:
    """DOMAIN.md 1.4 / case metallb-l2-with-ipvs-no-strictarp: with MetalLB L2, IPVS without
    strictARP is critical. ``_strict_arp`` returns None (no finding, no undecided) whenever
    ``mode != "ipvs"`` — including ``mode is None`` (unknown). Scenario b really runs IPVS with
    strictARP false; hide the config (node file) and the logs (403) and the MetalLB section
    says OK instead of MLB014 "could not be checked"."""
    rep = report("b", _kube_proxy_from_node_file, errors={"pods/log": forbidden("pods/log")})
    mlb = section(rep, "metallb")
    assert "MLB014" in codes(rep, "metallb") or mlb.status is SectionStatus.UNKNOWN, \
        (mlb.status, mlb.summary, mlb.findings)


# ------------------------------------------------------------------------------ MetalLB


def test_leftover_addresspool_is_not_a_pool_on_metallb_0_14_8() -> None:
    """DOMAIN.md section 0: MetalLB 0.14.2/0.14.3 removed legacy ``AddressPool`` handling — only
    IPAddressPool allocates. CRDs are not deleted by upgrades, so an AddressPool object can
    survive. On v0.14.8 the probe still counts it as a usable pool (no MLB005) and tells the
    operator MetalLB "stops reading [it] in 0.14.2" as if that were in the future."""
    def leftover(sc: Scenario) -> None:
        for o in sc.objects:
            for c in (o.get("spec", {}).get("template", {}).get("spec", {})
                      .get("containers", []) if o["kind"] in ("Deployment", "DaemonSet") else []):
                c["image"] = c.get("image", "").replace("v0.13.10", "v0.14.8")
        pool = objs(sc, "IPAddressPool", "production")[0]
        sc.objects.remove(pool)
        sc.objects.append(crd("metallb.io", "AddressPool", "addresspools", ["v1beta1"]))
        sc.objects.append({"apiVersion": "metallb.io/v1beta1", "kind": "AddressPool",
                           "metadata": {"name": "production", "namespace": "metallb-system"},
                           "spec": {"protocol": "layer2",
                                    "addresses": copy.deepcopy(pool["spec"]["addresses"])}})
    rep = report("b", leftover)
    mlb = section(rep, "metallb")
    assert "MLB005" in codes(rep, "metallb"), (mlb.summary, mlb.findings)


def test_l2_service_when_every_node_is_excluded_from_load_balancers() -> None:
    """DOMAIN.md 3.4/3.5: for L2 the speaker does not announce from nodes labelled
    ``node.kubernetes.io/exclude-from-external-load-balancers``; "A Service *with* an IP can
    still be broken (no advertisement, strictARP off, excluded nodes) — don't equate 'has
    EXTERNAL-IP' with healthy". Scenario b with strictARP fixed and every node excluded: the
    LoadBalancer IP is announced by nobody, yet MetalLB says OK (only NODE003 infos)."""
    def all_excluded(sc: Scenario) -> None:
        cm = objs(sc, "ConfigMap", "kube-proxy")[0]
        cm["data"]["config.conf"] = cm["data"]["config.conf"].replace(
            "strictARP: false", "strictARP: true")
        for n in objs(sc, "Node"):
            n["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    rep = report("b", all_excluded)
    mlb = section(rep, "metallb")
    assert "MLB013" not in codes(rep, "metallb")
    assert mlb.status is not SectionStatus.OK, (mlb.summary, mlb.findings)


def test_service_allocation_namespace_and_service_selector_are_anded() -> None:
    """MetalLB ``isPoolCompatibleWithService`` (metallb/metallb internal/allocator/allocator.go):
    a pool whose serviceAllocation has namespaces AND serviceSelectors serves a Service only
    when both match. ``pool_serves`` ORs them, so a pending Service in the right namespace but
    without the label is not explained ("not-eligible"): it gets the generic "unknown" reason."""
    def restricted(sc: Scenario) -> None:
        pool = objs(sc, "IPAddressPool", "production")[0]
        pool["spec"]["serviceAllocation"] = {
            "namespaces": ["shop"],
            "serviceSelectors": [{"matchLabels": {"tier": "premium"}}]}
        sc.objects.append(service_lb("checkout", "shop", ip=None, cluster_ip="10.96.33.21"))
    rep = report("b", restricted)
    f = next(f for f in section(rep, "metallb").findings
             if f.code == "LB001" and f.subject == "service/shop/checkout")
    assert "not-eligible" in f.evidence["reasons"], f.evidence


# ------------------------------------------------------------------------------ CNI


def test_cilium_legacy_tunnel_disabled_is_ignored_from_1_15() -> None:
    """DOMAIN.md section 0 / cilium/cilium#29053: the ``tunnel`` option was removed in Cilium
    1.15, so on 1.16.5 a cilium-config holding only ``tunnel: disabled`` runs the default
    routing mode (tunnel, VXLAN). The parser honours the legacy key on every version (unlike
    the version-aware kube-proxy-replacement handling) and reports "native routing (no tunnel)",
    encapsulation none."""
    def legacy_tunnel(sc: Scenario) -> None:
        cm = objs(sc, "ConfigMap", "cilium-config")[0]
        cm["data"].pop("routing-mode", None)
        cm["data"].pop("tunnel-protocol", None)
        cm["data"]["tunnel"] = "disabled"
    rep = report("d", legacy_tunnel)
    cni = section(rep, "cni")
    assert cni.facts["version"] == "v1.16.5"
    assert cni.facts["encapsulation"] != "none", (cni.summary, cni.facts.get("cilium"))


def test_embedded_flannel_enforcement_is_unknown_not_false() -> None:
    """Embedded Flannel (k3s/RKE2: no DaemonSet; DOMAIN.md 5.1 "RKE2/k3s embed flannel",
    unverified) may run with a policy controller the API does not show (k3s ships one).
    ``runbooks._lib.netpol_live.cni_enforcement`` — the runbook's own view — says ``None``
    ("cannot be read from the API"), but the cni probe publishes ``enforces_networkpolicy:
    False`` and the networkpolicy section then asserts "No namespace is isolated" (NP013).
    The two must agree, and status must not state the unknowable as fact."""
    def embedded(sc: Scenario) -> None:
        sc.objects = [o for o in sc.objects
                      if "flannel" not in o["metadata"].get("name", "")]
    sc = get("a")
    embedded(sc)
    runbook_view = netpol_live.cni_enforcement(_reader(sc)).enforces
    rep = build_report("a", _reader(sc), all_probes())
    cni = section(rep, "cni")
    assert cni.facts["enforces_networkpolicy"] == runbook_view, \
        (cni.facts["enforces_networkpolicy"], runbook_view)
    assert "NP013" not in codes(rep, "networkpolicy")


# ------------------------------------------------------------------------------ NetworkPolicy


def _udp_only_dns_policy(ns: str, pod_selector: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "blog-egress", "namespace": ns},
            "spec": {"podSelector": pod_selector, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"namespaceSelector": {"matchLabels": {
                                             "kubernetes.io/metadata.name": "kube-system"}},
                                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                                 "ports": [{"protocol": "UDP", "port": 53}]}]}}


def test_udp_only_dns_for_some_pods_is_flagged() -> None:
    """DOMAIN.md 4.2 "TCP 53 is mandatory" (openshift/sdn#532, ovn-kubernetes#3556; NodeLocal
    force_tcp). A namespace-wide default-deny egress with UDP-only DNS gets NP003; the same
    rule in a policy that selects only *some* pods (``app: blog``) is checked for UDP only
    (NP008 fires on ``not v.udp``), so the namespace's DNS is reported "allowed"."""
    def partial(sc: Scenario) -> None:
        sc.objects.append(_udp_only_dns_policy("web", {"matchLabels": {"app": "blog"}}))
    rep = report("b", partial)
    np_sec = section(rep, "networkpolicy")
    assert np_sec.facts["namespaces"]["web"]["dns_egress"] != "allowed"
    assert any("TCP" in f.message for f in np_sec.findings
               if "web" in f.subject), np_sec.findings


def test_nodelocal_dns_with_unparseable_localip_is_not_evaluated_as_coredns() -> None:
    """DOMAIN.md 4.2 "NodeLocal DNSCache": when node-local-dns runs, pods query its link-local
    IP (hostNetwork) and only an ipBlock reaches it; "read it from the node-local-dns DaemonSet
    args -localip". ``discover_dns`` records ``-localip`` values it cannot parse
    (``nodelocal_unparsed``) but the networkpolicy probe drops them and evaluates the policies
    against the CoreDNS pods, reporting a selector-based allow as working. The DNS verdict must
    be unknown, not "allowed"."""
    def nodelocal(sc: Scenario) -> None:
        sc.objects.append({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "node-local-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "node-local-dns"}},
            "spec": {"selector": {"matchLabels": {"k8s-app": "node-local-dns"}},
                     "template": {"metadata": {"labels": {"k8s-app": "node-local-dns"}},
                                  "spec": {"hostNetwork": True, "containers": [{
                                      "name": "node-cache",
                                      "image": "registry.k8s.io/dns/k8s-dns-node-cache:1.23.1",
                                      "args": ["-localip", "$(LOCAL_DNS_IP)",
                                               "-conf", "/etc/Corefile"],
                                      "ports": [{"containerPort": 53, "name": "dns",
                                                 "protocol": "UDP"}]}]}}},
            "status": {"desiredNumberScheduled": 3, "numberReady": 3}})
    rep = report("b", nodelocal)
    np_sec = section(rep, "networkpolicy")
    assert np_sec.facts["namespaces"]["shop"]["dns_egress"] != "allowed", np_sec.facts["dns"]


# ------------------------------------------------------------------------------ regressions
# Neighbouring cases of the defects above, added with the fixes.


def test_calico_config_forbidden_makes_cni_unknown_not_a_guess() -> None:
    """A 403 on ConfigMaps hides calico-config (the backend source when the agent's env takes
    it through valueFrom): the backend is unknown, the section unknown, nothing "not found"."""
    rep = report("b", errors={"configmaps": forbidden("configmaps")})
    cni = section(rep, "cni")
    assert cni.status is SectionStatus.UNKNOWN, (cni.status, cni.summary)
    assert "calico-config" in (cni.error or "")
    assert "CNI009" not in codes(rep, "cni")


def test_cilium_legacy_tunnel_is_honoured_before_1_15() -> None:
    """Before Cilium 1.15 ``tunnel: disabled`` still means native routing (CNI006 warns it is
    deprecated); from 1.15 it is ignored and CNI006 says so."""
    def legacy_tunnel(version: str) -> Callable[[Scenario], None]:
        def mutate(sc: Scenario) -> None:
            cm = objs(sc, "ConfigMap", "cilium-config")[0]
            cm["data"].pop("routing-mode", None)
            cm["data"].pop("tunnel-protocol", None)
            cm["data"]["tunnel"] = "disabled"
            for c in objs(sc, "DaemonSet", "cilium")[0]["spec"]["template"]["spec"][
                    "containers"]:
                c["image"] = f"quay.io/cilium/cilium:{version}"
        return mutate
    old = report("d", legacy_tunnel("v1.14.19"))
    assert section(old, "cni").facts["encapsulation"] == "none"
    assert "CNI006" in codes(old, "cni")
    new = report("d", legacy_tunnel("v1.16.5"))
    f = next(f for f in section(new, "cni").findings if f.code == "CNI006")
    assert "ignores" in f.message and f.evidence["ignored"] is True


def _kube_proxy_ds(sc: Scenario) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "kube-proxy", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-proxy"}},
            "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                     "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                                  "spec": {"nodeSelector": {"non-existing": "true"},
                                           "containers": [{
                                               "name": "kube-proxy",
                                               "image": "registry.k8s.io/kube-proxy:v1.34.0",
                                               "command": ["/usr/local/bin/kube-proxy",
                                                           "--config=/var/lib/kube-proxy/"
                                                           "config.conf"]}]}}},
            "status": {"desiredNumberScheduled": 0, "currentNumberScheduled": 0,
                       "numberReady": 0}}


def test_kube_proxy_daemonset_without_pods_replaced_by_cilium_is_kp001() -> None:
    """The Cilium migration trick (ds/kube-proxy with a nodeSelector matching nothing) on a
    cluster where Cilium replaces kube-proxy: the expected state, KP001 — not KP002, and not
    KP003 ("both program Service rules") since no kube-proxy runs."""
    rep = report("d", lambda sc: sc.objects.append(_kube_proxy_ds(sc)))
    got = codes(rep, "kube-proxy")
    assert "KP001" in got and "KP002" not in got and "KP003" not in got, got
    assert "CT001" not in codes(rep, "conntrack")


def test_kube_proxy_pods_none_ready_is_kp002() -> None:
    """Every kube-proxy pod exists but none is Ready (and the CNI does not replace it): no node
    programs Services, which is critical for the cluster, not only per pod."""
    def not_ready(sc: Scenario) -> None:
        for p in objs(sc, "Pod"):
            if p["metadata"]["name"].startswith("kube-proxy-"):
                for st in p["status"].get("containerStatuses", []):
                    st["ready"] = False
                for c in p["status"].get("conditions", []):
                    if c["type"] in ("Ready", "ContainersReady"):
                        c["status"] = "False"
        objs(sc, "DaemonSet", "kube-proxy")[0]["status"]["numberReady"] = 0
    rep = report("a", not_ready)
    kp = section(rep, "kube-proxy")
    assert "KP002" in codes(rep, "kube-proxy"), kp.findings
    assert kp.status is SectionStatus.CRITICAL


def test_configmap_with_null_data_does_not_break_the_kube_proxy_section() -> None:
    """``data: null`` (a ConfigMap created without data) must read as empty, not crash."""
    def null_data(sc: Scenario) -> None:
        for cm in objs(sc, "ConfigMap", "config"):
            cm["data"] = None
    rep = report("a", null_data)
    kp = section(rep, "kube-proxy")
    assert kp.status is not SectionStatus.UNKNOWN, (kp.summary, kp.error)
    assert "KP004" in codes(rep, "kube-proxy")


def test_dead_legacy_metallb_configmap_does_not_count_as_layer2() -> None:
    """With the metallb.io CRDs installed (MetalLB >= 0.13) the legacy ConfigMap is dead config
    (DOMAIN.md 3.2): it must not make the kube-proxy-mode suggestion ask for strictARP."""
    from tests.lab.scenarios._build import metallb_crds

    def with_crds(sc: Scenario) -> None:
        sc.objects += metallb_crds()
    before = next(f for f in section(report("a"), "kube-proxy").findings if f.code == "KP004")
    assert (before.params or {}).get("strict_arp") is True
    after = next(f for f in section(report("a", with_crds), "kube-proxy").findings
                 if f.code == "KP004")
    assert "strict_arp" not in (after.params or {}), after.params


def test_addresspool_still_counted_before_metallb_0_14_2() -> None:
    """On 0.13.x an AddressPool is still read: it is a pool (no MLB005) and MLB018 speaks of
    the future removal."""
    def addresspool(sc: Scenario) -> None:
        pool = objs(sc, "IPAddressPool", "production")[0]
        sc.objects.remove(pool)
        sc.objects.append(crd("metallb.io", "AddressPool", "addresspools", ["v1beta1"]))
        sc.objects.append({"apiVersion": "metallb.io/v1beta1", "kind": "AddressPool",
                           "metadata": {"name": "production", "namespace": "metallb-system"},
                           "spec": {"protocol": "layer2",
                                    "addresses": copy.deepcopy(pool["spec"]["addresses"])}})
    rep = report("b", addresspool)
    got = codes(rep, "metallb")
    assert "MLB005" not in got and "MLB018" in got, got
    f = next(f for f in section(rep, "metallb").findings if f.code == "MLB018")
    assert "stops reading" in f.message and f.evidence["ignored"] is False


def _strict_arp_on(sc: Scenario) -> None:
    cm = objs(sc, "ConfigMap", "kube-proxy")[0]
    cm["data"]["config.conf"] = cm["data"]["config.conf"].replace(
        "strictARP: false", "strictARP: true")


def test_l2_advertisement_node_selector_matching_no_node_is_lb005() -> None:
    """An L2Advertisement whose nodeSelectors match no node announces nothing."""
    def selector(sc: Scenario) -> None:
        _strict_arp_on(sc)
        adv = objs(sc, "L2Advertisement")[0]
        adv["spec"] = {"nodeSelectors": [{"matchLabels": {"lb": "yes"}}]}
    rep = report("b", selector)
    f = next(f for f in section(rep, "metallb").findings if f.code == "LB005")
    assert f.severity.value == "critical" and f.subject == "service/shop/storefront"
    assert f.evidence["nodes"]["not_selected"] == ["node-1", "node-2", "node-3"]


def test_l2_excluded_nodes_are_fine_with_ignore_exclude_lb_or_one_eligible_node() -> None:
    """No LB005 when one worker can announce (the default kubeadm layout: only the control
    plane is excluded), nor when the speaker runs with --ignore-exclude-lb."""
    rep = report("b", _strict_arp_on)
    assert "LB005" not in codes(rep, "metallb")

    def all_excluded_but_ignored(sc: Scenario) -> None:
        _strict_arp_on(sc)
        for n in objs(sc, "Node"):
            n["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        spk = objs(sc, "DaemonSet", "speaker")[0]
        spk["spec"]["template"]["spec"]["containers"][0]["args"].append("--ignore-exclude-lb")
    rep = report("b", all_excluded_but_ignored)
    assert "LB005" not in codes(rep, "metallb")
    assert section(rep, "metallb").status is SectionStatus.OK


def test_kube_proxy_daemonset_disabled_for_calico_ebpf_is_kp001() -> None:
    """Calico's eBPF data plane replaces kube-proxy, and its guide disables ds/kube-proxy with a
    nodeSelector matching nothing: KP001, not a KP002 false alarm."""
    def ebpf(sc: Scenario) -> None:
        sc.objects = [o for o in sc.objects if not (
            o["kind"] == "Pod" and o["metadata"]["name"].startswith("kube-proxy-"))]
        ds = objs(sc, "DaemonSet", "kube-proxy")[0]
        ds["spec"]["template"]["spec"]["nodeSelector"] = {"non-calico": "true"}
        ds["status"].update(desiredNumberScheduled=0, currentNumberScheduled=0, numberReady=0)
        node = objs(sc, "DaemonSet", "calico-node")[0]
        node["spec"]["template"]["spec"]["containers"][0].setdefault("env", []).append(
            {"name": "FELIX_BPFENABLED", "value": "true"})
    rep = report("b", ebpf)
    got = codes(rep, "kube-proxy")
    assert "KP001" in got and "KP002" not in got, got
    assert section(rep, "cni").facts["kube_proxy_replacement"] is True


def test_kube_proxy_absent_with_unknown_cni_is_unknown_not_kp002() -> None:
    """No known CNI agent: whether something replaces kube-proxy cannot be told."""
    def bare(sc: Scenario) -> None:
        sc.objects = [o for o in sc.objects if "kube-proxy" not in o["metadata"]["name"]
                      and "flannel" not in o["metadata"]["name"]]
        for n in objs(sc, "Node"):
            n["metadata"]["annotations"] = {}
    rep = report("a", bare)
    kp = section(rep, "kube-proxy")
    assert "KP002" not in codes(rep, "kube-proxy")
    assert kp.status is SectionStatus.UNKNOWN, (kp.status, kp.summary)
