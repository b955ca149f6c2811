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
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.render.diff import plan_diffs
from bot.render.runs import (
    STATE_EMOJI,
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
from bot.sdk.results import ClusterReport, Finding, SectionReport, SectionStatus, Severity
from bot.sdk.runs import RunEvent, RunRecord

__all__ = [
    "ACTIONS_BLOCK",
    "ACTION_APPROVE",
    "ACTION_REJECT",
    "MAX_BLOCKS",
    "MAX_HEADER_TEXT",
    "MAX_SECTION_TEXT",
    "MODAL_CALLBACK",
    "PARAM_ACTION",
    "PARAM_BLOCK_PREFIX",
    "RenderedReport",
    "RenderedRun",
    "SlackMessage",
    "escape_mrkdwn",
    "inline_code",
    "param_fields",
    "render_history",
    "render_params_modal",
    "render_report",
    "render_result",
    "render_run",
    "render_runbooks",
    "render_show",
    "slack_date",
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
_T_NOT_CHECKED = "_Not checked:_ {what}"
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
    if s.not_checked:
        text, cut = _shorten(escape_mrkdwn(s.not_checked), _MAX_SUMMARY)
        lines.append(_T_NOT_CHECKED.format(what=text))
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


# ============================================================================= runbook runs
#
# Plans, progress, results, history and the parameter modal. The plan message is one message
# for the run's whole life: posted when planned (with Approve / Reject buttons while it awaits
# approval), edited with ``chat.update`` as the run progresses; the diff that does not fit goes
# to its thread (with an explicit "diff continues in the thread" line), the result too.

ACTION_APPROVE = "k8snet_approve"
"""``action_id`` of the Approve button (its ``value`` is only the run id)."""
ACTION_REJECT = "k8snet_reject"
"""``action_id`` of the Reject button (its ``value`` is only the run id)."""
ACTIONS_BLOCK = "k8snet_run_actions"
"""``block_id`` of the buttons' actions block."""
MODAL_CALLBACK = "k8snet_run_modal"
"""``callback_id`` of the run-parameters modal."""
PARAM_BLOCK_PREFIX = "param__"
"""Input ``block_id`` of a modal field: this prefix + the parameter name."""
PARAM_ACTION = "value"
"""``action_id`` of every modal field's element."""
DEFAULT_MAX_DIFF_CHARS = 6000
"""Characters of diff shown in the channel message; the rest continues in the thread."""
DEFAULT_MAX_RUN_THREAD = 10
"""Thread replies carrying the rest of a long diff, at most."""
MAX_MODAL_TITLE = 24
MAX_MODAL_BLOCKS = 100
MAX_BUTTON_VALUE = 2000

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")

_T_RUN_HEADER = "{emoji} {runbook}@{version} on {cluster}"
_T_RUN_FALLBACK = "k8snet run {run_id}: {runbook}@{version} on {cluster}, {changes}, {state}"
_T_RUN_CONTEXT = ("Run {run_id} · requested by {requester} · cluster {cluster} · "
                  "risk *{risk}* · {n_changes}")
_T_RUN_STATE = "{emoji} *{state}*"
_T_NOTHING = (":white_check_mark: *Nothing to do*: the cluster already matches what this "
              "runbook would set. No approval is needed.")
_T_CHANGE_HEAD = "*{n}. {action}* {target}"
_T_IRREVERSIBLE = " :warning: _cannot be rolled back automatically_"
_T_NO_TEXT_DIFF = "_(no difference in the object's content)_"
_T_CONTINUED = "_{target}, continued_"
_T_DIFF_CONTINUES = (":thread: The diff continues in the thread: {shown} of {total} changes "
                     "shown here in full.")
_T_DIFF_CONTINUES_SAME = ":thread: The diff continues in the thread."
_T_DIFF_THREAD_FALLBACK = "Diff of run {run_id}, continued ({i}/{n})"
_T_DIFF_OMITTED = (":warning: This thread stops at {max} messages: {n} more {noun} of the "
                   "diff and warnings are not shown here. Run `k8snet show {run_id}` to print "
                   "all of it.")
_T_WARNINGS = ":warning: *Warnings*"
_T_NOTES_CONTINUE = ":thread: More warnings and notes in the thread."
_MAX_NOTE_BLOCKS = 3
_T_NOTES = ":information_source: *Notes*"
_T_APPROVALS = "Approvals: {have} of {need}"
_T_APPROVED_BY = "approved by {who}"
_T_REJECTED_BY = "rejected by {who}"
_T_EXPIRES = "expires {date}"
_T_DATE = "<!date^{epoch}^{{date_short_pretty}} at {{time}}|{fallback}>"
_T_APPROVE = "Approve"
_T_REJECT = "Reject"
_T_APPROVE_CONFIRM_TITLE = "Approve this change?"
_T_APPROVE_CONFIRM = ("{runbook}@{version} will change {cluster} as shown in the diff, right "
                      "after the last approval.")
_T_CONFIRM_YES = "Approve and apply"
_T_CONFIRM_NO = "Cancel"
_T_RESULT = "{emoji} Run {run_id} *{state}*"
_T_RESULT_FALLBACK = "k8snet run {run_id} {state}"
_T_APPLIED_LINE = "{mark} {action} {target}{message}"
_T_AUDIT = "Audit: run {run_id} · `k8snet show {raw_id}` prints its steps and diff"
_T_RUNBOOKS_TITLE = "*Runbooks* (`/k8snet run <runbook>[@major] [cluster=<name>] [key=value ...]`)"
_T_RUNBOOK_LINE = "• *{name}* {versions} · risk *{risk}*\n   {summary}"
_T_NO_RUNBOOKS = "No runbooks are registered."
_T_HISTORY_TITLE = "*Last {n} {noun}*"
_T_NO_HISTORY = "No runs yet."
_T_HISTORY_LINE = "{emoji} {run_id} {runbook}@{version} on {cluster} · *{state}* · {who} · {when}"
_T_EVENTS = "*Steps*"
_T_SHOW_DIFF_CUT = ("_The diff is longer than this message: the plan message's thread carries "
                    "all of it, and `k8snet show {run_id}` prints it._")
_T_MODAL_TITLE = "Run a runbook"
_T_MODAL_SUBMIT = "Plan"
_T_MODAL_CLOSE = "Cancel"
_T_MODAL_INTRO = ("*{runbook}@{version}* on {cluster} · risk *{risk}*\n{summary}\n"
                  "_Nothing changes now: you get a plan with a diff to approve._")
_T_LIST_HINT = "Comma separated, e.g. {example}."
_T_CIDR_HINT = "CIDRs, comma separated, e.g. 10.0.0.0/8."
_T_BOOL_LABEL = "Yes"


def _user(user_id: str) -> str:
    """A Slack user id as a mention; anything else (``cli:alice``) as escaped inline code."""
    if _USER_ID.fullmatch(user_id):
        return f"<@{user_id}>"
    return inline_code(user_id)


def slack_date(dt: datetime | None) -> str:
    """``dt`` in Slack's date formatting (each reader sees their own time zone), with a UTC
    fallback for clients that cannot format it ("" for None)."""
    if dt is None:
        return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return _T_DATE.format(epoch=int(dt.timestamp()), fallback=fmt_time(dt))


def _code_block_body(text: str) -> str:
    """Text escaped for a ``` block: mrkdwn entities escaped, backticks made look-alikes so
    nothing inside can end the block."""
    return _code_body(text)


def _diff_blocks(view: RunViewLike) -> list[tuple[str, int]]:
    """The diff as section texts (each <= :data:`MAX_SECTION_TEXT`), with the number of changes
    whose diff ends in that text."""
    out: list[tuple[str, int]] = []
    fence_room = MAX_SECTION_TEXT - 8 - 200  # ```\n...\n``` plus a heading line
    for d in plan_diffs(view.plan):
        head = _T_CHANGE_HEAD.format(n=d.index + 1, action=escape_mrkdwn(d.action),
                                     target=inline_code(d.target))
        if d.summary:
            head += " · " + _shorten(escape_mrkdwn(d.summary), 150)[0]
        if not d.reversible:
            head += _T_IRREVERSIBLE
        body = _code_block_body(d.diff.rstrip("\n"))
        if not body:
            out.append((head + "\n" + _T_NO_TEXT_DIFF, 1))
            continue
        pieces = split_text(body, fence_room)
        for i, piece in enumerate(pieces):
            lead = head if i == 0 else _T_CONTINUED.format(target=inline_code(d.target))
            out.append((f"{lead}\n```\n{piece}\n```", 1 if i == len(pieces) - 1 else 0))
    return out


def _state_line(run: RunRecord, progress: str) -> str:
    state = state_of(run)
    line = _T_RUN_STATE.format(emoji=STATE_EMOJI.get(state, ":grey_question:"),
                               state=escape_mrkdwn(STATE_WORD.get(state, state)))
    detail = progress or run.detail
    if detail:
        line += ": " + _shorten(escape_mrkdwn(detail), 1500)[0]
    return line


def _run_head(view: RunViewLike) -> list[Block]:
    run = view.run
    state = state_of(run)
    header = _T_RUN_HEADER.format(emoji=STATE_EMOJI.get(state, ""), runbook=run.runbook,
                                  version=run.version, cluster=run.cluster)
    if len(header) > MAX_HEADER_TEXT:
        header = header[:MAX_HEADER_TEXT - 1] + "…"
    n = len(view.plan.changes)
    context = _T_RUN_CONTEXT.format(run_id=inline_code(run.id), requester=_user(run.requester),
                                    cluster=inline_code(run.cluster),
                                    risk=escape_mrkdwn(risk_of(run.risk)),
                                    n_changes=_plural(n, "change"))
    lines = []
    if view.runbook_summary:
        lines.append(escape_mrkdwn(view.runbook_summary))
    params = params_line(run.params)
    if params:
        lines.append(_shorten(inline_code(params), 1000)[0])
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=header, emoji=True)),
        ContextBlock(elements=[MarkdownTextObject(text=context)]),
    ]
    if lines:
        blocks.append(_section("\n".join(lines)))
    return blocks


