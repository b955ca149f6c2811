"""The nodes / cni / kube-proxy / conntrack / bgp status probes on the lab scenarios and cases:
the findings each must produce (per ``cases/*/expected.md``) and the false alarms each must not
raise. Runs ``bot.engine.status.build_report`` over ``StaticKubeReader`` (no HTTP)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

import runbooks.probes as probes
from bot.engine.status import build_report
from bot.sdk import ClusterReport, Finding, KubeForbidden, SectionReport, SectionStatus
from tests.lab import scenarios
from tests.lab.scenarios._build import Scenario

MINE = ("nodes", "cni", "kube-proxy", "conntrack", "bgp")

FALLBACK_LOG = (
    "E0202 02:01:51.603782       1 server_others.go:305] can't determine whether to use ipvs "
    "proxy, error: IPVS proxier will not be used because the following required kernel modules "
    "are not loaded: [ip_vs_sh ip_vs ip_vs_rr ip_vs_wrr]\n"
    "I0202 02:01:51.613846       1 server_others.go:148] Using iptables Proxier.\n")


def run(name: str, mutate: Callable[[Scenario], None] | None = None,
        errors: dict[str, Exception] | None = None,
        version: str | None = None) -> ClusterReport:
    sc = scenarios.get(name)
    if mutate:
        mutate(sc)
    if version:
        major, minor = version.lstrip("v").split(".")[:2]
        sc.version = {"major": major, "minor": minor, "gitVersion": version}
    reader = scenarios_reader(sc, errors)
    return build_report(name, reader, probes.all_probes())


def scenarios_reader(sc: Scenario, errors: dict[str, Exception] | None = None) -> Any:
    from tests.lab.store import StaticKubeReader
    return StaticKubeReader(sc.store(), sc.logs, sc.version, errors=errors)


def section(rep: ClusterReport, name: str) -> SectionReport:
    return next(s for s in rep.sections if s.name == name)


def codes(rep: ClusterReport, name: str) -> list[str]:
    return [f.code for f in section(rep, name).findings]


def one(rep: ClusterReport, code: str, subject: str | None = None) -> Finding:
    found = [f for f in rep.findings
             if f.code == code and (subject is None or f.subject == subject)]
    assert len(found) == 1, f"expected one {code} {subject or ''}, got {found}"
    return found[0]


def obj(sc: Scenario, kind: str, name: str, ns: str | None = None) -> dict[str, Any]:
    for o in sc.objects:
        meta = o.get("metadata") or {}
        if o.get("kind") == kind and meta.get("name") == name and \
                (ns is None or meta.get("namespace") == ns):
            return o
    raise KeyError(f"{kind} {ns}/{name}")


def drop(sc: Scenario, pred: Callable[[dict[str, Any]], bool]) -> None:
    sc.objects[:] = [o for o in sc.objects if not pred(o)]


def no_critical(rep: ClusterReport, *names: str) -> None:
    for n in names:
        bad = [f for f in section(rep, n).findings if f.severity.value == "critical"]
        assert not bad, bad


# ---- scenario (a): kubeadm + Flannel -----------------------------------------------------


def test_a_flannel_iptables() -> None:
    rep = run("a")
    cni = section(rep, "cni")
    assert cni.status is SectionStatus.OK
    assert cni.summary == "Flannel 0.28.9, VXLAN (VNI 1), does not enforce NetworkPolicy"
    assert cni.facts["cni"] == "flannel" and cni.facts["encapsulation"] == "vxlan"
    assert cni.facts["enforces_networkpolicy"] is False
    assert cni.facts["kube_proxy_replacement"] is False
    assert one(rep, "CNI003").subject == "daemonset/kube-flannel/kube-flannel-ds"

    kp = section(rep, "kube-proxy")
    assert kp.status is SectionStatus.OK
    f = kp.facts
    assert (f["deployed"], f["mode"], f["mode_raw"], f["strict_arp"], f["config_source"]) == \
        (True, "iptables", "", False, "configmap")
    assert f["version"] == "v1.34.0" and f["running_mode"] == "iptables"
    assert f["component_config_hash"].startswith("sha256:18238492")
    kp004 = one(rep, "KP004", "configmap/kube-system/kube-proxy")
    assert kp004.severity.value == "info" and kp004.runbook == "kube-proxy-mode"
    # MetalLB legacy layer2 pool present → IPVS would need strictARP
    assert kp004.params == {"mode": "ipvs", "strict_arp": True}
    assert kp004.evidence["mode_raw"] == "" and kp004.evidence["mode"] == "iptables"
    assert set(codes(rep, "kube-proxy")) == {"KP004"}

    ct = section(rep, "conntrack")
    # usage needs node access: said, but the section is decided from what the API shows
    assert ct.status is SectionStatus.OK and ct.error is None
    assert "SSH" in (ct.not_checked or "")
    assert [n["target"] for n in ct.facts["nodes"]] == [262144] * 3
    assert ct.facts["managed_by_kube_proxy"] is True and ct.findings == ()

    assert codes(rep, "bgp") == ["BGP001"] and section(rep, "bgp").facts["in_use"] is False
    assert [f.subject for f in section(rep, "nodes").findings] == ["node/node-1"]
    assert codes(rep, "nodes") == ["NODE003"]
    no_critical(rep, *MINE)


# ---- scenario (b), written by another developer: Calico IPIP CrossSubnet + IPVS ----------


def test_b_calico_ipvs_if_present() -> None:
    if "b" not in scenarios.SCENARIOS:
        pytest.skip("scenario (b) not in this tree yet")
    rep = run("b")
    cni = section(rep, "cni").facts
    assert cni["cni"] == "calico" and cni["calico_backend"] == "bird"
    assert "ipip-crosssubnet" in (cni["encapsulation"] or "")
    kp = section(rep, "kube-proxy").facts
    assert kp["mode"] == "ipvs" and kp["strict_arp"] is False
    assert "KP004" not in codes(rep, "kube-proxy")
    assert section(rep, "bgp").facts["in_use"] is True
    assert not {"BGP001", "BGP003", "BGP005"} & set(codes(rep, "bgp"))


# ---- scenario (c): Canal -----------------------------------------------------------------


def test_c_canal_is_not_calico_bgp() -> None:
    rep = run("c")
    cni = section(rep, "cni")
    assert cni.facts["cni"] == "canal" and cni.facts["encapsulation"] == "vxlan"
    assert cni.facts["enforces_networkpolicy"] is True
    assert cni.facts["calico_backend"] == "none"
    assert cni.summary.startswith("Canal (Calico 3.24.1 policy + Flannel 0.15.1 data plane)")
    bgp = section(rep, "bgp")
    assert bgp.status is SectionStatus.OK and bgp.facts["in_use"] is False
    assert codes(rep, "bgp") == ["BGP001"]
    assert one(rep, "BGP001").subject == "daemonset/kube-system/canal"
    assert "Canal" in bgp.summary
    # the Canal nodes carry projectcalico.org/IPv4Address: no autodetection warnings
    assert not [f for f in rep.findings if f.code.startswith("BGP0") and f.code != "BGP001"]
    assert section(rep, "kube-proxy").facts["version"] == "v1.33.2"
    assert [n["target"] for n in section(rep, "conntrack").facts["nodes"]] == [131072, 131072]
    no_critical(rep, *MINE)


# ---- scenario (d) and the Cilium case: kube-proxy absent by design -----------------------

EXPECTED_KPR = ("kube-proxy not deployed — service load-balancing by Cilium "
                "(kube-proxy-replacement=true, routing-mode native)")


@pytest.mark.parametrize("name", ["d", "case-kube-proxy-absent-cilium"])
def test_cilium_kube_proxy_absent_is_not_an_error(name: str) -> None:
    rep = run(name)
    kp = section(rep, "kube-proxy")
    assert kp.status is SectionStatus.OK
    assert kp.summary == EXPECTED_KPR
    f = one(rep, "KP001", "daemonset/kube-system/kube-proxy")
    assert f.severity.value == "info"
    assert "false alarm" in f.message and "KubeProxyDown" in f.message
    assert f.evidence["replaced_by"] == "cilium"
    assert "KP002" not in codes(rep, "kube-proxy")
    assert (kp.facts["deployed"], kp.facts["replaced_by"]) == (False, "cilium")
    cni = section(rep, "cni")
    assert cni.facts["cni"] == "cilium" and cni.facts["encapsulation"] == "none"
    assert "native routing (no tunnel)" in cni.summary and "unknown" not in cni.summary
    ct = section(rep, "conntrack")
    assert codes(rep, "conntrack") == ["CT003"]
    assert ct.facts["managed_by_kube_proxy"] is False and ct.status is SectionStatus.OK
    assert codes(rep, "bgp") == ["BGP001"]
    no_critical(rep, *MINE)


def test_cilium_legacy_strict_is_a_warning() -> None:
    def legacy(sc: Scenario) -> None:
        obj(sc, "ConfigMap", "cilium-config")["data"]["kube-proxy-replacement"] = "strict"
    rep = run("case-kube-proxy-absent-cilium", legacy)
    f = one(rep, "CNI005")
    assert f.severity.value == "warning" and f.evidence["kube-proxy-replacement"] == "strict"
    assert "KP001" in codes(rep, "kube-proxy")  # version unknown: taken as intended


def test_cilium_legacy_strict_on_1_15_leaves_nothing_replacing_kube_proxy() -> None:
    def legacy(sc: Scenario) -> None:
        obj(sc, "ConfigMap", "cilium-config")["data"]["kube-proxy-replacement"] = "strict"
        ds = obj(sc, "DaemonSet", "cilium")
        ds["spec"]["template"]["spec"]["containers"][0]["image"] = "quay.io/cilium/cilium:v1.15.5"
    rep = run("d", legacy)
    assert one(rep, "CNI005").evidence["treated_as_replacement"] is False
    kp002 = one(rep, "KP002")
    assert kp002.severity.value == "critical"


def test_cilium_kpr_with_kube_proxy_still_deployed() -> None:
    def add_cilium(sc: Scenario) -> None:
        sc.objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "cilium-config", "namespace": "kube-system"},
                           "data": {"kube-proxy-replacement": "true", "routing-mode": "tunnel"}})
        sc.objects.append({"apiVersion": "apps/v1", "kind": "DaemonSet",
                           "metadata": {"name": "cilium", "namespace": "kube-system"}})
        drop(sc, lambda o: o.get("kind") == "DaemonSet"
             and o["metadata"]["name"] == "kube-flannel-ds")
    rep = run("a", add_cilium)
    assert one(rep, "KP003").severity.value == "info"
    assert section(rep, "cni").facts["encapsulation"] == "vxlan"


# ---- Calico BGP case ---------------------------------------------------------------------


def test_calico_bgp_not_established_wrong_autodetect() -> None:
    rep = run("case-calico-bgp-not-established")
    cni = section(rep, "cni").facts
    assert (cni["cni"], cni["calico_backend"], cni["encapsulation"]) == ("calico", "bird", "ipip")
    auto = one(rep, "BGP004", "node/node-1")
    assert auto.severity.value == "warning"
    assert auto.evidence["calico_ipv4"] == "172.21.0.1/16"
    assert auto.evidence["internal_ip"] == "192.168.10.11"
    assert auto.evidence["setting"] == "IP_AUTODETECTION_METHOD"
    assert "interface=eth0" in auto.message and "can-reach=" in auto.message
    down = one(rep, "BGP005", "pod/kube-system/calico-node-aaaaa")
    assert down.severity.value == "critical"
    assert down.evidence["peers"] == ["172.21.0.1"] and down.evidence["node"] == "node-2"
    assert down.evidence["peer_nodes"][0]["node"] == "node-1"
    assert "BGP not established with 172.21.0.1" in down.message
    bgp = section(rep, "bgp")
    assert bgp.status is SectionStatus.CRITICAL and rep.status is SectionStatus.CRITICAL
    assert "BGP not established with 172.21.0.1" in bgp.summary
    assert "BGP004" not in [f.code for f in rep.findings if f.subject == "node/node-2"]
    assert one(rep, "CNI008").evidence["numberReady"] == 1


def test_calico_vxlan_backend_means_bgp_not_in_use() -> None:
    def vxlan(sc: Scenario) -> None:
        obj(sc, "ConfigMap", "calico-config")["data"]["calico_backend"] = "vxlan"
    rep = run("case-calico-bgp-not-established", vxlan)
    assert codes(rep, "bgp") == ["BGP001"]
    assert section(rep, "bgp").facts["in_use"] is False
    assert "vxlan backend" in section(rep, "bgp").summary


def test_calico_node_status_peer_down_and_crosssubnet_slash32() -> None:
    def change(sc: Scenario) -> None:
        sc.objects.append({"apiVersion": "crd.projectcalico.org/v1", "kind": "CalicoNodeStatus",
                           "metadata": {"name": "node-2-status"},
                           "spec": {"node": "node-2", "classes": ["BGP"]},
                           "status": {"bgp": {"peersV4": [
                               {"peerIP": "172.21.0.1", "type": "NodeMesh", "state": "Active"},
                               {"peerIP": "192.168.10.13", "type": "NodeMesh",
                                "state": "Established"}]}}})
        obj(sc, "IPPool", "default-ipv4-ippool")["spec"]["ipipMode"] = "CrossSubnet"
        for n, ip in (("node-1", "192.168.10.11/32"), ("node-2", "192.168.10.12/32")):
            obj(sc, "Node", n)["metadata"]["annotations"]["projectcalico.org/IPv4Address"] = ip
    rep = run("case-calico-bgp-not-established", change)
    f = one(rep, "BGP003", "caliconodestatus/node-2-status")
    assert f.severity.value == "critical" and f.evidence["peer_ip"] == "172.21.0.1"
    assert one(rep, "BGP007", "ippool/default-ipv4-ippool").severity.value == "warning"
    assert "BGP004" not in codes(rep, "bgp")
    assert "1/2 sessions Established" in section(rep, "bgp").summary


def test_calico_mesh_disabled_without_peers_and_invalid_pool() -> None:
    def change(sc: Scenario) -> None:
        sc.objects.append({"apiVersion": "crd.projectcalico.org/v1", "kind": "BGPConfiguration",
                           "metadata": {"name": "default"},
                           "spec": {"nodeToNodeMeshEnabled": False, "asNumber": 64513}})
        obj(sc, "IPPool", "default-ipv4-ippool")["spec"]["vxlanMode"] = "Always"
    rep = run("case-calico-bgp-not-established", change)
    assert one(rep, "BGP002").severity.value == "critical"
    assert section(rep, "bgp").facts["as_number"] == 64513
    assert one(rep, "CNI004", "ippool/default-ipv4-ippool").severity.value == "warning"


# ---- kube-proxy conntrack in LXC ---------------------------------------------------------


def test_kube_proxy_conntrack_write_fails_in_container() -> None:
    rep = run("case-kube-proxy-conntrack-lxc")
    crash = one(rep, "KP009", "pod/kube-system/kube-proxy-lxc01")
    assert crash.severity.value == "critical" and crash.evidence["restarts"] == 14
    assert crash.evidence["node"] == "node-1" and "CrashLoopBackOff" in crash.message
    assert "conntrack" in crash.message
    ct = one(rep, "CT001", "pod/kube-system/kube-proxy-lxc01")
    assert ct.severity.value == "warning"
    assert ct.runbook == "conntrack-limits" and ct.params == {"max_per_core": 0}
    assert ct.evidence["target"] == 1_048_576 and ct.evidence["cpus"] == 32
    assert ct.evidence["cap"] == 1_048_576
    facts = section(rep, "conntrack").facts
    assert facts["nodes"] == [{"name": "node-1", "cpus": 32, "target": 1_048_576,
                               "scaled": 1_048_576, "capped": False}]
    kp = section(rep, "kube-proxy")
    assert kp.facts["running_mode"] is None  # the crash-looping pod logged no proxier line
    assert "running mode unknown" in kp.summary
    assert "KP007" not in codes(rep, "kube-proxy")
    assert section(rep, "conntrack").status is SectionStatus.WARNING


def test_conntrack_log_line_proves_write_failure() -> None:
    def logs(sc: Scenario) -> None:
        sc.logs[("kube-system", "kube-proxy-lxc01")] = (
            'I0101 00:00:00.000000       1 conntrack.go:60] "Setting nf_conntrack_max" '
            'nfConntrackMax=1048576\n'
            'E0101 00:00:00.000001       1 server.go:558] "Error running ProxyServer" '
            'err="write /proc/sys/net/netfilter/nf_conntrack_max: permission denied"\n')
    rep = run("case-kube-proxy-conntrack-lxc", logs)
    f = one(rep, "CT002")
    assert f.severity.value == "critical" and f.params == {"max_per_core": 0}
    assert "CT001" not in codes(rep, "conntrack")
    assert "cannot write the conntrack sysctls" in one(rep, "KP009").message


def test_max_per_core_zero_leaves_conntrack_alone() -> None:
    def zero(sc: Scenario) -> None:
        cm = obj(sc, "ConfigMap", "kube-proxy", "kube-system")
        cm["data"]["config.conf"] = cm["data"]["config.conf"].replace(
            "maxPerCore: null", "maxPerCore: 0")
    rep = run("case-kube-proxy-conntrack-lxc", zero)
    assert codes(rep, "conntrack") == ["CT003"]
    assert section(rep, "conntrack").facts["managed_by_kube_proxy"] is False


# ---- kubeadm upgrade reverted IPVS -------------------------------------------------------


def test_kubeadm_upgrade_reverted_to_iptables() -> None:
    rep = run("case-kubeadm-upgrade-reverts-ipvs")
    f = one(rep, "KP004", "configmap/kube-system/kube-proxy")
    assert f.evidence["component_config_hash"].endswith("0002")
    assert f.evidence["strict_arp"] is False and f.evidence["mode_raw"] == ""
    assert f.evidence["config_changed_by"] == "kubeadm"
    assert f.params == {"mode": "ipvs", "strict_arp": True}
    kp = section(rep, "kube-proxy")
    assert kp.facts["mode"] == "iptables" and kp.facts["running_mode"] == "iptables"
    assert "KP008" not in codes(rep, "kube-proxy")  # the upgrade restarted the pods


# ---- kube-proxy variants built on scenario (a) -------------------------------------------


def _set_conf(sc: Scenario, text: str) -> None:
    obj(sc, "ConfigMap", "kube-proxy", "kube-system")["data"]["config.conf"] = text


def test_malformed_config_conf_is_a_finding_not_a_crash() -> None:
    rep = run("a", lambda sc: _set_conf(sc, "apiVersion: v1alpha1\nmode: [ipvs\n"))
    f = one(rep, "KP010", "configmap/kube-system/kube-proxy")
    assert f.severity.value == "critical" and "not valid YAML" in f.message
    kp = section(rep, "kube-proxy")
    assert kp.status is SectionStatus.CRITICAL and kp.error is None
    assert kp.facts["configured_mode"] is None and kp.facts["mode"] == "iptables"  # from logs
    ct = section(rep, "conntrack")
    assert ct.status is SectionStatus.UNKNOWN and "unknown" in ct.summary
    assert [s.name for s in rep.sections] == [s.name for s in run("a").sections]


def test_malformed_net_conf_json_is_a_finding_not_a_crash() -> None:
    def broken(sc: Scenario) -> None:
        obj(sc, "ConfigMap", "kube-flannel-cfg")["data"]["net-conf.json"] = '{"Network": '
    rep = run("a", broken)
    f = one(rep, "CNI002", "configmap/kube-flannel/kube-flannel-cfg")
    assert f.severity.value == "critical" and "not valid JSON" in f.message
    cni = section(rep, "cni")
    assert cni.facts["cni"] == "flannel" and cni.facts["encapsulation"] is None
    assert "backend unknown" in cni.summary


def test_forbidden_daemonsets_make_cni_and_kube_proxy_unknown() -> None:
    err = KubeForbidden('daemonsets.apps is forbidden: User "k8snet" cannot list resource '
                        '"daemonsets" in API group "apps" at the cluster scope',
                        verb="list", resource="daemonsets", group="apps")
    rep = run("a", errors={"daemonsets": err})
    for name in ("cni", "kube-proxy"):
        s = section(rep, name)
        assert s.status is SectionStatus.UNKNOWN and "forbidden" in (s.error or "")
    assert section(rep, "conntrack").status is SectionStatus.UNKNOWN
    assert "kube-proxy" in (section(rep, "conntrack").error or "")
    assert section(rep, "bgp").status is SectionStatus.UNKNOWN
    assert section(rep, "nodes").status is SectionStatus.OK
    assert {s.name for s in rep.sections} >= set(MINE)


def test_forbidden_logs_are_not_fatal() -> None:
    err = KubeForbidden("pods/log is forbidden", verb="get", resource="pods/log")
    rep = run("a", errors={"pods/log": err})
    kp = section(rep, "kube-proxy")
    assert kp.status is SectionStatus.OK and kp.facts["running_mode"] is None
    assert kp.facts["mode"] == "iptables"
    assert "running mode unknown (logs not readable)" in kp.summary


def test_configured_ipvs_running_iptables_is_critical() -> None:
    def fallback(sc: Scenario) -> None:
        _set_conf(sc, "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
                      "kind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  strictARP: true\n")
        for key in list(sc.logs):
            sc.logs[key] = FALLBACK_LOG
    rep = run("a", fallback)
    f = one(rep, "KP007", "configmap/kube-system/kube-proxy")
    assert f.severity.value == "critical" and f.evidence["configured_mode"] == "ipvs"
    assert f.evidence["pods"][0]["fallback"] is True
    assert "fell back" in f.message
    assert section(rep, "kube-proxy").facts["running_mode"] == "iptables"


def test_restart_pending_explains_a_mode_mismatch() -> None:
    def changed(sc: Scenario) -> None:
        _set_conf(sc, "kind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  strictARP: true\n")
        obj(sc, "ConfigMap", "kube-proxy", "kube-system")["metadata"]["managedFields"] = [
            {"manager": "kubectl-edit", "operation": "Update", "time": "2025-11-06T08:00:00Z"}]
    rep = run("a", changed)
    f = one(rep, "KP008", "configmap/kube-system/kube-proxy")
    assert f.severity.value == "warning" and len(f.evidence["pods"]) == 3
    assert "KP007" not in codes(rep, "kube-proxy")


def test_ipvs_deprecated_from_1_35() -> None:
    def ipvs(sc: Scenario) -> None:
        _set_conf(sc, "kind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  strictARP: true\n")
        ipvs_log = (scenarios_log("kube-proxy-startup-ipvs.txt"))
        for key in list(sc.logs):
            sc.logs[key] = ipvs_log
    rep = run("a", ipvs, version="v1.35.1")
    f = one(rep, "KP006")
    assert f.severity.value == "warning" and f.params == {"mode": "nftables"}
    assert f.runbook == "kube-proxy-mode"
    assert "KP006" not in codes(run("a", ipvs), "kube-proxy")


def scenarios_log(name: str) -> str:
    from tests.lab.paths import API
    return (API / name).read_text()


def test_nftables_on_old_kernel() -> None:
    def nft(sc: Scenario) -> None:
        _set_conf(sc, "kind: KubeProxyConfiguration\nmode: nftables\n")
        obj(sc, "Node", "node-2")["status"]["nodeInfo"]["kernelVersion"] = "5.10.0-28-amd64"
        for key in list(sc.logs):
            sc.logs[key] = scenarios_log("kube-proxy-startup-nftables.txt")
    rep = run("a", nft)
    f = one(rep, "KP012", "node/node-2")
    assert f.severity.value == "warning" and f.evidence["kernel"] == "5.10.0-28-amd64"
    assert "KP012" not in [x.code for x in rep.findings if x.subject != "node/node-2"]


def test_obsolete_fields_and_invalid_mode() -> None:
    rep = run("a", lambda sc: _set_conf(
        sc, "kind: KubeProxyConfiguration\nmode: userspace\nudpIdleTimeout: 250ms\n"
            "conntrack:\n  max: 262144\n  maxPerCore: 32768\n"))
    kp011 = one(rep, "KP011")
    assert set(kp011.evidence["obsolete_fields"]) == {"udpIdleTimeout", "conntrack.max"}
    assert one(rep, "KP015").severity.value == "critical"
    assert one(rep, "CT004").evidence["conntrack.max"] == 262144


def test_flags_only_kube_proxy() -> None:
    def flags(sc: Scenario) -> None:
        ds = obj(sc, "DaemonSet", "kube-proxy", "kube-system")
        ctr = ds["spec"]["template"]["spec"]["containers"][0]
        ctr["command"] = ["/usr/local/bin/kube-proxy", "--proxy-mode=ipvs",
                          "--ipvs-strict-arp=true", "--hostname-override=$(NODE_NAME)"]
        drop(sc, lambda o: o.get("kind") == "ConfigMap" and o["metadata"]["name"] == "kube-proxy")
        for key in list(sc.logs):
            sc.logs[key] = scenarios_log("kube-proxy-startup-ipvs.txt")
    rep = run("a", flags)
    kp = section(rep, "kube-proxy").facts
    assert (kp["config_source"], kp["mode"], kp["strict_arp"]) == ("flags", "ipvs", True)
    assert one(rep, "KP013").severity.value == "info"
    assert "KP005" not in codes(rep, "kube-proxy")


def test_missing_configmap_referenced_by_daemonset() -> None:
    rep = run("a", lambda sc: drop(sc, lambda o: o.get("kind") == "ConfigMap"
                                   and o["metadata"]["name"] == "kube-proxy"))
    assert one(rep, "KP005", "daemonset/kube-system/kube-proxy").severity.value == "critical"


def test_kube_proxy_absent_and_nothing_replacing_it_is_critical() -> None:
    def remove(sc: Scenario) -> None:
        drop(sc, lambda o: o["metadata"].get("name") == "kube-proxy"
             or (o.get("kind") == "Pod" and o["metadata"]["name"].startswith("kube-proxy-")))
    rep = run("a", remove)
    f = one(rep, "KP002", "daemonset/kube-system/kube-proxy")
    assert f.severity.value == "critical"
    assert section(rep, "kube-proxy").facts["deployed"] is False
    assert codes(rep, "conntrack") == ["CT003"]


def test_embedded_flannel_detected_from_node_annotations() -> None:
    # no flannel DaemonSet or ConfigMap (k3s/RKE2 embed flanneld): node annotations decide
    rep = run("a", lambda sc: drop(sc, lambda o: "flannel" in o["metadata"].get("name", "")))
    cni = section(rep, "cni")
    assert cni.facts["cni"] == "flannel" and cni.facts["encapsulation"] == "vxlan"
    assert "embedded, no DaemonSet" in cni.summary
    assert "CNI001" not in codes(rep, "cni") and "CNI009" not in codes(rep, "cni")


def test_unknown_cni_without_annotations_makes_bgp_unknown() -> None:
    def strip(sc: Scenario) -> None:
        drop(sc, lambda o: "flannel" in o["metadata"].get("name", ""))
        for o in sc.objects:
            if o.get("kind") == "Node":
                o["metadata"]["annotations"] = {}
    rep = run("a", strip)
    assert section(rep, "cni").facts["cni"] == "unknown"
    assert one(rep, "CNI001").severity.value == "warning"
    assert section(rep, "cni").summary == "unknown CNI"
    bgp = section(rep, "bgp")
    assert bgp.status is SectionStatus.UNKNOWN and bgp.findings == ()


def test_not_ready_node_and_missing_internal_ip() -> None:
    def change(sc: Scenario) -> None:
        n = obj(sc, "Node", "node-3")
        n["status"]["conditions"][0].update(status="Unknown", reason="NodeStatusUnknown")
        n["status"]["addresses"] = [{"type": "Hostname", "address": "node-3"}]
    rep = run("a", change)
    assert one(rep, "NODE001", "node/node-3").severity.value == "critical"
    assert one(rep, "NODE002", "node/node-3").severity.value == "warning"
    facts = {n["name"]: n for n in section(rep, "nodes").facts["nodes"]}
    assert facts["node-3"]["ready"] is False and facts["node-3"]["internal_ip"] is None
    assert facts["node-1"] == {"name": "node-1", "ready": True, "internal_ip": "192.168.10.11",
                               "kernel": "6.8.0-51-generic", "os": "Ubuntu 24.04.1 LTS",
                               "cpus": 8, "excluded_from_lb": True, "control_plane": True}


def test_facts_contract_keys() -> None:
    rep = run("a")
    assert {"cni", "encapsulation", "calico_backend", "enforces_networkpolicy",
            "kube_proxy_replacement"} <= set(section(rep, "cni").facts)
    assert {"deployed", "replaced_by", "mode", "strict_arp", "config_source", "version"} <= \
        set(section(rep, "kube-proxy").facts)


def test_scenarios_do_not_modify_shared_fixtures() -> None:
    # building twice gives equal objects: nothing leaked between builds through shared dicts
    a1, a2 = scenarios.get("c"), scenarios.get("c")
    assert copy.deepcopy(a1.objects) == a2.objects


def test_calico_node_not_ready_without_bgp_message_is_never_healthy() -> None:
    rep = run("case-calico-bgp-not-established",
              lambda sc: drop(sc, lambda o: o.get("kind") == "Event"))
    f = one(rep, "BGP006", "pod/kube-system/calico-node-aaaaa")
    assert f.severity.value == "warning"
    assert section(rep, "bgp").status is not SectionStatus.OK


def test_k3s_embedded_kube_proxy_is_not_reported_absent() -> None:
    def k3s(sc: Scenario) -> None:
        drop(sc, lambda o: o["metadata"].get("name") == "kube-proxy"
             or (o.get("kind") == "Pod" and o["metadata"]["name"].startswith("kube-proxy-")))
        for o in sc.objects:
            if o.get("kind") == "Node":
                o["status"]["nodeInfo"]["kubeletVersion"] = "v1.31.4+k3s1"
    rep = run("a", k3s)
    assert one(rep, "KP014").severity.value == "info"
    assert "KP002" not in codes(rep, "kube-proxy")
    assert section(rep, "kube-proxy").status is SectionStatus.UNKNOWN


def test_second_cni_agent_is_reported() -> None:
    rep = run("a", lambda sc: sc.objects.append(
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": "weave-net", "namespace": "kube-system"}}))
    f = one(rep, "CNI010")
    # a full CNI wins over Flannel (which may be chained under it); Flannel is the extra one
    assert f.evidence["primary"] == "weave" and "flannel" in f.evidence["others"]
