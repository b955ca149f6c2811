"""Runbook commands, buttons and the parameters modal: routing only (DESIGN.md §5, §9).

Everything here is called on Bolt's listener threads and returns at once; anything slow goes to
one of two executors of ours, never to Bolt's listener pool:

- ``work``: planning (inspects the cluster) and rollbacks; the same bounded executor as status;
- ``ui``: quick Slack-facing work that must not queue behind cluster reads: ``views.open``
  (its ``trigger_id`` lives 3 seconds), approvals and rejections.

Executions run on the engine's own executor (``RunService.submit_execute``); their progress
reaches Slack through :class:`bot.slack.notifier.SlackRunNotifier`.

Answers: the quick ones (``runbooks``, ``history``, ``show``, every input error found before
planning) are the ephemeral ack itself; the others are an ephemeral ack ("Planning...") and
later an ephemeral reply through the ``response_url`` (``chat.postEphemeral`` after a modal).
Plans are posted in the channel. Every command, button click and form submission is recorded
once in the ``commands`` audit with its outcome (``ok``, ``refused``, ``error``).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.engine.core import Actor, Engine
from bot.engine.registry import parse_params
from bot.engine.service import RunService, RunView
from bot.render.blocks import (
    PARAM_ACTION,
    PARAM_BLOCK_PREFIX,
    SlackMessage,
    render_history,
    render_params_modal,
    render_run,
    render_runbooks,
    render_show,
)
from bot.render.runs import STATE_WORD, risk_of, state_of
from bot.sdk.errors import InputError, K8snetError, Refused
from bot.slack import messages
from bot.slack.grammar import Command, printable
from bot.slack.notifier import SlackRunNotifier

__all__ = ["Answer", "RunHandlers", "form_values"]

log = logging.getLogger(__name__)

SLACK_TIMEOUT_SECONDS = 10
_RUN_ID = re.compile(r"r-[a-z0-9]{4,40}")
_TERMINAL = "terminal"

Answer = Callable[..., None]
"""``answer(outcome, detail, text, cluster=None, blocks=None)``: record the command in the
audit trail, then ack it with an ephemeral ``text`` (and ``blocks``)."""

Reply = Callable[[str], None]


@dataclass(frozen=True)
class _Request:
    """Who asked what, for the audit trail and the late reply."""

    actor: Actor
    text: str
    t0: float
    started_at: datetime
    reply: Reply


def form_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The raw parameters of a submitted modal (``view.state.values``): one entry per
    :data:`PARAM_BLOCK_PREFIX` block. Text inputs give their text (left out when blank, so
    the default applies), checkboxes ``"true"``/``"false"``, selects the chosen value."""
    raw: dict[str, Any] = {}
    for block_id, actions in (values or {}).items():
        if not block_id.startswith(PARAM_BLOCK_PREFIX) or not isinstance(actions, dict):
            continue
        name = block_id[len(PARAM_BLOCK_PREFIX):]
        element = actions.get(PARAM_ACTION) or {}
        kind = element.get("type")
        if kind == "checkboxes":
            raw[name] = "true" if element.get("selected_options") else "false"
        elif kind in ("static_select", "radio_buttons"):
            chosen = element.get("selected_option") or {}
            if chosen.get("value"):
                raw[name] = str(chosen["value"])
        else:
            value = element.get("value")
            if value is not None and str(value).strip():
                raw[name] = str(value)
    return raw


