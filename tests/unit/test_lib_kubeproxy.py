"""runbooks._lib.kubeproxy on every real kube-proxy config in fixtures/real/kube-proxy, the
three real startup logs in fixtures/api, and the conntrack arithmetic of DOMAIN.md section 2."""

from __future__ import annotations

import pytest
import yaml

from runbooks._lib import kubeproxy as kp
from runbooks._lib.versions import image_version, parse_version, server_version
from tests.lab.paths import API, REAL
from tests.lab.scenarios._build import load_one

KP = REAL / "kube-proxy"


def _cm_text(name: str) -> str:
    return str(load_one(KP / name)["data"]["config.conf"])


# ---- real configs ------------------------------------------------------------------------


def test_kubeadm_default_mode_empty_is_iptables_with_defaults() -> None:
    cfg = kp.parse_config(_cm_text("kubeadm-v1.34-default-mode-empty.configmap.yaml"))
    assert cfg.mode_raw == "" and cfg.mode == "iptables" and cfg.mode_valid
    assert cfg.strict_arp is False and cfg.scheduler == ""
    assert cfg.api_version == "kubeproxy.config.k8s.io/v1alpha1"
    # maxPerCore: null / min: null → v1alpha1 defaults
    ct = cfg.conntrack
    assert (ct.max_per_core, ct.min) == (32768, 131072)
    assert ct.max_per_core_raw is None and ct.min_raw is None and ct.managed
    assert ct.shape == "conntrack"
    assert cfg.obsolete_fields == () and cfg.unknown_fields == () and cfg.problems == ()
    assert "nftables" in cfg.raw and "winkernel" in cfg.raw


def test_kubespray_ipvs_mode_with_obsolete_udp_idle_timeout() -> None:
    cfg = kp.parse_config(_cm_text("kubespray-ipvs-mode.configmap.yaml"))
    assert cfg.mode == "ipvs" and cfg.scheduler == "rr" and cfg.strict_arp is False
    assert (cfg.conntrack.max_per_core, cfg.conntrack.min) == (32768, 131072)
    assert cfg.conntrack.tcp_established_timeout == "24h0m0s"
    assert cfg.obsolete_fields == ("udpIdleTimeout",)
    assert cfg.raw["udpIdleTimeout"] == "250ms"  # preserved, not dropped


def test_baremetal_on_node_file_not_a_configmap() -> None:
    text = (KP / "baremetal-conntrack-tuned.kube-proxy-config.yml").read_text()
    cfg = kp.parse_config(text)
    assert cfg.mode_raw == "iptables" and cfg.mode == "iptables"
    assert (cfg.conntrack.max_per_core, cfg.conntrack.min) == (8192, 131072)
    assert cfg.obsolete_fields == ("udpIdleTimeout",)
    # 8 CPUs: 8192 x 8 = 65536 < min → min; 32 CPUs: 262144
    assert kp.conntrack_target(8192, 131072, 8).value == 131072
    assert kp.conntrack_target(8192, 131072, 32).value == 262144


def test_legacy_fields_are_listed_and_kept() -> None:
    text = (KP / "legacy-fields-conntrack-max.kube-proxy-config.yaml").read_text()
    cfg = kp.parse_config(text)
    assert set(cfg.obsolete_fields) == {"udpIdleTimeout", "resourceContainer", "conntrack.max"}
    assert cfg.unknown_fields == ()
    assert cfg.conntrack.obsolete_max == 0
    assert cfg.raw["resourceContainer"] == "/kube-proxy"
    assert cfg.mode == "iptables"


def test_case_configs() -> None:
    from tests.lab.paths import CASES
    after = load_one(CASES / "kubeadm-upgrade-reverts-ipvs-mode"
                     / "kube-proxy.configmap.after-upgrade.yaml")
    before = load_one(CASES / "kubeadm-upgrade-reverts-ipvs-mode"
                      / "kube-proxy.configmap.before-upgrade.yaml")
    a, b = (kp.parse_config(o["data"]["config.conf"]) for o in (after, before))
    assert (a.mode, a.mode_raw, a.strict_arp) == ("iptables", "", False)
    assert (b.mode, b.strict_arp) == ("ipvs", True)
    lxc = load_one(CASES / "kube-proxy-conntrack-write-fails-in-container"
                   / "kube-proxy.configmap.yaml")
    c = kp.parse_config(lxc["data"]["config.conf"])
    assert c.conntrack.max_per_core == 32768 and c.conntrack.managed


# ---- shapes and errors -------------------------------------------------------------------


def test_v1alpha2_linux_conntrack_shape() -> None:
    cfg = kp.parse_config("apiVersion: kubeproxy.config.k8s.io/v1alpha2\n"
                          "kind: KubeProxyConfiguration\nmode: nftables\n"
                          "linux:\n  conntrack:\n    maxPerCore: 0\n    min: 5\n")
    assert cfg.conntrack.shape == "linux.conntrack"
    assert cfg.conntrack.max_per_core == 0 and not cfg.conntrack.managed
    assert cfg.mode == "nftables" and cfg.unknown_fields == ()


