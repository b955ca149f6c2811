"""`k8snet status` / `clusters` / `db` end to end: the real CLI, the real kube adapter over HTTP
against the API emulator, the real SQLite (and PostgreSQL) audit store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.adapters.db import AuditStore, head_revision
from bot.cli import cli
from tests.integration.conftest import EmulatorFactory
from tests.lab.emulator import Emulator
from tests.lab.kubeconfig import write_kubeconfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A clean environment: audit DB in tmp, no settings file, HOME in tmp."""
    for k in list(os.environ):
        if k.startswith("K8SNET_") or k == "KUBECONFIG":
            monkeypatch.delenv(k)
    (tmp_path / "audit").mkdir()
    db = f"sqlite:///{tmp_path / 'audit' / 'k8snet.sqlite3'}"
    monkeypatch.setenv("K8SNET_DATABASE_URL", db)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return {"K8SNET_DATABASE_URL": db, "HOME": str(tmp_path / "home")}


def kubeconfig(emu: Emulator, tmp_path: Path, context: str = "lab-a") -> str:
    path = tmp_path / f"{context}.kubeconfig"
    emu.write_kubeconfig(path, context=context)
    return str(path)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def audit_rows(env: dict[str, str]) -> list[dict[str, object]]:
    return AuditStore(env["K8SNET_DATABASE_URL"]).recent_commands(50)


def test_status_text_on_scenario_a(emulator: Emulator, tmp_path: Path,
                                   env: dict[str, str]) -> None:
    kc = kubeconfig(emulator, tmp_path)
    r = run("status", "--kubeconfig", kc, "--cluster", "lab-a")
    assert r.exit_code == 0, r.output
    out = r.output
    assert "Cluster lab-a" in out and "overall: CRITICAL" in out
    for title in ("CNI", "kube-proxy", "conntrack", "MetalLB / LoadBalancers", "NetworkPolicy",
                  "Calico BGP", "Nodes"):
        assert title in out
    assert "Flannel" in out and "VXLAN" in out
    assert 'iptables (mode "")' in out
    assert "MetalLB v0.12.1 (legacy ConfigMap)" in out
    assert "LB001" in out and "service/monitoring/grafana" in out
    assert "No namespace is isolated" in out
    rows = audit_rows(env)
    assert rows[0]["source"] == "cli" and rows[0]["channel"] == "terminal"
    assert rows[0]["cluster"] == "lab-a" and rows[0]["outcome"] == "ok"
    assert "status" in str(rows[0]["text"])


def test_status_json_is_one_object_for_scripts(emulator: Emulator, tmp_path: Path,
                                               env: dict[str, str]) -> None:
    kc = kubeconfig(emulator, tmp_path)
    r = run("status", "--kubeconfig", kc, "--cluster", "lab-a", "--output", "json")
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert doc["cluster"] == "lab-a" and doc["status"] == "critical"
    assert [s["name"] for s in doc["sections"]] == [
        "cni", "kube-proxy", "conntrack", "metallb", "networkpolicy", "bgp", "nodes"]
    for f in doc["findings"]:
        assert {"code", "severity", "subject", "message", "evidence"} <= set(f)
    by = {(f["code"], f["subject"]): f for f in doc["findings"]}
    lb = by[("LB001", "service/monitoring/grafana")]
    assert lb["severity"] == "critical" and lb["runbook"] == "metallb-pool"
    kp = by[("KP004", "configmap/kube-system/kube-proxy")]
    assert kp["runbook"] == "kube-proxy-mode"
    assert ("CNI003", "daemonset/kube-flannel/kube-flannel-ds") in by
    # no false alarm on a healthy kube-proxy
    assert not [f for f in doc["findings"] if f["code"] in ("KP002", "KP007", "KP009")]


