"""Render a :class:`~bot.sdk.results.ClusterReport` as Slack Block Kit messages. Pure: no I/O.

:func:`render_report` returns a :class:`RenderedReport`:

- ``summary``: the message posted in the channel. A header with the overall status at a glance
  (emoji + cluster + status, at most 150 characters), a context line (API server, Kubernetes
  version, finding counts), then one section per report area with its status, its summary and
  at most ``max_findings`` findings.
- ``thread``: replies for the same message's thread, empty when the summary already shows
  everything. When anything was left out of the summary (more findings than ``max_findings``,
  a line shortened, more sections than fit), the summary says so and the thread carries every
  finding in full. Nothing is cut silently: a finding too long for one section block continues
  in the next block, and when the thread itself would need more than ``max_thread_messages``
  messages, its last message states how many findings were not shown and which CLI command
  prints them all.

Slack limits respected here (https://api.slack.com/reference/block-kit/blocks): at most
:data:`MAX_BLOCKS` blocks per message, :data:`MAX_SECTION_TEXT` characters per section text,
:data:`MAX_HEADER_TEXT` characters per header; every message has a ``text`` fallback
(notifications, screen readers). Every string that comes from a cluster or a person is escaped
for mrkdwn (``&``, ``<``, ``>``) by :func:`escape_mrkdwn`, so it can neither ping ``@channel``
nor forge links.

The strings below are this layer's user-facing text (``bot.render`` may not import
``bot.slack``, where the Slack layer keeps its own strings).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.sdk.results import ClusterReport, Finding, SectionReport, SectionStatus, Severity

__all__ = [
    "MAX_BLOCKS",
    "MAX_HEADER_TEXT",
    "MAX_SECTION_TEXT",
    "RenderedReport",
    "SlackMessage",
    "escape_mrkdwn",
    "inline_code",
    "render_report",
    "split_text",
]

MAX_BLOCKS = 50
"""Blocks per message (chat.postMessage rejects more with ``invalid_blocks``)."""
MAX_SECTION_TEXT = 3000
"""Characters in one section block's text."""
MAX_HEADER_TEXT = 150
"""Characters in a header block's plain text."""

DEFAULT_MAX_FINDINGS = 5
"""Findings shown per section in the channel message; the rest go to the thread."""
DEFAULT_MAX_THREAD_MESSAGES = 10
"""Thread replies at most (Slack allows about one post per second per channel)."""
_MAX_LINE = 300
"""Characters of one finding line in the channel message before it is shortened."""
_MAX_SUMMARY = 600
"""Characters of a section's summary/error in the channel message before it is shortened."""

# ----------------------------------------------------------------------------- strings

STATUS_EMOJI = {
    SectionStatus.OK: ":large_green_circle:",
    SectionStatus.WARNING: ":large_yellow_circle:",
    SectionStatus.CRITICAL: ":red_circle:",
    SectionStatus.UNKNOWN: ":white_circle:",
}
SEVERITY_EMOJI = {
    Severity.CRITICAL: ":red_circle:",
    Severity.WARNING: ":warning:",
    Severity.INFO: ":information_source:",
}
STATUS_WORD = {
    SectionStatus.OK: "OK",
    SectionStatus.WARNING: "WARNING",
    SectionStatus.CRITICAL: "CRITICAL",
    SectionStatus.UNKNOWN: "UNKNOWN",
}
_T_HEADER = "{emoji} {cluster}: {status}"
_T_FALLBACK = "k8snet status of {cluster}: {status} ({counts})"
_T_COUNTS_NONE = "no findings"
_T_SERVER = "API server {server}"
_T_VERSION = "Kubernetes {version}"
_T_GENERATED = "checked in {seconds:.1f} s"
_T_NO_SECTIONS = "No probes ran, so there is nothing to report yet."
_T_SECTION_HEAD = "{emoji} *{title}* · {status}"
_T_UNDECIDED = "_Could not decide:_ {reason}"
_T_NO_FINDINGS = "_No findings._"
_T_FINDING = "{emoji} `{code}` {subject}: {message}"
_T_FIX = " _(fix: `{runbook}`{params})_"
_T_MORE_FINDINGS = "_…and {n} more {noun} in the thread._"
_T_SHORTENED = "… _(shortened, full text in the thread)_"
_T_MORE_SECTIONS = ":thread: {n} more {noun} did not fit in this message: see the thread."
_T_SEE_THREAD = (":thread: Showing at most {n} findings per section; every finding in full is "
                 "in the thread.")
