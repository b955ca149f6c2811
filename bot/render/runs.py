"""What the run renderers (:mod:`bot.render.blocks`, :mod:`bot.render.text`) read, and the words
they share. Pure.

``bot.render`` sits beside ``bot.engine`` in the layers (DESIGN.md §2) and may not import it, so
the engine's ``RunView`` and ``RunbookInfo`` are described here structurally
(:class:`RunViewLike`, :class:`RunbookInfoLike`): any object with these attributes renders.
Run records, approvals and events come from :mod:`bot.sdk.runs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.sdk.runbook import Plan
from bot.sdk.runs import ApprovalRecord, RunEvent, RunRecord

__all__ = [
    "FINAL",
    "STATE_EMOJI",
    "STATE_WORD",
    "RunViewLike",
    "RunbookInfoLike",
    "approved_by",
    "event_line",
    "fmt_time",
    "is_final",
    "params_line",
    "rejected_by",
    "risk_of",
    "state_of",
]


class RunViewLike(Protocol):
    """A run as the engine shows it (``bot.engine.service.RunView``)."""

    @property
    def run(self) -> RunRecord:
        """The stored run."""
        ...

    @property
    def plan(self) -> Plan:
        """Its plan (changes, warnings, notes)."""
        ...

    @property
    def approvals(self) -> Sequence[ApprovalRecord]:
        """Decisions so far, oldest first."""
        ...

    @property
    def approvals_needed(self) -> int:
        """Approvals still missing before the run may execute."""
        ...

    @property
    def runbook_summary(self) -> str:
        """The runbook's one-line summary."""
        ...


class RunbookInfoLike(Protocol):
    """A registered runbook (``bot.engine.registry.RunbookInfo``)."""

    @property
    def name(self) -> str:
        """Stable id, e.g. ``netpol-dns-allow``."""
        ...

    @property
    def versions(self) -> Sequence[str]:
        """Registered versions, newest first."""
        ...

    @property
    def summary(self) -> str:
        """First line of the runbook's docstring."""
        ...

    @property
    def risk(self) -> Any:
        """``read-only``, ``low`` or ``disruptive`` (a str enum)."""
        ...


STATE_WORD: dict[str, str] = {
    "planned": "planned",
    "nothing_to_do": "nothing to do",
    "awaiting_approval": "awaiting approval",
    "approved": "approved",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "rolled_back": "rolled back",
    "rollback_failed": "rollback failed",
    "rejected": "rejected",
    "expired": "expired",
    "stale": "stale (cluster changed since the plan; nothing written)",
    "interrupted": "interrupted",
}
"""Each run state in words."""

STATE_EMOJI: dict[str, str] = {
    "planned": ":memo:",
    "nothing_to_do": ":white_check_mark:",
    "awaiting_approval": ":hourglass_flowing_sand:",
    "approved": ":+1:",
    "running": ":gear:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "rolled_back": ":leftwards_arrow_with_hook:",
    "rollback_failed": ":rotating_light:",
    "rejected": ":no_entry_sign:",
    "expired": ":alarm_clock:",
    "stale": ":warning:",
    "interrupted": ":rotating_light:",
}
"""Each run state as a Slack emoji (used by the Slack renderer only)."""

FINAL = frozenset({"nothing_to_do", "succeeded", "failed", "rolled_back", "rollback_failed",
                   "rejected", "expired", "stale"})
"""States no transition leaves (``interrupted`` can still be rolled back)."""


def state_of(run: RunRecord) -> str:
    """The run's state as its plain value (``awaiting_approval``)."""
    return str(getattr(run.state, "value", run.state))


def risk_of(value: Any) -> str:
    """A risk (enum or str) as its plain value."""
    return str(getattr(value, "value", value))


def is_final(run: RunRecord) -> bool:
    """True when the run reached a final state."""
    return state_of(run) in FINAL


def approved_by(view: RunViewLike) -> list[str]:
    """Who approved, oldest first."""
    return [a.approver for a in view.approvals if a.decision == "approve"]


def rejected_by(view: RunViewLike) -> list[ApprovalRecord]:
    """Rejections, oldest first."""
    return [a for a in view.approvals if a.decision == "reject"]


def fmt_time(dt: datetime | None) -> str:
    """``2026-11-30 03:00 UTC`` ("" for None)."""
    if dt is None:
        return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _param_value(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def params_line(params: Mapping[str, Any]) -> str:
    """Parameters as typed after the runbook name: ``namespaces=shop,web default_deny=true``
    (empty lists and None left out). Plain text: callers escape it."""
    return " ".join(f"{k}={_param_value(v)}" for k, v in params.items()
                    if v is not None and v != [] and v != ())


def _event_text(kind: str, d: Mapping[str, Any]) -> str:
    """The words of one event (kinds and data as ``bot.engine.service`` writes them)."""
    if kind == "planned":
        return (f"planned by {d.get('requester', '?')}: {d.get('changes', 0)} changes, "
                f"{d.get('approvals_required', 0)} approvals needed")
    if kind == "state":
        text = f"{d.get('from', '?')} -> {d.get('to', '?')}"
        if d.get("actor"):
            text += f" by {d['actor']}"
        return text + (f": {d['detail']}" if d.get("detail") else "")
    if kind == "approval":
        text = f"{d.get('decision', '?')} by {d.get('approver', '?')}"
        if d.get("required"):
            text += f" ({d.get('count', 0)} of {d['required']})"
        return text + (f": {d['reason']}" if d.get("reason") else "")
    if kind == "replan":
        return "re-planned: same plan" if d.get("same") else "re-planned: the plan changed"
    if kind == "write":
        text = f"write {d.get('stage', '?')} ({d.get('phase', '?')}): {d.get('verb', '?')} " \
            f"{d.get('target', '?')}"
        if d.get("dry_run"):
            text += " (dry run)"
        return text + (f": {d['error']}" if d.get("error") else "")
    if kind == "verify":
        checks = d.get("checks") or []
        failed = [c.get("name") for c in checks if isinstance(c, dict) and not c.get("passed")]
        text = f"verify {'passed' if d.get('passed') else 'failed'} ({len(checks)} checks)"
        return text + (f": failed {', '.join(str(f) for f in failed)}" if failed else "")
    if kind in ("applied", "rollback"):
        results = d.get("results") or []
        ok = sum(1 for r in results if isinstance(r, dict) and r.get("ok"))
        text = f"{kind}: {ok} of {len(results)} ok"
        if kind == "rollback" and "ok" in d:
            text += "" if d.get("ok") else " (rollback failed)"
        return text
    if kind == "error":
        return f"error in {d.get('phase', '?')}: {d.get('error', '')}"
    if kind == "interrupted":
        return f"interrupted: {d.get('why', '')}"
    bits = [f"{k}={v}" for k, v in d.items() if isinstance(v, str | int | float | bool)]
    return f"{kind} " + " ".join(bits[:6])


def event_line(event: RunEvent) -> str:
    """One run event as a short plain sentence: ``03:00:01 approve by U0BOB (1 of 1)``."""
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
    text = f"{at.astimezone(UTC).strftime('%H:%M:%S')} " + _event_text(event.kind,
                                                                        event.data or {})
    return text if len(text) <= 300 else text[:299] + "…"
