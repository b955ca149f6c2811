"""Settings: file + environment, errors that name the key, kubeconfig contexts as clusters."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.sdk.errors import SettingsError
from bot.settings import DEFAULT_SLACK_API_URL, load_settings, resolve_clusters

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- {name: c1, cluster: {server: "https://10.0.0.1:6443"}}
- {name: c2, cluster: {server: "https://10.0.0.2:6443"}}
contexts:
- {name: prod, context: {cluster: c1, user: u}}
- {name: lab, context: {cluster: c2, user: u}}
current-context: lab
users:
- {name: u, user: {token: t}}
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in ("K8SNET_CONFIG", "K8SNET_DATABASE_URL", "K8SNET_SLACK_BOT_TOKEN",
              "K8SNET_SLACK_SIGNING_SECRET", "K8SNET_SLACK_APP_TOKEN", "K8SNET_SLACK_API_URL",
              "KUBECONFIG"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_sqlite_in_user_data_dir_and_public_slack() -> None:
    s = load_settings()
    assert s.database_url.startswith("sqlite:///")
    assert s.database_url.endswith("k8snet/k8snet.sqlite3")
    assert s.slack_api_url == DEFAULT_SLACK_API_URL
    assert s.allowed_channels == []


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path, "k.yaml", "database_url: sqlite:////tmp/a.db\n"
                "slack_api_url: http://127.0.0.1:9/api\n")
    monkeypatch.setenv("K8SNET_CONFIG", str(cfg))
    monkeypatch.setenv("K8SNET_DATABASE_URL", "postgresql://k8snet@db/k8snet")
    monkeypatch.setenv("K8SNET_SLACK_BOT_TOKEN", "xoxb-test")
    s = load_settings()
    assert s.database_url == "postgresql+psycopg://k8snet@db/k8snet"
    assert s.slack_api_url == "http://127.0.0.1:9/api/"
    assert s.slack_bot_token is not None
    assert s.slack_bot_token.get_secret_value() == "xoxb-test"
    assert "xoxb-test" not in repr(s)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("databse_url: sqlite:///x\n", "databse_url"),
        ("clusters:\n  prod: {kubeconfg: /x}\n", "clusters.prod.kubeconfg"),
        ("database_url: mysql://x/y\n", "database_url"),
        ("slack_api_url: not a url\n", "slack_api_url"),
        ("allowed_channels: [general]\n", "allowed_channels"),
        ("clusters:\n  Prod_Cluster!: {}\n", "clusters"),
        ("request_timeout_seconds: -1\n", "request_timeout_seconds"),
    ],
)
def test_bad_settings_file_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    cfg = write(tmp_path, "k.yaml", text)
    with pytest.raises(SettingsError) as ei:
        load_settings(cfg)
    assert key in str(ei.value)
    assert str(cfg) in str(ei.value)


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="Cannot read settings file"):
        load_settings(tmp_path / "nope.yaml")
    with pytest.raises(SettingsError, match="mapping"):
        load_settings(write(tmp_path, "l.yaml", "- a\n- b\n"))


def test_clusters_from_kubeconfig_contexts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    kc = write(tmp_path, "kc", KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(kc))
    clusters, default = resolve_clusters(load_settings())
    assert sorted(clusters) == ["lab", "prod"]
    assert default == "lab"
    assert clusters["prod"].context == "prod"


def test_explicit_kubeconfig_flag_wins(tmp_path: Path) -> None:
    kc = write(tmp_path, "kc", KUBECONFIG)
    cfg = write(tmp_path, "k.yaml", "clusters:\n  other: {in_cluster: true}\n")
    clusters, _default = resolve_clusters(load_settings(cfg), kubeconfig=kc)
    assert sorted(clusters) == ["lab", "prod"]
    assert clusters["lab"].kubeconfig == kc


def test_configured_clusters_and_bad_default(tmp_path: Path) -> None:
    kc = write(tmp_path, "prod.kc", KUBECONFIG)
    cfg = write(tmp_path, "k.yaml", f"clusters:\n  prod: {{kubeconfig: {kc}}}\n")
    clusters, default = resolve_clusters(load_settings(cfg))
    assert list(clusters) == ["prod"] and default == "prod"
    cfg2 = write(tmp_path, "k2.yaml", "default_cluster: stage\nclusters:\n  prod: {}\n")
    with pytest.raises(SettingsError, match="default_cluster"):
        resolve_clusters(load_settings(cfg2))


def test_channels_from_env_comma_separated_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8SNET_ALLOWED_CHANNELS", "C0OPS, C0NET")
    assert load_settings().allowed_channels == ["C0OPS", "C0NET"]
    monkeypatch.setenv("K8SNET_ALLOWED_CHANNELS", '["C0OPS"]')
    assert load_settings().allowed_channels == ["C0OPS"]
    monkeypatch.setenv("K8SNET_ALLOWED_CHANNELS", "general")
    with pytest.raises(SettingsError, match="allowed_channels"):
        load_settings()


def test_policy_env_that_is_not_json_names_the_variable(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setenv("K8SNET_POLICY", "roles")
    with pytest.raises(SettingsError, match="K8SNET_POLICY must be JSON"):
        load_settings()
    monkeypatch.setenv("K8SNET_POLICY", '{"rolez": {}}')
    with pytest.raises(SettingsError, match=r"unknown key 'policy\.rolez'"):
        load_settings()


def test_missing_kubeconfig_is_an_error_when_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        resolve_clusters(load_settings(), kubeconfig=tmp_path / "typo.kubeconfig")
    cfg = write(tmp_path, "k.yaml", f"clusters:\n  prod: {{kubeconfig: {tmp_path}/nope}}\n")
    with pytest.raises(SettingsError, match=r"'clusters\.prod\.kubeconfig'"):
        resolve_clusters(load_settings(cfg))
