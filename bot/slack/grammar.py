"""The ``/k8snet`` command grammar, kept apart from the actions (StackStorm style) and
table-tested in ``tests/unit/test_slack_grammar.py``.

::

    /k8snet                     -> help
    /k8snet help [anything]     -> help
    /k8snet status [cluster]    -> status of the named or the default cluster
    /k8snet clusters            -> the known clusters

Subcommands are case-insensitive; cluster names are kept as typed (the engine decides whether
they exist). :func:`parse` never performs side effects and never produces user-facing text:
it returns a :class:`Command` or raises :class:`GrammarError` whose ``reason`` names what
was wrong; ``bot.slack.messages`` turns that into words.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass

from bot.sdk.errors import InputError

__all__ = ["MAX_TEXT", "SUBCOMMANDS", "Command", "GrammarError", "Reason", "parse",
           "printable"]

MAX_TEXT = 500
"""Longest command text accepted, in characters (after ``/k8snet``)."""

SUBCOMMANDS: tuple[str, ...] = ("help", "status", "clusters")
"""The subcommands this grammar knows, in help order."""

# Bidirectional overrides/isolates and marks: they make text display differently from what it
# is ("Trojan source"), so they are refused like other control characters.
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class Reason(enum.StrEnum):
    """Why a command text was refused."""

    TOO_LONG = "too_long"
    CONTROL_CHARACTERS = "control_characters"
    UNKNOWN_SUBCOMMAND = "unknown_subcommand"
    TOO_MANY_ARGUMENTS = "too_many_arguments"


class GrammarError(InputError):
    """The text is not a valid command. ``reason`` says why; ``token`` is the offending word
    (``unknown_subcommand``), ``subcommand`` the recognised subcommand
    (``too_many_arguments``) and ``length`` the text length (``too_long``)."""

    def __init__(self, reason: Reason, *, token: str = "", subcommand: str = "",
                 length: int = 0) -> None:
        super().__init__(f"invalid command: {reason.value}", field="text")
        self.reason = reason
        self.token = token
        self.subcommand = subcommand
        self.length = length


@dataclass(frozen=True)
class Command:
    """A parsed command: ``name`` is one of :data:`SUBCOMMANDS`; ``cluster`` the cluster
    named after ``status`` (None: the default cluster)."""

    name: str
    cluster: str | None = None


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


def parse(text: str | None) -> Command:
    """Parse the text after ``/k8snet``. Raises :class:`GrammarError` for text longer than
    :data:`MAX_TEXT`, text with control characters (tabs and newlines included), an unknown
    subcommand, or extra words after ``status <cluster>`` / ``clusters``."""
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
    if sub == "clusters":
        if args:
            raise GrammarError(Reason.TOO_MANY_ARGUMENTS, subcommand=sub)
        return Command("clusters")
    raise GrammarError(Reason.UNKNOWN_SUBCOMMAND, token=words[0])
