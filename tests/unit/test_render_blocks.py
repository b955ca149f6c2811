"""bot.render.blocks: ClusterReport -> Block Kit within Slack's limits, nothing cut silently."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.render.blocks import (
    MAX_BLOCKS,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    RenderedReport,
    SlackMessage,
    escape_mrkdwn,
    render_report,
    split_text,
)
from bot.sdk.results import ClusterReport, Finding, SectionReport, SectionStatus, Severity
from tests.lab.slack_standin import validate_message

SECTIONS = [("cni", "CNI"), ("kube-proxy", "kube-proxy"), ("conntrack", "conntrack"),
            ("metallb", "MetalLB / LoadBalancers"), ("networkpolicy", "NetworkPolicy"),
            ("bgp", "BGP"), ("nodes", "Nodes")]


def finding(i: int, section: str = "kube-proxy", sev: Severity = Severity.WARNING,
            message: str = "kube-proxy runs in iptables mode.", subject: str = "",
            **kw: Any) -> Finding:
    return Finding(code=f"KP{i % 1000:03d}", severity=sev, section=section,
                   subject=subject or f"node/node-{i}", message=message, **kw)


def report(sections: list[SectionReport], cluster: str = "prod") -> ClusterReport:
    order = ["ok", "unknown", "warning", "critical"]
    status = max((s.status for s in sections), key=lambda s: order.index(s.value),
                 default=SectionStatus.OK)
    return ClusterReport(cluster=cluster, generated_at=datetime(2025, 1, 1, tzinfo=UTC),
                         server="https://10.0.0.1:6443", kubernetes_version="v1.34.0",
                         status=status, sections=tuple(sections), duration_ms=1234)


def section(name: str, title: str, findings: list[Finding] | None = None, *,
            status: SectionStatus | None = None, summary: str = "fine",
            error: str | None = None) -> SectionReport:
    findings = findings or []
    if status is None:
        status = SectionStatus.OK
        if any(f.severity is Severity.WARNING for f in findings):
            status = SectionStatus.WARNING
        if any(f.severity is Severity.CRITICAL for f in findings):
            status = SectionStatus.CRITICAL
    return SectionReport(name=name, title=title, status=status, summary=summary, error=error,
                         findings=tuple(findings))


def all_messages(r: RenderedReport) -> list[SlackMessage]:
    return [r.summary, *r.thread]


def texts(msg: SlackMessage) -> str:
    out = []
    for b in msg.blocks:
        if "text" in b:
            out.append(b["text"]["text"])
        for e in b.get("elements", []):
            out.append(e.get("text", ""))
    return "\n".join(out)


def assert_valid(r: RenderedReport) -> None:
    for msg in all_messages(r):
        assert msg.text
        assert validate_message({"text": msg.text, "blocks": msg.blocks}) is None
        assert len(msg.blocks) <= MAX_BLOCKS
        for b in msg.blocks:
            if b["type"] == "header":
                assert len(b["text"]["text"]) <= MAX_HEADER_TEXT
            if b["type"] == "section":
                assert 0 < len(b["text"]["text"]) <= MAX_SECTION_TEXT


def test_small_report_fits_in_one_message() -> None:
    secs = [section(n, t) for n, t in SECTIONS]
    secs[1] = section("kube-proxy", "kube-proxy", [finding(1, sev=Severity.CRITICAL,
                                                           runbook="kube-proxy-mode",
                                                           params={"mode": "ipvs",
                                                                   "strict_arp": True})],
                      summary="iptables mode")
    r = render_report(report(secs))
    assert_valid(r)
    assert r.thread == ()
    header = r.summary.blocks[0]
    assert header["type"] == "header"
    assert header["text"]["text"] == ":red_circle: prod: CRITICAL"
    body = texts(r.summary)
    for _, title in SECTIONS:
        assert f"*{title}*" in body
    assert "`KP001`" in body and "iptables mode" in body
    assert "fix: `kube-proxy-mode` `mode=ipvs` `strict_arp=true`" in body
    assert "1 critical" in r.summary.text and "prod" in r.summary.text
    assert "thread" not in body


@pytest.mark.parametrize(("status", "emoji"), [
    (SectionStatus.OK, ":large_green_circle:"),
    (SectionStatus.WARNING, ":large_yellow_circle:"),
    (SectionStatus.UNKNOWN, ":white_circle:"),
])
def test_header_shows_overall_status(status: SectionStatus, emoji: str) -> None:
    r = render_report(report([section("cni", "CNI", status=status)]))
    assert r.summary.blocks[0]["text"]["text"] == f"{emoji} prod: {status.value.upper()}"


def test_unknown_section_shows_the_reason() -> None:
    r = render_report(report([section("bgp", "BGP", status=SectionStatus.UNKNOWN,
                                      summary="unknown", error="403 on bgppeers")]))
    body = texts(r.summary)
    assert "_Could not decide:_ 403 on bgppeers" in body
    assert "1 unknown section" in r.summary.text


def test_everything_user_provided_is_escaped() -> None:
    evil = "<!channel> & <https://evil.example|click>"
    f = finding(1, subject=f"pod/{evil}", message=evil, runbook="x<y", params={"a": "<b>"})
    r = render_report(report([section("cni", f"CNI {evil}", [f], summary=evil,
                                      error=None)], cluster="prod"))
    for msg in all_messages(r):
        blob = msg.text + texts(msg)
        assert "<!channel>" not in blob and "<https://" not in blob
        assert not re.search(r"&(?!amp;|lt;|gt;)", blob)
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in texts(r.summary)


def test_many_findings_summary_in_channel_rest_in_thread() -> None:
    many = [finding(i, section="networkpolicy", subject=f"namespace/ns-{i}") for i in range(40)]
    r = render_report(report([section("networkpolicy", "NetworkPolicy", many)]),
                      max_findings=5)
    assert_valid(r)
    body = texts(r.summary)
    assert body.count("namespace/ns-") == 5
    assert "…and 35 more findings in the thread" in body
    assert "every finding in full is in the thread" in body
    assert r.thread
    thread = "\n".join(texts(m) for m in r.thread)
    for i in range(40):
        assert f"`namespace/ns-{i}`" in thread
    assert "k8snet status --cluster prod --output json" in thread


def test_long_finding_is_shortened_in_channel_and_complete_in_thread() -> None:
    long_msg = "word " * 2000  # 10,000 characters
    r = render_report(report([section("cni", "CNI", [finding(7, message=long_msg)])]))
    assert_valid(r)
    assert "shortened, full text in the thread" in texts(r.summary)
    thread = "".join(texts(m).replace("\n", "") for m in r.thread)
    assert thread.count("word") >= 2000


def test_huge_report_respects_limits_and_says_what_is_missing() -> None:
    # 5,000 findings with long messages: about 10 full thread messages, capped at 3.
    many = [finding(i, section="networkpolicy", subject=f"namespace/ns-{i}",
                    message="no default-deny NetworkPolicy " + "x" * 200) for i in range(5000)]
    r = render_report(report([section("networkpolicy", "NetworkPolicy", many)]),
                      max_thread_messages=3)
    assert_valid(r)
    assert len(r.thread) == 3
    last = texts(r.thread[-1])
    m = re.search(r"(\d+) more findings", last)
    assert m, last[-500:]
    assert "k8snet status --cluster prod --output json" in last
    shown = sum(texts(msg).count("`namespace/ns-") for msg in r.thread)
    assert shown + int(m.group(1)) == 5000


def test_many_sections_overflow_into_the_thread() -> None:
    secs = [section(f"s{i}", f"Section {i}", summary="x" * 2000) for i in range(60)]
    r = render_report(report(secs))
    assert_valid(r)
    assert "more sections did not fit" in texts(r.summary)
    thread = "\n".join(texts(m) for m in r.thread)
    assert "*Section 59*" in thread


def test_long_cluster_name_keeps_status_in_header() -> None:
    name = "c" * 300
    r = render_report(report([section("cni", "CNI", status=SectionStatus.WARNING)],
                             cluster=name))
    assert_valid(r)
    header = r.summary.blocks[0]["text"]["text"]
    assert len(header) <= MAX_HEADER_TEXT and header.endswith("…: WARNING")


def test_empty_report() -> None:
    r = render_report(report([]))
    assert_valid(r)
    assert "nothing to report" in texts(r.summary)


def test_split_text_never_drops_or_breaks_entities() -> None:
    text = ("&amp;" * 1000) + "\n" + ("y" * 7000) + "\nend"
    pieces = split_text(text, 3000)
    assert all(0 < len(p) <= 3000 for p in pieces)
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")
    for p in pieces:
        assert not re.search(r"&(?!amp;)", p)


def test_escape() -> None:
    assert escape_mrkdwn("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        render_report(report([]), max_findings=-1)
