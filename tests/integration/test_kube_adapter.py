"""The Kubernetes adapter over the official client, against the API emulator over HTTP:
pagination, 410 restart, error translation, discovery, logs, timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.adapters.kube import KubeAdapter
from bot.sdk.errors import KubeApiError, KubeForbidden, KubeTimeout, KubeUnreachable
from tests.integration.conftest import EmulatorFactory
from tests.lab.emulator import Emulator


def adapter(emu: Emulator, tmp_path: Path, **kw: object) -> KubeAdapter:
    kc = tmp_path / "kubeconfig"
    emu.write_kubeconfig(kc, context="lab")
    return KubeAdapter("lab", kubeconfig=str(kc), context="lab", **kw)  # type: ignore[arg-type]


def configmaps(n: int, ns: str = "bulk") -> list[dict[str, object]]:
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": f"cm-{i:05d}", "namespace": ns, "labels": {"i": str(i % 3)}},
             "data": {"i": str(i)}} for i in range(n)]


def test_list_pages_through_everything_once(emulator_factory: EmulatorFactory,
                                            tmp_path: Path) -> None:
    emu = emulator_factory()
    emu.add(*configmaps(1234))
    a = adapter(emu, tmp_path, page_size=100)
    emu.clear_requests()
    items = a.list("v1", "configmaps", "bulk")
    names = [i["metadata"]["name"] for i in items]
    assert len(names) == 1234 and len(set(names)) == 1234
    assert all(i["kind"] == "ConfigMap" and i["apiVersion"] == "v1" for i in items)
    lists = emu.calls("GET", "/api/v1/namespaces/bulk/configmaps")
    assert len(lists) == 13  # ceil(1234 / 100): a bounded number of calls
    assert all(("limit", "100") in r.query or r.query.get("limit") == "100"  # type: ignore
               for r in lists)
    sel = a.list("v1", "configmaps", "bulk", label_selector="i=1")
    assert len(sel) == 411 and all(i["metadata"]["labels"]["i"] == "1" for i in sel)


def test_expired_continue_token_restarts_the_list(emulator_factory: EmulatorFactory,
                                                  tmp_path: Path) -> None:
    emu = emulator_factory()
    emu.add(*configmaps(250))
    a = adapter(emu, tmp_path, page_size=100)
    emu.expire_continue()
    items = a.list("v1", "configmaps", "bulk")
    assert len({i["metadata"]["name"] for i in items}) == 250 == len(items)
    codes = [r.code for r in emu.calls("GET", "/api/v1/namespaces/bulk/configmaps")]
    assert 410 in codes  # it really was restarted, not lucky


def test_forbidden_names_verb_resource_and_namespace(emulator_factory: EmulatorFactory,
                                                     tmp_path: Path) -> None:
    emu = emulator_factory("a")
    emu.forbid("list", "networkpolicies")
    emu.forbid("get", "pods/log")
    a = adapter(emu, tmp_path)
    with pytest.raises(KubeForbidden) as ei:
        a.list("networking.k8s.io/v1", "networkpolicies")
    e = ei.value
    assert (e.verb, e.resource, e.group) == ("list", "networkpolicies", "networking.k8s.io")
    assert "not allowed to list networkpolicies.networking.k8s.io cluster-wide" in str(e)
    assert "cannot list resource" in str(e)  # the apiserver's own words are kept
    with pytest.raises(KubeForbidden) as ei2:
        a.list("networking.k8s.io/v1", "networkpolicies", "shop")
    assert "in namespace 'shop'" in str(ei2.value)
    pod = a.list("v1", "pods", "kube-system", label_selector="k8s-app=kube-proxy")[0]
    with pytest.raises(KubeForbidden, match="get pods/log in namespace 'kube-system'"):
        a.pod_log("kube-system", pod["metadata"]["name"])


def test_get_missing_is_none_and_discovery(emulator_factory: EmulatorFactory,
                                           tmp_path: Path) -> None:
    emu = emulator_factory("b")
    a = adapter(emu, tmp_path)
    assert a.get("v1", "configmaps", "nope", "kube-system") is None
    cm = a.get("v1", "configmaps", "kube-proxy", "kube-system")
    assert cm is not None and "mode: ipvs" in cm["data"]["config.conf"]
    assert a.served("metallb.io/v1beta1", "ipaddresspools")
    assert not a.served("metallb.io/v1beta1", "addresspools")
    assert not a.served("cilium.io/v2", "ciliumnetworkpolicies")  # group not served at all
    assert a.server_version()["gitVersion"].startswith("v1.")


def test_pod_log_tail(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emu = emulator_factory("a")
    a = adapter(emu, tmp_path)
    pod = a.list("v1", "pods", "kube-system", label_selector="k8s-app=kube-proxy")[0]
    text = a.pod_log("kube-system", pod["metadata"]["name"], tail_lines=500)
    assert '"Using iptables Proxier"' in text
    assert len(a.pod_log("kube-system", pod["metadata"]["name"], tail_lines=2).splitlines()) == 2


def test_garbage_and_timeout_and_unreachable(emulator_factory: EmulatorFactory,
                                             tmp_path: Path) -> None:
    emu = emulator_factory("a")
    emu.garbage("nodes")
    emu.delay("configmaps", 3)
    a = adapter(emu, tmp_path, timeout=1.0)
    with pytest.raises(KubeApiError, match="not JSON for list nodes"):
        a.list("v1", "nodes")
    with pytest.raises(KubeTimeout, match=r"did not answer within 1 s \(list configmaps\)"):
        a.list("v1", "configmaps", "kube-system")
    url = emu.url
    emu.stop()
    with pytest.raises(KubeUnreachable) as ei:
        KubeAdapter("gone", kubeconfig=str(tmp_path / "kubeconfig"), context="lab",
                    timeout=2).server_version()
    assert url in str(ei.value) and "connection refused" in str(ei.value)