def test_fail_on_thresholds(emulator: Emulator, tmp_path: Path, env: dict[str, str]) -> None:
    kc = kubeconfig(emulator, tmp_path)
    r = CliRunner().invoke(cli, ["status", "--kubeconfig", kc, "--fail-on", "critical"])
    assert r.exit_code == 1
    assert "--fail-on critical: findings at or above critical: LB001" in r.stderr
    r = CliRunner().invoke(cli, ["status", "--kubeconfig", kc, "--fail-on", "warning"])
    assert r.exit_code == 1 and "LB001, NP013" in r.stderr
    assert "could not be decided" not in r.stderr  # conntrack usage is "not checked"


def test_fail_on_warning_counts_undecided_sections(emulator: Emulator, tmp_path: Path,
                                                   env: dict[str, str]) -> None:
    emulator.forbid("list", "networkpolicies")
    kc = kubeconfig(emulator, tmp_path)
    r = CliRunner().invoke(cli, ["status", "--kubeconfig", kc, "--fail-on", "warning"])
    assert r.exit_code == 1
    assert "sections that could not be decided: networkpolicy" in r.stderr


def test_fail_on_critical_passes_a_cluster_without_critical(
        emulator_factory: EmulatorFactory, tmp_path: Path, env: dict[str, str]) -> None:
    emu = emulator_factory("d")
    kc = kubeconfig(emu, tmp_path, "lab-d")
    r = run("status", "--kubeconfig", kc, "--output", "json", "--fail-on", "critical")
    doc = json.loads(r.output)
    assert not [f for f in doc["findings"] if f["severity"] == "critical"], doc["findings"]
    assert r.exit_code == 0
    kp = next(s for s in doc["sections"] if s["name"] == "kube-proxy")
    assert kp["status"] == "ok" and "Cilium" in kp["summary"]


def test_unreachable_cluster_exits_3_with_server_and_cause(tmp_path: Path,
                                                           env: dict[str, str]) -> None:
    kc = tmp_path / "dead.kubeconfig"
    write_kubeconfig(kc, {"dead": "http://127.0.0.1:9"})
    r = CliRunner().invoke(cli, ["status", "--kubeconfig", str(kc)])
    assert r.exit_code == 3
    assert "http://127.0.0.1:9" in r.output and "connection refused" in r.output
    r2 = CliRunner().invoke(cli, ["status", "--kubeconfig", str(kc), "-o", "json"])
    assert r2.exit_code == 3
    assert json.loads(r2.stdout.splitlines()[0])["error"].startswith("Cannot reach")
    rows = audit_rows(env)
    assert rows[0]["outcome"] == "error" and rows[0]["cluster"] == "dead"
    assert "connection refused" in str(rows[0]["detail"])


def test_unknown_cluster_lists_valid_ones(emulator: Emulator, tmp_path: Path,
                                          env: dict[str, str]) -> None:
    kc = kubeconfig(emulator, tmp_path)
    r = CliRunner().invoke(cli, ["status", "--kubeconfig", kc, "--cluster", "prod"])
    assert r.exit_code == 2
    assert "Unknown cluster 'prod'" in r.output and "lab-a" in r.output
    assert audit_rows(env)[0]["outcome"] == "error"


def test_403_on_one_kind_gives_a_partial_report(emulator: Emulator, tmp_path: Path,
                                                env: dict[str, str]) -> None:
    emulator.forbid("list", "networkpolicies")
    kc = kubeconfig(emulator, tmp_path)
    r = run("status", "--kubeconfig", kc, "-o", "json")
    assert r.exit_code == 0
    doc = json.loads(r.output)
    sec = {s["name"]: s for s in doc["sections"]}
    assert sec["networkpolicy"]["status"] == "unknown"
    assert "not allowed to list networkpolicies.networking.k8s.io" in sec["networkpolicy"][
        "error"]
    assert sec["cni"]["status"] == "ok" and "Flannel" in sec["cni"]["summary"]
    assert any(f["code"] == "LB001" for f in doc["findings"])
    text = run("status", "--kubeconfig", kc).output
    assert "unknown: k8snet is not allowed to list networkpolicies" in text.replace("\n", " ") \
        or "not allowed to list" in text


