"""Antrea with AntreaProxy ``proxyAll: true`` replaces kube-proxy: its absence is expected,
not a critical "nothing replaces kube-proxy" (antrea-io/antrea docs/antrea-proxy.md)."""

from __future__ import annotations

import copy

from bot.engine.status import build_report
from bot.sdk import KubeForbidden
from bot.sdk.results import ClusterReport, SectionStatus
from runbooks.probes import all_probes
from tests.lab.scenarios import get
from tests.lab.scenarios._build import Scenario, pods_for
from tests.lab.store import StaticKubeReader


def antrea_cluster(proxy_all: bool | None) -> Scenario:
    """Scenario (a) with Flannel and kube-proxy replaced by an Antrea agent; ``proxy_all``
    None: no antrea-config ConfigMap at all."""
    sc = get("a")
    sc.objects = [o for o in sc.objects
                  if not (o["kind"] in ("DaemonSet", "ConfigMap", "Pod")
                          and (o["metadata"]["name"].startswith(("kube-flannel", "kube-proxy"))))]
    nodes = [o for o in sc.objects if o["kind"] == "Node"]
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "antrea-agent", "namespace": "kube-system",
                       "labels": {"app": "antrea", "component": "antrea-agent"}},
          "spec": {"selector": {"matchLabels": {"component": "antrea-agent"}},
                   "template": {"metadata": {"labels": {"app": "antrea",
                                                        "component": "antrea-agent"}},
                                "spec": {"hostNetwork": True, "containers": [
                                    {"name": "antrea-agent",
                                     "image": "antrea/antrea-agent-ubuntu:v2.2.0"}]}}},
          "status": {"desiredNumberScheduled": 3, "numberReady": 3}}
    sc.objects += [ds, *pods_for(ds, nodes)]
    if proxy_all is not None:
        sc.objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "antrea-config", "namespace": "kube-system"},
                           "data": {"antrea-agent.conf":
                                    "featureGates: {}\nantreaProxy:\n"
                                    f"  proxyAll: {'true' if proxy_all else 'false'}\n"
                                    "kubeAPIServerOverride: https://192.0.2.5:6443\n"}})
    return sc


def report(sc: Scenario, errors: dict[str, Exception] | None = None) -> ClusterReport:
    return build_report("lab", StaticKubeReader(sc.store(), sc.logs, sc.version, errors),
                        all_probes())


def codes(r: ClusterReport, section: str) -> list[str]:
    return [f.code for s in r.sections if s.name == section for f in s.findings]


def test_proxy_all_replaces_kube_proxy() -> None:
    r = report(antrea_cluster(True))
    assert "KP002" not in codes(r, "kube-proxy")
    assert "KP001" in codes(r, "kube-proxy")
    cni = next(s for s in r.sections if s.name == "cni")
    assert "AntreaProxy replaces kube-proxy" in cni.summary


def test_without_proxy_all_missing_kube_proxy_is_critical() -> None:
    r = report(antrea_cluster(False))
    assert "KP002" in codes(r, "kube-proxy")


def test_unreadable_antrea_config_is_unknown_not_a_false_alarm() -> None:
    sc = antrea_cluster(True)
    err = KubeForbidden("configmaps is forbidden", verb="list", resource="configmaps")
    r = report(copy.deepcopy(sc), {"configmaps": err})
    assert "KP002" not in codes(r, "kube-proxy")
    kp = next(s for s in r.sections if s.name == "kube-proxy")
    assert kp.status is SectionStatus.UNKNOWN