def _notes_texts(view: RunViewLike) -> list[str]:
    """Warnings and notes as section texts."""
    out: list[str] = []
    for title, items in ((_T_WARNINGS, view.plan.warnings), (_T_NOTES, view.plan.notes)):
        if items:
            out.extend(split_text("\n".join([title, *("• " + escape_mrkdwn(w) for w in items)])))
    return out


def _footer(view: RunViewLike) -> str:
    run = view.run
    parts = []
    approvers = approved_by(view)
    if run.approvals_required:
        parts.append(_T_APPROVALS.format(have=len(approvers), need=run.approvals_required))
    if approvers:
        parts.append(_T_APPROVED_BY.format(who=", ".join(_user(a) for a in approvers)))
    rejections = rejected_by(view)
    if rejections:
        who = ", ".join(_user(r.approver) + (f" ({escape_mrkdwn(r.reason)})" if r.reason else "")
                        for r in rejections)
        parts.append(_shorten(_T_REJECTED_BY.format(who=who), 1500)[0])
    if state_of(run) == "awaiting_approval" and run.expires_at is not None:
        parts.append(_T_EXPIRES.format(date=slack_date(run.expires_at)))
    return " · ".join(parts)


def _buttons(view: RunViewLike) -> ActionsBlock:
    run = view.run
    confirm = ConfirmObject(
        title=PlainTextObject(text=_T_APPROVE_CONFIRM_TITLE),
        text=PlainTextObject(text=_T_APPROVE_CONFIRM.format(
            runbook=run.runbook, version=run.version, cluster=run.cluster)[:300]),
        confirm=PlainTextObject(text=_T_CONFIRM_YES), deny=PlainTextObject(text=_T_CONFIRM_NO))
    return ActionsBlock(block_id=ACTIONS_BLOCK, elements=[
        ButtonElement(text=PlainTextObject(text=_T_APPROVE), action_id=ACTION_APPROVE,
                      value=run.id, style="primary", confirm=confirm),
        ButtonElement(text=PlainTextObject(text=_T_REJECT), action_id=ACTION_REJECT,
                      value=run.id, style="danger"),
    ])


