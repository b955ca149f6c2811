"""Terminal rendering: status reports, runbooks, runs (plan diff, steps) and run history as
readable text (rich tables) and as JSON. Pure functions: data in, text out; nothing here reads
the cluster or prints."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.render.diff import plan_diff_text, plan_diffs
from bot.render.runs import (
    STATE_WORD,
    RunbookInfoLike,
    RunViewLike,
    approved_by,
    event_line,
    fmt_time,
    params_line,
    rejected_by,
    risk_of,
    state_of,
)
from bot.sdk.results import ClusterReport, SectionStatus, Severity
from bot.sdk.runs import RunEvent

_STATUS_STYLE = {
    SectionStatus.OK: "green",
    SectionStatus.WARNING: "yellow",
    SectionStatus.CRITICAL: "bold red",
    SectionStatus.UNKNOWN: "magenta",
}
_SEV_STYLE = {Severity.INFO: "cyan", Severity.WARNING: "yellow", Severity.CRITICAL: "bold red"}
_SEV_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


def _console(width: int, color: bool) -> Console:
    # markup=False: text from the cluster or a person ("[fix: ...]", "[a-z]") is never
    # parsed as rich markup and silently swallowed
    return Console(file=io.StringIO(), width=width, force_terminal=color, no_color=not color,
                   markup=False,
                   color_system="standard" if color else None, highlight=False, soft_wrap=False)


def report_text(report: ClusterReport, *, width: int = 120, color: bool = False) -> str:
    """The report as text: a header line, one row per section (status, summary or the reason it
    is unknown), then the findings sorted by severity with their fixing runbook. ``width`` is
    in columns."""
    con = _console(width, color)
    head = Text()
    head.append(f"Cluster {report.cluster}", style="bold")
    extra = ", ".join(x for x in (report.server, report.kubernetes_version or "") if x)
    if extra:
        head.append(f" ({extra})")
    head.append("  overall: ")
    head.append(report.status.value.upper(), style=_STATUS_STYLE[report.status])
    con.print(head)

    sections = Table(show_header=True, header_style="bold", expand=False, show_lines=False)
    sections.add_column("Section", no_wrap=True)
    sections.add_column("Status", no_wrap=True)
    sections.add_column("Summary", overflow="fold")
    for s in report.sections:
        summary = s.summary
        if s.not_checked:
            summary = f"{summary}\nnot checked: {s.not_checked}" if summary \
                else f"not checked: {s.not_checked}"
        if s.error:
            summary = (f"{s.summary}\nunknown: {s.error}" if s.summary and s.summary != "unknown"
                       else f"unknown: {s.error}")
        sections.add_row(s.title, Text(s.status.value.upper(), style=_STATUS_STYLE[s.status]),
                         summary)
    con.print(sections)

    findings = sorted(report.findings, key=lambda f: (_SEV_ORDER[f.severity], f.code, f.subject))
    if not findings:
        con.print("No findings.")
    else:
        t = Table(title=f"Findings ({len(findings)})", title_justify="left", show_lines=False,
                  header_style="bold")
        t.add_column("Severity", no_wrap=True)
        t.add_column("Code", no_wrap=True)
        t.add_column("Subject", overflow="fold", max_width=40)
        t.add_column("Finding", overflow="fold")
        for f in findings:
            msg = f.message + (f"  [fix: runbook {f.runbook}]" if f.runbook else "")
            t.add_row(Text(f.severity.value, style=_SEV_STYLE[f.severity]), f.code, f.subject,
                      msg)
        con.print(t)
    out = con.file.getvalue()  # type: ignore[attr-defined]
    return str(out)


def report_json(report: ClusterReport) -> str:
    """One JSON object: cluster, status, sections and the flat ``findings`` list (see
    ``ClusterReport.to_json_dict``)."""
    return json.dumps(report.to_json_dict(), indent=2, sort_keys=False)


def clusters_text(rows: Sequence[dict[str, Any]], *, width: int = 120, color: bool = False) -> str:
    """A table of clusters; ``rows`` items have ``name``, ``server`` and ``default`` (bool)."""
    con = _console(width, color)
    if not rows:
        con.print("No clusters configured: add a kubeconfig context or a `clusters:` entry "
                  "in the settings file.")
    else:
        t = Table(header_style="bold")
        t.add_column("Cluster", no_wrap=True)
        t.add_column("Default", no_wrap=True)
        t.add_column("API server", overflow="fold")
        for r in rows:
            t.add_row(r["name"], "*" if r.get("default") else "", r.get("server") or "")
        con.print(t)
    return str(con.file.getvalue())  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- runbooks & runs


def runbooks_text(infos: Sequence[RunbookInfoLike], *, width: int = 120,
                  color: bool = False) -> str:
    """A table of runbooks: name, versions, risk, summary."""
    con = _console(width, color)
    if not infos:
        con.print("No runbooks are registered.")
    else:
        t = Table(header_style="bold")
        t.add_column("Runbook", no_wrap=True)
        t.add_column("Versions", no_wrap=True)
        t.add_column("Risk", no_wrap=True)
        t.add_column("Summary", overflow="fold")
        for i in infos:
            t.add_row(i.name, ", ".join(i.versions), risk_of(i.risk), i.summary)
        con.print(t)
    return str(con.file.getvalue())  # type: ignore[attr-defined]


def runbooks_json(infos: Sequence[RunbookInfoLike]) -> str:
    """Runbooks as a JSON list of ``{name, versions, risk, summary}`` (plus ``params``, the
    Params JSON schema, when the info carries it)."""
    out = []
    for i in infos:
        item: dict[str, Any] = {"name": i.name, "versions": list(i.versions),
                                "risk": risk_of(i.risk), "summary": i.summary}
        for attr in ("params_schema", "params", "schema"):
            value = getattr(i, attr, None)
            if isinstance(value, dict):
                item["params"] = value
                break
        out.append(item)
    return json.dumps(out, indent=2)


def run_text(view: RunViewLike, events: Sequence[RunEvent] = (), *, diff: bool = True) -> str:
    """A run as text: what, where, who, its state and detail, approvals, warnings, the diff of
    every change (``diff``) and its steps (``events``, oldest first). Nothing is shortened."""
    run = view.run
    state = state_of(run)
    lines = [f"Run {run.id}: {run.runbook}@{run.version} on {run.cluster} "
             f"[{STATE_WORD.get(state, state)}]",
             f"Requested by {run.requester} at {fmt_time(run.created_at)} · risk "
             f"{risk_of(run.risk)}"]
    if view.runbook_summary:
        lines.append(f"Runbook: {view.runbook_summary}")
    params = params_line(run.params)
    if params:
        lines.append(f"Params: {params}")
    if run.detail:
        lines.append(f"Detail: {run.detail}")
    approvers = approved_by(view)
    if run.approvals_required or approvers:
        approval = f"Approvals: {len(approvers)} of {run.approvals_required}"
        if approvers:
            approval += f" (approved by {', '.join(approvers)})"
        lines.append(approval)
    for r in rejected_by(view):
        lines.append(f"Rejected by {r.approver}" + (f": {r.reason}" if r.reason else ""))
    if state == "awaiting_approval" and run.expires_at is not None:
        lines.append(f"Expires: {fmt_time(run.expires_at)}")
    for w in view.plan.warnings:
        lines.append(f"Warning: {w}")
    for n in view.plan.notes:
        lines.append(f"Note: {n}")
    if not view.plan.changes:
        lines.append("Nothing to do: the cluster already matches.")
    else:
        lines.append(f"Changes ({len(view.plan.changes)}):")
        if diff:
            lines.append(plan_diff_text(view.plan).rstrip("\n"))
        else:
            lines.extend(f"  {i + 1}. {c.action} {c.target}"
                         for i, c in enumerate(view.plan.changes))
    applied = [a for a in (run.applied or []) if isinstance(a, dict)]
    if applied:
        lines.append("Applied:")
        for a in applied:
            mark = "MAYBE" if a.get("uncertain") else ("ok" if a.get("ok") else "FAILED")
            msg = f": {a.get('message')}" if a.get("message") else ""
            lines.append(f"  [{mark}] {a.get('action')} {a.get('target')}{msg}")
    if events:
        lines.append("Steps:")
        lines.extend("  " + event_line(e) for e in events)
    return "\n".join(lines) + "\n"


def run_dict(view: RunViewLike, events: Sequence[RunEvent] = ()) -> dict[str, Any]:
    """A run as a JSON-ready dict: the run's fields, its plan, per-change diffs, approvals and
    (when given) its events."""
    run = view.run
    state = state_of(run)
    return {
        "id": run.id, "cluster": run.cluster, "runbook": run.runbook, "version": run.version,
        "state": state, "risk": risk_of(run.risk), "requester": run.requester,
        "channel": run.channel, "params": run.params, "detail": run.detail,
        "created_at": run.created_at.isoformat(), "updated_at": run.updated_at.isoformat(),
        "expires_at": run.expires_at.isoformat() if run.expires_at else None,
        "approvals_required": run.approvals_required,
        "approvals_needed": view.approvals_needed,
        "approvals": [{"approver": a.approver, "decision": a.decision, "at": a.at.isoformat(),
                       "reason": a.reason} for a in view.approvals],
        "plan_hash": run.plan_hash, "source_sha256": run.source_sha256,
        "plan": view.plan.model_dump(mode="json"),
        "diff": [{"index": d.index, "action": d.action, "target": d.target, "diff": d.diff}
                 for d in plan_diffs(view.plan)],
        "applied": run.applied,
        **({"events": [{"id": e.id, "at": e.at.isoformat(), "kind": e.kind, "data": e.data}
                       for e in events]} if events else {}),
    }


def run_json(view: RunViewLike, events: Sequence[RunEvent] = ()) -> str:
    """:func:`run_dict` as indented JSON."""
    return json.dumps(run_dict(view, events), indent=2, default=str)


def history_text(views: Sequence[RunViewLike], *, width: int = 120, color: bool = False) -> str:
    """A table of runs, newest first: id, runbook@version, cluster, state, requester, time."""
    con = _console(width, color)
    if not views:
        con.print("No runs yet.")
    else:
        t = Table(header_style="bold")
        for col in ("Run", "Runbook", "Cluster", "State", "Requester", "Created"):
            t.add_column(col, no_wrap=col != "State", overflow="fold")
        for v in views:
            r = v.run
            state = state_of(r)
            t.add_row(r.id, f"{r.runbook}@{r.version}", r.cluster, STATE_WORD.get(state, state),
                      r.requester, fmt_time(r.created_at))
        con.print(t)
    return str(con.file.getvalue())  # type: ignore[attr-defined]


def history_json(views: Sequence[RunViewLike]) -> str:
    """Runs as a JSON list (see :func:`run_dict`; no events)."""
    return json.dumps([run_dict(v) for v in views], indent=2, default=str)