_T_DETAILS_FALLBACK = "Details of the k8snet status of {cluster} ({i}/{n})"
_T_DETAILS_TITLE = "*Details: {title}* · {status} · {count}"
_T_OMITTED = (":warning: This thread stops at {max} messages: {n} more {noun} (and the "
              "details of their sections) are not shown here. Run "
              "`k8snet status --cluster {cluster} --output json` to see every finding.")
_T_EVIDENCE = ("_Evidence for each finding: `k8snet status --cluster {cluster} --output json`._")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _noun(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


# ----------------------------------------------------------------------------- helpers


def escape_mrkdwn(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack requires for mrkdwn and ``text`` fields, so user
    or cluster text cannot form links, mentions (``<!channel>``) or break formatting."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_BACKTICK_LOOKALIKE = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT


def _code_body(text: str) -> str:
    """``text`` escaped for use inside an inline code span (a backtick would end the span, so
    it is replaced by a look-alike, U+02CB)."""
    return escape_mrkdwn(text).replace("`", _BACKTICK_LOOKALIKE)


def inline_code(text: str) -> str:
    """``text`` escaped and shown as mrkdwn inline code."""
    return "`" + _code_body(text) + "`"


_code = inline_code


def _safe_cut(text: str, limit: int) -> int:
    """An index <= ``limit`` at which ``text`` can be cut without splitting an ``&...;``
    entity produced by :func:`escape_mrkdwn`."""
    cut = min(limit, len(text))
    amp = text.rfind("&", max(0, cut - 5), cut)
    if amp != -1 and ";" not in text[amp:cut]:
        cut = amp
    return max(cut, 1) if text else 0


def split_text(text: str, limit: int = MAX_SECTION_TEXT) -> list[str]:
    """Split already-escaped mrkdwn ``text`` into pieces of at most ``limit`` characters,
    at line breaks where possible and never inside an HTML entity. Nothing is dropped:
    ``"".join`` of the pieces (with the line breaks that separated them) is the input."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = line if not current else current + "\n" + line
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
            current = ""
        while len(line) > limit:
            cut = _safe_cut(line, limit)
            pieces.append(line[:cut])
            line = line[cut:]
        current = line
    if current:
        pieces.append(current)
    return pieces


def _shorten(text: str, limit: int) -> tuple[str, bool]:
    """``text`` (escaped) shortened to about ``limit`` characters with a visible marker;
    the flag says whether it was shortened."""
    if len(text) <= limit:
        return text, False
    head = text[: _safe_cut(text, limit)]
    if head.count("`") % 2:  # do not leave an inline code span open
        head += "`"
    return head + _T_SHORTENED, True


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=text))


def _sections(text: str) -> list[Block]:
    return [_section(t) for t in split_text(text)]


def _counts(report: ClusterReport) -> str:
    by_sev = {s: 0 for s in Severity}
    for f in report.findings:
        by_sev[f.severity] += 1
    parts = []
    if by_sev[Severity.CRITICAL]:
        parts.append(f"{by_sev[Severity.CRITICAL]} critical")
    if by_sev[Severity.WARNING]:
        parts.append(_plural(by_sev[Severity.WARNING], "warning"))
    if by_sev[Severity.INFO]:
        parts.append(f"{by_sev[Severity.INFO]} info")
    unknown = sum(1 for s in report.sections if s.status is SectionStatus.UNKNOWN)
    if unknown:
        parts.append(_plural(unknown, "unknown section"))
    return ", ".join(parts) or _T_COUNTS_NONE


def _param(value: Any) -> str:
    """A suggested parameter value as typed after ``k=``: strings as they are, anything else
    as JSON (``true``, ``["10.0.0.0/24"]``)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _finding_line(f: Finding) -> str:
    line = _T_FINDING.format(emoji=SEVERITY_EMOJI[f.severity], code=escape_mrkdwn(f.code),
                             subject=_code(f.subject), message=escape_mrkdwn(f.message))
    if f.runbook:
        params = ""
        if f.params:
            params = " " + " ".join(_code(f"{k}={_param(v)}") for k, v in f.params.items())
        line += _T_FIX.format(runbook=escape_mrkdwn(f.runbook), params=params)
    return line


def _section_head(s: SectionReport) -> str:
    return _T_SECTION_HEAD.format(emoji=STATUS_EMOJI[s.status], title=escape_mrkdwn(s.title),
                                  status=STATUS_WORD[s.status].lower())


# ----------------------------------------------------------------------------- output


@dataclass(frozen=True)
class SlackMessage:
    """One message: ``text`` (the fallback for notifications and screen readers, escaped
    mrkdwn) and ``blocks`` (Block Kit dicts, ready for ``chat.postMessage``)."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RenderedReport:
    """The channel message and the thread replies (empty when nothing was left out)."""

    summary: SlackMessage
    thread: tuple[SlackMessage, ...] = ()


def _dicts(blocks: Iterable[Block]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks]  # to_dict() validates Slack's limits


def _main_section(s: SectionReport, max_findings: int) -> tuple[str, bool]:
    """The mrkdwn of one section in the channel message and whether anything was left out."""
    lines = [_section_head(s)]
    left_out = False
    if s.summary and not (s.error and s.summary.strip().lower() == "unknown"):
        text, cut = _shorten(escape_mrkdwn(s.summary), _MAX_SUMMARY)
        lines.append(text)
        left_out |= cut
    if s.error:
        text, cut = _shorten(escape_mrkdwn(s.error), _MAX_SUMMARY)
        lines.append(_T_UNDECIDED.format(reason=text))
        left_out |= cut
    for f in s.findings[:max_findings]:
        text, cut = _shorten(_finding_line(f), _MAX_LINE)
        lines.append(text)
        left_out |= cut
    if not s.findings and not s.error and not s.summary:
        lines.append(_T_NO_FINDINGS)
    rest = len(s.findings) - max_findings
    if rest > 0:
        lines.append(_T_MORE_FINDINGS.format(n=rest, noun=_noun(rest, "finding")))
        left_out = True
    return "\n".join(lines), left_out


def _detail_items(report: ClusterReport) -> list[tuple[Block, int]]:
    """Every section's findings in full, as (block, findings it carries) pairs."""
    items: list[tuple[Block, int]] = []
    for s in report.sections:
        if not s.findings and not s.error:
            continue
        head = _T_DETAILS_TITLE.format(title=escape_mrkdwn(s.title),
                                       status=STATUS_WORD[s.status].lower(),
                                       count=_plural(len(s.findings), "finding"))
        lines = [head]
        if s.summary:
            lines.append(escape_mrkdwn(s.summary))
        if s.error:
            lines.append(_T_UNDECIDED.format(reason=escape_mrkdwn(s.error)))
        for t in split_text("\n".join(lines)):
            items.append((_section(t), 0))
        # Pack whole finding lines into blocks; a line longer than a block continues in the
        # next one. A block is credited with the findings whose line ends in it, so a finding
        # counts as shown only when all of it is.
        buf: list[str] = []
        buf_len = 0
        buf_count = 0

        def flush() -> None:
            nonlocal buf, buf_len, buf_count
            if buf:
                items.append((_section("\n".join(buf)), buf_count))
            buf, buf_len, buf_count = [], 0, 0

        for f in s.findings:
            line = "• " + _finding_line(f)
            if len(line) > MAX_SECTION_TEXT:
                flush()
                pieces = split_text(line)
                for i, piece in enumerate(pieces):
                    items.append((_section(piece), 1 if i == len(pieces) - 1 else 0))
                continue
            if buf and buf_len + 1 + len(line) > MAX_SECTION_TEXT:
                flush()
            buf.append(line)
            buf_len += len(line) + (1 if buf_len else 0)
            buf_count += 1
        flush()
    return items


def _pack(items: Sequence[tuple[Block, int]], per_message: int) -> list[list[tuple[Block, int]]]:
    return [list(items[i:i + per_message]) for i in range(0, len(items), per_message)]


def render_report(
    report: ClusterReport,
    *,
    max_findings: int = DEFAULT_MAX_FINDINGS,
    max_thread_messages: int = DEFAULT_MAX_THREAD_MESSAGES,
) -> RenderedReport:
    """The channel message and thread replies for ``report`` (see the module docstring).

    ``max_findings`` (>= 0) findings per section are shown in the channel message;
    ``max_thread_messages`` (>= 1) caps the thread replies.
    """
    if max_findings < 0 or max_thread_messages < 1:
        raise ValueError("max_findings must be >= 0 and max_thread_messages >= 1")
    cluster = report.cluster
    status = STATUS_WORD[report.status]
    counts = _counts(report)

    header = _T_HEADER.format(emoji=STATUS_EMOJI[report.status], cluster=cluster, status=status)
    if len(header) > MAX_HEADER_TEXT:  # a very long cluster name: the status must stay visible
        room = MAX_HEADER_TEXT - len(_T_HEADER.format(emoji=STATUS_EMOJI[report.status],
                                                      cluster="…", status=status))
        header = _T_HEADER.format(emoji=STATUS_EMOJI[report.status],
                                  cluster=cluster[:room] + "…", status=status)
    context = []
    if report.server:
        context.append(_T_SERVER.format(server=_code(report.server)))
    if report.kubernetes_version:
        context.append(_T_VERSION.format(version=_code(report.kubernetes_version)))
    context.append(escape_mrkdwn(counts))
    context.append(_T_GENERATED.format(seconds=report.duration_ms / 1000))

    head_blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=header, emoji=True)),
        ContextBlock(elements=[MarkdownTextObject(text=" · ".join(context))]),
        DividerBlock(),
    ]
    section_blocks: list[list[Block]] = []
    left_out = False
    for s in report.sections:
        text, cut = _main_section(s, max_findings)
        left_out |= cut
        section_blocks.append(_sections(text))
    if not report.sections:
        section_blocks.append([_section(_T_NO_SECTIONS)])

    # Fit the sections into one message, keeping one block for the closing note.
    budget = MAX_BLOCKS - len(head_blocks) - 1
    main: list[Block] = list(head_blocks)
    overflow: list[Block] = []
    overflow_sections = 0
    for blocks in section_blocks:
        if not overflow and len(blocks) <= budget:
            main.extend(blocks)
            budget -= len(blocks)
        else:
            overflow.extend(blocks)
            overflow_sections += 1
    if overflow_sections:
        main.append(ContextBlock(elements=[MarkdownTextObject(text=_T_MORE_SECTIONS.format(
            n=overflow_sections, noun=_noun(overflow_sections, "section")))]))
    elif left_out:
        main.append(ContextBlock(elements=[MarkdownTextObject(
            text=_T_SEE_THREAD.format(n=max_findings))]))

    fallback = _T_FALLBACK.format(cluster=escape_mrkdwn(cluster), status=status.lower(),
                                  counts=escape_mrkdwn(counts))
    summary = SlackMessage(text=fallback, blocks=_dicts(main))
    if not left_out and not overflow_sections:
        return RenderedReport(summary=summary)

    items: list[tuple[Block, int]] = [(b, 0) for b in overflow]
    items.extend(_detail_items(report))
    items.append((ContextBlock(elements=[MarkdownTextObject(
        text=_T_EVIDENCE.format(cluster=_code_body(cluster)))]), 0))
    pages = _pack(items, MAX_BLOCKS)
    if len(pages) > max_thread_messages:
        kept = pages[:max_thread_messages]
        # Make room for the notice in the last kept page.
        last = kept[-1]
        dropped = [it for page in pages[max_thread_messages:] for it in page]
        if len(last) >= MAX_BLOCKS:
            dropped.insert(0, last.pop())
        omitted = sum(n for _, n in dropped)
        last.append((_section(_T_OMITTED.format(
            n=omitted, noun=_noun(omitted, "finding"), max=max_thread_messages,
            cluster=_code_body(cluster))), 0))
        pages = kept
    thread = tuple(
        SlackMessage(
            text=_T_DETAILS_FALLBACK.format(cluster=escape_mrkdwn(cluster), i=i + 1,
                                            n=len(pages)),
            blocks=_dicts(b for b, _ in page),
        )
        for i, page in enumerate(pages)
    )
    return RenderedReport(summary=summary, thread=thread)