@dataclass(frozen=True)
class RenderedRun:
    """A run's channel message (``message``, posted once then edited in place) and the thread
    replies carrying the rest of a long diff (``thread``; posted once, with the plan)."""

    message: SlackMessage
    thread: tuple[SlackMessage, ...] = ()


def render_run(
    view: RunViewLike,
    *,
    progress: str = "",
    max_diff_chars: int = DEFAULT_MAX_DIFF_CHARS,
    max_thread_messages: int = DEFAULT_MAX_RUN_THREAD,
) -> RenderedRun:
    """The plan message of a run in any state, and the thread replies for the rest of its diff.

    Header (runbook@version on cluster), context (run id, requester, cluster, risk), summary and
    parameters, the state (with ``progress`` or the run's last detail), the diff per change (an
    empty plan: "nothing to do"), warnings and notes, approvals and the expiry time, and, only
    while the run awaits approval, the Approve / Reject buttons whose ``value`` is the run id.

    At most ``max_diff_chars`` of diff are shown in the message; the rest goes to at most
    ``max_thread_messages`` thread replies, and the message says "The diff continues in the
    thread". Deterministic: rendering the same run again splits the diff the same way, so
    progress edits keep the message as it was posted.
    """
    if max_diff_chars < 0 or max_thread_messages < 1:
        raise ValueError("max_diff_chars must be >= 0 and max_thread_messages >= 1")
    run = view.run
    state = state_of(run)
    head = _run_head(view)
    state_block = _section(_state_line(run, progress))
    note_texts = _notes_texts(view)
    notes: list[Block] = [_section(t) for t in note_texts[:_MAX_NOTE_BLOCKS]]
    more_notes = note_texts[_MAX_NOTE_BLOCKS:]
    if more_notes:
        notes.append(ContextBlock(elements=[MarkdownTextObject(text=_T_NOTES_CONTINUE)]))
    footer = _footer(view)
    tail: list[Block] = []
    if footer:
        tail.append(ContextBlock(elements=[MarkdownTextObject(text=footer)]))
    if state == "awaiting_approval" and view.plan.changes:
        tail.append(_buttons(view))

    diff = _diff_blocks(view)
    main: list[Block] = [*head, state_block]
    if not view.plan.changes:
        main.append(_section(_T_NOTHING))
    # Blocks left for the diff, keeping one for the "continues in the thread" line.
    budget = MAX_BLOCKS - len(main) - len(notes) - len(tail) - 1
    shown: list[tuple[str, int]] = []
    used = 0
    for text, done in diff:
        if len(shown) >= budget or (shown and used + len(text) > max_diff_chars):
            break
        shown.append((text, done))
        used += len(text)
    rest = diff[len(shown):]
    thread_items = rest + [(t, 0) for t in more_notes]
    main.extend(_section(t) for t, _ in shown)
    if rest:
        complete = sum(d for _, d in shown)
        note = (_T_DIFF_CONTINUES.format(shown=complete, total=len(view.plan.changes))
                if complete < len(view.plan.changes) else _T_DIFF_CONTINUES_SAME)
        main.append(ContextBlock(elements=[MarkdownTextObject(text=note)]))
    main.extend(notes)
    main.extend(tail)
    fallback = _T_RUN_FALLBACK.format(
        run_id=run.id, runbook=escape_mrkdwn(run.runbook), version=escape_mrkdwn(run.version),
        cluster=escape_mrkdwn(run.cluster), changes=_plural(len(view.plan.changes), "change"),
        state=STATE_WORD.get(state, state))
    message = SlackMessage(text=fallback, blocks=_dicts(main))
    if not thread_items:
        return RenderedRun(message=message)

    pages = [thread_items[i:i + MAX_BLOCKS - 1]
             for i in range(0, len(thread_items), MAX_BLOCKS - 1)]
    if len(pages) > max_thread_messages:
        dropped = [it for page in pages[max_thread_messages:] for it in page]
        pages = pages[:max_thread_messages]
        n = len(dropped)
        omitted: tuple[str, int] | None = (_T_DIFF_OMITTED.format(
            max=max_thread_messages, n=n, noun=_noun(n, "part"), run_id=run.id), 0)
    else:
        omitted = None
    thread = []
    for i, page in enumerate(pages):
        blocks: list[Block] = [_section(t) for t, _ in page]
        if omitted is not None and i == len(pages) - 1:
            blocks.append(_section(omitted[0]))
        thread.append(SlackMessage(
            text=_T_DIFF_THREAD_FALLBACK.format(run_id=run.id, i=i + 1, n=len(pages)),
            blocks=_dicts(blocks)))
    return RenderedRun(message=message, thread=tuple(thread))


