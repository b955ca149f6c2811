"""runbooks._lib.cni and runbooks._lib.calico on the real Flannel/Calico/Canal fixtures and the
Cilium case (DOMAIN.md section 5)."""

from __future__ import annotations

import pytest
import yaml

from runbooks._lib import calico as cal
from runbooks._lib import cni as c
from tests.lab.paths import CASES, REAL
from tests.lab.scenarios._build import load, load_one

# ---- agents ------------------------------------------------------------------------------


def _ds(name: str, ns: str = "kube-system", containers: list[dict] | None = None,
        labels: dict | None = None, args: list[str] | None = None) -> dict:
    cs = containers or [{"name": name, "image": f"example/{name}:v1.0.0",
                         **({"args": args} if args else {})}]
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"template": {"spec": {"containers": cs}}}}


def test_find_agents_and_primary() -> None:
    flannel = load_one(REAL / "flannel" / "kube-flannel-ds.head.daemonset.yaml")
    assert c.primary_cni(c.find_agents([flannel])) == "flannel"
    assert c.primary_cni(c.find_agents([_ds("canal")])) == "canal"
    # Calico policy on a Flannel data plane, deployed separately = Canal
    assert c.primary_cni(c.find_agents([_ds("calico-node"), flannel])) == "canal"
    assert c.primary_cni(c.find_agents([_ds("calico-node", "calico-system")])) == "calico"
    assert c.primary_cni(c.find_agents([_ds("cilium"), _ds("kube-proxy")])) == "cilium"
    assert c.primary_cni(c.find_agents([_ds("antrea-agent")])) == "antrea"
    assert c.primary_cni(c.find_agents([_ds("weave-net")])) == "weave"
    assert c.primary_cni(c.find_agents([_ds("kube-router")])) == "kube-router"
    assert c.primary_cni(c.find_agents([_ds("kube-flannel-ds-amd64")])) == "flannel"
    assert c.primary_cni(c.find_agents([_ds("kube-proxy"), _ds("node-exporter")])) is None
    # Helm-renamed agent found by its label
    renamed = _ds("my-release-cilium-agent", labels={"k8s-app": "cilium"})
    assert c.primary_cni(c.find_agents([renamed])) == "cilium"


def test_case_flannel_daemonset_has_no_netpol_sidecar() -> None:
    dss = load(CASES / "flannel-networkpolicy-not-enforced" / "daemonsets.yaml")
    agents = c.find_agents(dss)
    assert set(agents) == {"flannel"}
    assert not c.flannel_netpol_sidecar(agents["flannel"])
    assert c.agent_version(agents["flannel"]) == "v0.26.1"
    with_sidecar = _ds("kube-flannel-ds", "kube-flannel", containers=[
        {"name": "kube-flannel", "image": "ghcr.io/flannel-io/flannel:v0.26.1"},
        {"name": "kube-network-policies",
         "image": "registry.k8s.io/networking/kube-network-policies:v0.6.0"}])
    assert c.flannel_netpol_sidecar(with_sidecar)


def test_cni_from_canal_node_annotations() -> None:
    nodes = load(REAL / "cluster-dumps" / "canal-two-node.nodes.list.yaml")
    assert c.cni_from_nodes(nodes) == "canal"
    only_flannel = [{"metadata": {"annotations": {"flannel.alpha.coreos.com/backend-type":
                                                  "vxlan"}}}]
    assert c.cni_from_nodes(only_flannel) == "flannel"
    assert c.cni_from_nodes([{"metadata": {}}]) is None


def test_kube_router_features() -> None:
    ds = _ds("kube-router", args=["--run-router=true", "--run-firewall=true",
                                  "--run-service-proxy=false"])
    assert c.kube_router_features(ds) == {"router": True, "firewall": True,
                                          "service_proxy": False}
    assert c.kube_router_features(_ds("kube-router"))["service_proxy"] is True


