"""The real Bolt app over HTTP (waitress on loopback), signed like Slack signs, posting to the
loopback Slack Web API stand-in (DESIGN.md §11).

The engine is a real ``bot.engine.core.Engine`` over lab scenario (a) through
``StaticKubeReader``, with hand-made probes (so these tests do not depend on the real probes,
which are written in parallel) and, in one test, ``runbooks.probes.all_probes()``. The audit
sink is an in-memory list.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier

from bot.engine.core import ClusterRef, Engine
from bot.render.blocks import render_report
from bot.sdk.audit import CommandRecord
from bot.sdk.errors import KubeForbidden, KubeUnreachable, SettingsError
from bot.sdk.ports import KubeReader, ProbeContext
from bot.sdk.probe import Probe
from bot.sdk.results import Finding, Inspection, Severity
from bot.settings import Settings
from bot.slack import build_app, make_wsgi_app, serve
from bot.slack.server import RunningServer, start_http_server
from runbooks.probes import all_probes
from tests.lab.scenarios import get as get_scenario
from tests.lab.slack_standin import Call, SlackStandIn
from tests.lab.store import StaticKubeReader

CHANNEL = "C0LAB00001"
OTHER_CHANNEL = "C0NOTALLOWD"
USER = "U0ALICE001"
BOT_TOKEN = "xoxb-k8snet-test-token"


# --------------------------------------------------------------------------- engine parts


class MemoryAudit:
    """An ``AuditSink`` keeping CommandRecords in a list (thread-safe)."""

    def __init__(self) -> None:
        self.records: list[CommandRecord] = []
        self._lock = threading.Lock()

    def record_command(self, record: CommandRecord) -> int:
        with self._lock:
            self.records.append(record)
            return len(self.records)


class FakeProbe(Probe):
    """A hand-made probe: one warning about the cluster, reading the nodes of the scenario."""

    section = "lab-fake"
    title = "Fake <lab> & probe"
    order = 5
    position = 5

    def inspect(self, ctx: ProbeContext) -> Inspection:
        nodes = ctx.kube.list("v1", "nodes")
        return Inspection(
            summary=f"{len(nodes)} nodes seen",
            findings=(Finding(code="FK001", severity=Severity.WARNING, section=self.section,
                              subject=f"cluster/{ctx.cluster}",
                              message="A <fake> finding & nothing else.",
                              runbook="fake-fix", params={"level": 2}),))


class ForbiddenProbe(Probe):
    """A probe whose reads are refused: its section must show unknown with the reason."""

    section = "lab-forbidden"
    title = "Forbidden section"
    order = 6
    position = 6

    def inspect(self, ctx: ProbeContext) -> Inspection:
        raise KubeForbidden("bgppeers.crd.projectcalico.org is forbidden", verb="list",
                            resource="bgppeers", group="crd.projectcalico.org")


class ManyFindingsProbe(Probe):
    """Forty findings: the channel shows a few, the thread carries all of them."""

    section = "lab-many"
    title = "Many findings"
    order = 7
    position = 7

    def inspect(self, ctx: ProbeContext) -> Inspection:
        return Inspection(summary="40 namespaces without default-deny", findings=tuple(
            Finding(code="FK002", severity=Severity.WARNING, section=self.section,
                    subject=f"namespace/ns-{i:02d}", message="No default-deny policy. " * 20)
            for i in range(40)))


class SlowProbe(Probe):
    """Waits up to 5 s (or until ``release`` is set): a slow cluster."""

    section = "lab-slow"
    title = "Slow section"
    order = 8
    position = 8
    release = threading.Event()

    def inspect(self, ctx: ProbeContext) -> Inspection:
        self.release.wait(5.0)
        return Inspection(summary="slow but fine")


class BrokenReader:
    """A reader whose ``/version`` raises ``error``: the cluster as a whole fails."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def server_version(self) -> dict[str, Any]:
        raise self.error

    def list(self, *a: Any, **k: Any) -> list[dict[str, Any]]:
        raise self.error

    def get(self, *a: Any, **k: Any) -> dict[str, Any] | None:
        raise self.error

    def served(self, *a: Any, **k: Any) -> bool:
        raise self.error

    def pod_log(self, *a: Any, **k: Any) -> str:
        raise self.error