def render_result(view: RunViewLike) -> SlackMessage:
    """The thread reply when a run ends: its state and last detail, what each change did
    (including rollback), and the run id to look it up in the audit trail."""
    run = view.run
    state = state_of(run)
    lines = [_T_RESULT.format(emoji=STATE_EMOJI.get(state, ""), run_id=inline_code(run.id),
                              state=escape_mrkdwn(STATE_WORD.get(state, state)))]
    if run.detail:
        lines.append(escape_mrkdwn(run.detail))
    for a in run.applied or []:
        if not isinstance(a, dict):
            continue
        mark = (":grey_question:" if a.get("uncertain")  # may have been applied
                else ":white_check_mark:" if a.get("ok") else ":x:")
        msg = str(a.get("message") or "")
        lines.append(_T_APPLIED_LINE.format(
            mark=mark, action=escape_mrkdwn(str(a.get("action") or "")),
            target=inline_code(str(a.get("target") or "")),
            message=(": " + escape_mrkdwn(msg)) if msg else ""))
    text = "\n".join(lines)
    blocks: list[Block] = _sections(text)[:MAX_BLOCKS - 1]
    blocks.append(ContextBlock(elements=[MarkdownTextObject(
        text=_T_AUDIT.format(run_id=inline_code(run.id), raw_id=_code_body(run.id)))]))
    return SlackMessage(text=_T_RESULT_FALLBACK.format(run_id=run.id,
                                                       state=STATE_WORD.get(state, state)),
                        blocks=_dicts(blocks))


