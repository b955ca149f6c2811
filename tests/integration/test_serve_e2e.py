"""The whole product as an operator runs it: `k8snet serve` in its own process (waitress, real
Bolt app, real wiring, SQLite audit), the lab API server for the cluster, the Slack Web API
stand-in for Slack. A signed `/k8snet status lab-a` is acked at once and the report lands in
the channel; the process is stopped by its pid."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bot.adapters.db import AuditStore
from tests.integration.test_slack import sign
from tests.lab.emulator import Emulator
from tests.lab.slack_standin import SlackStandIn

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Bot:
    proc: subprocess.Popen[bytes]
    url: str
    secret: str
    slack: SlackStandIn
    db: str
    log: Path

    def command(self, text: str, rid: str, *, signature: str | None = None) -> tuple[int, str,
                                                                                       float]:
        body = urlencode({
            "team_id": "T0K8SNET", "channel_id": "C0OPS", "channel_name": "ops",
            "user_id": "U0ALICE", "user_name": "alice", "command": "/k8snet", "text": text,
            "api_app_id": "A0K8SNET", "response_url": self.slack.response_url(rid),
            "trigger_id": f"1.2.{rid}"}).encode()
        ts = str(int(time.time()))
        req = urllib.request.Request(f"{self.url}/slack/events", data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded",
                                              "X-Slack-Request-Timestamp": ts,
                                              "X-Slack-Signature": signature
                                              or sign(self.secret, ts, body)})
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode(), time.monotonic() - t0
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), time.monotonic() - t0


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Bot]:
    with Emulator.from_scenario("a") as emu, SlackStandIn() as slack:
        kc = tmp_path / "kubeconfig"
        emu.write_kubeconfig(kc, context="lab-a")
        port = free_port()
        secret = secrets.token_hex(16)
        (tmp_path / "data").mkdir()
        db = f"sqlite:///{tmp_path / 'data' / 'audit.sqlite3'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("K8SNET_")}
        env.update({"K8SNET_SLACK_BOT_TOKEN": "xoxb-" + secrets.token_hex(8),
                    "K8SNET_SLACK_SIGNING_SECRET": secret,
                    "K8SNET_SLACK_API_URL": slack.api_url,
                    "K8SNET_DATABASE_URL": db, "HOME": str(tmp_path / "home"),
                    "KUBECONFIG": str(kc)})
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port",
                 str(port)], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"k8snet serve did not become ready:\n"
                                         f"{log.read_text()}")
                time.sleep(0.1)
            yield Bot(proc, url, secret, slack, db, log)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)  # by pid, never by name
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)


def test_status_from_slack_posts_the_report(bot: Bot) -> None:
    code, body, seconds = bot.command("status lab-a", "r1")
    assert code == 200 and seconds < 3, (code, body, seconds)
    assert "lab-a" in body
    post = bot.slack.wait_for("chat.postMessage", timeout=20)
    assert post.params["channel"] == "C0OPS"
    blocks = str(post.params.get("blocks"))
    for title in ("CNI", "kube-proxy", "MetalLB", "NetworkPolicy"):
        assert title in blocks
    assert "LB001" in blocks or any("LB001" in str(c.params) for c in
                                    bot.slack.calls_to("chat.postMessage"))
    assert post.answer.get("ok") is True  # Slack would have accepted it (limits respected)
    rows = AuditStore(bot.db).recent_commands(5)
    assert rows[0]["source"] == "slack" and rows[0]["actor"] == "U0ALICE"
    assert rows[0]["channel"] == "C0OPS" and rows[0]["cluster"] == "lab-a"
    assert rows[0]["outcome"] == "ok"
    assert bot.slack.calls_to("chat.postMessage")[0].token is not None


def test_forged_request_is_rejected_and_runs_nothing(bot: Bot) -> None:
    code, _, _ = bot.command("status lab-a", "r2", signature="v0=" + "0" * 64)
    assert code == 401
    time.sleep(0.5)
    assert bot.slack.calls_to("chat.postMessage") == []
    assert AuditStore(bot.db).recent_commands(5) == []


def test_unknown_cluster_lists_the_valid_ones(bot: Bot) -> None:
    code, body, _ = bot.command("status prod", "r3")
    assert code == 200 and "lab-a" in body and "prod" in body
    time.sleep(0.3)
    assert bot.slack.calls_to("chat.postMessage") == []


def test_metrics_count_commands_and_status(bot: Bot) -> None:
    code, _, _ = bot.command("status lab-a", "r9")
    assert code == 200
    bot.slack.wait_for("chat.postMessage", timeout=20)
    with urllib.request.urlopen(f"{bot.url}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert 'k8snet_commands_total{outcome="ok",source="slack"} 1.0' in text
    assert 'k8snet_status_seconds_count{cluster="lab-a"} 1.0' in text
    assert 'k8snet_status_sections{cluster="lab-a",status="critical"} 1.0' in text
