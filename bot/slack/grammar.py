"""The ``/k8snet`` command grammar, kept apart from the actions (StackStorm style) and
table-tested in ``tests/unit/test_slack_grammar.py``.

::

    /k8snet                          -> help
    /k8snet help [anything]          -> help
    /k8snet status [cluster]         -> status of the named or the default cluster
    /k8snet clusters                 -> the known clusters
    /k8snet runbooks                 -> the registered runbooks
    /k8snet run <runbook>[@major] [cluster=<name>] [key=value ...]
                                     -> plan a run (no key=value: the parameters modal)
    /k8snet approve <run-id>         -> approve a run
    /k8snet reject <run-id> [reason] -> reject a run
    /k8snet history [n]              -> the last n runs (default 10, at most 50)
    /k8snet show <run-id>            -> one run: state, approvals, steps, diff
    /k8snet rollback <run-id>        -> roll back an interrupted run

Subcommands are case-insensitive; cluster names, runbook names and values are kept as typed
(the engine decides whether they exist and are valid). ``run`` arguments are split like a
shell would (``shlex``: ``namespaces="a, b"`` is one value), after turning typographic quotes
that Slack clients insert into plain ones. Keys are lower-cased with ``-`` read as ``_``
(``default-deny=true`` is ``default_deny``).

:func:`parse` never performs side effects and never produces user-facing text: it returns a
:class:`Command` or raises :class:`GrammarError` whose ``reason`` names what was wrong;
``bot.slack.messages`` turns that into words.
"""

from __future__ import annotations

import enum
import re
import shlex
import unicodedata
from dataclasses import dataclass

from bot.sdk.errors import InputError

__all__ = ["DEFAULT_HISTORY", "MAX_HISTORY", "MAX_TEXT", "SUBCOMMANDS", "Command",
           "GrammarError", "Reason", "parse", "printable"]

MAX_TEXT = 500
"""Longest command text accepted, in characters (after ``/k8snet``)."""

SUBCOMMANDS: tuple[str, ...] = ("help", "status", "clusters", "runbooks", "run", "approve",
                                 "reject", "history", "show", "rollback")
"""The subcommands this grammar knows, in help order."""

DEFAULT_HISTORY = 10
"""Runs ``history`` lists when no number is given."""
MAX_HISTORY = 50
"""Most runs ``history`` lists."""

_RUN_ID = re.compile(r"r-[a-z0-9]{4,40}")
_RUNBOOK_REF = re.compile(r"[a-z0-9][-a-z0-9_.]{0,62}(@[0-9][0-9a-z.]{0,20})?")
_KEY = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"',
                         "\u00bb": '"', "\u2018": "'", "\u2019": "'", "\u201a": "'"})
# Spaces Slack clients may send instead of a plain one (no-break, figure, narrow no-break...).
_SPACES = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
    "\u202f\u205f\u3000"

# Bidirectional overrides/isolates and marks: they make text display differently from what it
# is ("Trojan source"), so they are refused like other control characters.
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class Reason(enum.StrEnum):
    """Why a command text was refused."""

    TOO_LONG = "too_long"
    CONTROL_CHARACTERS = "control_characters"
    UNKNOWN_SUBCOMMAND = "unknown_subcommand"
    TOO_MANY_ARGUMENTS = "too_many_arguments"
    MISSING_ARGUMENT = "missing_argument"
    BAD_QUOTING = "bad_quoting"
    BAD_RUNBOOK = "bad_runbook"
    BAD_PARAM = "bad_param"
    DUPLICATE_PARAM = "duplicate_param"
    BAD_RUN_ID = "bad_run_id"
    BAD_NUMBER = "bad_number"


class GrammarError(InputError):
    """The text is not a valid command. ``reason`` says why; ``token`` is the offending word
    (``unknown_subcommand``, ``bad_runbook``, ``bad_param``, ``duplicate_param`` (only
    ``cluster=`` may not repeat), ``bad_run_id``, ``bad_number``), ``subcommand`` the
    recognised subcommand (every reason but ``unknown_subcommand``, ``too_long`` and
    ``control_characters``) and ``length`` the text length (``too_long``). ``field`` is
    ``text``, or the parameter key for ``bad_param``/``duplicate_param`` when there is one."""

    def __init__(self, reason: Reason, *, token: str = "", subcommand: str = "",
                 length: int = 0, field: str = "text") -> None:
        super().__init__(f"invalid command: {reason.value}", field=field)
        self.reason = reason
        self.token = token
        self.subcommand = subcommand
        self.length = length