# ---- Flannel net-conf.json ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["kube-flannel-cfg.head-kube-flannel-ns.yaml",
                                  "kube-flannel-cfg.v0.14.0-kube-system-ns.yaml"])
def test_real_net_conf(path: str) -> None:
    cm = load_one(REAL / "flannel" / path)
    conf = c.parse_net_conf(cm["data"]["net-conf.json"])
    assert conf.network == "10.244.0.0/16" and conf.backend == "vxlan"
    assert conf.vni == 1 and conf.port is None and not conf.enable_nftables


@pytest.mark.parametrize("text, fragment", [
    ('{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"', "not valid JSON at line"),
    ("[1, 2]", "not a JSON object"),
    ('{"Network": "10.244.0.0/16", "Backend": "vxlan"}', "Backend is not a JSON object"),
    ('{"Backend": {"Type": "vxlan"}}', "sets no Network"),
])
def test_malformed_net_conf(text: str, fragment: str) -> None:
    with pytest.raises(c.NetConfError) as e:
        c.parse_net_conf(text)
    assert fragment in str(e.value)


def test_net_conf_defaults_and_options() -> None:
    assert c.parse_net_conf('{"Network": "10.0.0.0/8"}').backend == "udp"
    conf = c.parse_net_conf('{"Network": "10.0.0.0/8", "Backend": {"Type": "vxlan", "VNI": 4096,'
                            ' "Port": 4789, "DirectRouting": true}}')
    assert (conf.vni, conf.port, conf.direct_routing) == (4096, 4789, True)
    assert c.parse_net_conf('{"Network": "10.0.0.0/8", "Backend": {"Type": "host-gw"}}'
                            ).backend == "host-gw"


def test_flannel_configmap_ref() -> None:
    ds = load_one(REAL / "flannel" / "kube-flannel-ds.head.daemonset.yaml")
    assert c.flannel_configmap_ref(ds) == "kube-flannel-cfg"


# ---- Cilium ------------------------------------------------------------------------------


def test_case_cilium_config() -> None:
    cm = load_one(CASES / "kube-proxy-absent-cilium-false-alarm" / "cilium-config.configmap.yaml")
    cfg = c.parse_cilium_config(cm["data"])
    assert cfg.kpr and not cfg.kpr_legacy and cfg.routing_mode == "native"
    assert cfg.encapsulation == "none" and cfg.tunnel_protocol is None
    assert cfg.enforces_networkpolicy


@pytest.mark.parametrize("data, version, kpr, legacy, mode, proto", [
    ({"kube-proxy-replacement": "strict"}, (1, 15, 5), False, True, "tunnel", "vxlan"),
    ({"kube-proxy-replacement": "strict"}, (1, 13, 4), True, True, "tunnel", "vxlan"),
    ({"kube-proxy-replacement": "partial"}, None, False, True, "tunnel", "vxlan"),
    ({"kube-proxy-replacement": "false", "tunnel": "geneve"}, None, False, False, "tunnel",
     "geneve"),
    ({"tunnel": "disabled"}, None, False, False, "native", None),
    ({"routing-mode": "tunnel", "tunnel-protocol": "geneve"}, None, False, False, "tunnel",
     "geneve"),
])
def test_cilium_variants(data: dict, version: tuple | None, kpr: bool, legacy: bool, mode: str,
                         proto: str | None) -> None:
    cfg = c.parse_cilium_config(data, version)
    assert (cfg.kpr, cfg.kpr_legacy, cfg.routing_mode, cfg.tunnel_protocol) == \
        (kpr, legacy, mode, proto)


def test_cilium_enable_policy_never() -> None:
    assert not c.parse_cilium_config({"enable-policy": "never"}).enforces_networkpolicy


# ---- Calico ------------------------------------------------------------------------------


