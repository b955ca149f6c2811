"""Terminal rendering: status reports as readable tables (rich) and as JSON. Pure functions:
data in, text out; nothing here reads the cluster or prints."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.sdk.results import ClusterReport, SectionStatus, Severity

_STATUS_STYLE = {
    SectionStatus.OK: "green",
    SectionStatus.WARNING: "yellow",
    SectionStatus.CRITICAL: "bold red",
    SectionStatus.UNKNOWN: "magenta",
}
_SEV_STYLE = {Severity.INFO: "cyan", Severity.WARNING: "yellow", Severity.CRITICAL: "bold red"}
_SEV_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


def _console(width: int, color: bool) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=color, no_color=not color,
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