def make_engine(probes: list[Probe], audit: MemoryAudit) -> Engine:
    sc = get_scenario("a")

    def readers(name: str) -> KubeReader:
        if name == "down":
            return BrokenReader(KubeUnreachable(
                "Cannot reach https://10.9.9.9:6443: connection refused", cluster="down"))
        if name == "locked":
            return BrokenReader(KubeForbidden("version is forbidden for system:anonymous",
                                              verb="get", resource="version", cluster="locked"))
        return StaticKubeReader(sc.store(), sc.logs, sc.version)

    return Engine(clusters=[ClusterRef("lab", "https://192.168.10.11:6443"), ClusterRef("down"),
                            ClusterRef("locked")],
                  default_cluster="lab", readers=readers, probes=probes, audit=audit)


# --------------------------------------------------------------------------- harness


def sign(secret: str, ts: str, body: bytes) -> str:
    """Slack's v0 signature: HMAC-SHA256 of ``v0:{ts}:{body}`` with the signing secret."""
    base = b"v0:" + ts.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Ack:
    status: int
    body: str
    seconds: float
    response_id: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body) if self.body else {}

    @property
    def text(self) -> str:
        return str(self.json.get("text", ""))


def burst_status_acks(body: Callable[[int], bytes], send: Callable[[int, bytes], Ack],
                      n: int = 50) -> list[Ack]:
    """Send ``n`` signed ``/k8snet status`` requests at the same moment (a barrier releases
    them together) and assert every ack arrived within Slack's 3 seconds, with status 200 and
    the "Checking" text. Returns the acks."""
    barrier = threading.Barrier(n)

    def one(i: int) -> Ack:
        data = body(i)
        barrier.wait()
        return send(i, data)

    with ThreadPoolExecutor(max_workers=n) as pool:
        acks = list(pool.map(one, range(n)))
    slow = [(a.response_id, round(a.seconds, 2)) for a in acks if a.seconds >= 3.0]
    assert not slow, f"acks slower than 3 s: {slow}"
    assert all(a.status == 200 and "Checking `lab`" in a.text for a in acks)
    return acks



@dataclass
class Harness:
    slack: SlackStandIn
    audit: MemoryAudit
    engine: Engine
    secret: str
    server: RunningServer
    executor: ThreadPoolExecutor
    _n: list[int] = field(default_factory=lambda: [0])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/slack/events"

    def body(self, text: str, *, channel: str = CHANNEL, user: str = USER,
             response_id: str) -> bytes:
        return urlencode({
            "token": "deprecated-verification-token", "team_id": "T0K8SNET",
            "team_domain": "k8snet-lab", "channel_id": channel, "channel_name": "ops",
            "user_id": user, "user_name": "alice", "command": "/k8snet", "text": text,
            "api_app_id": "A0K8SNET", "is_enterprise_install": "false",
            "response_url": self.slack.response_url(response_id),
            "trigger_id": f"1337.42.{response_id}",
        }).encode()

    def send(self, body: bytes, *, ts: str | None = None, signature: str | None = None,
             headers: dict[str, str] | None = None, response_id: str = "") -> Ack:
        ts = ts or str(int(time.time()))
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature or sign(self.secret, ts, body),
            **(headers or {}),
        })
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, data = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read().decode()
        return Ack(status, data, time.monotonic() - t0, response_id)

    def command(self, text: str, **kw: Any) -> Ack:
        self._n[0] += 1
        rid = f"r{self._n[0]}"
        return self.send(self.body(text, response_id=rid, **kw), response_id=rid)

    def responses(self, ack: Ack) -> list[Call]:
        return [c for c in self.slack.calls_to("response_url") if c.response_id == ack.response_id]

    def wait_response(self, ack: Ack, timeout: float = 10.0) -> Call:
        return self.slack.wait_for("response_url", timeout=timeout,
                                   where=lambda c: c.response_id == ack.response_id)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("K8SNET_", "SLACK_")):
            monkeypatch.delenv(key)