@dataclass(frozen=True)
class Command:
    """A parsed command: ``name`` is one of :data:`SUBCOMMANDS`; ``cluster`` the cluster named
    after ``status`` or as ``cluster=`` of ``run`` (None: the default cluster); ``runbook`` the
    runbook reference of ``run`` (``name`` or ``name@major``); ``params`` its ``key=value``
    pairs in order, values as typed (strings: the engine converts and validates them);
    (a key may repeat: see :attr:`raw_params`);
    ``run_id`` the run of ``approve``/``reject``/``show``/``rollback``; ``reason`` the free text
    after ``reject <id>``; ``limit`` the number of runs of ``history``."""

    name: str
    cluster: str | None = None
    runbook: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    run_id: str | None = None
    reason: str = ""
    limit: int | None = None

    @property
    def raw_params(self) -> dict[str, str | list[str]]:
        """``params`` as the engine takes them: a key given once maps to its string, a key
        repeated (``namespaces=a namespaces=b``) to the list of its values."""
        out: dict[str, str | list[str]] = {}
        for key, value in self.params:
            if key not in out:
                out[key] = value
                continue
            prev = out[key]
            out[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        return out


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" or ch in _BIDI


def printable(text: str) -> str:
    """``text`` with control and bidi characters shown as ``\\xNN``/``\\uNNNN`` escapes: safe
    for logs and the audit trail."""
    out = []
    for ch in text:
        if _is_control(ch):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _run_id(sub: str, args: list[str]) -> str:
    if not args:
        raise GrammarError(Reason.MISSING_ARGUMENT, subcommand=sub)
    rid = args[0].lower()
    if not _RUN_ID.fullmatch(rid):
        raise GrammarError(Reason.BAD_RUN_ID, token=args[0], subcommand=sub)
    return rid


def _split(text: str) -> list[str]:
    """Shell-like words of ``text`` (quotes group, no comments, no escapes needed)."""
    lex = shlex.shlex(text.translate(_QUOTES), posix=True)
    lex.whitespace_split = True
    lex.whitespace += _SPACES
    lex.commenters = ""
    try:
        return list(lex)
    except ValueError as e:  # "No closing quotation"
        raise GrammarError(Reason.BAD_QUOTING, subcommand="run") from e


def _parse_run(rest: str) -> Command:
    words = _split(rest)
    if not words or "=" in words[0]:
        raise GrammarError(Reason.MISSING_ARGUMENT, subcommand="run")
    ref = words[0].lower()
    if not _RUNBOOK_REF.fullmatch(ref):
        raise GrammarError(Reason.BAD_RUNBOOK, token=words[0], subcommand="run")
    cluster: str | None = None
    params: list[tuple[str, str]] = []
    for word in words[1:]:
        key, sep, value = word.partition("=")
        norm = key.strip().lower().replace("-", "_")
        if not sep or not _KEY.fullmatch(norm):
            raise GrammarError(Reason.BAD_PARAM, token=word, subcommand="run")
        if norm == "cluster":
            if cluster is not None:
                raise GrammarError(Reason.DUPLICATE_PARAM, token=key, subcommand="run",
                                   field="cluster")
            if not value:
                raise GrammarError(Reason.BAD_PARAM, token=word, subcommand="run",
                                   field="cluster")
            cluster = value
            continue
        params.append((norm, value))
    return Command("run", cluster=cluster, runbook=ref, params=tuple(params))


def parse(text: str | None) -> Command:
    """Parse the text after ``/k8snet``. Raises :class:`GrammarError` for text longer than
    :data:`MAX_TEXT`, text with control characters (tabs and newlines included), an unknown
    subcommand, missing or extra words, unbalanced quotes, a malformed runbook reference, run
    id, ``key=value`` or number (see the module docstring for the grammar)."""
    text = text or ""
    if len(text) > MAX_TEXT:
        raise GrammarError(Reason.TOO_LONG, length=len(text))
    if any(_is_control(ch) for ch in text):
        raise GrammarError(Reason.CONTROL_CHARACTERS)
    words = text.split()
    if not words:
        return Command("help")
    sub, args = words[0].lower(), words[1:]
    if sub == "help":
        return Command("help")
    if sub == "status":
        if len(args) > 1:
            raise GrammarError(Reason.TOO_MANY_ARGUMENTS, subcommand=sub)
        return Command("status", cluster=args[0] if args else None)
    if sub in ("clusters", "runbooks"):
        if args:
            raise GrammarError(Reason.TOO_MANY_ARGUMENTS, subcommand=sub)
        return Command(sub)
    if sub == "run":
        return _parse_run(text.strip()[len(words[0]):])
    if sub in ("approve", "show", "rollback"):
        rid = _run_id(sub, args)
        if len(args) > 1:
            raise GrammarError(Reason.TOO_MANY_ARGUMENTS, subcommand=sub)
        return Command(sub, run_id=rid)
    if sub == "reject":
        rid = _run_id(sub, args)
        after_id = text.strip()[len(words[0]):].strip()[len(args[0]):]
        return Command(sub, run_id=rid, reason=" ".join(after_id.split()))
    if sub == "history":
        if len(args) > 1:
            raise GrammarError(Reason.TOO_MANY_ARGUMENTS, subcommand=sub)
        if not args:
            return Command(sub, limit=DEFAULT_HISTORY)
        if not args[0].isdigit() or not 1 <= int(args[0]) <= MAX_HISTORY:
            raise GrammarError(Reason.BAD_NUMBER, token=args[0], subcommand=sub)
        return Command(sub, limit=int(args[0]))
    raise GrammarError(Reason.UNKNOWN_SUBCOMMAND, token=words[0])
