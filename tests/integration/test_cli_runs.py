"""Runbooks from the terminal, end to end: the real CLI (click's CliRunner), the real wiring
(registry discovery, SQL run store, policy), the real kube adapter against the API emulator
(scenario b: Calico, NetworkPolicy enforced), the approval given through the engine API as
another user (approvals happen in Slack), and the audit chain verified, tampered with raw SQL
and exported."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bot.adapters.db import AuditStore
from bot.cli import cli
from bot.engine.core import Actor
from bot.settings import load_settings
from bot.wiring import build_all
from tests.lab.emulator import Emulator

NP = "networking.k8s.io/v1"
BOB = Actor("U0BOB00001", "slack", "C0LAB00001")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Scenario b behind the emulator, its kubeconfig as $KUBECONFIG (context ``lab``), the
    audit database in tmp."""
    for k in list(os.environ):
        if k.startswith("K8SNET_") or k == "KUBECONFIG":
            monkeypatch.delenv(k)
    with Emulator.from_scenario("b") as emu:
        kc = tmp_path / "kubeconfig"
        emu.write_kubeconfig(kc, context="lab")
        db_file = tmp_path / "audit" / "k8snet.sqlite3"
        db_file.parent.mkdir()
        monkeypatch.setenv("K8SNET_DATABASE_URL", f"sqlite:///{db_file}")
        monkeypatch.setenv("KUBECONFIG", str(kc))
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        yield {"emu": emu, "db": db_file, "url": f"sqlite:///{db_file}", "tmp": tmp_path}


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, prog_name="k8snet")


def run_id_in(output: str) -> str:
    m = re.search(r"Run id: (r-[a-z0-9]+)", output)
    assert m, output
    return m.group(1)


def approve_as_bob(run_id: str) -> str:
    _engine, runs = build_all(load_settings())
    try:
        return runs.service.approve(BOB, run_id).run.state.value
    finally:
        runs.close()


def commands(env: dict[str, Any]) -> list[dict[str, Any]]:
    with AuditStore(env["url"]) as audit:
        return list(reversed(audit.recent_commands(200)))


def test_plan_approve_apply_history_show(env: dict[str, Any]) -> None:
    emu: Emulator = env["emu"]
    r = run("runbooks")
    assert r.exit_code == 0 and "netpol-dns-allow" in r.output and "disruptive" in r.output
    doc = json.loads(run("runbooks", "-o", "json").output)
    nd = next(d for d in doc if d["name"] == "netpol-dns-allow")
    assert nd["versions"] == ["1.0.0"] and "namespaces" in nd["params"]["properties"]

    r = run("plan", "netpol-dns-allow", "--cluster", "lab", "namespaces=web")
    assert r.exit_code == 0, r.output
    rid = run_id_in(r.output)
    assert "[awaiting approval]" in r.output
    assert "# 1. create networkpolicy/web/k8snet-allow-dns" in r.output
    assert "+kind: NetworkPolicy" in r.output
    assert f"/k8snet approve {rid}" in r.output and f"k8snet apply {rid}" in r.output
    assert emu.get_object(NP, "networkpolicies", "k8snet-default-deny", "web") is None

    early = run("apply", rid)  # not approved yet: the same gate as Slack
    assert early.exit_code == 2
    assert "awaiting approval" in early.output
    assert emu.get_object(NP, "networkpolicies", "k8snet-default-deny", "web") is None

    assert approve_as_bob(rid) == "approved"
    r = run("apply", rid)
    assert r.exit_code == 0, r.output
    assert "… Applying 2 changes." in r.output and "… Verifying." in r.output
    assert f"Run {rid}: netpol-dns-allow@1.0.0 on lab [succeeded]" in r.output
    assert "[ok] create networkpolicy/web/k8snet-default-deny" in r.output
    assert emu.get_object(NP, "networkpolicies", "k8snet-default-deny", "web")

    again = run("apply", rid)
    assert again.exit_code == 2 and "succeeded" in again.output

    h = run("history", "-n", "5")
    assert h.exit_code == 0 and rid in h.output and "succeeded" in h.output
    hj = json.loads(run("history", "-o", "json").output)
    assert hj[0]["id"] == rid and hj[0]["state"] == "succeeded"

    s = run("show", rid)
    assert s.exit_code == 0
    assert "Approvals: 1 of 1 (approved by U0BOB00001)" in s.output
    assert "Steps:" in s.output and "approve by U0BOB00001" in s.output
    assert "verify passed" in s.output
    sj = json.loads(run("show", rid, "-o", "json").output)
    assert sj["state"] == "succeeded" and sj["events"] and sj["diff"]

    nothing = run("plan", "netpol-dns-allow", "namespaces=web", "-o", "json")
    assert nothing.exit_code == 0
    assert json.loads(nothing.output)["state"] == "nothing_to_do"

    rows = commands(env)
    texts = [row["text"] for row in rows]
    assert "k8snet plan netpol-dns-allow namespaces=web --cluster lab --output text" in texts
    by_text = {(row["text"], row["outcome"]) for row in rows}
    assert (f"k8snet apply {rid} --output text", "refused") in by_text
    assert (f"k8snet apply {rid} --output text", "ok") in by_text
    assert all(row["source"] == "cli" and row["channel"] == "terminal" for row in rows)