def test_real_pools() -> None:
    [p] = [cal.parse_pool(o) for o in load(REAL / "calico" / "ippool-ipip-always.crd-v1.list.yaml")]
    assert (p.encapsulation, p.token, p.source) == ("IPIP", "ipip", "crd.projectcalico.org/v1")
    [p] = [cal.parse_pool(o) for o in
           load(REAL / "calico" / "ippool-ipip-crosssubnet.v3.list.yaml")]
    assert p.encapsulation == "IPIPCrossSubnet" and p.source == "projectcalico.org/v3"
    p = cal.parse_pool(load_one(REAL / "calico" / "ippool-vxlan-always.crd-v1.yaml"))
    assert p.encapsulation == "VXLAN" and p.node_selector == "!all()"
    rows = yaml.safe_load((REAL / "calico" /
                           "user-ippools-ipip-always-and-never.calicoctl-wide.yaml").read_text())
    pools = [cal.parse_pool(r) for r in rows]
    assert [p.encapsulation for p in pools] == ["IPIP", "None"]
    assert cal.cluster_encapsulation(pools) == "ipip+none"


def test_pool_both_enabled_and_ipv6_and_legacy() -> None:
    both = cal.parse_pool({"metadata": {"name": "x"},
                           "spec": {"cidr": "10.0.0.0/16", "ipipMode": "Always",
                                    "vxlanMode": "CrossSubnet"}})
    assert both.both_enabled and both.encapsulation == "Invalid"
    v6 = cal.parse_pool({"metadata": {"name": "v6"},
                         "spec": {"cidr": "fd00::/48", "vxlanMode": "Always"}})
    assert v6.tunnel_on_ipv6
    legacy = cal.parse_pool({"apiVersion": "v1", "kind": "ipPool", "metadata": {"name": "old"},
                             "spec": {"cidr": "192.168.0.0/16",
                                      "ipip": {"enabled": True, "mode": "cross-subnet"}}})
    assert legacy.encapsulation == "IPIPCrossSubnet"


def test_operator_installation() -> None:
    inst = load_one(REAL / "calico" / "operator-installation-vxlancrosssubnet.yaml")
    pools = cal.installation_pools(inst)
    assert [p.encapsulation for p in pools] == ["VXLANCrossSubnet"]
    assert cal.cluster_encapsulation(pools) == "vxlan-crosssubnet"
    assert cal.backend_from_installation(inst, pools) == "vxlan"
    inst_bgp = {"spec": {"calicoNetwork": {"bgp": "Enabled"}}}
    assert cal.backend_from_installation(inst_bgp, pools) == "bird"


def test_case_node_addresses_and_bgp_message() -> None:
    d = CASES / "calico-bgp-not-established-wrong-autodetect"
    nodes = {n["metadata"]["name"]: n for n in load(d / "nodes.yaml")}
    assert cal.node_ipv4(nodes["node-1"]) == ("172.21.0.1", 16)
    assert cal.node_ipv4(nodes["node-2"]) == ("192.168.10.12", 24)
    ev = load_one(d / "events.yaml")
    assert cal.bgp_not_established_peers(ev["message"]) == ["172.21.0.1"]
    assert cal.bgp_not_established_peers("BGP not established with 10.0.0.1,10.0.0.2") == \
        ["10.0.0.1", "10.0.0.2"]
    assert cal.bgp_not_established_peers("calico/node is not ready: felix is not ready") == []


def test_calico_node_status_peers() -> None:
    cns = {"metadata": {"name": "node-2-status"}, "spec": {"node": "node-2"},
           "status": {"bgp": {"peersV4": [{"peerIP": "172.21.0.1", "type": "NodeMesh",
                                           "state": "Active", "since": "2025-01-01T00:00:00Z"}]}}}
    assert cal.node_status_peers(cns) == [{"node": "node-2", "peer_ip": "172.21.0.1",
                                           "type": "NodeMesh", "state": "Active",
                                           "since": "2025-01-01T00:00:00Z"}]
