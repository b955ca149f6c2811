"""Every lab scenario and API-decidable case, through the real path: kube adapter (official
client) over HTTP against the emulator. The report must match the in-process reader's exactly
(the emulator and adapter add or lose nothing), and the headline findings each case's
expected.md asks for must be there."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.adapters.kube import KubeAdapter
from bot.engine.status import build_report
from bot.sdk.results import ClusterReport
from runbooks.probes import all_probes
from tests.integration.conftest import EmulatorFactory
from tests.lab.scenarios import CANONICAL, get
from tests.lab.store import StaticKubeReader

# (code, subject) pairs each scenario must report, from the cases' expected.md and the issue.
MUST = {
    "a-kubeadm-flannel": {("KP004", "configmap/kube-system/kube-proxy"),
                          ("CNI003", "daemonset/kube-flannel/kube-flannel-ds"),
                          ("LB001", "service/monitoring/grafana"),
                          ("NP013", "cluster/networkpolicy")},
    "b-calico-ipvs-metallb": {("MLB013", "configmap/kube-system/kube-proxy"),
                              ("NP001", "namespace/web")},
    "c-canal": {("BGP001", "daemonset/kube-system/canal")},
    "d-cilium": {("KP001", "daemonset/kube-system/kube-proxy")},
    "case-calico-bgp-not-established": {("BGP004", "node/node-1"),
                                        ("BGP005", "pod/kube-system/calico-node-aaaaa")},
    "case-dns-allow-or-selectors": {("NP002", "namespace/example")},
    "case-flannel-netpol-not-enforced": {
        ("NP004", "networkpolicy/default/deny-cross-namespace")},
    "case-kube-proxy-absent-cilium": {("KP001", "daemonset/kube-system/kube-proxy")},
    "case-kube-proxy-conntrack-lxc": {("KP009", "pod/kube-system/kube-proxy-lxc01"),
                                      ("CT001", "pod/kube-system/kube-proxy-lxc01")},
    "case-kubeadm-upgrade-reverts-ipvs": {("KP004", "configmap/kube-system/kube-proxy")},
    "case-metallb-l2-ipvs-no-strictarp": {("MLB013", "configmap/kube-system/kube-proxy")},
}
# false alarms that must never appear
NEVER = {
    "d-cilium": {"KP002", "CT001"},
    "case-kube-proxy-absent-cilium": {"KP002", "CT001"},
    "c-canal": {"BGP002", "BGP003", "BGP005"},
    "case-flannel-netpol-not-enforced": {"NP001", "NP002"},
    "a-kubeadm-flannel": {"NP001", "KP007", "MLB004"},
}


def shape(r: ClusterReport) -> tuple[object, ...]:
    return (r.status, tuple((s.name, s.status, s.summary, s.error, s.not_checked)
                            for s in r.sections),
            tuple((f.code, f.severity, f.subject, f.message, f.runbook) for f in r.findings))


def test_every_scenario_has_expectations() -> None:
    assert set(MUST) == set(CANONICAL)


@pytest.mark.parametrize("name", CANONICAL)
def test_scenario_over_http_matches_and_reports_what_the_case_expects(
        name: str, emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    sc = get(name)
    emu = emulator_factory(sc)
    kc = tmp_path / "kc"
    emu.write_kubeconfig(kc, context=name)
    adapter = KubeAdapter(name, kubeconfig=str(kc), context=name)
    http = build_report(name, adapter, all_probes())
    static = build_report(name, StaticKubeReader(sc.store(), sc.logs, sc.version), all_probes())
    assert shape(http) == shape(static)
    got = {(f.code, f.subject) for f in http.findings}
    assert MUST[name] <= got, sorted(MUST[name] - got)
    assert not {f.code for f in http.findings} & NEVER.get(name, set())
    assert all(s.status.value != "unknown" for s in http.sections), [
        (s.name, s.error) for s in http.sections if s.error]
    assert adapter.requests < 60  # bounded: cached reads, one list per kind
