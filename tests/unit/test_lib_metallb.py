"""runbooks._lib.metallb: address intervals, pools, legacy config, advertisements, Services."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from runbooks._lib import metallb as mlb
from tests.lab.paths import CASES, REAL
from tests.lab.scenarios._build import load, load_one

LEGACY = sorted((REAL / "metallb-legacy-configmap").glob("*.yaml"))
CRD_FILES = sorted((REAL / "metallb-crds").glob("*.yaml"))


# --------------------------------------------------------------------------- fixtures parse


@pytest.mark.parametrize("path", LEGACY, ids=lambda p: p.name)
def test_every_legacy_configmap_fixture_parses(path: Path) -> None:
    cfg = mlb.parse_legacy_config(load_one(path))
    assert cfg.valid, (cfg.errors, [p.errors for p in cfg.pools])
    assert cfg.pools and all(p.size > 0 for p in cfg.pools)
    assert all(p.protocol in ("layer2", "bgp") for p in cfg.pools)


def test_legacy_upstream_bgp_example_details() -> None:
    cfg = mlb.parse_legacy_config(load_one(REAL / "metallb-legacy-configmap"
                                           / "upstream-v0.12.1-example-config.bgp.yaml"))
    (pool,) = cfg.pools
    assert cfg.peers == 1 and cfg.subject == "configmap/metallb-system/config"
    assert [r.text for r in pool.ranges] == ["198.51.100.0/24", "192.168.0.150-192.168.0.200"]
    assert not pool.auto_assign and pool.avoid_buggy_ips and pool.protocol == "bgp"
    # 256 + 51 addresses, minus 198.51.100.0 and .255 (avoid-buggy-ips)
    assert pool.size == 256 + 51 - 2
    assert pool.subject == "configmap/metallb-system/config#my-ip-space"


def test_legacy_helm_configinline_has_its_own_name_and_namespace() -> None:
    cm = load_one(REAL / "metallb-legacy-configmap"
                  / "user-helm-configinline-exported.configmap.yaml")
    assert mlb.configmap_has_address_pools(cm)
    cfg = mlb.parse_legacy_config(cm)
    assert (cfg.namespace, cfg.name) == ("networking", "metallb")
    assert cfg.pools[0].size == 51


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_every_crd_fixture_parses(path: Path) -> None:
    objs = load(path)
    pools = [mlb.pool_from_crd(o) for o in objs if o["kind"] == "IPAddressPool"]
    for p in pools:
        assert not p.errors, p.errors
        assert p.size > 0 and p.subject.startswith("ipaddresspool/metallb-system/")
    for adv in (o for o in objs if o["kind"] in ("L2Advertisement", "BGPAdvertisement")):
        chosen, unknown = mlb.advertisement_pools(adv, pools)
        assert isinstance(chosen, list) and isinstance(unknown, list)


def test_crd_definitions_are_crds() -> None:
    for path in sorted((REAL / "metallb-crds" / "crd-definitions").glob("*.yaml")):
        for o in load(path):
            assert o["kind"] == "CustomResourceDefinition"
            assert o["spec"]["group"] == "metallb.io"


def test_simple_pool_mixed_families_sizes() -> None:
    (pool,) = [mlb.pool_from_crd(o) for o in
               load(REAL / "metallb-crds" / "configsamples-ipaddresspool_simple.yaml")]
    assert pool.families == {4, 6}
    assert pool.size == 256 + 5 + 16


def test_pool_with_service_allocation() -> None:
    pool = mlb.pool_from_crd(load_one(REAL / "metallb-crds"
                                      / "configsamples-ipaddresspool_with_selector.yaml"))
    assert pool.avoid_buggy_ips and pool.size == 254
    # namespace condition AND service condition (MetalLB isPoolCompatibleWithService)
    svc = {"metadata": {"name": "s", "namespace": "namespace-a", "labels": {"app": "bar"}}}
    assert mlb.pool_serves(pool, svc, {})
    unlabelled = {"metadata": {"name": "s", "namespace": "namespace-a"}}
    assert not mlb.pool_serves(pool, unlabelled, {})  # right namespace, no app In [bar]
    other = {"metadata": {"name": "s", "namespace": "other", "labels": {"app": "bar"}}}
    assert not mlb.pool_serves(pool, other, {})  # right label, namespace not selected
    assert mlb.pool_serves(pool, other, {"foo": "bar"})  # namespaceSelectors foo=bar
    nobody = {"metadata": {"name": "s", "namespace": "other", "labels": {"app": "x"}}}
    assert not mlb.pool_serves(pool, nobody, {"kubernetes.io/metadata.name": "other"})
    assert not mlb.pool_serves(pool, nobody, {"foo": "bar"})  # namespace ok, label not


def test_service_allocation_namespace_selector_matching_no_namespace() -> None:
    """MetalLB resolves namespaceSelectors to names at load time: a selector matching no
    namespace (and no namespaces list) leaves the namespace condition unset."""
    pool = mlb.pool_from_crd({"kind": "IPAddressPool", "metadata": {"name": "p"}, "spec": {
        "addresses": ["10.0.0.0/30"],
        "serviceAllocation": {"namespaceSelectors": [{"matchLabels": {"team": "x"}}]}}})
    svc = {"metadata": {"name": "s", "namespace": "shop"}}
    assert not mlb.pool_serves(pool, svc, {})
    assert mlb.pool_serves(pool, svc, {}, {"shop": {}, "web": {"team": "y"}})
    assert not mlb.pool_serves(pool, svc, {}, {"shop": {}, "web": {"team": "x"}})


# --------------------------------------------------------------------------- intervals


def test_cidr_with_host_bits_means_the_whole_network() -> None:
    r = mlb.parse_address("192.168.1.5/24")
    assert r.host_bits_set and r.kind == "cidr"
    assert (str(r.start), str(r.end), r.size) == ("192.168.1.0", "192.168.1.255", 256)
    assert r.normalized == "192.168.1.0/24"
    assert not mlb.parse_address("192.168.1.0/24").host_bits_set


def test_range_is_trimmed_cidr_is_not() -> None:
    r = mlb.parse_address(" 192.168.1.1 - 192.168.1.10 ")
    assert (r.kind, r.size) == ("range", 10)
    with pytest.raises(mlb.AddressError):
        mlb.parse_address("192.168.1.0/24 ")


@pytest.mark.parametrize("bad", [
    "192.168.1.10-192.168.1.1",      # start after end
    "192.168.1.1-fc00::1",           # mixed families
    "192.168.1.300-192.168.1.310",   # not an IP
    "10.0.0.1",                      # no prefix
    "10.0.0.0/33",
    "",
    42,
])
def test_bad_addresses_raise_address_error(bad: object) -> None:
    with pytest.raises(mlb.AddressError):
        mlb.parse_address(bad)


def test_ipv6_entries() -> None:
    r = mlb.parse_address("fc00:f853:0ccd:e799::/124")
    assert (r.version, r.size) == (6, 16)
    assert r.contains("fc00:f853:ccd:e799::f") and not r.contains("fc00:f853:ccd:e799::10")
    rng = mlb.parse_address("2001:db8::10-2001:db8::1f")
    assert rng.size == 16 and rng.buggy_count() == 0


def test_containment_is_exact_not_cidr_widened() -> None:
    # cases/metallb-pool-range-vs-node-ip-check
    req = load_one(CASES / "metallb-pool-range-vs-node-ip-check" / "requested-pool.yaml")
    node = load_one(CASES / "metallb-pool-range-vs-node-ip-check" / "nodes.yaml")
    node_ip = node["status"]["addresses"][0]["address"]
    pool = mlb.pool_from_crd(req)
    assert node_ip == "192.168.1.2"
    assert not pool.contains(node_ip)
    assert mlb.node_ips_in_pools([pool], [{"name": "node-1", "addresses": [node_ip]}]) == []
    wide = mlb.pool_from_crd({"kind": "IPAddressPool", "metadata": {"name": "w"},
                              "spec": {"addresses": ["192.168.1.1-192.168.1.10"]}})
    assert wide.contains(node_ip)
    hits = mlb.node_ips_in_pools([wide], [{"name": "node-1", "addresses": [node_ip]}])
    assert [(p.name, n, ip) for p, n, ip in hits] == [("w", "node-1", "192.168.1.2")]


def test_buggy_ip_count() -> None:
    assert mlb.parse_address("192.168.0.0/23").buggy_count() == 4
    assert mlb.parse_address("192.168.0.1-192.168.0.254").buggy_count() == 0
    assert mlb.parse_address("192.168.0.255-192.168.1.0").buggy_count() == 2


# --------------------------------------------------------------------------- overlaps


def test_identical_ranges_overlap_case_overlapping_pool_rejected() -> None:
    d = CASES / "metallb-overlapping-pool-rejected"
    existing = [mlb.pool_from_crd(o) for o in load(d / "existing-pools.yaml")
                if o["kind"] == "IPAddressPool"]
    requested = mlb.pool_from_crd(load_one(d / "requested-pool.yaml"))
    assert mlb.overlapping_range(existing, requested.ranges[0]) == [
        ("kind-pool", "172.18.0.100/30")]
    ov = mlb.overlaps([*existing, requested])
    assert len(ov) == 1
    assert ov[0].to_json() == {"pool": "kind-pool", "range": "172.18.0.100/30",
                               "other_pool": "ktf-pool", "other_range": "172.18.0.100/30",
                               "shared": "172.18.0.100-172.18.0.103"}


def test_overlap_range_vs_cidr_and_adjacent_do_not() -> None:
    a = mlb.parse_address("192.168.1.0/25")
    b = mlb.parse_address("192.168.1.128/25")
    c = mlb.parse_address("192.168.1.120-192.168.1.130")
    assert not a.overlaps(b)
    assert a.overlaps(c) and b.overlaps(c)
    assert not a.overlaps(mlb.parse_address("fc00::/120"))


def test_overlap_inside_one_pool_is_reported() -> None:
    p = mlb.pool_from_crd({"kind": "IPAddressPool", "metadata": {"name": "dup"},
                           "spec": {"addresses": ["10.0.0.0/30", "10.0.0.2-10.0.0.5"]}})
    (ov,) = mlb.overlaps([p])
    assert (ov.first, ov.last) == ("10.0.0.2", "10.0.0.3")


# --------------------------------------------------------------------------- legacy errors


def _cm(text: object) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "config", "namespace": "metallb-system"},
            "data": {"config": text} if text is not None else {}}


def test_legacy_yaml_error_is_collected_not_raised() -> None:
    cfg = mlb.parse_legacy_config(_cm("address-pools:\n- name: x\n  addresses: [10.0.0.1/32\n"))
    assert not cfg.valid and cfg.errors[0].startswith("YAML error")


@pytest.mark.parametrize("text,needle", [
    ("- just\n- a list\n", "not a mapping"),
    ("address-pools: 5\n", "not a list"),
    ("address-pools:\n- name: a\n  addresses: [10.0.0.0/30]\n", "missing protocol"),
    ("address-pools:\n- name: a\n  protocol: arp\n  addresses: [10.0.0.0/30]\n",
     "unknown protocol"),
    ("address-pools:\n- name: a\n  protocol: layer2\n", "no addresses"),
    ("address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.0/30]\n"
     "  bgp-advertisements: [{aggregation-length: 32}]\n", "only valid with protocol bgp"),
    ("address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n"
     "  bgp-advertisements: [{aggregation-length: 16}]\n", "aggregation-length"),
    ("address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/30]}\n"
     "- {name: a, protocol: layer2, addresses: [10.0.1.0/30]}\n", "duplicate"),
])
def test_legacy_semantic_errors(text: str, needle: str) -> None:
    cfg = mlb.parse_legacy_config(_cm(text))
    errs = list(cfg.errors) + [e for p in cfg.pools for e in p.errors]
    assert any(needle in e for e in errs), errs


def test_legacy_missing_config_key() -> None:
    assert mlb.parse_legacy_config(_cm(None)).errors == ("the ConfigMap has no 'config' key",)


def test_crd_pool_errors_never_raise() -> None:
    p = mlb.pool_from_crd({"kind": "IPAddressPool", "metadata": {"name": "x"},
                           "spec": {"addresses": ["10.0.0.0/24", "nonsense"]}})
    assert p.errors and p.size == 256
    assert mlb.pool_from_crd({"kind": "IPAddressPool", "metadata": {"name": "y"},
                              "spec": None}).errors == ("pool has no addresses defined",)


# --------------------------------------------------------------------------- advertisements


def _pools(*specs: tuple[str, dict[str, str]]) -> list[mlb.Pool]:
    return [mlb.pool_from_crd({"kind": "IPAddressPool",
                               "metadata": {"name": n, "namespace": "metallb-system",
                                            "labels": lab},
                               "spec": {"addresses": [f"10.9.{i}.0/28"]}})
            for i, (n, lab) in enumerate(specs)]


def test_empty_advertisement_selects_all_pools() -> None:
    pools = _pools(("a", {}), ("b", {}))
    adv = load(REAL / "metallb-crds" / "configsamples-simple_pool_adv_l2.yaml")[1]
    assert adv.get("spec") is None
    assert mlb.advertisement_pools(adv, pools) == (["a", "b"], [])


def test_advertisement_by_list_and_unknown_names() -> None:
    pools = _pools(("first-pool", {}), ("other", {}))
    adv = load_one(REAL / "metallb-crds" / "configsamples-l2adv_selects_pools_by_list.yaml")
    assert mlb.advertisement_pools(adv, pools) == (["first-pool"], [])
    assert mlb.advertisement_pools(adv, _pools(("other", {}))) == ([], ["first-pool"])


def test_advertisement_by_label_selector() -> None:
    pools = _pools(("x", {"test": "bgp-with-advertisement"}), ("y", {"test": "other"}))
    adv = load_one(REAL / "metallb-crds" / "configsamples-bgpadv_selectspool_by_label.yaml")
    assert mlb.advertisement_pools(adv, pools) == (["x"], [])
    expr = {"spec": {"ipAddressPoolSelectors": [
        {"matchExpressions": [{"key": "test", "operator": "NotIn",
                               "values": ["bgp-with-advertisement"]}]}]}}
    assert mlb.advertisement_pools(expr, pools) == (["y"], [])
    both = {"spec": {"ipAddressPools": ["x"], "ipAddressPoolSelectors": [
        {"matchExpressions": [{"key": "test", "operator": "Exists"}]}]}}
    assert mlb.advertisement_pools(both, pools) == (["x", "y"], [])


def test_node_selector_only_advertisement_selects_all_pools() -> None:
    adv = load_one(REAL / "metallb-crds" / "configsamples-l2adv_with_node_selector.yaml")
    assert mlb.advertisement_pools(adv, _pools(("a", {})))[0] == ["a"]


# --------------------------------------------------------------------------- versions, images


def test_versions_and_images() -> None:
    img = load_one(CASES / "metallb-pool-range-vs-node-ip-check"
                   / "metallb-controller-image.yaml")["image"]
    assert mlb.image_version(img) == "v0.15.0"
    assert mlb.parse_version("v0.13.10") == (0, 13, 10)
    assert mlb.parse_version("0.14") == (0, 14, 0)
    assert mlb.parse_version("main") is None
    assert mlb.image_version("quay.io/metallb/controller@sha256:abc") is None
    assert mlb.image_version("quay.io/metallb/controller:main") is None
    assert mlb.image_version("registry:5000/metallb/controller:v0.12.1") == "v0.12.1"
    assert mlb.is_metallb_image("quay.io/metallb/controller:v0.12.1", "controller")
    assert mlb.is_metallb_image("metallb/speaker:v0.9.6", "speaker")
    assert mlb.is_metallb_image("registry:5000/metallb/controller", "controller")
    assert not mlb.is_metallb_image("quay.io/metallb/speaker:v0.12.1", "controller")
    assert not mlb.is_metallb_image("quay.io/frrouting/frr:9.1.0", "speaker")


def test_container_arg_forms() -> None:
    cs = [{"args": ["--port=7472", "--lb-class", "metallb", "-config=metallb"]}]
    assert mlb.container_arg(cs, "lb-class") == "metallb"
    assert mlb.container_arg(cs, "config") == "metallb"
    assert mlb.container_arg(cs, "webhook-mode") is None


# --------------------------------------------------------------------------- Services


def test_service_requests_and_state() -> None:
    svc = {"metadata": {"name": "s", "namespace": "n", "annotations": {
        "metallb.universe.tf/loadBalancerIPs": "10.0.0.5, 10.0.0.6",
        "metallb.universe.tf/address-pool": "old"}},
        "spec": {"type": "LoadBalancer", "loadBalancerIP": "10.0.0.9"}, "status": {}}
    assert mlb.requested_ips(svc) == ["10.0.0.5", "10.0.0.6"]
    assert mlb.requested_pool(svc) == "old"
    svc2 = copy.deepcopy(svc)
    svc2["metadata"]["annotations"] = {"metallb.io/address-pool": "new",
                                       "metallb.universe.tf/address-pool": "old"}
    assert mlb.requested_pool(svc2) == "new"
    assert mlb.requested_ips(svc2) == ["10.0.0.9"]
    assert mlb.is_pending(svc)
    svc2["status"] = {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}
    assert not mlb.is_pending(svc2) and mlb.ingress_ips(svc2) == []
    assert mlb.service_families({"spec": {"ipFamilies": ["IPv6"]}}) == {6}
    assert mlb.service_families({}) == {4}
