"""Runbooks in Slack, end to end: the real Bolt app over HTTP with signed requests (slash
commands, Approve / Reject clicks, the parameters modal), the Slack Web API stand-in, the real
``RunService`` with the real ``netpol-dns-allow`` runbook, the real kube adapter against the API
emulator (scenario b: Calico, NetworkPolicy enforced) and the real SQLite audit and run store.
"""

from __future__ import annotations

import itertools
import json
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.adapters import db
from bot.adapters.kube import KubeAdapter
from bot.engine.core import Actor, ClusterRef, Engine
from bot.engine.policy import PolicyEngine
from bot.engine.registry import Registry
from bot.engine.runs import RunState
from bot.engine.service import RunService, default_holder
from bot.render.blocks import ACTION_APPROVE, ACTION_REJECT, MODAL_CALLBACK, PARAM_BLOCK_PREFIX
from bot.settings import Policy, RoleMembers, Settings
from bot.slack import build_app, make_wsgi_app, serve
from bot.slack.server import RunningServer, start_http_server
from tests.integration.test_serve_e2e import free_port
from tests.integration.test_slack import Ack, burst_status_acks, sign
from tests.lab.emulator import Emulator
from tests.lab.fake_runbooks import TestSlow
from tests.lab.slack_standin import Call, SlackStandIn, validate_message

CHANNEL = "C0LAB00001"
OTHER_CHANNEL = "C0NOTALLOWD"
ALICE, BOB, CAROL, DAVE = "U0ALICE001", "U0BOB00001", "U0CAROL001", "U0DAVE0001"
BOT_TOKEN = "xoxb-k8snet-runs-test"
NP = "networking.k8s.io/v1"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


