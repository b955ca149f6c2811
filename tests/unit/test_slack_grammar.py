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
    # runbooks
    ("runbooks", Command("runbooks")),
    ("RunBooks", Command("runbooks")),
    ("run netpol-dns-allow", Command("run", runbook="netpol-dns-allow")),
    ("run Netpol-DNS-Allow@1", Command("run", runbook="netpol-dns-allow@1")),
    ("run netpol-dns-allow cluster=lab", Command("run", cluster="lab", runbook="netpol-dns-allow")),
    ("run netpol-dns-allow cluster=lab namespaces=shop",
     Command("run", cluster="lab", runbook="netpol-dns-allow", params=(("namespaces", "shop"),))),
    ("run netpol-dns-allow@1 namespaces=shop,web default-deny=false",
     Command("run", runbook="netpol-dns-allow@1",
             params=(("namespaces", "shop,web"), ("default_deny", "false")))),
    ('run netpol-dns-allow namespaces="shop, web"',
     Command("run", runbook="netpol-dns-allow", params=(("namespaces", "shop, web"),))),
    ("run netpol-dns-allow namespaces='a b'",
     Command("run", runbook="netpol-dns-allow", params=(("namespaces", "a b"),))),
    ("run netpol-dns-allow namespaces=\u201cshop, web\u201d",  # Slack's smart quotes
     Command("run", runbook="netpol-dns-allow", params=(("namespaces", "shop, web"),))),
    ("run\u00a0netpol-dns-allow\u00a0namespaces=shop",  # no-break spaces
     Command("run", runbook="netpol-dns-allow", params=(("namespaces", "shop"),))),
    ("run netpol-dns-allow namespaces=a namespaces=b",
     Command("run", runbook="netpol-dns-allow", params=(("namespaces", "a"), ("namespaces", "b")))),
    ("run netpol-dns-allow NAMESPACES=Shop",  # keys lower-cased, values kept
     Command("run", runbook="netpol-dns-allow", params=(("namespaces", "Shop"),))),
    ("run netpol-dns-allow namespaces=<!channel>",
     Command("run", runbook="netpol-dns-allow", params=(("namespaces", "<!channel>"),))),
    ('run netpol-dns-allow namespaces="`rm -rf`#x"',
     Command("run", runbook="netpol-dns-allow", params=(("namespaces", "`rm -rf`#x"),))),
    ("run netpol-dns-allow extra_egress_cidrs=", Command(
        "run", runbook="netpol-dns-allow", params=(("extra_egress_cidrs", ""),))),
    ("run netpol-dns-allow note=a=b",
     Command("run", runbook="netpol-dns-allow", params=(("note", "a=b"),))),
    # decisions and runs
    ("approve r-k3v9q2m7xw", Command("approve", run_id="r-k3v9q2m7xw")),
    ("APPROVE R-K3V9Q2M7XW", Command("approve", run_id="r-k3v9q2m7xw")),
    ("reject r-k3v9q2m7xw", Command("reject", run_id="r-k3v9q2m7xw")),
    ("reject r-k3v9q2m7xw  not   during  business hours",
     Command("reject", run_id="r-k3v9q2m7xw", reason="not during business hours")),
    ("history", Command("history", limit=10)),
    ("history 3", Command("history", limit=3)),
    ("history 50", Command("history", limit=50)),
    ("show r-k3v9q2m7xw", Command("show", run_id="r-k3v9q2m7xw")),
    ("rollback r-k3v9q2m7xw", Command("rollback", run_id="r-k3v9q2m7xw")),
]


@pytest.mark.parametrize(("text", "expected"), OK_CASES)
def test_parse_ok(text: str | None, expected: Command) -> None:
    assert parse(text) == expected


