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


def test_run_text_marks_a_write_that_may_have_been_applied() -> None:
    from bot.engine.runs import RunRecord, RunState
    from bot.engine.service import RunView
    from bot.render.text import run_text
    from bot.sdk.runbook import Plan

    now = datetime.now(UTC)
    run = RunRecord(id="r-abcdefghij", cluster="lab", runbook="netpol-dns-allow",
                    version="1.0.0", source_sha256="0" * 64, params={}, requester="U1",
                    channel="C1", state=RunState.INTERRUPTED, created_at=now, updated_at=now,
                    applied=[{"index": 0, "target": "networkpolicy/web/a", "action": "create",
                              "ok": True, "message": "created"},
                             {"index": 1, "target": "networkpolicy/web/b", "action": "create",
                              "ok": False, "uncertain": True,
                              "message": "timed out: may have been applied"}])
    out = run_text(RunView(run=run, plan=Plan(), approvals=(), approvals_needed=0,
                           runbook_summary=""), diff=False)
    assert "[ok] create networkpolicy/web/a" in out
    assert "[MAYBE] create networkpolicy/web/b" in out