class Clock:
    """The service's clock: real time plus an offset tests can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Lab:
    slack: SlackStandIn
    emu: Emulator
    svc: RunService
    audit: db.AuditStore
    store: db.RunStoreSQL
    secret: str
    server: RunningServer
    clock: Clock
    url_db: str
    executors: list[ThreadPoolExecutor]
    engine: Engine
    settings: Settings
    target_port: int | None = None  # send requests elsewhere (a server started by the test)
    _n: list[int] = field(default_factory=lambda: [0])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.target_port or self.server.port}/slack/events"

    # -- requests

    def post(self, body: bytes, content_type: str = "application/x-www-form-urlencoded",
             headers: dict[str, str] | None = None, rid: str = "") -> Ack:
        ts = str(int(time.time()))
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(self.secret, ts, body), **(headers or {})})
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, data = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read().decode()
        return Ack(status, data, time.monotonic() - t0, rid)

    def slash_body(self, text: str, *, user: str = ALICE, channel: str = CHANNEL,
                   rid: str, trigger: str | None = None) -> bytes:
        return urlencode({
            "token": "x", "team_id": "T0K8SNET", "team_domain": "lab", "channel_id": channel,
            "channel_name": "ops", "user_id": user, "user_name": user.lower(),
            "command": "/k8snet", "text": text, "api_app_id": "A0K8SNET",
            "is_enterprise_install": "false", "response_url": self.slack.response_url(rid),
            "trigger_id": trigger or f"1337.42.{rid}"}).encode()

    def command(self, text: str, **kw: Any) -> Ack:
        self._n[0] += 1
        rid = f"c{self._n[0]}"
        return self.post(self.slash_body(text, rid=rid, **kw), rid=rid)

    def click(self, run_id: str, user: str, *, decision: str = "approve",
              channel: str = CHANNEL, message_ts: str = "") -> Ack:
        self._n[0] += 1
        rid = f"a{self._n[0]}"
        payload = {
            "type": "block_actions", "user": {"id": user, "username": user.lower(),
                                              "team_id": "T0K8SNET"},
            "api_app_id": "A0K8SNET", "token": "x", "trigger_id": f"9.9.{rid}",
            "team": {"id": "T0K8SNET", "domain": "lab"},
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                          "is_ephemeral": False},
            "channel": {"id": channel, "name": "ops"},
            "message": {"type": "message", "ts": message_ts, "text": "plan"},
            "response_url": self.slack.response_url(rid),
            "actions": [{"action_id": ACTION_APPROVE if decision == "approve"
                         else ACTION_REJECT, "block_id": "k8snet_run_actions",
                         "value": run_id, "type": "button", "action_ts": "1.2"}],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(body, rid=rid)

    def submit(self, view: dict[str, Any], values: dict[str, Any], *, user: str = ALICE,
               view_id: str = "V0MODAL001") -> Ack:
        payload = {"type": "view_submission", "team": {"id": "T0K8SNET", "domain": "lab"},
                   "user": {"id": user, "username": user.lower(), "team_id": "T0K8SNET"},
                   "api_app_id": "A0K8SNET", "token": "x", "trigger_id": "8.8.8",
                   "view": {**view, "id": view_id, "state": {"values": values}}}
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(body)

    # -- observations

    def response(self, ack: Ack, timeout: float = 15.0) -> Call:
        return self.slack.wait_for("response_url", timeout=timeout,
                                   where=lambda c: c.response_id == ack.response_id)

    def plan_posts(self) -> list[Call]:
        return [c for c in self.slack.calls_to("chat.postMessage") if not c.thread_ts]

    def wait_plan(self, count: int = 1, timeout: float = 20.0) -> Call:
        return self.slack.wait_for("chat.postMessage", count=count, timeout=timeout,
                                   where=lambda c: not c.thread_ts)

    def wait_result(self, ts: str, timeout: float = 30.0) -> Call:
        return self.slack.wait_for("chat.postMessage", timeout=timeout,
                                   where=lambda c: c.thread_ts == ts
                                   and "Run `" in c.all_text())

    def updates(self, ts: str) -> list[Call]:
        return [c for c in self.slack.calls_to("chat.update") if c.params.get("ts") == ts]

    def writes(self) -> list[Any]:
        return [r for r in self.emu.requests if r.method in WRITES
                and r.query.get("dryRun") != "All"]

    def commands(self) -> list[dict[str, Any]]:
        return list(reversed(self.audit.recent_commands(200)))

    def last_command(self, contains: str) -> dict[str, Any]:
        """The newest audit row whose text contains ``contains`` (rows of concurrent jobs
        may be recorded in any order)."""
        return [r for r in self.commands() if contains in r["text"]][-1]

    def run_ids(self) -> list[str]:
        return [r.id for r in self.store.list_runs(limit=100)]


def run_id_of(post: Call) -> str:
    [actions] = [b for b in post.blocks if b["type"] == "actions"]
    values = {e["value"] for e in actions["elements"]}
    assert len(values) == 1
    return values.pop()


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Any]:
    made: list[Lab] = []

    def make(*, roles: dict[str, RoleMembers] | None = None, approvals: int = 1,
             edit_interval: float = 1.0, workers: int = 4, **settings_kw: Any) -> Lab:
        slack = SlackStandIn().start()
        emu = Emulator.from_scenario("b").start()
        kc = tmp_path / f"kc{len(made)}"
        emu.write_kubeconfig(kc, context="lab")
        kube = KubeAdapter("lab", kubeconfig=str(kc), context="lab")
        url = f"sqlite:///{tmp_path / f'k8snet{len(made)}.sqlite3'}"
        db.ensure_schema(url)
        audit = db.AuditStore(url)
        store = db.RunStoreSQL(url)
        engine = Engine(clusters=[ClusterRef("lab", emu.url)], default_cluster="lab",
                        readers=lambda n: kube, probes=[], audit=audit)
        reg = Registry()
        reg.discover("runbooks")
        reg.register(TestSlow)
        policy = Policy(approvals_required=approvals, roles=roles if roles is not None else {
            "*": RoleMembers(operator=["*"], approver=[ALICE, BOB, CAROL])})
        clock = Clock()
        svc = RunService(registry=reg, store=store, policy=PolicyEngine(policy),
                         clusters=["lab"], readers=lambda n: kube, writers=lambda n: kube,
                         holder=default_holder(), clock=clock, default_cluster="lab")
        secret = secrets.token_hex(16)
        settings = Settings(slack_bot_token=BOT_TOKEN, slack_signing_secret=secret,
                            slack_api_url=slack.api_url,
                            **{"allowed_channels": [CHANNEL], **settings_kw})
        work = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="test-work")
        ui = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-ui")
        app = build_app(engine, settings, runs=svc, executor=work, ui_executor=ui,
                        post_interval=0, edit_interval=edit_interval,
                        attach_message=lambda r, c, t: store.update_fields(
                            r, message_channel=c, message_ts=t))
        server = start_http_server(make_wsgi_app(app), threads=16)
        lab = Lab(slack, emu, svc, audit, store, secret, server, clock, url, [work, ui], engine,
                  settings)
        made.append(lab)
        return lab

    yield make
    for lab in made:
        lab.server.stop()
        for ex in lab.executors:
            ex.shutdown(wait=True, cancel_futures=True)
        lab.svc.shutdown(wait=True)
        notifier = lab.svc.notifier
        if notifier is not None:
            notifier.close()  # type: ignore[attr-defined]
        lab.slack.stop()
        lab.emu.stop()
        lab.store.close()
        lab.audit.close()


@pytest.fixture
def lab(make_lab: Any) -> Lab:
    made: Lab = make_lab()
    return made


def plan_web(lab: Lab, **kw: Any) -> tuple[Call, str]:
    ack = lab.command("run netpol-dns-allow cluster=lab namespaces=web", **kw)
    assert ack.status == 200 and ack.seconds < 3.0
    assert "Planning `netpol-dns-allow` on `lab`" in ack.text
    post = lab.wait_plan()
    return post, run_id_of(post)


def assert_slack_accepted_everything(lab: Lab) -> None:
    bad = [(c.method, c.answer) for c in lab.slack.calls if not c.answer.get("ok")]
    assert not bad, bad


# --------------------------------------------------------------------------- the story


def test_plan_approve_execute_progress_and_result(lab: Lab) -> None:
    post, rid = plan_web(lab)
    assert post.params["channel"] == CHANNEL
    text = post.all_text()
    assert "netpol-dns-allow@1.0.0 on lab" in text
    assert f"<@{ALICE}>" in text and "risk *disruptive*" in text
    assert "networkpolicy/web/k8snet-default-deny" in text and "+kind: NetworkPolicy" in text
    assert "<!date^" in text and "Approvals: 0 of 1" in text
    [actions] = [b for b in post.blocks if b["type"] == "actions"]
    assert {e["action_id"] for e in actions["elements"]} == {ACTION_APPROVE, ACTION_REJECT}
    assert all(e["value"] == rid for e in actions["elements"])  # only the run id
    assert not lab.writes()  # planning wrote nothing (dry runs only)
    ts = post.answer["ts"]
    deadline = time.monotonic() + 5
    while lab.store.get_run(rid).message_ts is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lab.store.get_run(rid).message_ts == ts  # where the plan message is, stored

    ack = lab.click(rid, BOB, message_ts=ts)
    assert ack.status == 200 and ack.seconds < 3.0
    reply = lab.response(ack)
    assert "You approved" in reply.text and "being applied now" in reply.text
    assert reply.params.get("replace_original") is False
    result = lab.wait_result(ts)
    assert f"`{rid}`" in result.all_text() and "succeeded" in result.all_text()
    assert f"k8snet show {rid}" in result.all_text()
    ups = lab.updates(ts)
    assert ups, "progress was edited into the plan message"
    last = ups[-1]
    assert "*succeeded*" in last.all_text()
    assert not [b for b in last.blocks if b["type"] == "actions"]  # no buttons any more
    assert lab.emu.get_object(NP, "networkpolicies", "k8snet-default-deny", "web")
    assert lab.emu.get_object(NP, "networkpolicies", "k8snet-allow-dns", "web")
    # at most one edit per second of the same message
    times = [c.at for c in ups]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times)), times
    assert_slack_accepted_everything(lab)

    rows = sorted(lab.commands(), key=lambda r: r["actor"])  # ALICE's plan, BOB's click
    assert [(r["actor"], r["outcome"]) for r in rows] == [(ALICE, "ok"), (BOB, "ok")]
    assert rows[0]["text"] == "/k8snet run netpol-dns-allow cluster=lab namespaces=web"
    assert rid in rows[0]["detail"] and rid in rows[1]["detail"]
    assert "(button)" in rows[1]["text"]
    assert lab.audit.verify_chain().ok


def test_slash_approve_and_reject_commands(make_lab: Any) -> None:
    lab: Lab = make_lab(edit_interval=0.2)
    post, rid = plan_web(lab)
    ack = lab.command(f"reject {rid} not during  business hours", user=CAROL)
    assert "Recording your rejection" in ack.text
    assert "You rejected" in lab.response(ack).text
    result = lab.wait_result(post.answer["ts"])
    assert "rejected" in result.all_text()
    assert "not during business hours" in result.all_text()
    run = lab.store.get_run(rid)
    assert run.state.value == "rejected"
    again = lab.command(f"approve {rid}", user=BOB)
    reply = lab.response(again)
    assert "is rejected" in reply.text
    assert lab.last_command(f"approve {rid}")["outcome"] == "refused"
    assert not lab.writes()


# --------------------------------------------------------------------------- refusals


def test_self_approval_is_refused(lab: Lab) -> None:
    post, rid = plan_web(lab)
    ack = lab.click(rid, ALICE, message_ts=post.answer["ts"])
    reply = lab.response(ack)
    assert "someone else must approve it" in reply.text and "Four eyes" in reply.text
    assert reply.params["response_type"] == "ephemeral"
    assert lab.last_command("(button)")["outcome"] == "refused"
    assert "self-approval" in lab.last_command("(button)")["detail"]
    assert lab.store.get_run(rid).state.value == "awaiting_approval"
    assert not lab.writes()


def test_user_without_approver_role_is_refused(lab: Lab) -> None:
    post, rid = plan_web(lab)
    ack = lab.click(rid, DAVE, message_ts=post.answer["ts"])
    reply = lab.response(ack)
    assert "approver role on cluster lab" in reply.text
    assert lab.last_command("(button)")["outcome"] == "refused"
    assert lab.store.get_run(rid).state.value == "awaiting_approval"
    assert not lab.writes()


def test_operator_role_needed_to_plan(make_lab: Any) -> None:
    lab: Lab = make_lab(roles={"lab": RoleMembers(viewer=[DAVE], operator=[ALICE],
                                                   approver=[BOB])})
    ack = lab.command("run netpol-dns-allow namespaces=web", user=DAVE)
    reply = lab.response(ack)
    assert "operator role on cluster lab" in reply.text
    assert not lab.plan_posts() and not lab.run_ids()
    assert lab.last_command("run netpol-dns-allow")["outcome"] == "refused"


def test_expired_run_is_refused(make_lab: Any) -> None:
    lab: Lab = make_lab(edit_interval=0.2)
    post, rid = plan_web(lab)
    lab.clock.offset = timedelta(minutes=31)
    ack = lab.click(rid, BOB, message_ts=post.answer["ts"])
    reply = lab.response(ack)
    assert "expired" in reply.text and "again" in reply.text
    assert lab.store.get_run(rid).state.value == "expired"
    lab.svc.notifier.flush()  # type: ignore[union-attr]
    ups = lab.updates(post.answer["ts"])
    assert ups and "*expired*" in ups[-1].all_text()
    assert not [b for b in ups[-1].blocks if b["type"] == "actions"]
    assert not lab.writes()


def test_channel_not_allowed_for_commands_and_buttons(lab: Lab) -> None:
    ack = lab.command("run netpol-dns-allow namespaces=web", channel=OTHER_CHANNEL)
    assert "does not take commands in this channel" in ack.text
    assert not lab.run_ids()
    post, rid = plan_web(lab)
    click = lab.click(rid, BOB, channel=OTHER_CHANNEL, message_ts=post.answer["ts"])
    assert click.status == 200
    reply = lab.response(click)
    assert "does not take commands in this channel" in reply.text
    assert lab.store.get_run(rid).state.value == "awaiting_approval"
    outcomes = [(r["channel"], r["outcome"]) for r in lab.commands()]
    assert sorted(outcomes) == sorted([(OTHER_CHANNEL, "refused"), (CHANNEL, "ok"),
                                       (OTHER_CHANNEL, "refused")])
    for sub in ("runbooks", "history", f"show {rid}", f"approve {rid}", f"rollback {rid}"):
        a = lab.command(sub, channel=OTHER_CHANNEL, user=BOB)
        assert "does not take commands in this channel" in a.text, sub
    assert not lab.writes()


# --------------------------------------------------------------------------- duplicates


def test_slack_retry_and_duplicate_delivery_give_one_plan(lab: Lab) -> None:
    body = lab.slash_body("run netpol-dns-allow namespaces=web", rid="dup", trigger="7.7.7")
    first = lab.post(body, rid="dup")
    retry = lab.post(body, headers={"X-Slack-Retry-Num": "1",
                                    "X-Slack-Retry-Reason": "http_timeout"})
    assert first.status == 200 and retry.status == 200 and retry.body == ""
    again = lab.post(body, rid="dup")  # delivered again without the retry header
    assert again.status == 200
    lab.wait_plan()
    dup = lab.response(first)  # the repeated delivery is told the run already exists
    assert "already planned" in dup.text
    time.sleep(1.0)
    assert len(lab.plan_posts()) == 1
    assert len(lab.run_ids()) == 1
    assert any("already planned" in c.text for c in lab.slack.calls_to("response_url"))


def test_two_approvals_at_once_execute_once(make_lab: Any) -> None:
    lab: Lab = make_lab(edit_interval=0.2)
    post, rid = plan_web(lab)
    ts = post.answer["ts"]
    barrier = threading.Barrier(2)

    def click(user: str) -> Ack:
        barrier.wait()
        return lab.click(rid, user, message_ts=ts)

    with ThreadPoolExecutor(max_workers=2) as pool:
        acks = list(pool.map(click, [BOB, CAROL]))
    assert all(a.status == 200 for a in acks)
    lab.wait_result(ts)
    time.sleep(1.0)
    results = [c for c in lab.slack.calls_to("chat.postMessage") if c.thread_ts == ts]
    assert len(results) == 1
    creates = [r for r in lab.writes() if r.method == "POST"]
    assert len(creates) == 2  # two NetworkPolicies, created once each
    events = lab.svc.events(rid)
    assert sum(1 for e in events if e.kind == "state" and e.data.get("to") == "running") == 1
    assert lab.store.get_run(rid).state.value == "succeeded"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("text", "needles"), [
    ("run no-such-runbook namespaces=web", ["no-such-runbook", "field `runbook`",
                                            "/k8snet runbooks"]),
    ("run netpol-dns-allow nope=1", ["Unknown parameter", "field `nope`"]),
    ("run netpol-dns-allow namespaces=web default_deny=maybe", ["not a boolean",
                                                                "field `default_deny`"]),
    ("run netpol-dns-allow namespaces=Bad_NS", ["not a valid namespace name",
                                                "field `namespaces`"]),
    ("run netpol-dns-allow cluster=prod namespaces=web", ["Unknown cluster", "field `cluster`"]),
    ("run netpol-dns-allow namespaces=" + "a" * 600, ["the limit is 500"]),
    ("run netpol-dns-allow namespaces=<!channel>", ["field `namespaces`"]),
    ("run netpol-dns-allow namespaces=`web`", ["field `namespaces`"]),
    ('run netpol-dns-allow namespaces="web', ["quote is not closed"]),
    ("run netpol-dns-allow extra_egress_cidrs=10.0.0.1/8 namespaces=web",
     ["host bits", "field `extra_egress_cidrs`"]),
])
def test_bad_input_is_refused_before_anything(lab: Lab, text: str, needles: list[str]) -> None:
    ack = lab.command(text)
    assert ack.status == 200 and ack.seconds < 3.0
    assert ack.json["response_type"] == "ephemeral"
    for needle in needles:
        assert needle in ack.text, (needle, ack.text)
    assert "<!channel>" not in ack.text and "`web``" not in ack.text
    time.sleep(0.3)
    assert not lab.plan_posts() and not lab.run_ids() and not lab.writes()
    assert not [r for r in lab.emu.requests if r.method in WRITES]  # not even dry runs
    [row] = lab.commands()
    assert row["outcome"] == "error"


def test_bad_run_ids_and_unknown_runs(lab: Lab) -> None:
    a = lab.command("approve <!here>")
    assert "is not a run id" in a.text and "<!here>" not in a.text
    b = lab.command("show r-doesnotexist")
    assert "Unknown run" in b.text and "field `run_id`" in b.text
    c = lab.command("approve r-doesnotexist", user=BOB)
    assert "Unknown run" in lab.response(c).text
    assert [r["outcome"] for r in lab.commands()] == ["error", "error", "error"]


# --------------------------------------------------------------------------- modal


def test_run_without_params_opens_a_modal_then_plans(lab: Lab) -> None:
    ack = lab.command("run netpol-dns-allow cluster=lab", trigger="5.5.5")
    assert ack.status == 200 and "Opening the parameters form" in ack.text
    opened = lab.slack.wait_for("views.open")
    assert opened.params["trigger_id"] == "5.5.5"
    view = opened.params["view"]
    if isinstance(view, str):
        view = json.loads(view)
    assert view["callback_id"] == MODAL_CALLBACK
    assert json.loads(view["private_metadata"]) == {"ref": "netpol-dns-allow", "cluster": "lab",
                                                   "channel": CHANNEL}
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    ns_block = PARAM_BLOCK_PREFIX + "namespaces"
    assert inputs[ns_block]["element"]["type"] == "plain_text_input"
    assert inputs[ns_block]["element"].get("multiline") is False
    dd = PARAM_BLOCK_PREFIX + "default_deny"
    assert inputs[dd]["element"]["type"] == "checkboxes"

    def values(ns: str) -> dict[str, Any]:
        return {ns_block: {"value": {"type": "plain_text_input", "value": ns}},
                dd: {"value": {"type": "checkboxes",
                               "selected_options": [{"value": "true"}]}}}

    bad = lab.submit(view, values("Not_OK"))
    assert bad.status == 200
    assert bad.json["response_action"] == "errors"
    assert list(bad.json["errors"]) == [ns_block]
    assert "not a valid namespace name" in bad.json["errors"][ns_block]
    assert not lab.run_ids()

    good = lab.submit(view, values("web"))
    assert good.status == 200 and "errors" not in good.body
    post = lab.wait_plan()
    assert post.params["channel"] == CHANNEL and "networkpolicy/web/" in post.all_text()
    again = lab.submit(view, values("web"))  # a double submit of the same view
    assert again.status == 200
    time.sleep(1.0)
    assert len(lab.plan_posts()) == 1 and len(lab.run_ids()) == 1
    rows = lab.commands()
    assert sorted(r["outcome"] for r in rows) == ["error", "ok", "ok", "ok"]
    assert any("parameters form of netpol-dns-allow@1.0.0 opened" in r["detail"] for r in rows)
    assert any(r["text"].endswith("(form)") and r["outcome"] == "error" for r in rows)
    assert_slack_accepted_everything(lab)


# --------------------------------------------------------------------------- listings


def test_runbooks_history_and_show(lab: Lab) -> None:
    rb = lab.command("runbooks")
    body = json.dumps(rb.json)
    assert "netpol-dns-allow" in body and "disruptive" in body and "1.0.0" in body
    _post, rid = plan_web(lab)
    h = lab.command("history 5")
    assert rid in json.dumps(h.json) and "awaiting approval" in json.dumps(h.json)
    s = lab.command(f"show {rid}")
    shown = json.dumps(s.json)
    assert rid in shown and "planned by" in shown and "k8snet-default-deny" in shown
    assert "k8snet_approve" not in shown  # no buttons in the ephemeral copy
    assert validate_message(s.json) is None
    assert [r["outcome"] for r in lab.commands()] == ["ok", "ok", "ok", "ok"]


def test_nothing_to_do_posts_no_buttons(make_lab: Any) -> None:
    lab: Lab = make_lab(edit_interval=0.2)
    post, rid = plan_web(lab)
    lab.click(rid, BOB, message_ts=post.answer["ts"])
    lab.wait_result(post.answer["ts"])
    ack = lab.command("run netpol-dns-allow namespaces=web")
    assert "Planning" in ack.text
    second = lab.wait_plan(count=2)
    assert "Nothing to do" in second.all_text()
    assert not [b for b in second.blocks if b["type"] == "actions"]


def test_long_diff_continues_in_the_thread(lab: Lab) -> None:
    names = [f"team-{i:02d}" for i in range(30)]
    lab.emu.add(*({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}}}
                  for n in names))
    ack = lab.command("run netpol-dns-allow namespaces=" + ",".join(names))
    assert "Planning" in ack.text, ack.text
    post = lab.wait_plan(timeout=60)
    assert "diff continues in the thread" in post.all_text()
    ts = post.answer["ts"]
    lab.slack.wait_for("chat.postMessage", where=lambda c: c.thread_ts == ts)
    time.sleep(0.5)
    thread = [c for c in lab.slack.calls_to("chat.postMessage") if c.thread_ts == ts]
    everything = post.all_text() + "".join(c.all_text() for c in thread)
    for n in names:
        assert f"networkpolicy/{n}/k8snet-default-deny" in everything
    assert_slack_accepted_everything(lab)


# --------------------------------------------------------------------------- load


@pytest.mark.slow
def test_fifty_status_acks_within_3s_while_a_slow_runbook_runs(lab: Lab,
                                                               tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    ack = lab.command(f"run test-slow namespace=web gate_file={gate} hold_seconds=60")
    assert "Planning" in ack.text, ack.text
    post = lab.wait_plan()
    rid = run_id_of(post)
    lab.click(rid, BOB, message_ts=post.answer["ts"])
    deadline = time.monotonic() + 20
    while lab.store.get_run(rid).state.value != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lab.store.get_run(rid).state.value == "running"

    burst_status_acks(
        lambda i: lab.slash_body("status lab", rid=f"load{i}", user=f"U0LOAD{i:04d}"),
        lambda i, body: lab.post(body, rid=f"load{i}"), 50)
    assert lab.store.get_run(rid).state.value == "running"  # still running meanwhile
    gate.write_text("go")
    result = lab.wait_result(post.answer["ts"], timeout=60)
    assert "succeeded" in result.all_text()


# --------------------------------------------------------------------------- serve


def test_serve_recovers_interrupted_runs_expires_plans_and_rolls_back(lab: Lab) -> None:
    """``serve(..., runs=...)``: a run left ``running`` by a dead process becomes
    ``interrupted`` at start (its plan message edited, the result in the thread), unapproved
    plans past their window expire on their own, and ``/k8snet rollback`` rolls the
    interrupted run back."""
    svc, store = lab.svc, lab.store
    alice = Actor(ALICE, "slack", CHANNEL)
    stuck = svc.plan(alice, "lab", "netpol-dns-allow", {"namespaces": "web"}).run.id
    svc.approve(Actor(BOB, "slack", CHANNEL), stuck)
    assert store.transition(stuck, [RunState.APPROVED], RunState.RUNNING, detail="Applying.")
    store.append_event(stuck, "state", {"from": "approved", "to": "running", "actor": BOB,
                                        "holder": f"{socket.gethostname()}:999999:dead:x"})
    store.update_fields(stuck, message_channel=CHANNEL, message_ts="1699999999.000001")
    waiting = svc.plan(alice, "lab", "netpol-dns-allow", {"namespaces": "shop"}).run.id
    store.update_fields(waiting, message_channel=CHANNEL, message_ts="1699999999.000002")

    port = free_port()
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            serve(lab.engine, lab.settings, port=port, host="127.0.0.1", stop=stop, runs=svc,
                  attach_message=lambda r, c, t: store.update_fields(
                      r, message_channel=c, message_ts=t), expiry_interval=0.2)
        except BaseException as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=run, name="serve-runs", daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while store.get_run(stuck).state is not RunState.INTERRUPTED:
            assert time.monotonic() < deadline, store.get_run(stuck).state
            time.sleep(0.05)
        result = lab.wait_result("1699999999.000001")
        assert "interrupted" in result.all_text() and "roll" in result.all_text()

        lab.clock.offset = timedelta(minutes=31)
        deadline = time.monotonic() + 10
        while store.get_run(waiting).state is not RunState.EXPIRED:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        up = lab.slack.wait_for("chat.update", timeout=10,
                                where=lambda c: c.params.get("ts") == "1699999999.000002")
        assert "*expired*" in up.all_text()

        lab.target_port = port  # requests now go to serve's own HTTP server
        refused = lab.command(f"rollback {stuck}", user=DAVE)
        assert "Rolling back" in refused.text
        assert "approver role" in lab.response(refused).text
        ack = lab.command(f"rollback {stuck}", user=BOB)
        assert "Rolling back" in ack.text
        reply = lab.response(ack, timeout=20)
        assert "rolled back" in reply.text
        assert store.get_run(stuck).state is RunState.ROLLED_BACK
    finally:
        stop.set()
        t.join(20)
    assert not t.is_alive() and not errors, errors


# --------------------------------------------------------------------------- pieces


class _RecordingClient:
    """A WebClient double recording calls (for the notifier and the group resolver)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def chat_update(self, **kw: Any) -> dict[str, Any]:
        with self.lock:
            self.calls.append(("chat.update", {**kw, "at": time.monotonic()}))
        return {"ok": True, "channel": kw["channel"], "ts": kw["ts"]}

    def chat_postMessage(self, **kw: Any) -> dict[str, Any]:
        with self.lock:
            self.calls.append(("chat.postMessage", {**kw, "at": time.monotonic()}))
        return {"ok": True, "channel": kw["channel"], "ts": "1700000099.000001"}

    def usergroups_users_list(self, **kw: Any) -> dict[str, Any]:
        with self.lock:
            self.calls.append(("usergroups.users.list", kw))
        return {"ok": True, "users": ["U0BOB00001", "U0CAROL001"]}