ERROR_CASES = [
    ("stauts", Reason.UNKNOWN_SUBCOMMAND, "stauts"),
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
    ("runbooks x", Reason.TOO_MANY_ARGUMENTS, ""),
    ("run", Reason.MISSING_ARGUMENT, ""),
    ("run namespaces=shop", Reason.MISSING_ARGUMENT, ""),
    ('run netpol-dns-allow namespaces="shop', Reason.BAD_QUOTING, ""),
    ("run net/pol", Reason.BAD_RUNBOOK, "net/pol"),
    ("run <!channel>", Reason.BAD_RUNBOOK, "<!channel>"),
    ("run netpol-dns-allow shop", Reason.BAD_PARAM, "shop"),
    ("run netpol-dns-allow =shop", Reason.BAD_PARAM, "=shop"),
    ("run netpol-dns-allow na$me=shop", Reason.BAD_PARAM, "na$me=shop"),
    ("run netpol-dns-allow cluster=", Reason.BAD_PARAM, "cluster="),
    ("run netpol-dns-allow cluster=a cluster=b", Reason.DUPLICATE_PARAM, "cluster"),
    ("approve", Reason.MISSING_ARGUMENT, ""),
    ("approve 12", Reason.BAD_RUN_ID, "12"),
    ("approve r-k3v9q2m7xw r-other0000", Reason.TOO_MANY_ARGUMENTS, ""),
    ("show <@U123>", Reason.BAD_RUN_ID, "<@U123>"),
    ("rollback", Reason.MISSING_ARGUMENT, ""),
    ("reject", Reason.MISSING_ARGUMENT, ""),
    ("history 0", Reason.BAD_NUMBER, "0"),
    ("history 51", Reason.BAD_NUMBER, "51"),
    ("history -1", Reason.BAD_NUMBER, "-1"),
    ("history ten", Reason.BAD_NUMBER, "ten"),
    ("history 1 2", Reason.TOO_MANY_ARGUMENTS, ""),
]


@pytest.mark.parametrize(("text", "reason", "token"), ERROR_CASES)
def test_parse_errors(text: str, reason: Reason, token: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse(text)
    assert info.value.reason is reason
    assert info.value.token == token
    assert isinstance(info.value, InputError)
    if reason not in (Reason.BAD_PARAM, Reason.DUPLICATE_PARAM):
        assert info.value.field == "text"


@pytest.mark.parametrize(("text", "field"), [
    ("run x shop", "text"),
    ("run x na$me=1", "text"),
    ("run x cluster=", "cluster"),
    ("run x cluster=a cluster=b", "cluster"),
])
def test_param_errors_name_the_field(text: str, field: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse(text)
    assert info.value.field == field


def test_raw_params_lists_repeated_keys() -> None:
    cmd = parse("run netpol-dns-allow namespaces=a namespaces=b default_deny=true")
    assert cmd.raw_params == {"namespaces": ["a", "b"], "default_deny": "true"}
    cmd3 = parse("run x k=1 k=2 k=3")
    assert cmd3.raw_params == {"k": ["1", "2", "3"]}


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
    ("stauts", ["Unknown subcommand", "`stauts`", "`help`", "`status [cluster]`", "`clusters`",
                "`run`", "`approve`", "`history`"]),
    ("run", ["needs a runbook name", "/k8snet run <runbook>", "/k8snet runbooks"]),
    ("approve", ["needs a run id", "/k8snet approve <run-id>"]),
    ("approve nope", ["`nope` is not a run id", "Nothing was run"]),
    ("run x shop", ["`shop` is not a `key=value`", "Nothing was planned"]),
    ('run x a="b', ["quote is not closed", "Nothing was planned"]),
    ("run x cluster=a cluster=b", ["`cluster=` is given more than once"]),
    ("run a/b", ["`a/b` is not a runbook name"]),
    ("history 99", ["`99` is not a number from 1 to 50"]),
    ("runbooks x", ["Too many words", "/k8snet runbooks`"]),
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
    for sub in ("status [cluster]", "clusters", "help", "runbooks", "run <runbook>[@major]",
                "approve <run-id>", "reject <run-id> [reason]", "history [n]", "show <run-id>",
                "rollback <run-id>"):
        assert f"/k8snet {sub}" in messages.help_text()


def test_person_text_in_messages_is_escaped() -> None:
    with pytest.raises(GrammarError) as info:
        parse("run x <!channel>")
    msg = messages.grammar_error(info.value)
    assert "<!channel>" not in msg and "&lt;!channel&gt;" in msg
    with pytest.raises(GrammarError) as info2:
        parse("show `<!here>`")
    msg2 = messages.grammar_error(info2.value)
    assert "<!here>" not in msg2 and "`<" not in msg2


def test_refusal_and_input_messages() -> None:
    from bot.sdk.errors import Refused

    m = messages.refused(Refused("You requested run r-1; someone <else> must.",
                                 reason="self-approval"))
    assert "someone &lt;else&gt; must" in m and "Four eyes" in m
    assert "policy.roles" in messages.refused(Refused("You need the approver role.",
                                                       reason="role"))
    assert "run ...` again" in messages.refused(Refused("expired", reason="expired"))
    e = messages.input_error(InputError("namespaces: 'Bad' is not valid", field="namespaces"))
    assert "(field `namespaces`)" in e and "Nothing was planned" in e
    assert "/k8snet runbooks" in messages.input_error(InputError("Unknown runbook",
                                                                  field="runbook"))
