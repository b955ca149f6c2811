"""Table tests of the ``/k8snet`` grammar (bot.slack.grammar) and of its refusal messages."""

from __future__ import annotations

import pytest

from bot.sdk.errors import InputError
from bot.slack import messages
from bot.slack.grammar import MAX_TEXT, Command, GrammarError, Reason, parse, printable

OK_CASES = [
    ("", Command("help")),
    (None, Command("help")),
    ("   ", Command("help")),
    ("help", Command("help")),
    ("HELP", Command("help")),
    ("help status", Command("help")),
    ("status", Command("status")),
    ("Status", Command("status")),
    ("status prod", Command("status", "prod")),
    ("  status   prod  ", Command("status", "prod")),
    ("status Prod", Command("status", "Prod")),  # cluster names kept as typed
    ("status\u00a0prod", Command("status", "prod")),  # no-break space from Slack clients
    ("clusters", Command("clusters")),
    ("CLUSTERS", Command("clusters")),
    ("status " + "a" * (MAX_TEXT - 7), Command("status", "a" * (MAX_TEXT - 7))),
]


@pytest.mark.parametrize(("text", "expected"), OK_CASES)
def test_parse_ok(text: str | None, expected: Command) -> None:
    assert parse(text) == expected


ERROR_CASES = [
    ("stauts", Reason.UNKNOWN_SUBCOMMAND, "stauts"),
    ("run kube-proxy-mode", Reason.UNKNOWN_SUBCOMMAND, "run"),
    ("<!channel>", Reason.UNKNOWN_SUBCOMMAND, "<!channel>"),
    ("status prod lab", Reason.TOO_MANY_ARGUMENTS, ""),
    ("clusters prod", Reason.TOO_MANY_ARGUMENTS, ""),
    ("status " + "a" * MAX_TEXT, Reason.TOO_LONG, ""),
    ("status\tprod", Reason.CONTROL_CHARACTERS, ""),
    ("status\nprod", Reason.CONTROL_CHARACTERS, ""),
    ("status prod\x00", Reason.CONTROL_CHARACTERS, ""),
    ("status \x1b[31mprod", Reason.CONTROL_CHARACTERS, ""),
    ("status prod\x7f", Reason.CONTROL_CHARACTERS, ""),
    ("status prod\u0085", Reason.CONTROL_CHARACTERS, ""),
    ("status \u202eprod", Reason.CONTROL_CHARACTERS, ""),  # right-to-left override
    ("status \u2066prod\u2069", Reason.CONTROL_CHARACTERS, ""),
]


@pytest.mark.parametrize(("text", "reason", "token"), ERROR_CASES)
def test_parse_errors(text: str, reason: Reason, token: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse(text)
    assert info.value.reason is reason
    assert info.value.token == token
    assert isinstance(info.value, InputError) and info.value.field == "text"


def test_too_long_wins_over_other_checks() -> None:
    with pytest.raises(GrammarError) as info:
        parse("\x00" * (MAX_TEXT + 1))
    assert info.value.reason is Reason.TOO_LONG
    assert info.value.length == MAX_TEXT + 1


def test_exactly_max_length_is_accepted() -> None:
    text = "status " + "p" * (MAX_TEXT - len("status "))
    assert len(text) == MAX_TEXT
    assert parse(text).cluster == "p" * (MAX_TEXT - 7)


@pytest.mark.parametrize(("text", "expected"), [
    ("status prod", "status prod"),
    ("a\tb\nc\x00", "a\\x09b\\x0ac\\x00"),
    ("x\u202ey", "x\\u202ey"),
])
def test_printable(text: str, expected: str) -> None:
    assert printable(text) == expected


MESSAGE_CASES = [
    ("stauts", ["Unknown subcommand", "`stauts`", "`help`", "`status [cluster]`", "`clusters`"]),
    ("status a b", ["Too many words", "/k8snet status [cluster]"]),
    ("clusters a", ["Too many words", "/k8snet clusters`"]),
    ("status\tprod", ["control characters", "Nothing was run"]),
    ("status " + "x" * 600, ["607 characters", f"limit is {MAX_TEXT}"]),
]


@pytest.mark.parametrize(("text", "needles"), MESSAGE_CASES)
def test_grammar_error_messages(text: str, needles: list[str]) -> None:
    with pytest.raises(GrammarError) as info:
        parse(text)
    msg = messages.grammar_error(info.value)
    for needle in needles:
        assert needle in msg


def test_unknown_subcommand_is_escaped_and_shortened() -> None:
    with pytest.raises(GrammarError) as info:
        parse("<!channel>&" + "y" * 100)
    msg = messages.grammar_error(info.value)
    assert "<!channel>" not in msg
    assert "&lt;!channel&gt;&amp;" in msg
    assert "y" * 100 not in msg and "…" in msg


def test_help_lists_every_subcommand() -> None:
    for sub in ("status [cluster]", "clusters", "help"):
        assert f"/k8snet {sub}" in messages.help_text()