def test_notifier_coalesces_and_keeps_one_edit_per_interval() -> None:
    from dataclasses import replace as dc_replace

    from bot.sdk.runbook import Plan
    from bot.slack.notifier import SlackRunNotifier
    from tests.unit.test_render_plan import make_view

    client = _RecordingClient()
    notifier = SlackRunNotifier(client, min_interval=0.5, post_interval=0)  # type: ignore[arg-type]
    try:
        view = make_view(RunState.RUNNING, Plan())
        notifier.remember(view.run.id, CHANNEL, "1700000000.000001", sent=False)
        for i in range(50):
            notifier.run_changed(view, f"step {i}")
            time.sleep(0.01)
        done = dc_replace(view, run=dc_replace(view.run, state=RunState.SUCCEEDED,
                                               detail="all good"))
        notifier.run_changed(done, "finished")
        notifier.run_changed(view, "a late running update")  # older: dropped
        assert notifier.flush(10)
    finally:
        notifier.close()
    updates = [kw for m, kw in client.calls if m == "chat.update"]
    assert 2 <= len(updates) <= 4, len(updates)  # 51 changes coalesced
    times = [u["at"] for u in updates]
    assert all(b - a >= 0.45 for a, b in itertools.pairwise(times))
    assert "*succeeded*" in json.dumps(updates[-1]["blocks"])  # the last state wins
    results = [kw for m, kw in client.calls if m == "chat.postMessage"]
    assert len(results) == 1 and results[0]["thread_ts"] == "1700000000.000001"