@pytest.mark.parametrize("text, fragment", [
    ("mode: [ipvs\n", "not valid YAML at line"),
    ("- a\n- b\n", "not a YAML mapping"),
    ("", "empty"),
    ("apiVersion: v1\nkind: ConfigMap\n", "'ConfigMap' document"),
])
def test_malformed_config_raises_config_error(text: str, fragment: str) -> None:
    with pytest.raises(kp.KubeProxyConfigError) as e:
        kp.parse_config(text)
    assert fragment in str(e.value)


def test_multi_document_picks_kube_proxy_configuration() -> None:
    text = ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n---\n"
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
            "mode: ipvs\nipvs:\n  strictARP: true\n")
    cfg = kp.parse_config(text)
    assert cfg.mode == "ipvs" and cfg.strict_arp is True


def test_wrong_types_and_unknown_fields_are_reported_not_raised() -> None:
    cfg = kp.parse_config("kind: KubeProxyConfiguration\nmode: IPVS\nipvs:\n  strictARP: 'true'\n"
                          "  bogus: 1\nconntrack:\n  maxPerCore: lots\nmodee: ipvs\n")
    assert cfg.mode is None and not cfg.mode_valid
    assert cfg.strict_arp is False
    assert any("strictARP" in p for p in cfg.problems)
    assert any("maxPerCore" in p for p in cfg.problems)
    assert set(cfg.unknown_fields) == {"modee", "ipvs.bogus"}


@pytest.mark.parametrize("mode, os, want", [
    ("", "linux", "iptables"), (None, "linux", "iptables"), ("ipvs", "linux", "ipvs"),
    ("nftables", "linux", "nftables"), ("userspace", "linux", None), ("IPVS", "linux", None),
    ("", "windows", "kernelspace"), ("kernelspace", "linux", None),
])
def test_effective_mode(mode: str | None, os: str, want: str | None) -> None:
    assert kp.effective_mode(mode, os) == want


# ---- command line and config source ------------------------------------------------------


def test_kubeadm_daemonset_reads_the_configmap() -> None:
    ds = load_one(REAL / "cluster-dumps" / "kubeadm-v1.34-canal.kube-proxy.daemonset.yaml")
    spec = ds["spec"]["template"]["spec"]
    src = kp.config_source(spec, spec["containers"][0])
    assert src == kp.ConfigSource("configmap", "kube-proxy", "config.conf",
                                  "/var/lib/kube-proxy/config.conf")
    pa = kp.parse_args(spec["containers"][0]["command"])
    assert pa.binary_found and pa.flags["hostname-override"] == "$(NODE_NAME)"


def test_flags_only_rke1_style() -> None:
    container = {"name": "kube-proxy", "command": ["kube-proxy"],
                 "args": ["--proxy-mode", "ipvs", "--ipvs-strict-arp", "--v=2",
                          "--conntrack-max-per-core=0"]}
    assert kp.config_source({}, container).kind == "flags"
    cfg = kp.config_from_flags(kp.parse_args(container["command"], container["args"]))
    assert cfg.mode == "ipvs" and cfg.strict_arp is True
    assert cfg.conntrack.max_per_core == 0 and cfg.conntrack.shape == "flags"


def test_shell_wrapper_and_host_file() -> None:
    container = {"command": ["/bin/sh", "-c",
                             "exec kube-proxy --config=/etc/kube-proxy/config.yaml --v=2"],
                 "volumeMounts": [{"name": "conf", "mountPath": "/etc/kube-proxy"}]}
    spec = {"volumes": [{"name": "conf", "hostPath": {"path": "/etc/kube-proxy"}}]}
    src = kp.config_source(spec, container)
    assert src.kind == "file" and src.path == "/etc/kube-proxy/config.yaml"
    assert kp.config_source({}, {"name": "kube-proxy"}).kind == "unknown"


def test_configmap_items_remap() -> None:
    container = {"command": ["kube-proxy", "--config=/cfg/proxy.yaml"],
                 "volumeMounts": [{"name": "c", "mountPath": "/cfg"}]}
    spec = {"volumes": [{"name": "c", "configMap": {
        "name": "kube-proxy-config", "items": [{"key": "config.yaml", "path": "proxy.yaml"}]}}]}
    src = kp.config_source(spec, container)
    assert (src.kind, src.configmap, src.key) == ("configmap", "kube-proxy-config", "config.yaml")


# ---- conntrack arithmetic ----------------------------------------------------------------