def make_settings(**kw: Any) -> Settings:
    """Settings from plain values (secrets as str, as in the environment)."""
    return Settings(**kw)


def _settings(slack: SlackStandIn, secret: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {"slack_bot_token": BOT_TOKEN, "slack_signing_secret": secret,
                              "slack_api_url": slack.api_url, "allowed_channels": [CHANNEL]}
    return make_settings(**{**values, **kw})


@pytest.fixture
def make_harness() -> Iterator[Any]:
    started: list[Harness] = []

    def make(probes: list[Probe] | None = None, *, workers: int = 4,
             process_before_response: bool = False, app_kw: dict[str, Any] | None = None,
             **settings_kw: Any) -> Harness:
        slack = SlackStandIn().start()
        audit = MemoryAudit()
        engine = make_engine([FakeProbe(), ForbiddenProbe()] if probes is None else probes,
                             audit)
        secret = secrets.token_hex(16)
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="test-status")
        app = build_app(engine, _settings(slack, secret, **settings_kw), executor=executor,
                        process_before_response=process_before_response, post_interval=0,
                        **(app_kw or {}))
        server = start_http_server(make_wsgi_app(app))
        h = Harness(slack, audit, engine, secret, server, executor)
        started.append(h)
        return h

    yield make
    SlowProbe.release.set()
    for h in started:
        h.server.stop()
        h.executor.shutdown(wait=True, cancel_futures=True)
        h.slack.stop()
    SlowProbe.release.clear()


@pytest.fixture
def harness(make_harness: Any) -> Harness:
    h: Harness = make_harness()
    return h


def report_posts(h: Harness) -> list[Call]:
    return h.slack.calls_to("chat.postMessage")


def assert_slack_accepted_everything(h: Harness) -> None:
    bad = [(c.method, c.answer) for c in h.slack.calls if not c.answer.get("ok")]
    assert not bad, bad


# --------------------------------------------------------------------------- tests


def test_signature_helper_matches_slack_sdk() -> None:
    body, ts, secret = b"a=b&c=d", "1700000000", "s3cr3t"
    assert sign(secret, ts, body) == SignatureVerifier(secret).generate_signature(
        timestamp=ts, body=body)


@pytest.mark.parametrize("process_before_response", [False, True])
def test_status_acks_fast_then_posts_the_report(make_harness: Any,
                                                process_before_response: bool) -> None:
    h: Harness = make_harness(process_before_response=process_before_response)
    ack = h.command("status lab")
    assert ack.status == 200
    assert ack.seconds < 3.0
    assert ack.json["response_type"] == "ephemeral"
    assert "Checking `lab`" in ack.text

    post = h.slack.wait_for("chat.postMessage", timeout=10)
    assert post.params["channel"] == CHANNEL
    assert post.token == BOT_TOKEN
    assert post.thread_ts is None
    assert post.blocks[0]["type"] == "header"
    assert post.blocks[0]["text"]["text"].endswith("lab: WARNING")
    body = post.all_text()
    assert "*Fake &lt;lab&gt; &amp; probe*" in body  # section titles escaped
    assert "`FK001`" in body and "3 nodes seen" in body
    assert "A &lt;fake&gt; finding &amp; nothing else." in body
    assert "*Forbidden section* · unknown" in body and "forbidden" in body
    assert "lab" in post.text  # the fallback text is always set
    assert_slack_accepted_everything(h)

    [rec] = h.audit.records
    assert (rec.actor, rec.source, rec.channel) == (USER, "slack", CHANNEL)
    assert (rec.text, rec.cluster, rec.outcome) == ("/k8snet status lab", "lab", "ok")
    assert rec.detail == "status warning"


def test_status_without_cluster_uses_the_default(harness: Harness) -> None:
    ack = harness.command("status")
    assert "Checking `lab`" in ack.text
    post = harness.slack.wait_for("chat.postMessage")
    assert "`FK001`" in post.all_text()
    assert harness.audit.records[0].cluster == "lab"