def test_apply_json_and_failures(env: dict[str, Any]) -> None:
    r = run("plan", "netpol-dns-allow", "namespaces=web", "-o", "json")
    rid = json.loads(r.output)["id"]
    approve_as_bob(rid)
    out = run("apply", rid, "-o", "json")
    assert out.exit_code == 0
    assert json.loads(out.stdout)["state"] == "succeeded"  # progress went to stderr
    assert "Applying" in out.stderr


@pytest.mark.parametrize(("args", "needles"), [
    (["plan", "no-such-runbook", "namespaces=web"], ["no-such-runbook", "field: runbook"]),
    (["plan", "netpol-dns-allow", "namespaces=Bad_NS"], ["not a valid namespace name",
                                                         "field: namespaces"]),
    (["plan", "netpol-dns-allow", "nope=1"], ["Unknown parameter", "field: nope"]),
    (["plan", "netpol-dns-allow", "--cluster", "prod", "namespaces=web"],
     ["Unknown cluster", "field: cluster"]),
    (["show", "r-doesnotexist"], ["Unknown run"]),
    (["apply", "r-doesnotexist"], ["Unknown run"]),
])
def test_bad_input_exits_2_and_changes_nothing(env: dict[str, Any], args: list[str],
                                               needles: list[str]) -> None:
    r = run(*args)
    assert r.exit_code == 2, r.output
    for needle in needles:
        assert needle in r.output
    assert not [q for q in env["emu"].requests if q.method in ("POST", "PUT", "PATCH",
                                                                 "DELETE")]
    [row] = commands(env)
    assert row["outcome"] == "error"


def test_plan_needs_key_value_words(env: dict[str, Any]) -> None:
    r = CliRunner().invoke(cli, ["plan", "netpol-dns-allow", "web"], prog_name="k8snet")
    assert r.exit_code == 2 and "not a key=value parameter" in r.output


def test_rollback_of_a_run_that_was_not_interrupted_is_refused(env: dict[str, Any]) -> None:
    rid = run_id_in(run("plan", "netpol-dns-allow", "namespaces=web").output)
    r = run("rollback", rid)
    assert r.exit_code == 2
    assert "only a run that is interrupted can be rolled back" in r.output
    assert commands(env)[-1]["outcome"] == "refused"


def test_audit_verify_tamper_and_export(env: dict[str, Any]) -> None:
    rid = run_id_in(run("plan", "netpol-dns-allow", "namespaces=web").output)
    approve_as_bob(rid)
    assert run("apply", rid).exit_code == 0

    ok = run("audit", "verify")
    assert ok.exit_code == 0 and "intact" in ok.output
    assert json.loads(run("audit", "verify", "-o", "json").output)["ok"] is True

    out = env["tmp"] / "export.jsonl"
    e = run("audit", "export", "--output", str(out))
    assert e.exit_code == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    tables = {x["table"] for x in lines}
    assert tables == {"commands", "run_events"}
    assert any(x.get("run_id") == rid for x in lines)
    assert all("row_hash" in x and "prev_hash" in x for x in lines)
    stdout = run("audit", "export")
    assert stdout.exit_code == 0 and len(stdout.stdout.splitlines()) >= len(lines)

    # tamper with one run event (test-only raw SQL on the database file)
    with sqlite3.connect(env["db"]) as con:
        (eid,) = con.execute("SELECT id FROM run_events WHERE kind = 'approval' "
                             "ORDER BY id LIMIT 1").fetchone()
        con.execute("UPDATE run_events SET data = ? WHERE id = ?",
                    (json.dumps({"approver": "U0MALLORY1", "decision": "approve"}), eid))
    bad = run("audit", "verify")
    assert bad.exit_code == 1
    assert f"run_events row {eid}" in bad.output
    doc = json.loads(run("audit", "verify", "-o", "json").output)
    assert doc == {"ok": False, "table": "run_events", "row": eid, "reason": doc["reason"]}

    # a changed command row is found first (commands are checked before run_events)
    with sqlite3.connect(env["db"]) as con:
        con.execute("UPDATE commands SET outcome = 'ok', detail = 'nothing happened' "
                    "WHERE id = 2")
    bad2 = run("audit", "verify")
    assert bad2.exit_code == 1 and "commands row 2" in bad2.output
    verify_rows = [r for r in commands(env) if r["text"].startswith("k8snet audit verify")]
    assert [r["outcome"] for r in verify_rows][-2:] == ["error", "error"]
