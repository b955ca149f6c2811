"""The Bolt app: ``/k8snet help | status [cluster] | clusters | runbooks | run | approve |
reject | history | show | rollback``, the Approve / Reject buttons and the parameters modal.

Routing only (DESIGN.md §2, §9, §11): the ``/k8snet`` listener validates the command, records
it and acks within Slack's 3 seconds; the slow part of ``status`` (reading the cluster,
posting the report) runs on the engine's own bounded executor, never on Bolt's listener pool
(5 threads, shared with lazy listeners: with 8 slow commands on it, 3 acks missed the
deadline).

Answers and where they go:

- ``help``, ``clusters``, every refusal (bad input, unknown cluster, channel not allowed,
  too busy): the ephemeral ack itself, seen only by the person who typed the command.
- ``status``: an ephemeral "Checking <cluster>…" ack, then the report in the channel
  (``chat.postMessage``), long details as replies in its thread.
- runbook commands, buttons and the modal: see :mod:`bot.slack.runs` (plans in the channel,
  progress edited into the plan message by :mod:`bot.slack.notifier`).
- Errors after the ack (cluster unreachable, 403, Slack refusing the post): always ephemeral,
  through the command's ``response_url`` (``chat.postEphemeral`` when there is none).

Slack retries (``X-Slack-Retry-Num``) are acked and ignored: the first delivery was already
acked and is being handled, so nothing runs twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from bot.engine.core import Actor, Engine
from bot.engine.service import RunService
from bot.render.blocks import (
    ACTION_APPROVE,
    ACTION_REJECT,
    DEFAULT_MAX_FINDINGS,
    MODAL_CALLBACK,
    render_report,
)
from bot.sdk.errors import InputError, K8snetError, Refused, SettingsError
from bot.settings import Settings
from bot.slack import messages
from bot.slack.grammar import MAX_TEXT, Command, GrammarError, parse, printable
from bot.slack.notifier import DEFAULT_MIN_INTERVAL, SlackRunNotifier
from bot.slack.runs import RunHandlers

__all__ = ["DEFAULT_UI_WORKERS", "DEFAULT_WORKERS", "build_app"]

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 4
"""Workers of the executor ``build_app`` creates when none is passed in."""
DEFAULT_UI_WORKERS = 2
"""Workers of the executor for quick Slack-facing work (modals, approvals)."""
RUN_SUBCOMMANDS = frozenset({"runbooks", "run", "approve", "reject", "history", "show",
                             "rollback"})
DEFAULT_MAX_PENDING = 100
"""Status checks running or queued at most; more are refused with a "busy" answer."""
SLACK_TIMEOUT_SECONDS = 10
"""Timeout of one Slack Web API or ``response_url`` call."""


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def make_client(settings: Settings) -> WebClient:
    """A WebClient with the bot token for ``settings.slack_api_url`` (slack.com, GovSlack or a
    test stand-in), retrying once or twice when Slack answers 429 (rate limited)."""
    client = WebClient(token=_secret(settings.slack_bot_token), base_url=settings.slack_api_url,
                       timeout=SLACK_TIMEOUT_SECONDS)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


class _Router:
    """The ``/k8snet`` listener and the status job it hands to the executor."""

    def __init__(self, engine: Engine, settings: Settings, client: WebClient,
                 executor: Executor, *, post_interval: float, max_findings: int,
                 max_pending: int, runs: RunHandlers | None = None) -> None:
        self.engine = engine
        self.runs = runs
        self.allowed = list(settings.allowed_channels)
        self.client = client
        self.executor = executor
        self.post_interval = post_interval
        self.max_findings = max_findings
        self.max_pending = max_pending
        self._pending = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ listener (fast)

    def on_command(self, ack: Any, command: dict[str, Any]) -> None:
        """Validate, record, ack; hand ``status`` to the executor. Runs on Bolt's thread and
        returns at once."""
        t0 = time.monotonic()
        started_at = datetime.now(UTC)
        raw = command.get("text") or ""
        actor = Actor(str(command.get("user_id") or "unknown"), "slack",
                      str(command.get("channel_id") or "unknown"))
        audit_text = self._audit_text(command.get("command") or messages.COMMAND, raw)

        def answer(outcome: str, detail: str, text: str, cluster: str | None = None,
                   blocks: list[dict[str, Any]] | None = None) -> None:
            try:
                self.engine.record(actor, audit_text, cluster, outcome, detail, t0, started_at)
            except Exception:
                log.exception("could not record %s command in the audit trail", outcome)
                ack(text=messages.INTERNAL_ERROR, response_type="ephemeral")
                return
            if blocks:
                ack(text=text, blocks=blocks, response_type="ephemeral")
            else:
                ack(text=text, response_type="ephemeral")

        if self.allowed and actor.channel not in self.allowed:
            answer("refused", f"channel {actor.channel} not in allowed_channels",
                   messages.channel_not_allowed(self.allowed))
            return
        try:
            cmd = parse(raw)
        except GrammarError as e:
            answer("error", f"invalid command: {e.reason.value}", messages.grammar_error(e))
            return
        if cmd.name == "help":
            answer("ok", "help", messages.help_text())
            return
        if cmd.name == "clusters":
            names = [c.name for c in self.engine.clusters()]
            answer("ok", f"{len(names)} cluster{'' if len(names) == 1 else 's'}",
                   messages.clusters(names, self.engine.default_cluster))
            return
        if cmd.name in RUN_SUBCOMMANDS:
            if self.runs is None:
                answer("refused", "runbooks are not enabled", messages.RUNS_DISABLED)
                return
            try:
                self.runs.command(ack, command, cmd, actor, audit_text, answer)
            except Exception:
                log.exception("%s failed", audit_text)
                answer("error", "internal error (see the bot's log)", messages.INTERNAL_ERROR)
            return
        self._status(ack, command, cmd, actor, audit_text, answer)

    def _status(self, ack: Any, command: dict[str, Any], cmd: Command, actor: Actor,
                audit_text: str, answer: Any) -> None:
        try:
            ref = self.engine.resolve_cluster(cmd.cluster)
        except InputError as e:
            answer("error", str(e), messages.unknown_cluster(str(e)), cluster=cmd.cluster)
            return
        if self.runs is not None:  # roles come with the run service's policy
            try:
                self.runs.runs.require_role(actor, ref.name, "viewer", "see its status")
            except Refused as e:
                answer("refused", f"{e.reason}: {e}", messages.refused(e), cluster=ref.name)
                return
        with self._lock:
            busy = self._pending >= self.max_pending
            if not busy:
                self._pending += 1
        if busy:
            answer("refused", "too many status checks pending", messages.BUSY, cluster=ref.name)
            return
        ack(text=messages.checking(ref.name), response_type="ephemeral")
        try:
            self.executor.submit(self._status_job, command, actor, audit_text, ref.name)
        except RuntimeError:  # executor shut down: the process is stopping
            self._release()
            log.warning("status of %s not started: executor is shut down", ref.name)
            try:
                self.engine.record(actor, audit_text, ref.name, "error",
                                   "not started: the bot is shutting down", time.monotonic())
            except Exception:
                log.exception("could not record the unstarted status command")
            self._reply_ephemeral(command, messages.SHUTTING_DOWN)

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

    @staticmethod
    def _audit_text(name: str, raw: str) -> str:
        text = printable(raw)
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT] + f"…[{len(raw)} characters]"
        return f"{name} {text}".strip()

    # ------------------------------------------------------------------ job (executor)

    def _status_job(self, command: dict[str, Any], actor: Actor, audit_text: str,
                    cluster: str) -> None:
        """Build the report (``run_status`` records it) and post it; errors go ephemeral."""
        try:
            try:
                report = self.engine.run_status(actor, audit_text, cluster)
            except K8snetError as e:
                self._reply_ephemeral(command, messages.status_failed(cluster, e))
                return
            rendered = render_report(report, max_findings=self.max_findings)
            channel = actor.channel
            try:
                first = self.client.chat_postMessage(
                    channel=channel, text=rendered.summary.text, blocks=rendered.summary.blocks,
                    unfurl_links=False, unfurl_media=False)
                ts = first.get("ts")
                for msg in rendered.thread:
                    if self.post_interval > 0:  # about one post per second per channel
                        time.sleep(self.post_interval)
                    self.client.chat_postMessage(
                        channel=channel, thread_ts=ts, text=msg.text, blocks=msg.blocks,
                        unfurl_links=False, unfurl_media=False)
            except SlackApiError as e:
                code = str(e.response.get("error") or "unknown_error")
                log.warning("posting the status of %s in %s failed: %s", cluster, channel, code)
                self._reply_ephemeral(command, messages.post_failed(cluster, code))
        except Exception:
            log.exception("status job for %s failed", cluster)
            self._reply_ephemeral(command, messages.INTERNAL_ERROR)
        finally:
            self._release()

    def _reply_ephemeral(self, command: dict[str, Any], text: str) -> None:
        """An ephemeral answer after the ack: through ``response_url``, else
        ``chat.postEphemeral``. Failures are logged, never raised."""
        url = command.get("response_url")
        try:
            if url:
                resp = WebhookClient(url, timeout=SLACK_TIMEOUT_SECONDS).send(
                    text=text, response_type="ephemeral")
                if resp.status_code >= 300:
                    log.warning("response_url answered HTTP %s", resp.status_code)
            else:
                self.client.chat_postEphemeral(channel=str(command.get("channel_id")),
                                               user=str(command.get("user_id")), text=text)
        except Exception:
            log.exception("could not send an ephemeral answer")


def _ignore_retries(req: BoltRequest, next: Any) -> BoltResponse | None:
    """Global middleware: a delivery with ``X-Slack-Retry-Num`` repeats one that was already
    acked and handled, so it is acked with an empty 200 and not run again."""
    values = req.headers.get("x-slack-retry-num") or []
    try:
        retry = int(values[0]) if values else 0
    except ValueError:
        retry = 1  # present but garbled: still a redelivery
    if retry > 0:  # Socket Mode sends retry_attempt 0 on the first delivery
        log.info("ignoring Slack retry %s (%s)", retry,
                 (req.headers.get("x-slack-retry-reason") or ["?"])[0])
        return BoltResponse(status=200, body="")
    next()
    return None


def build_app(
    engine: Engine,
    settings: Settings,
    *,
    client: WebClient | None = None,
    executor: Executor | None = None,
    process_before_response: bool = False,
    socket_mode: bool = False,
    command: str = messages.COMMAND,
    post_interval: float = 1.0,
    max_findings: int = DEFAULT_MAX_FINDINGS,
    max_pending: int = DEFAULT_MAX_PENDING,
    runs: RunService | None = None,
    ui_executor: Executor | None = None,
    edit_interval: float = DEFAULT_MIN_INTERVAL,
    attach_message: Callable[[str, str, str], None] | None = None,
) -> App:
    """The Bolt app serving ``command`` (``/k8snet``) for ``engine``.

    - ``client``: the WebClient to post with; default: one with ``settings.slack_bot_token``
      for ``settings.slack_api_url`` (env ``K8SNET_SLACK_API_URL``). Building the app makes no
      network call (``auth.test`` happens on the first request).
    - ``executor``: where status checks run; default: a new ``ThreadPoolExecutor`` of
      :data:`DEFAULT_WORKERS` workers. Pass your own to control its lifetime (``serve`` does).
    - ``socket_mode``: no signing secret needed (Socket Mode requests are not signed).
    - ``post_interval``: seconds between the posts of one report (Slack allows about one per
      second per channel); tests pass 0.
    - ``max_findings``: findings per section in the channel message (the rest in the thread).
    - ``max_pending``: status checks running or queued at most before "busy" answers.
    - ``runs``: the runbook service; without it the runbook subcommands answer that runbooks
      are not enabled. The app installs a :class:`SlackRunNotifier` as ``runs.notifier`` (plan
      messages edited at most once per ``edit_interval`` seconds); plans and rollbacks run on
      ``executor``, approvals and modals on ``ui_executor`` (default: a new
      ``ThreadPoolExecutor`` of :data:`DEFAULT_UI_WORKERS` workers); ``attach_message(run_id,
      channel, ts)`` stores where each plan message was posted.

    Raises SettingsError naming ``K8SNET_SLACK_BOT_TOKEN`` or ``K8SNET_SLACK_SIGNING_SECRET``
    when needed and missing.
    """
    if client is None:
        if settings.slack_bot_token is None:
            raise SettingsError("Slack needs a bot token: set K8SNET_SLACK_BOT_TOKEN (xoxb-...).",
                                key="slack_bot_token")
        client = make_client(settings)
    elif not client.token:
        raise SettingsError("The Slack WebClient has no token: set K8SNET_SLACK_BOT_TOKEN.",
                            key="slack_bot_token")
    signing_secret = _secret(settings.slack_signing_secret)
    if not socket_mode and not signing_secret:
        raise SettingsError("Slack HTTP mode needs the signing secret: set "
                            "K8SNET_SLACK_SIGNING_SECRET.", key="slack_signing_secret")
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=DEFAULT_WORKERS,
                                      thread_name_prefix="k8snet-status")
    app = App(
        name="k8snet",
        client=client,
        signing_secret=signing_secret or "",
        token_verification_enabled=False,
        request_verification_enabled=not socket_mode,
        process_before_response=process_before_response,
        logger=logging.getLogger("bot.slack.bolt"),
    )
    handlers: RunHandlers | None = None
    if runs is not None:
        if ui_executor is None:
            ui_executor = ThreadPoolExecutor(max_workers=DEFAULT_UI_WORKERS,
                                             thread_name_prefix="k8snet-ui")
        notifier = SlackRunNotifier(client, min_interval=edit_interval,
                                    post_interval=post_interval)
        runs.notifier = notifier
        handlers = RunHandlers(engine, runs, client, notifier, work=executor, ui=ui_executor,
                               allowed=list(settings.allowed_channels),
                               post_interval=post_interval, attach_message=attach_message)
    router = _Router(engine, settings, client, executor, post_interval=post_interval,
                     max_findings=max_findings, max_pending=max_pending, runs=handlers)
    app.middleware(_ignore_retries)

    @app.command(command)
    def _k8snet(ack: Any, command: dict[str, Any]) -> None:
        router.on_command(ack, command)

    def _button(decision: str) -> Any:
        def listener(ack: Any, body: dict[str, Any]) -> None:
            ack()
            if handlers is None:
                return
            try:
                handlers.on_action(body, decision)
            except Exception:
                log.exception("%s button failed", decision)
        return listener

    app.action(ACTION_APPROVE)(_button("approve"))
    app.action(ACTION_REJECT)(_button("reject"))

    @app.view(MODAL_CALLBACK)
    def _modal(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        if handlers is None:
            ack()
            return
        try:
            handlers.on_view(ack, body, view)
        except Exception:
            log.exception("parameters form failed")
            ack()

    return app