def test_status_with_the_real_probes(make_harness: Any) -> None:
    """Holds whatever probes exist: every section of the report the engine makes shows up."""
    h: Harness = make_harness(all_probes())
    expected = h.engine.status("lab")
    rendered = render_report(expected)
    ack = h.command("status lab")
    assert ack.status == 200 and ack.seconds < 3.0
    post = h.slack.wait_for("chat.postMessage", timeout=20)
    h.slack.wait_for("chat.postMessage", count=1 + len(rendered.thread), timeout=20)
    everything = "\n".join(c.all_text() for c in report_posts(h))
    for section in expected.sections:
        assert section.title.replace("&", "&amp;").replace("<", "&lt;") in post.all_text()
    for finding in expected.findings:
        assert f"`{finding.code}`" in everything
    if not expected.sections:
        assert "nothing to report" in post.all_text()
    assert_slack_accepted_everything(h)


def test_long_report_goes_to_the_thread(make_harness: Any) -> None:
    h: Harness = make_harness([ManyFindingsProbe()])
    h.command("status lab")
    first = h.slack.wait_for("chat.postMessage")
    assert "…and 35 more findings in the thread" in first.all_text()
    h.slack.wait_for("chat.postMessage", count=2)
    time.sleep(0.3)
    posts = report_posts(h)
    thread = posts[1:]
    assert thread and all(p.thread_ts == first.answer["ts"] for p in thread)
    details = "\n".join(p.all_text() for p in thread)
    for i in range(40):
        assert f"`namespace/ns-{i:02d}`" in details
    assert_slack_accepted_everything(h)


def test_forged_signature_is_rejected_and_nothing_runs(harness: Harness) -> None:
    body = harness.body("status lab", response_id="forged")
    ts = str(int(time.time()))
    ack = harness.send(body, ts=ts, signature=sign("not-the-secret", ts, body),
                       response_id="forged")
    assert ack.status == 401
    time.sleep(0.5)
    assert not report_posts(harness)
    assert not harness.slack.calls_to("response_url")
    assert not harness.audit.records


def test_stale_timestamp_is_rejected(harness: Harness) -> None:
    body = harness.body("status lab", response_id="stale")
    stale = str(int(time.time()) - 6 * 60)
    ack = harness.send(body, ts=stale, response_id="stale")  # correctly signed, but old
    assert ack.status == 401
    time.sleep(0.5)
    assert not report_posts(harness)
    assert not harness.audit.records


def test_tampered_body_is_rejected(harness: Harness) -> None:
    ts = str(int(time.time()))
    body = harness.body("help", response_id="t")
    signature = sign(harness.secret, ts, body)
    ack = harness.send(body.replace(b"help", b"status"), ts=ts, signature=signature)
    assert ack.status == 401


@pytest.mark.parametrize("text", ["help", "", "HELP me"])
def test_help_lists_subcommands(harness: Harness, text: str) -> None:
    ack = harness.command(text)
    assert ack.status == 200 and ack.json["response_type"] == "ephemeral"
    for sub in ("/k8snet status [cluster]", "/k8snet clusters", "/k8snet help"):
        assert sub in ack.text
    [rec] = harness.audit.records
    assert (rec.outcome, rec.detail) == ("ok", "help")
    assert not report_posts(harness)


def test_clusters_lists_the_clusters(harness: Harness) -> None:
    ack = harness.command("clusters")
    assert "`lab` _(default)_" in ack.text
    assert "`down`" in ack.text and "`locked`" in ack.text
    assert harness.audit.records[0].outcome == "ok"


def test_unknown_subcommand_lists_the_valid_ones(harness: Harness) -> None:
    ack = harness.command("stauts lab")
    assert ack.status == 200 and ack.json["response_type"] == "ephemeral"
    assert "Unknown subcommand `stauts`" in ack.text
    assert "`help`, `status [cluster]`, `clusters`" in ack.text
    [rec] = harness.audit.records
    assert rec.outcome == "error" and rec.text == "/k8snet stauts lab"
    time.sleep(0.3)
    assert not report_posts(harness)


