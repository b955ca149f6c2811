"""Terminal rendering keeps every character of cluster-provided text and names the fix."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.render.text import report_text
from bot.sdk.results import ClusterReport, Finding, SectionReport, SectionStatus, Severity


def report(message: str, runbook: str | None) -> ClusterReport:
    f = Finding(code="NP001", severity=Severity.WARNING, section="networkpolicy",
                subject="namespace/[web]", message=message, runbook=runbook,
                params={"namespaces": ["web"]} if runbook else None)
    sec = SectionReport(name="networkpolicy", title="NetworkPolicy",
                        status=SectionStatus.WARNING, summary="0/1 [default-deny]",
                        findings=(f,))
    return ClusterReport(cluster="lab", generated_at=datetime.now(UTC),
                         status=SectionStatus.WARNING, sections=(sec,))


def test_fix_runbook_is_shown_and_brackets_survive() -> None:
    out = report_text(report("Namespace web has no default deny [bold]x[/bold].",
                             "netpol-dns-allow"), width=200)
    assert "[fix: runbook netpol-dns-allow]" in out
    assert "[bold]x[/bold]" in out  # never parsed as markup
    assert "namespace/[web]" in out and "0/1 [default-deny]" in out


def test_no_fix_when_no_runbook() -> None:
    out = report_text(report("Something.", None), width=200)
    assert "fix:" not in out