def _pack_lines(lines: Sequence[str]) -> list[Block]:
    """Lines packed into as few sections as fit, never more than :data:`MAX_BLOCKS`."""
    blocks: list[Block] = []
    buf = ""
    for line in lines:
        for piece in split_text(line):
            if buf and len(buf) + 1 + len(piece) > MAX_SECTION_TEXT:
                blocks.append(_section(buf))
                buf = ""
            buf = piece if not buf else buf + "\n" + piece
    if buf:
        blocks.append(_section(buf))
    return blocks[:MAX_BLOCKS]


def render_runbooks(infos: Sequence[RunbookInfoLike]) -> SlackMessage:
    """The ``runbooks`` answer: each runbook with its versions, risk and summary."""
    if not infos:
        return SlackMessage(text=_T_NO_RUNBOOKS, blocks=_dicts([_section(_T_NO_RUNBOOKS)]))
    lines = [_T_RUNBOOKS_TITLE]
    for info in infos:
        versions = " ".join(inline_code(v) for v in info.versions)
        lines.append(_T_RUNBOOK_LINE.format(name=escape_mrkdwn(info.name), versions=versions,
                                            risk=escape_mrkdwn(risk_of(info.risk)),
                                            summary=escape_mrkdwn(info.summary)))
    text = "\n".join(lines)
    return SlackMessage(text=_shorten(text, MAX_SECTION_TEXT)[0], blocks=_dicts(_pack_lines(lines)))


def _history_line(view: RunViewLike) -> str:
    run = view.run
    state = state_of(run)
    return _T_HISTORY_LINE.format(
        emoji=STATE_EMOJI.get(state, ""), run_id=inline_code(run.id),
        runbook=escape_mrkdwn(run.runbook), version=escape_mrkdwn(run.version),
        cluster=inline_code(run.cluster), state=escape_mrkdwn(STATE_WORD.get(state, state)),
        who=_user(run.requester), when=slack_date(run.created_at))


def render_history(views: Sequence[RunViewLike]) -> SlackMessage:
    """The ``history`` answer: one line per run, newest first."""
    if not views:
        return SlackMessage(text=_T_NO_HISTORY, blocks=_dicts([_section(_T_NO_HISTORY)]))
    lines = [_T_HISTORY_TITLE.format(n=len(views), noun=_noun(len(views), "run")),
             *(_history_line(v) for v in views)]
    return SlackMessage(text=f"{len(views)} {_noun(len(views), 'run')}",
                        blocks=_dicts(_pack_lines(lines)))


def render_show(view: RunViewLike, events: Sequence[RunEvent] = ()) -> SlackMessage:
    """The ``show`` answer: the run's message (state, approvals, diff; no buttons) followed by
    a summary of its steps. A diff too long for one message says where the rest is."""
    rendered = render_run(view)
    blocks = [b for b in rendered.message.blocks if b.get("type") != "actions"]
    if rendered.thread:
        blocks = [b for b in blocks if not (b.get("type") == "context" and "diff continues"
                                             in json.dumps(b))]
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=_T_SHOW_DIFF_CUT.format(run_id=_code_body(view.run.id)))]).to_dict())
    if events:
        lines = [_T_EVENTS, *("• " + escape_mrkdwn(event_line(e)) for e in events[-30:])]
        room = MAX_BLOCKS - len(blocks)
        if room > 0:
            blocks.extend(_dicts(_pack_lines(lines)[:room]))
    return SlackMessage(text=rendered.message.text, blocks=blocks[:MAX_BLOCKS])


# ----------------------------------------------------------------------------- modal