def test_unknown_cluster_lists_the_valid_ones_and_runs_nothing(harness: Harness) -> None:
    ack = harness.command("status <!channel>")
    assert ack.json["response_type"] == "ephemeral"
    assert "Unknown cluster" in ack.text
    assert "down, lab, locked" in ack.text
    assert "<!channel>" not in ack.text and "&lt;!channel&gt;" in ack.text
    [rec] = harness.audit.records
    assert (rec.outcome, rec.cluster) == ("error", "<!channel>")
    time.sleep(0.3)
    assert not report_posts(harness)


def test_channel_not_allowed_is_refused(harness: Harness) -> None:
    ack = harness.command("status lab", channel=OTHER_CHANNEL)
    assert ack.json["response_type"] == "ephemeral"
    assert "does not take commands in this channel" in ack.text
    assert f"<#{CHANNEL}>" in ack.text
    [rec] = harness.audit.records
    assert (rec.outcome, rec.channel) == ("refused", OTHER_CHANNEL)
    time.sleep(0.3)
    assert not report_posts(harness)


def test_any_channel_when_allowed_channels_is_empty(make_harness: Any) -> None:
    h: Harness = make_harness(allowed_channels=[])
    ack = h.command("status lab", channel=OTHER_CHANNEL)
    assert "Checking" in ack.text
    assert h.slack.wait_for("chat.postMessage").params["channel"] == OTHER_CHANNEL


@pytest.mark.parametrize(("text", "needle"), [
    ("status " + "x" * 600, "the limit is 500"),
    ("status\tlab", "control characters"),
    ("status lab\u202e", "control characters"),
])
def test_bad_input_is_refused(harness: Harness, text: str, needle: str) -> None:
    ack = harness.command(text)
    assert needle in ack.text and "Nothing was run" in ack.text
    [rec] = harness.audit.records
    assert rec.outcome == "error"
    assert "\t" not in rec.text and "\u202e" not in rec.text  # audit text is printable
    assert len(rec.text) < 600


def test_slack_retry_runs_once(harness: Harness) -> None:
    body = harness.body("status lab", response_id="once")
    first = harness.send(body, response_id="once")
    retry = harness.send(body, headers={"X-Slack-Retry-Num": "1",
                                        "X-Slack-Retry-Reason": "http_timeout"})
    assert first.status == 200 and "Checking" in first.text
    assert retry.status == 200 and retry.body == ""
    harness.slack.wait_for("chat.postMessage")
    time.sleep(0.5)
    assert len(report_posts(harness)) == 1
    assert len(harness.audit.records) == 1


def test_unreachable_cluster_answers_ephemeral(harness: Harness) -> None:
    ack = harness.command("status down")
    assert "Checking `down`" in ack.text
    resp = harness.wait_response(ack)
    assert resp.params["response_type"] == "ephemeral"
    assert "cannot be reached" in resp.text and "connection refused" in resp.text
    [rec] = harness.audit.records
    assert (rec.outcome, rec.cluster) == ("error", "down")
    assert not report_posts(harness)


def test_forbidden_cluster_answers_ephemeral(harness: Harness) -> None:
    ack = harness.command("status locked")
    resp = harness.wait_response(ack)
    assert "HTTP 403" in resp.text and "`get` `version`" in resp.text
    assert harness.audit.records[0].outcome == "error"


def test_slack_refusing_the_post_is_explained(harness: Harness) -> None:
    harness.slack.fail_next("chat.postMessage", "not_in_channel")
    ack = harness.command("status lab")
    resp = harness.wait_response(ack)
    assert "`not_in_channel`" in resp.text and "/invite @k8snet" in resp.text
    assert resp.params["response_type"] == "ephemeral"


def test_health_endpoints_and_404(harness: Harness) -> None:
    base = f"http://127.0.0.1:{harness.server.port}"
    for path, code in (("/healthz", 200), ("/readyz", 200)):
        with urllib.request.urlopen(base + path, timeout=5) as r:
            assert r.status == code
    for path, code in (("/nope", 404), ("/slack/events", 405)):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + path, timeout=5)
        assert info.value.code == code