class RunHandlers:
    """The runbook side of the Slack app (see the module docstring).

    ``engine`` resolves clusters and records the audit; ``runs`` plans, decides and executes;
    ``notifier`` edits plan messages; ``allowed`` are the allowed channel ids (empty: all);
    ``post_interval`` seconds between posts in one thread; ``attach_message(run_id, channel,
    ts)`` stores where a run's plan message is (so other replicas and restarts find it).
    """

    def __init__(self, engine: Engine, runs: RunService, client: WebClient,
                 notifier: SlackRunNotifier, *, work: Executor, ui: Executor,
                 allowed: list[str], post_interval: float,
                 attach_message: Callable[[str, str, str], None] | None = None) -> None:
        self.engine = engine
        self.runs = runs
        self.client = client
        self.notifier = notifier
        self.work = work
        self.ui = ui
        self.allowed = allowed
        self.post_interval = post_interval
        self.attach_message = attach_message
        self._posted: set[str] = set()
        self._lock = threading.Lock()

    # ================================================================== slash commands

    def command(self, ack: Any, command: dict[str, Any], cmd: Command, actor: Actor,
                audit_text: str, answer: Answer) -> None:
        """Handle ``runbooks``, ``run``, ``approve``, ``reject``, ``history``, ``show`` and
        ``rollback`` (the channel was already checked)."""
        reply = self._response_url_reply(command)
        if cmd.name == "runbooks":
            infos = self.runs.runbooks()
            msg = render_runbooks(infos)
            answer("ok", f"{len(infos)} runbooks", msg.text, blocks=msg.blocks)
        elif cmd.name == "history":
            # only runs of clusters the user may view (role viewer)
            views = [v for v in self.runs.history(limit=cmd.limit or 10)
                     if self.runs.can(actor, v.run.cluster, "viewer")]
            msg = render_history(views)
            answer("ok", f"{len(views)} runs", msg.text, blocks=msg.blocks)
        elif cmd.name == "show":
            self._show(cmd, actor, answer)
        elif cmd.name == "run":
            self._run(ack, command, cmd, actor, audit_text, answer, reply)
        elif cmd.name in ("approve", "reject"):
            assert cmd.run_id is not None
            ack(text=messages.deciding(cmd.run_id, cmd.name), response_type="ephemeral")
            req = _Request(actor, audit_text, time.monotonic(), datetime.now(UTC), reply)
            self._submit(self.ui, req, None, self._decide, req, cmd.name, cmd.run_id,
                         cmd.reason, None)
        elif cmd.name == "rollback":
            assert cmd.run_id is not None
            ack(text=messages.rolling_back(cmd.run_id), response_type="ephemeral")
            req = _Request(actor, audit_text, time.monotonic(), datetime.now(UTC), reply)
            self._submit(self.work, req, None, self._rollback, req, cmd.run_id)

    def _show(self, cmd: Command, actor: Actor, answer: Answer) -> None:
        assert cmd.run_id is not None
        try:
            view = self.runs.get(cmd.run_id)
            self.runs.require_role(actor, view.run.cluster, "viewer", "see its runs")
            events = self.runs.events(cmd.run_id)
        except InputError as e:
            answer("error", str(e), messages.input_error(e, planned=False))
            return
        except Refused as e:
            answer("refused", f"{e.reason}: {e}", messages.refused(e))
            return
        msg = render_show(view, events)
        answer("ok", f"{view.run.id} {state_of(view.run)}", msg.text, cluster=view.run.cluster,
               blocks=msg.blocks)

    def _run(self, ack: Any, command: dict[str, Any], cmd: Command, actor: Actor,
             audit_text: str, answer: Answer, reply: Reply) -> None:
        """Validate everything that needs no cluster (runbook, cluster name, parameters), then
        plan on the executor, or open the parameters modal when no parameter was given."""
        assert cmd.runbook is not None
        try:
            cls = self.runs.resolve(cmd.runbook)
            cluster = self.engine.resolve_cluster(cmd.cluster).name
            schema = cls.Params.model_json_schema()
            if not cmd.params and schema.get("properties"):
                ack(text=messages.opening_form(cmd.runbook), response_type="ephemeral")
                req = _Request(actor, audit_text, time.monotonic(), datetime.now(UTC), reply)
                self._submit(self.ui, req, cluster, self._open_modal, req, cls, cmd.runbook,
                             cluster, str(command.get("trigger_id") or ""), schema)
                return
            raw = cmd.raw_params
            parse_params(cls, raw)
        except InputError as e:
            answer("error", str(e), messages.input_error(e), cluster=cmd.cluster)
            return
        ack(text=messages.planning(cmd.runbook, cluster), response_type="ephemeral")
        req = _Request(actor, audit_text, time.monotonic(), datetime.now(UTC), reply)
        key = str(command.get("trigger_id") or "") or None
        self._submit(self.work, req, cluster, self._plan, req, cluster, cmd.runbook, raw, key)

    # ================================================================== buttons & modal

    def on_action(self, body: dict[str, Any], decision: str) -> None:
        """An Approve / Reject click (already acked): check the channel, then decide on the
        ui executor. The button's value is only the run id."""
        user = str((body.get("user") or {}).get("id") or "unknown")
        container = body.get("container") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id")
                      or "unknown")
        ts = str((body.get("message") or {}).get("ts") or container.get("message_ts") or "")
        actions = body.get("actions") or [{}]
        rid = str(actions[0].get("value") or "")
        actor = Actor(user, "slack", channel)
        text = f"{messages.COMMAND} {decision} {printable(rid[:80])} (button)"
        req = _Request(actor, text, time.monotonic(), datetime.now(UTC),
                       self._action_reply(body))
        if self.allowed and channel not in self.allowed:
            self._record(req, None, "refused", f"channel {channel} not in allowed_channels")
            req.reply(messages.channel_not_allowed(self.allowed))
            return
        if not _RUN_ID.fullmatch(rid):
            self._record(req, None, "error", "button without a valid run id")
            req.reply(messages.action_failed())
            return
        where = (channel, ts) if ts else None
        self._submit(self.ui, req, None, self._decide, req, decision, rid, "", where)

    def on_view(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        """A submitted parameters modal: validate on this thread and answer field errors in
        the ack (``response_action: errors``); otherwise close it and plan on the executor."""
        user = str((body.get("user") or {}).get("id") or "unknown")
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        ref, cluster, channel = (str(meta.get(k) or "") for k in ("ref", "cluster", "channel"))
        actor = Actor(user, "slack", channel or "unknown")
        raw = form_values((view.get("state") or {}).get("values") or {})
        shown = " ".join(f"{k}={v}" for k, v in raw.items())
        text = f"{messages.COMMAND} run {printable(ref)} cluster={printable(cluster)} " \
            f"{printable(shown)} (form)".strip()
        if len(text) > 600:
            text = text[:600] + "…"
        req = _Request(actor, text, time.monotonic(), datetime.now(UTC),
                       self._ephemeral_reply(channel, user))
        blocks = [b.get("block_id", "") for b in view.get("blocks") or []
                  if b.get("type") == "input"]

        def field_error(err: InputError, block: str | None = None) -> None:
            target = block or (PARAM_BLOCK_PREFIX + err.field
                               if err.field and PARAM_BLOCK_PREFIX + err.field in blocks
                               else (blocks[0] if blocks else ""))
            if target:
                ack(response_action="errors", errors={target: messages.modal_field_error(err)})
            else:
                ack()
                req.reply(messages.input_error(err))

        if self.allowed and channel not in self.allowed:
            self._record(req, cluster or None, "refused",
                         f"channel {channel} not in allowed_channels")
            field_error(InputError("k8snet does not take commands in this channel.",
                                   field="channel"))
            return
        try:
            cls = self.runs.resolve(ref)
            cluster = self.engine.resolve_cluster(cluster or None).name
            parse_params(cls, raw)
        except InputError as e:
            self._record(req, cluster or None, "error", str(e))
            field_error(e)
            return
        ack()
        key = str(view.get("id") or "") or None
        self._submit(self.work, req, cluster, self._plan, req, cluster, ref, raw, key)

    # ================================================================== jobs (executors)

    def _submit(self, executor: Executor, req: _Request, cluster: str | None,
                fn: Callable[..., None], *args: Any) -> None:
        """Hand a job to ``executor``; a stopped executor (shutdown) is answered and audited."""
        try:
            executor.submit(self._guard, req, cluster, fn, *args)
        except RuntimeError:
            log.warning("%s not started: executor is shut down", req.text)
            self._record(req, cluster, "error", "not started: the bot is shutting down")
            req.reply(messages.SHUTTING_DOWN)

    def _guard(self, req: _Request, cluster: str | None, fn: Callable[..., None],
               *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s failed", req.text)
            self._record(req, cluster, "error", "internal error (see the bot's log)")
            req.reply(messages.INTERNAL_ERROR)

    def _record(self, req: _Request, cluster: str | None, outcome: str, detail: str) -> None:
        try:
            self.engine.record(req.actor, req.text, cluster, outcome, detail, req.t0,
                               req.started_at)
        except Exception:
            log.exception("could not record %r in the audit trail", req.text)

    def _open_modal(self, req: _Request, cls: Any, ref: str, cluster: str, trigger_id: str,
                    schema: dict[str, Any]) -> None:
        meta = json.dumps({"ref": ref, "cluster": cluster, "channel": req.actor.channel},
                          separators=(",", ":"))
        view = render_params_modal(runbook=cls.name, version=cls.version,
                                   summary=cls.summary(), risk=risk_of(cls.risk),
                                   cluster=cluster, schema=schema, private_metadata=meta)
        try:
            self.client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as e:
            code = str(e.response.get("error") or "unknown_error")
            self._record(req, cluster, "error", f"views.open failed: {code}")
            req.reply(messages.form_failed(code))
            return
        self._record(req, cluster, "ok", f"parameters form of {cls.name}@{cls.version} opened")

    def _plan(self, req: _Request, cluster: str, ref: str, raw: Mapping[str, Any],
              key: str | None) -> None:
        """Plan, then post the plan message (once per run) and its thread."""
        try:
            view = self.runs.plan(req.actor, cluster, ref, raw, idempotency_key=key)
        except InputError as e:
            self._record(req, cluster, "error", str(e))
            req.reply(messages.input_error(e))
            return
        except Refused as e:
            self._record(req, cluster, "refused", f"{e.reason}: {e}")
            req.reply(messages.refused(e))
            return
        except K8snetError as e:
            self._record(req, cluster, "error", str(e))
            req.reply(messages.plan_failed(ref, cluster, e))
            return
        run = view.run
        with self._lock:
            duplicate = run.id in self._posted or (run.message_ts is not None)
            self._posted.add(run.id)
        if duplicate:
            self._record(req, cluster, "ok", f"repeated request: already planned as {run.id}")
            req.reply(messages.plan_posted_elsewhere(run.id))
            return
        detail = f"planned {run.id}: {run.runbook}@{run.version}, " \
            f"{len(view.plan.changes)} changes, {STATE_WORD.get(state_of(run), state_of(run))}"
        code = self._post_plan(view, req.actor.channel)
        if code is not None:
            self._record(req, cluster, "ok", f"{detail}; Slack refused the post ({code})")
            req.reply(messages.plan_post_failed(run.id, code))
            return
        self._record(req, cluster, "ok", detail)

    def _post_plan(self, view: RunView, channel: str) -> str | None:
        """Post the plan message and the rest of its diff in the thread; remember the message
        for progress edits. Returns Slack's error code when the post failed."""
        rendered = render_run(view)
        try:
            first = self.client.chat_postMessage(
                channel=channel, text=rendered.message.text, blocks=rendered.message.blocks,
                unfurl_links=False, unfurl_media=False)
        except SlackApiError as e:
            return str(e.response.get("error") or "unknown_error")
        ts = str(first.get("ts"))
        posted_channel = str(first.get("channel") or channel)
        self.notifier.remember(view.run.id, posted_channel, ts)
        if self.attach_message is not None:
            try:
                self.attach_message(view.run.id, posted_channel, ts)
            except Exception:
                log.warning("could not store the plan message of %s", view.run.id,
                            exc_info=True)
        for msg in rendered.thread:
            self._thread_post(posted_channel, ts, msg)
        return None

    def _thread_post(self, channel: str, ts: str, msg: SlackMessage) -> None:
        if self.post_interval > 0:
            time.sleep(self.post_interval)
        try:
            self.client.chat_postMessage(channel=channel, thread_ts=ts, text=msg.text,
                                         blocks=msg.blocks, unfurl_links=False,
                                         unfurl_media=False)
        except SlackApiError as e:
            log.warning("posting the rest of a diff failed: %s", e.response.get("error"))

    def _allowed(self, req: _Request, call: Callable[[], RunView]) -> RunView | None:
        """Run an engine request; a refusal or bad input is recorded and answered
        (ephemeral, saying why) and gives None."""
        try:
            return call()
        except Refused as e:
            self._record(req, None, "refused", f"{e.reason}: {e}")
            req.reply(messages.refused(e))
        except InputError as e:
            self._record(req, None, "error", str(e))
            req.reply(messages.input_error(e, planned=False))
        return None

    def _decide(self, req: _Request, decision: str, rid: str, reason: str,
                where: tuple[str, str] | None) -> None:
        """Approve or reject; after the approval that made the run approved, submit its
        execution (exactly one of concurrent approvers does)."""
        actor = req.actor
        view = self._allowed(req, lambda: self.runs.approve(actor, rid) if decision == "approve"
                             else self.runs.reject(actor, rid, reason))
        if view is None:
            return
        run = view.run
        if where is not None:
            self.notifier.remember(run.id, where[0], where[1], sent=False)
        self.notifier.run_changed(view, "")
        state = state_of(run)
        if decision == "reject":
            self._record(req, run.cluster, "ok", f"rejected {run.id}")
            req.reply(messages.rejected(run.id))
            return
        counted = [a.approver for a in view.approvals
                   if a.decision == "approve" and a.plan_hash == run.plan_hash]
        need = run.approvals_required
        if state != "approved":
            self._record(req, run.cluster, "ok",
                         f"approved {run.id} ({len(counted)} of {need})")
            req.reply(messages.approved(run.id, False, max(0, need - len(counted))))
            return
        deciding = counted[need - 1] if need and len(counted) >= need else None
        if run.channel == _TERMINAL:
            self._record(req, run.cluster, "ok", f"approved {run.id}; applied from the CLI")
            req.reply(messages.approved_terminal(run.id))
            return
        if deciding != actor.user:
            self._record(req, run.cluster, "ok", f"approved {run.id} (already complete)")
            req.reply(messages.approved(run.id, False, 0))
            return
        try:
            future = self.runs.submit_execute(actor, run.id)
        except RuntimeError:
            self._record(req, run.cluster, "error",
                         f"approved {run.id}; not executed: the bot is shutting down")
            req.reply(messages.SHUTTING_DOWN)
            return
        future.add_done_callback(self._executed)
        self._record(req, run.cluster, "ok", f"approved {run.id}; executing")
        req.reply(messages.approved(run.id, True, 0))

    @staticmethod
    def _executed(future: Future[RunView]) -> None:
        """Log how a submitted execution ended (its progress went to the notifier)."""
        try:
            view = future.result()
        except Refused as e:
            log.info("execution refused: %s", e)
        except Exception:
            log.exception("execution failed")
        else:
            log.info("run %s ended %s", view.run.id, state_of(view.run))

    def _rollback(self, req: _Request, rid: str) -> None:
        view = self._allowed(req, lambda: self.runs.rollback_interrupted(req.actor, rid))
        if view is None:
            return
        state = state_of(view.run)
        self._record(req, view.run.cluster, "ok" if state == "rolled_back" else "error",
                     f"rollback of {view.run.id}: {state}")
        req.reply(messages.rollback_done(view.run.id, STATE_WORD.get(state, state),
                                         view.run.detail))

    # ================================================================== replies

    @staticmethod
    def _webhook(url: str, **kwargs: Any) -> None:
        try:
            resp = WebhookClient(url, timeout=SLACK_TIMEOUT_SECONDS).send(**kwargs)
            if resp.status_code >= 300:
                log.warning("response_url answered HTTP %s", resp.status_code)
        except Exception:
            log.exception("could not answer through the response_url")

    def _ephemeral_reply(self, channel: str, user: str) -> Reply:
        def reply(text: str) -> None:
            try:
                self.client.chat_postEphemeral(channel=channel, user=user, text=text)
            except Exception:
                log.exception("could not send an ephemeral answer")
        return reply

    def _response_url_reply(self, command: dict[str, Any]) -> Reply:
        url = command.get("response_url")
        if not url:
            return self._ephemeral_reply(str(command.get("channel_id")),
                                         str(command.get("user_id")))

        def reply(text: str) -> None:
            self._webhook(str(url), text=text, response_type="ephemeral")
        return reply

    def _action_reply(self, body: dict[str, Any]) -> Reply:
        url = body.get("response_url")
        if not url:
            channel = str((body.get("channel") or {}).get("id") or "")
            return self._ephemeral_reply(channel, str((body.get("user") or {}).get("id")))

        def reply(text: str) -> None:
            self._webhook(str(url), text=text, response_type="ephemeral",
                          replace_original=False)
        return reply