def test_timeout_and_garbage_mark_sections_unknown(emulator: Emulator, tmp_path: Path,
                                                   env: dict[str, str]) -> None:
    emulator.garbage("nodes")
    emulator.delay("ipaddresspools", 3)
    cfg = tmp_path / "k8snet.yaml"
    cfg.write_text("request_timeout_seconds: 1\n")
    kc = kubeconfig(emulator, tmp_path)
    r = run("--config", str(cfg), "status", "--kubeconfig", kc, "-o", "json")
    assert r.exit_code == 0, r.output
    sec = {s["name"]: s for s in json.loads(r.output)["sections"]}
    assert sec["nodes"]["status"] == "unknown" and "not JSON" in sec["nodes"]["error"]
    assert sec["kube-proxy"]["status"] != "unknown"


def test_clusters_and_bad_settings(emulator: Emulator, tmp_path: Path,
                                   env: dict[str, str]) -> None:
    kc = tmp_path / "two.kubeconfig"
    write_kubeconfig(kc, {"lab-a": emulator.url, "lab-x": "http://127.0.0.1:9"},
                     current="lab-x")
    r = run("clusters", "--kubeconfig", str(kc), "-o", "json")
    doc = json.loads(r.output)
    assert doc["default"] == "lab-x"
    assert [c["name"] for c in doc["clusters"]] == ["lab-a", "lab-x"]
    assert doc["clusters"][0]["server"] == emulator.url
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusterz: {}\n")
    r2 = CliRunner().invoke(cli, ["--config", str(bad), "clusters"])
    assert r2.exit_code == 4 and "unknown key 'clusterz'" in r2.output


def test_db_upgrade_downgrade_sqlite(tmp_path: Path, env: dict[str, str]) -> None:
    r = run("db", "upgrade")
    assert r.exit_code == 0 and f"is at revision {head_revision()}" in r.output
    r = run("db", "downgrade", "base")
    assert r.exit_code == 0 and "revision base" in r.output


@pytest.mark.postgres
def test_db_upgrade_on_postgresql_then_status_audits_there(
        postgres_server: object, emulator: Emulator, tmp_path: Path, env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = postgres_server.create_database()  # type: ignore[attr-defined]
    monkeypatch.setenv("K8SNET_DATABASE_URL", url)
    kc = kubeconfig(emulator, tmp_path)
    r = CliRunner().invoke(cli, ["status", "--kubeconfig", kc])
    assert r.exit_code == 4 and "k8snet db upgrade" in r.output  # not migrated implicitly
    assert run("db", "upgrade").exit_code == 0
    assert run("status", "--kubeconfig", kc).exit_code == 0
    rows = AuditStore(url).recent_commands(5)
    assert rows[0]["cluster"] == "lab-a" and rows[0]["outcome"] == "ok"


def test_console_script_in_a_subprocess(emulator: Emulator, tmp_path: Path,
                                        env: dict[str, str]) -> None:
    """The installed entry point, as an operator runs it."""
    kc = kubeconfig(emulator, tmp_path)
    exe = Path(sys.executable).with_name("k8snet")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bot.cli"]
    p = subprocess.run([*cmd, "status", "--kubeconfig", kc, "-o", "json"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, **env}, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["cluster"] == "lab-a"


def test_mistyped_sqlite_directory_is_refused_not_created(tmp_path: Path, env: dict[str, str],
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A wrong path must not silently start a new, empty audit trail."""
    missing = tmp_path / "no" / "such" / "dir"
    monkeypatch.setenv("K8SNET_DATABASE_URL", f"sqlite:///{missing / 'audit.sqlite3'}")
    r = CliRunner().invoke(cli, ["history"])
    assert r.exit_code == 4 and "does not exist" in r.output and "database_url" in r.output
    assert not missing.exists()
    monkeypatch.setenv("K8SNET_DATABASE_URL", "sqlite:///relative.sqlite3")
    r = CliRunner().invoke(cli, ["history"])
    assert r.exit_code == 4 and "must be absolute" in r.output