def test_readyz_reports_not_ready() -> None:
    app_settings = make_settings(slack_bot_token=BOT_TOKEN, slack_signing_secret="x",
                            slack_api_url="http://127.0.0.1:9/api/")
    audit = MemoryAudit()
    app = build_app(make_engine([], audit), app_settings)
    with start_http_server(make_wsgi_app(app, ready=lambda: False)) as server:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz", timeout=5)
        assert info.value.code == 503


def test_too_many_pending_checks_are_refused(make_harness: Any) -> None:
    h: Harness = make_harness([SlowProbe()], workers=1, app_kw={"max_pending": 2})
    SlowProbe.release.clear()
    first, second, third = (h.command("status lab") for _ in range(3))
    assert "Checking" in first.text and "Checking" in second.text
    assert "Too many checks" in third.text and "Nothing was started" in third.text
    assert [r.outcome for r in h.audit.records] == ["refused"]
    SlowProbe.release.set()
    h.slack.wait_for("chat.postMessage", count=2)
    fourth = h.command("status lab")  # slots are released when checks finish
    assert "Checking" in fourth.text


def test_stopped_executor_answers_shutting_down(harness: Harness) -> None:
    harness.executor.shutdown(wait=True)
    ack = harness.command("status lab")
    assert "Checking" in ack.text
    resp = harness.wait_response(ack)
    assert "restarting" in resp.text
    [rec] = harness.audit.records
    assert (rec.outcome, rec.cluster) == ("error", "lab")


def test_public_api_is_documented() -> None:
    import bot.slack

    assert set(bot.slack.__all__) == {"build_app", "make_wsgi_app", "serve"}
    for name in bot.slack.__all__:
        assert getattr(bot.slack, name).__doc__


@pytest.mark.slow
def test_fifty_concurrent_status_commands_all_ack_within_3s(make_harness: Any) -> None:
    """Slow work runs on our executor (4 workers), not on Bolt's 5-thread listener pool: with
    50 status checks of a 5-second cluster in flight, every ack still arrives in < 3 s."""
    h: Harness = make_harness([SlowProbe()], workers=4)
    SlowProbe.release.clear()
    n = 50
    burst_status_acks(
        lambda i: h.body("status lab", response_id=f"load{i}", user=f"U0LOAD{i:04d}"),
        lambda i, body: h.send(body, response_id=f"load{i}"), n)
    assert len(report_posts(h)) < n  # the checks really were still running
    SlowProbe.release.set()
    h.slack.wait_for("chat.postMessage", count=n, timeout=30)
    assert len(h.audit.records) == n
    assert {r.actor for r in h.audit.records} == {f"U0LOAD{i:04d}" for i in range(n)}


# --------------------------------------------------------------------------- Socket Mode


def _slash_payload(slack: SlackStandIn, text: str, rid: str) -> dict[str, Any]:
    return {"token": "x", "team_id": "T0K8SNET", "team_domain": "k8snet-lab",
            "channel_id": CHANNEL, "channel_name": "ops", "user_id": USER, "user_name": "alice",
            "command": "/k8snet", "text": text, "api_app_id": "A0K8SNET",
            "is_enterprise_install": "false", "response_url": slack.response_url(rid),
            "trigger_id": f"1337.42.{rid}"}