def test_conntrack_target_examples() -> None:
    # kubernetes/kubernetes#75575: 65535/655350
    assert kp.conntrack_target(65535, 655350, 8).value == 655350
    assert kp.conntrack_target(65535, 655350, 32).value == 2_097_120
    t = kp.conntrack_target(65535, 655350, 32, (1, 36, 0))
    assert (t.value, t.scaled, t.capped) == (1_048_576, 2_097_120, True)
    # LXC case: defaults x 32 CPUs = exactly the cap, not "capped"
    t = kp.conntrack_target(32768, 131072, 32, (1, 36, 0))
    assert (t.value, t.capped) == (1_048_576, False)
    # maxPerCore 0 / None: leave alone, min ignored
    assert kp.conntrack_target(0, 131072, 8).value is None
    assert kp.conntrack_target(None, 131072, 8).value is None
    # cap only from 1.36
    assert kp.conntrack_target(65536, 0, 64, (1, 35, 2)).value == 4_194_304


# ---- startup logs ------------------------------------------------------------------------


def test_real_iptables_log() -> None:
    lg = kp.parse_startup_log((API / "kube-proxy-startup-iptables.txt").read_text())
    assert lg.running_mode == "iptables" and lg.version == "v1.35.0"
    assert lg.conntrack_max_set == 524288 and not lg.fallback and not lg.ipvs_deprecated
    assert any("Using iptables Proxier" in ln for ln in lg.lines)
    assert lg.fatal == ()


def test_real_ipvs_log() -> None:
    lg = kp.parse_startup_log((API / "kube-proxy-startup-ipvs.txt").read_text())
    assert lg.running_mode == "ipvs" and lg.version is None and not lg.fallback


def test_real_nftables_log() -> None:
    lg = kp.parse_startup_log((API / "kube-proxy-startup-nftables.txt").read_text())
    assert lg.running_mode == "nftables" and lg.version == "v1.32.13"
    assert lg.conntrack_max_set == 131072


def test_old_and_fallback_and_deprecation_lines() -> None:
    old = ('W0330 09:28:56.498045       1 server_others.go:565] Unknown proxy mode "", assuming '
           'iptables proxy\nI0330 09:28:56.608336       1 server_others.go:212] Using iptables '
           'Proxier.\n')
    lg = kp.parse_startup_log(old)
    assert lg.assumed_iptables and lg.running_mode == "iptables"
    fb = ("E0202 02:01:51.603782       1 server_others.go:305] can't determine whether to use "
          "ipvs proxy, error: IPVS proxier will not be used because the following required "
          "kernel modules are not loaded: [ip_vs_sh ip_vs ip_vs_rr ip_vs_wrr]\n"
          "I0202 02:01:51.613846       1 server_others.go:148] Using iptables Proxier.\n")
    lg = kp.parse_startup_log(fb)
    assert lg.fallback and lg.running_mode == "iptables"
    assert any("can't determine" in ln for ln in lg.lines)
    dep = ('I0525 03:22:43.627302       1 server_linux.go:194] "Using ipvs Proxier"\n'
           'E0525 03:22:43.627358       1 server_linux.go:196] "The ipvs proxier is now '
           'deprecated and may be removed in a future release. Please use \'nftables\' '
           'instead."\n')
    lg = kp.parse_startup_log(dep)
    assert lg.ipvs_deprecated and lg.running_mode == "ipvs"
    assert kp.parse_startup_log("") == kp.ProxyLog()


def test_fatal_lines() -> None:
    text = ('E0101 00:00:00.000000       1 run.go:72] "command failed" err="can\'t use the IPVS '
            'proxier: IPVS proxier will not be used because the following required kernel '
            'modules are not loaded"\n'
            'F0101 00:00:01.000000       1 server.go:1] write /sys/module/nf_conntrack/parameters/'
            'hashsize: operation not supported\n')
    lg = kp.parse_startup_log(text)
    assert len(lg.fatal) == 2 and lg.running_mode is None


# ---- versions and kernels ----------------------------------------------------------------


def test_versions_and_kernel() -> None:
    assert parse_version("v1.30.4+k3s1") == (1, 30, 4)
    assert server_version({"major": "1", "minor": "34+", "gitVersion": "garbage"}) == (1, 34, 0)
    assert image_version("registry.k8s.io/kube-proxy:v1.34.0") == "v1.34.0"
    assert image_version("host:5000/kube-proxy") is None
    assert image_version("quay.io/cilium/cilium:v1.15.5@sha256:abc") == "v1.15.5"
    assert kp.kernel_supports_nftables("6.8.0-51-generic") is True
    assert kp.kernel_supports_nftables("5.10.0-28-amd64") is False
    assert kp.kernel_supports_nftables(None) is None


def test_yaml_fixture_files_are_not_modified() -> None:
    # parse_config works on the text; it never writes back. Spot-check the raw YAML is intact.
    doc = yaml.safe_load(_cm_text("kubeadm-v1.34-default-mode-empty.configmap.yaml"))
    assert doc["mode"] == "" and doc["conntrack"]["maxPerCore"] is None