def _resolve(schema: Mapping[str, Any], prop: Mapping[str, Any]) -> Mapping[str, Any]:
    """A property schema with ``$ref`` and ``Optional`` (``anyOf [X, null]``) unwrapped."""
    seen = 0
    while seen < 10:
        seen += 1
        if "$ref" in prop:
            ref = str(prop["$ref"]).rsplit("/", 1)[-1]
            target = (schema.get("$defs") or {}).get(ref) or {}
            prop = {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
            continue
        options = prop.get("anyOf") or prop.get("oneOf")
        if options:
            real = [o for o in options if o.get("type") != "null"]
            if len(real) == 1:
                prop = {**real[0], **{k: v for k, v in prop.items()
                                      if k not in ("anyOf", "oneOf")}}
                continue
        break
    return prop


def _field_kind(prop: Mapping[str, Any]) -> str:
    """``bool``, ``enum``, ``list`` or ``text``."""
    if prop.get("type") == "boolean":
        return "bool"
    if prop.get("enum"):
        return "enum"
    if prop.get("type") == "array":
        return "list"
    return "text"


def _is_cidr(prop: Mapping[str, Any]) -> bool:
    fmt = str(prop.get("format") or (prop.get("items") or {}).get("format") or "")
    return "network" in fmt or "cidr" in fmt


def _initial_text(default: Any) -> str | None:
    if default is None or default == [] or default == "":
        return None
    if isinstance(default, list | tuple):
        return ", ".join(str(x) for x in default)
    return str(default)


def param_fields(schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name, kind)`` of every field of a Params JSON schema, in order; kind as in the modal:
    ``bool``, ``enum``, ``list`` or ``text``."""
    props = schema.get("properties") or {}
    return [(name, _field_kind(_resolve(schema, p))) for name, p in props.items()]


def render_params_modal(
    *,
    runbook: str,
    version: str,
    summary: str,
    risk: str,
    cluster: str,
    schema: Mapping[str, Any],
    private_metadata: str,
) -> dict[str, Any]:
    """The ``views.open`` modal for a runbook's parameters, built from its Params JSON schema:
    one input block per field (block id :data:`PARAM_BLOCK_PREFIX` + name, action id
    :data:`PARAM_ACTION`): single-line text for strings, lists (comma separated) and CIDRs,
    checkboxes for booleans, a select for enums. Labels come from field titles, hints from
    descriptions; defaults fill the initial values. ``private_metadata`` is passed through."""
    props: Mapping[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    blocks: list[Block] = [_section(_T_MODAL_INTRO.format(
        runbook=escape_mrkdwn(runbook), version=escape_mrkdwn(version),
        cluster=inline_code(cluster), risk=escape_mrkdwn(risk),
        summary=escape_mrkdwn(summary)))]
    for name, raw in list(props.items())[:MAX_MODAL_BLOCKS - 1]:
        prop = _resolve(schema, raw)
        kind = _field_kind(prop)
        label = str(prop.get("title") or name.replace("_", " ").capitalize())[:2000]
        hint_parts = [str(prop.get("description") or "")]
        element: Any
        optional = name not in required
        if kind == "bool":
            yes = Option(value="true", text=PlainTextObject(text=_T_BOOL_LABEL))
            element = CheckboxesElement(action_id=PARAM_ACTION, options=[yes],
                                        initial_options=[yes] if prop.get("default") else None)
            optional = True  # unchecked is a valid answer: false
        elif kind == "enum":
            options = [Option(value=str(v), text=PlainTextObject(text=str(v)[:75]))
                       for v in prop["enum"]][:100]
            initial = next((o for o in options if o.value == str(prop.get("default"))), None)
            element = StaticSelectElement(action_id=PARAM_ACTION, options=options,
                                          initial_option=initial)
        else:
            if kind == "list":
                hint_parts.append(_T_CIDR_HINT if _is_cidr(prop) else _T_LIST_HINT.format(
                    example="a, b"))
            elif _is_cidr(prop):
                hint_parts.append(_T_CIDR_HINT)
            element = PlainTextInputElement(action_id=PARAM_ACTION, multiline=False,
                                            initial_value=_initial_text(prop.get("default")))
        hint = " ".join(h for h in hint_parts if h).strip()[:2000] or None
        blocks.append(InputBlock(block_id=PARAM_BLOCK_PREFIX + name, label=label[:2000],
                                 element=element, hint=hint, optional=optional))
    view = View(type="modal", callback_id=MODAL_CALLBACK,
                title=PlainTextObject(text=_T_MODAL_TITLE[:MAX_MODAL_TITLE]),
                submit=PlainTextObject(text=_T_MODAL_SUBMIT),
                close=PlainTextObject(text=_T_MODAL_CLOSE),
                blocks=blocks, private_metadata=private_metadata)
    out: dict[str, Any] = view.to_dict()
    return out