def test_socket_mode_end_to_end() -> None:
    """``serve(..., socket_mode=True)`` connects to the stand-in's websocket, acks a slash
    command envelope with the ephemeral text and posts the report through the Web API."""
    audit = MemoryAudit()
    engine = make_engine([FakeProbe()], audit)
    stop = threading.Event()
    errors: list[BaseException] = []
    with SlackStandIn() as slack:
        s = make_settings(slack_bot_token=BOT_TOKEN, slack_app_token="xapp-1-test",
                     slack_api_url=slack.api_url, allowed_channels=[CHANNEL])

        def run() -> None:
            try:
                serve(engine, s, port=0, host="127.0.0.1", socket_mode=True, stop=stop)
            except BaseException as e:  # reported below
                errors.append(e)

        t = threading.Thread(target=run, name="serve-socket-mode", daemon=True)
        t.start()
        try:
            slack.wait_socket(timeout=10)
            [opened] = slack.calls_to("apps.connections.open")
            assert opened.token == "xapp-1-test"  # the app-level token, not the bot token

            t0 = time.monotonic()
            env_id = slack.send_slash_command(_slash_payload(slack, "status lab", "sm1"))
            ack = slack.wait_for("socket_ack", where=lambda c: c.response_id == env_id)
            assert time.monotonic() - t0 < 3.0
            assert "Checking `lab`" in ack.params["payload"]["text"]
            post = slack.wait_for("chat.postMessage", timeout=10)
            assert "`FK001`" in post.all_text() and post.params["channel"] == CHANNEL

            env_help = slack.send_slash_command(_slash_payload(slack, "help", "sm2"))
            help_ack = slack.wait_for("socket_ack", where=lambda c: c.response_id == env_help)
            assert "/k8snet clusters" in help_ack.params["payload"]["text"]

            retry = slack.send_envelope("slash_commands",
                                        _slash_payload(slack, "status lab", "sm3"),
                                        retry_attempt=1)
            slack.wait_for("socket_ack", where=lambda c: c.response_id == retry)
            time.sleep(0.5)
            assert len(slack.calls_to("chat.postMessage")) == 1  # the retry did not run
            assert [r.outcome for r in audit.records] == ["ok", "ok"]
        finally:
            stop.set()
            t.join(15)
        assert not t.is_alive()
        assert not errors, errors


# --------------------------------------------------------------------------- settings


def test_serve_socket_mode_requires_app_token() -> None:
    s = make_settings(slack_bot_token=BOT_TOKEN, slack_signing_secret="x")
    with pytest.raises(SettingsError, match="K8SNET_SLACK_APP_TOKEN") as info:
        serve(make_engine([], MemoryAudit()), s, port=0, socket_mode=True)
    assert info.value.key == "slack_app_token"


def test_serve_socket_mode_rejects_a_bot_token_as_app_token() -> None:
    s = make_settings(slack_bot_token=BOT_TOKEN, slack_app_token="xoxb-wrong")
    with pytest.raises(SettingsError, match="xapp-"):
        serve(make_engine([], MemoryAudit()), s, port=0, socket_mode=True)


def test_serve_http_requires_signing_secret() -> None:
    s = make_settings(slack_bot_token=BOT_TOKEN)
    with pytest.raises(SettingsError, match="K8SNET_SLACK_SIGNING_SECRET"):
        serve(make_engine([], MemoryAudit()), s, port=0)


def test_serve_requires_bot_token() -> None:
    s = make_settings(slack_signing_secret="x", slack_app_token="xapp-1")
    for socket_mode in (False, True):
        with pytest.raises(SettingsError, match="K8SNET_SLACK_BOT_TOKEN"):
            serve(make_engine([], MemoryAudit()), s, port=0, socket_mode=socket_mode)


def test_build_app_makes_no_network_call() -> None:
    with SlackStandIn() as slack:
        build_app(make_engine([], MemoryAudit()), _settings(slack, "x"))
        time.sleep(0.1)
        assert slack.calls == []


def test_build_app_requires_signing_secret_in_http_mode() -> None:
    s = make_settings(slack_bot_token=BOT_TOKEN)
    with pytest.raises(SettingsError, match="K8SNET_SLACK_SIGNING_SECRET"):
        build_app(make_engine([], MemoryAudit()), s)
    build_app(make_engine([], MemoryAudit()), s, socket_mode=True)  # not needed there


def test_manifest_matches_the_server() -> None:
    import yaml

    from bot.slack.server import EVENTS_PATH

    path = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "slack-app-manifest.yaml")
    with open(path, encoding="utf-8") as f:
        manifest = yaml.safe_load(f)
    [cmd] = manifest["features"]["slash_commands"]
    assert cmd["command"] == "/k8snet"
    assert cmd["url"].endswith(EVENTS_PATH)
    assert manifest["settings"]["interactivity"]["request_url"] == cmd["url"]
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands", "chat:write", "chat:write.public", "usergroups:read", "files:write"}
    assert manifest["settings"]["socket_mode_enabled"] is False