def test_terminal_runs_are_not_posted_to_slack() -> None:
    from bot.sdk.runbook import Plan
    from bot.slack.notifier import SlackRunNotifier
    from tests.unit.test_render_plan import make_view

    client = _RecordingClient()
    notifier = SlackRunNotifier(client, min_interval=0, post_interval=0)  # type: ignore[arg-type]
    try:
        notifier.run_changed(make_view(RunState.EXPIRED, Plan(), channel="terminal"), "expired")
        assert notifier.flush(5)
    finally:
        notifier.close()
    assert client.calls == []


def test_slack_user_groups_are_cached() -> None:
    from bot.slack.groups import SlackGroupMembers

    client = _RecordingClient()
    groups = SlackGroupMembers(client, ttl=60)  # type: ignore[arg-type]
    assert groups("S0APPROVERS") == {BOB, CAROL}
    assert BOB in groups("S0APPROVERS")
    assert [m for m, _ in client.calls] == ["usergroups.users.list"]
    policy = PolicyEngine(Policy(roles={"*": RoleMembers(approver=["S0APPROVERS"])}), groups)
    assert policy.has_role(BOB, "lab", "approver") and not policy.has_role(DAVE, "lab",
                                                                           "approver")


def test_viewer_role_needed_for_status_history_and_show(make_lab: Any) -> None:
    """With roles configured, someone with no role on the cluster sees neither its status nor
    its runs; a viewer does."""
    lab: Lab = make_lab(roles={"lab": RoleMembers(viewer=[DAVE], operator=[ALICE],
                                                   approver=[BOB])})
    _post, rid = plan_web(lab)
    stranger = "U0MALLORY"
    ack = lab.command("status lab", user=stranger)
    assert "viewer role on cluster lab" in ack.text
    assert lab.last_command("status")["outcome"] == "refused"
    ack = lab.command(f"show {rid}", user=stranger)
    assert "viewer role on cluster lab" in ack.text and rid not in ack.body
    ack = lab.command("history", user=stranger)
    assert ack.status == 200 and rid not in ack.body
    ack = lab.command(f"show {rid}", user=DAVE)
    assert rid in ack.body
    ack = lab.command("history", user=DAVE)
    assert rid in ack.body
