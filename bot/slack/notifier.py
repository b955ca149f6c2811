"""The Slack ``RunNotifier``: a run's progress edited into its plan message, its result in the
message's thread.

The engine calls :meth:`SlackRunNotifier.run_changed` from whatever thread runs the runbook;
the call only records the newest state and returns. One background thread sends the edits:

- at most one ``chat.update`` per message per ``min_interval`` seconds (Slack allows about one
  write per second per channel); updates arriving in between are coalesced, the last state
  wins, and the last state is always sent;
- when a run reaches a final state (or ``interrupted``), after its final edit, one reply in the
  thread: the outcome, what was applied or rolled back, and the run id (the audit key);
- the plan message of a run is known from :meth:`remember` (the Slack layer posted it or saw
  a button click on it) or from ``run.message_channel``/``run.message_ts``. A run with no
  known message is posted afresh in its channel (a Slack channel id; runs planned in a
  terminal are left alone).

Slack errors are logged, never raised into the engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.render.blocks import RenderedRun, SlackMessage, render_result, render_run
from bot.render.runs import RunViewLike, is_final, state_of

__all__ = ["DEFAULT_MIN_INTERVAL", "SlackRunNotifier"]

log = logging.getLogger(__name__)

DEFAULT_MIN_INTERVAL = 1.0
"""Seconds between two edits of one message."""
_TERMINAL = "terminal"
_MAX_KNOWN = 5000
_RANK = {"planned": 0, "awaiting_approval": 1, "nothing_to_do": 5, "approved": 2,
         "running": 3, "interrupted": 4}


def _older(new: str, current: str) -> bool:
    """Whether a snapshot in state ``new`` is older than one in ``current``: states only move
    forward (planned, awaiting approval, approved, running, final), except that an interrupted
    run runs again when it is rolled back."""
    if current == "interrupted" and new == "running":
        return False
    return _RANK.get(new, 5) < _RANK.get(current, 5)


@dataclass
class _Slot:
    """What is pending for one run's message."""

    channel: str | None = None
    ts: str | None = None
    view: RunViewLike | None = None
    message: str = ""
    dirty: bool = False
    last_sent: float = float("-inf")
    result_posted: bool = False
    posting: bool = False
    touched: float = field(default_factory=time.monotonic)


class SlackRunNotifier:
    """Rate-limited, coalescing edits of plan messages (see the module docstring).

    ``client``: the bot's WebClient; ``min_interval``: seconds between edits of one message;
    ``render``: how a run's message is rendered (default :func:`render_run`); ``post_interval``:
    seconds between posts in one thread (Slack's ~1/s per channel; tests pass 0).
    """

    def __init__(self, client: WebClient, *, min_interval: float = DEFAULT_MIN_INTERVAL,
                 post_interval: float = 1.0,
                 render: Callable[..., RenderedRun] = render_run) -> None:
        self.client = client
        self.min_interval = min_interval
        self.post_interval = post_interval
        self._render = render
        self._slots: dict[str, _Slot] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="k8snet-slack-notifier",
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ API

    def remember(self, run_id: str, channel: str, ts: str, *, sent: bool = True) -> None:
        """The plan message of ``run_id`` is ``ts`` in ``channel`` (``sent``: it was just posted
        or edited, so the next edit waits ``min_interval``)."""
        with self._cond:
            slot = self._slots.setdefault(run_id, _Slot())
            slot.channel, slot.ts = channel, ts
            if sent:
                slot.last_sent = time.monotonic()
            slot.touched = time.monotonic()
            self._trim()
            self._cond.notify_all()

    def message_of(self, run_id: str) -> tuple[str, str] | None:
        """``(channel, ts)`` of the run's plan message when known."""
        with self._cond:
            slot = self._slots.get(run_id)
            if slot and slot.channel and slot.ts:
                return slot.channel, slot.ts
        return None

    def run_changed(self, view: RunViewLike, message: str) -> None:
        """Record the newest state of a run; the edit is sent by the background thread."""
        run = view.run
        with self._cond:
            slot = self._slots.get(run.id)
            if slot is None:
                if run.channel == _TERMINAL and not run.message_ts:
                    return  # planned in a terminal and never shown in Slack
                slot = self._slots.setdefault(run.id, _Slot())
            if not slot.ts and run.message_channel and run.message_ts:
                slot.channel, slot.ts = run.message_channel, run.message_ts
            if slot.view is not None and _older(run_state := state_of(run),
                                                state_of(slot.view.run)):
                log.debug("run %s: dropping a late %s update", run.id, run_state)
                return  # an older snapshot arriving late (another thread): the newer wins
            slot.view, slot.message, slot.dirty = view, message, True
            slot.touched = time.monotonic()
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every pending edit and result was sent (tests, shutdown); False on
        timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(s.dirty or s.posting for s in self._slots.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is pending (up to ``timeout`` seconds), then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ worker

    def _trim(self) -> None:
        if len(self._slots) <= _MAX_KNOWN:
            return
        idle = sorted((s.touched, rid) for rid, s in self._slots.items()
                      if not s.dirty and not s.posting)
        for _, rid in idle[: len(self._slots) - _MAX_KNOWN]:
            del self._slots[rid]

    def _next_due(self) -> tuple[str | None, float]:
        """The run whose edit is due first, and how long until then."""
        now = time.monotonic()
        best: str | None = None
        wait = 3600.0
        for rid, slot in self._slots.items():
            if not slot.dirty or slot.posting:
                continue
            due = slot.last_sent + self.min_interval - now
            if due < wait:
                best, wait = rid, due
        return best, max(0.0, wait)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    rid, wait = self._next_due()
                    if rid is not None and wait <= 0:
                        break
                    self._cond.wait(wait if rid is not None else 1.0)
                slot = self._slots[rid]
                view, message = slot.view, slot.message
                slot.dirty, slot.posting = False, True
            try:
                if view is not None:
                    self._send(rid, slot, view, message)
            except Exception:
                log.exception("updating the Slack message of run %s failed", rid)
            finally:
                with self._cond:
                    slot.posting = False
                    slot.last_sent = time.monotonic()
                    self._cond.notify_all()

    def _send(self, rid: str, slot: _Slot, view: RunViewLike, message: str) -> None:
        run = view.run
        final = is_final(run) or state_of(run) == "interrupted"
        rendered = self._render(view, progress="" if final else message)
        msg = rendered.message
        if slot.ts and slot.channel:
            self._call("chat_update", rid, channel=slot.channel, ts=slot.ts, text=msg.text,
                       blocks=msg.blocks)
        else:
            channel = run.message_channel or run.channel
            if not channel or channel == _TERMINAL:
                return
            answer = self._call("chat_postMessage", rid, channel=channel, text=msg.text,
                                blocks=msg.blocks, unfurl_links=False, unfurl_media=False)
            if answer is None:
                return
            with self._cond:
                slot.channel, slot.ts = str(answer.get("channel") or channel), \
                    str(answer.get("ts"))
        if final and not slot.result_posted and slot.ts and slot.channel:
            slot.result_posted = True
            if self.post_interval > 0:
                time.sleep(self.post_interval)
            result: SlackMessage = render_result(view)
            self._call("chat_postMessage", rid, channel=slot.channel, thread_ts=slot.ts,
                       text=result.text, blocks=result.blocks, unfurl_links=False,
                       unfurl_media=False)

    def _call(self, method: str, rid: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(**kwargs)
        except SlackApiError as e:
            log.warning("Slack %s for run %s failed: %s", method, rid,
                        e.response.get("error") if e.response is not None else e)
            return None
