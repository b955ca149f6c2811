"""Every user-facing string of the Slack layer, in one place (bolt-python style).

Functions return Slack mrkdwn. Anything that came from a person or a cluster (cluster names,
typed words, error messages that quote them) is escaped with
:func:`bot.render.blocks.escape_mrkdwn`, so it can neither ping ``@channel`` nor forge links.
The report itself is rendered by :mod:`bot.render.blocks`.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.render.blocks import escape_mrkdwn, inline_code
from bot.sdk.errors import (
    InputError,
    KubeError,
    KubeForbidden,
    KubeTimeout,
    KubeUnreachable,
    Refused,
)
from bot.slack.grammar import MAX_HISTORY, MAX_TEXT, GrammarError, Reason

COMMAND = "/k8snet"

USAGE = {
    "help": "help",
    "status": "status [cluster]",
    "clusters": "clusters",
    "runbooks": "runbooks",
    "run": "run <runbook>[@major] [cluster=<name>] [key=value ...]",
    "approve": "approve <run-id>",
    "reject": "reject <run-id> [reason]",
    "history": "history [n]",
    "show": "show <run-id>",
    "rollback": "rollback <run-id>",
}
"""Usage of each subcommand, after ``/k8snet``."""

HELP = (
    "*k8snet* answers \"what is my cluster's network doing?\" and fixes it with approved "
    "runbooks\n"
    f"• `{COMMAND} status [cluster]`: network status report (CNI, kube-proxy, conntrack, "
    "MetalLB, NetworkPolicy, BGP, nodes), posted in this channel\n"
    f"• `{COMMAND} clusters`: the clusters I know, and the default one\n"
    f"• `{COMMAND} runbooks`: the runbooks I can run, their versions and risk\n"
    f"• `{COMMAND} run <runbook>[@major] [cluster=<name>] [key=value ...]`: plan a change; "
    "the plan and its diff are posted here for someone else to approve (no `key=value`: a "
    "form asks for the parameters; quote values with spaces: `key=\"a, b\"`)\n"
    f"• `{COMMAND} approve <run-id>` / `{COMMAND} reject <run-id> [reason]`: decide on a "
    "plan (or use its buttons)\n"
    f"• `{COMMAND} history [n]`: the last n runs (at most {MAX_HISTORY})\n"
    f"• `{COMMAND} show <run-id>`: one run's state, approvals, steps and diff\n"
    f"• `{COMMAND} rollback <run-id>`: roll back a run that was interrupted mid-apply "
    "(approvers)\n"
    f"• `{COMMAND} help`: this message"
)

VALID_SUBCOMMANDS = ("Valid subcommands: `help`, `status [cluster]`, `clusters`, `runbooks`, "
                     "`run`, `approve`, `reject`, `history`, `show`, `rollback`.")

BUSY = (":hourglass: Too many checks are already running or waiting. Nothing was started; "
        "try again in a minute.")

SHUTTING_DOWN = (":hourglass: The bot is restarting, so this check was not started. Try again "
                 "in a minute.")

INTERNAL_ERROR = (":x: Something went wrong on my side while handling this command; nothing "
                  "was changed. The error is in the bot's log.")

_MAX_ECHO = 40


def _echo(word: str) -> str:
    """A typed word, shortened and escaped for display inside inline code."""
    if len(word) > _MAX_ECHO:
        word = word[:_MAX_ECHO] + "…"
    return inline_code(word)


def help_text() -> str:
    """Answer to ``/k8snet`` and ``/k8snet help``."""
    return HELP


def _usage(sub: str) -> str:
    return f"`{COMMAND} {USAGE.get(sub, sub)}`"


def grammar_error(err: GrammarError) -> str:
    """Why a command text was refused, and what is valid."""
    if err.reason is Reason.TOO_LONG:
        return (f":no_entry: That command is {err.length} characters long; the limit is "
                f"{MAX_TEXT}. Nothing was run.")
    if err.reason is Reason.CONTROL_CHARACTERS:
        return (":no_entry: That command contains control characters (tabs, line breaks or "
                "invisible direction marks). Type it on one line without them. Nothing was run.")
    if err.reason is Reason.TOO_MANY_ARGUMENTS:
        return (f":warning: Too many words: usage is {_usage(err.subcommand)}. Nothing was "
                f"run.\n{VALID_SUBCOMMANDS}")
    if err.reason is Reason.MISSING_ARGUMENT:
        what = "a runbook name" if err.subcommand == "run" else "a run id (like `r-k3v9q2m7xw`)"
        hint = f" See `{COMMAND} runbooks`." if err.subcommand == "run" else \
            f" See `{COMMAND} history`."
        return (f":warning: `{err.subcommand}` needs {what}: usage is {_usage(err.subcommand)}."
                f" Nothing was run.{hint}")
    if err.reason is Reason.BAD_QUOTING:
        return (":warning: A quote is not closed. Quote a value with spaces like "
                "`namespaces=\"shop, web\"`. Nothing was planned.")
    if err.reason is Reason.BAD_RUNBOOK:
        return (f":warning: {_echo(err.token)} is not a runbook name (lower-case letters, digits "
                f"and `-`, optionally `@<major>`). See `{COMMAND} runbooks`. Nothing was planned.")
    if err.reason is Reason.BAD_PARAM:
        return (f":warning: {_echo(err.token)} is not a `key=value` parameter (field "
                f"`{escape_mrkdwn(err.field or 'text')}`): usage is {_usage('run')}. Nothing was "
                "planned.")
    if err.reason is Reason.DUPLICATE_PARAM:
        return (f":warning: `{escape_mrkdwn(err.field or err.token)}=` is given more than once. "
                "Nothing was planned.")
    if err.reason is Reason.BAD_RUN_ID:
        return (f":warning: {_echo(err.token)} is not a run id (they look like `r-k3v9q2m7xw`). "
                f"See `{COMMAND} history`. Nothing was run.")
    if err.reason is Reason.BAD_NUMBER:
        return (f":warning: {_echo(err.token)} is not a number from 1 to {MAX_HISTORY}: usage "
                f"is {_usage('history')}.")
    return (f":warning: Unknown subcommand {_echo(err.token)}. Nothing was run.\n"
            f"{VALID_SUBCOMMANDS} Try `{COMMAND} help`.")


def unknown_cluster(message: str) -> str:
    """The engine's InputError text (it names the valid clusters), escaped."""
    return (f":warning: {escape_mrkdwn(message)} Nothing was run. "
            f"See `{COMMAND} clusters`.")


def channel_not_allowed(allowed: Sequence[str]) -> str:
    """Refusal for a channel outside ``allowed_channels``."""
    where = ", ".join(f"<#{escape_mrkdwn(c)}>" for c in allowed)
    return (":no_entry: k8snet does not take commands in this channel: its operators allow "
            f"commands only in {where} (setting `allowed_channels`). Nothing was run.")


def clusters(names: Sequence[str], default: str | None) -> str:
    """The ``clusters`` answer."""
    if not names:
        return (":information_source: No clusters are configured. Add them under `clusters` "
                "in the settings file, or give the bot a kubeconfig.")
    lines = ["*Clusters I know:*"]
    for n in names:
        mark = " _(default)_" if n == default else ""
        lines.append(f"• {_echo(n)}{mark}")
    if default is None or default not in names:
        lines.append(f"_No default cluster: name one, e.g. `{COMMAND} status "
                     f"{escape_mrkdwn(names[0])}`._")
    return "\n".join(lines)


def checking(cluster: str) -> str:
    """The immediate ack of ``status``."""
    return f":mag: Checking {_echo(cluster)}… the report will be posted in this channel."


def status_failed(cluster: str, err: Exception) -> str:
    """Why a status report could not be made (the cluster as a whole failed)."""
    name = _echo(cluster)
    detail = escape_mrkdwn(str(err))
    if isinstance(err, KubeForbidden):
        what = f"`{escape_mrkdwn(err.verb)}` `{escape_mrkdwn(err.resource)}`"
        return (f":lock: No status for {name}: the bot's Kubernetes identity may not "
                f"{what} (HTTP 403). Grant it the ClusterRole in `deploy/`.\n>{detail}")
    if isinstance(err, KubeUnreachable):
        return (f":electric_plug: No status for {name}: its API server cannot be reached."
                f"\n>{detail}")
    if isinstance(err, KubeTimeout):
        return (f":hourglass: No status for {name}: its API server did not answer in time."
                f"\n>{detail}")
    if isinstance(err, KubeError):
        return f":x: No status for {name}: the API server returned an error.\n>{detail}"
    return f":x: No status for {name}: {detail}"


def post_failed(cluster: str, error_code: str) -> str:
    """The report was made but Slack refused to post it (``not_in_channel``...)."""
    hint = ""
    if error_code in {"not_in_channel", "channel_not_found", "is_archived"}:
        hint = " Invite me to this channel (`/invite @k8snet`) and try again."
    return (f":x: The status report of {_echo(cluster)} was made but Slack refused to post "
            f"it here (`{escape_mrkdwn(error_code)}`).{hint}")


# ----------------------------------------------------------------------------- runbooks & runs

RUNS_DISABLED = (":information_source: Runbooks are not enabled on this bot, so only `status`, "
                 "`clusters` and `help` work here.")


def run_id(value: str) -> str:
    """A run id as inline code."""
    return _echo(value)


def input_error(err: InputError, *, planned: bool = True) -> str:
    """Bad input (unknown runbook, parameter, cluster, run; a value that does not validate):
    the engine's sentence, escaped, naming the field."""
    field = f" (field `{escape_mrkdwn(err.field)}`)" if err.field else ""
    tail = " Nothing was planned." if planned else " Nothing was changed."
    hint = ""
    if err.field == "runbook":
        hint = f" See `{COMMAND} runbooks`."
    elif err.field == "cluster":
        hint = f" See `{COMMAND} clusters`."
    elif err.field == "run_id":
        hint = f" See `{COMMAND} history`."
    return f":warning: {escape_mrkdwn(str(err))}{field}{tail}{hint}"


_REFUSED_EMOJI = {
    "role": ":lock:",
    "self-approval": ":no_entry:",
    "expired": ":alarm_clock:",
    "state": ":information_source:",
    "locked": ":lock:",
    "duplicate": ":information_source:",
    "channel": ":no_entry:",
}

_REFUSED_HINT = {
    "self-approval": " Four eyes: another approver has to approve it.",
    "role": " Ask an admin to add you to the role in the k8snet settings (`policy.roles`).",
    "expired": f" Plans can be approved, and approved runs applied, for a limited time; run "
               f"`{COMMAND} run ...` again.",
    "locked": " Only one run changes a cluster at a time; the run stays approved: once the "
              "other run has ended, apply it from a terminal with `k8snet apply <run id>`.",
}


def refused(err: Refused) -> str:
    """Why a request was refused (role, self-approval, expired, state, locked, duplicate), in
    the engine's words plus what to do."""
    emoji = _REFUSED_EMOJI.get(err.reason, ":no_entry:")
    return f"{emoji} {escape_mrkdwn(str(err))}{_REFUSED_HINT.get(err.reason, '')}"


def planning(ref: str, cluster: str) -> str:
    """Ack of ``run`` with parameters."""
    return (f":memo: Planning {_echo(ref)} on {_echo(cluster)}… the plan and its diff will be "
            "posted in this channel for approval. Nothing changes until then.")


def opening_form(ref: str) -> str:
    """Ack of ``run`` without parameters (a modal opens)."""
    return f":memo: Opening the parameters form of {_echo(ref)}…"


def form_failed(code: str) -> str:
    """``views.open`` was refused (the trigger expired, ...)."""
    return (f":x: Slack did not open the parameters form (`{escape_mrkdwn(code)}`). Type the "
            f"parameters instead: `{COMMAND} run <runbook> key=value ...`.")


def plan_failed(ref: str, cluster: str, err: Exception) -> str:
    """The runbook could not plan (cluster unreachable, 403, a dry run rejected...)."""
    return (f":x: No plan for {_echo(ref)} on {_echo(cluster)}: "
            f"{escape_mrkdwn(str(err)[:1500])} Nothing was changed.")


def plan_posted_elsewhere(rid: str) -> str:
    """A repeated request (same trigger) found the plan already made."""
    return f":information_source: This request was already planned as {run_id(rid)}."


def nothing_to_do(rid: str) -> str:
    """The plan is empty (also posted in the channel)."""
    return (f":white_check_mark: Nothing to do ({run_id(rid)}): the cluster already matches. "
            "No approval is needed.")


def plan_post_failed(rid: str, code: str) -> str:
    """The plan was made but Slack refused to post it."""
    hint = ""
    if code in {"not_in_channel", "channel_not_found", "is_archived"}:
        hint = " Invite me to this channel (`/invite @k8snet`) and try again."
    return (f":x: Run {run_id(rid)} was planned but Slack refused to post the plan here "
            f"(`{escape_mrkdwn(code)}`). Nobody can approve it with buttons; see "
            f"`k8snet show {escape_mrkdwn(rid)}`.{hint}")


def deciding(rid: str, decision: str) -> str:
    """Ack of ``approve``/``reject``."""
    verb = "approval" if decision == "approve" else "rejection"
    return f":ballot_box_with_check: Recording your {verb} of {run_id(rid)}…"


def approved(rid: str, executing: bool, missing: int) -> str:
    """After an approval: executing now, waiting for more approvals, or already decided."""
    if executing:
        return (f":white_check_mark: You approved {run_id(rid)}. It is being applied now: "
                "progress is shown in the plan message, the result in its thread.")
    if missing > 0:
        return (f":white_check_mark: You approved {run_id(rid)}; it needs {missing} more "
                f"approval{'s' if missing != 1 else ''}.")
    return (f":white_check_mark: You approved {run_id(rid)}. Another approval completed it at "
            "the same time; it is being applied once.")


def approved_terminal(rid: str) -> str:
    """Approval of a run planned in a terminal: the CLI applies it."""
    return (f":white_check_mark: You approved {run_id(rid)}. It was planned from a terminal: "
            f"its requester applies it with `k8snet apply {escape_mrkdwn(rid)}`.")


def rejected(rid: str) -> str:
    """After a rejection."""
    return f":no_entry_sign: You rejected {run_id(rid)}. Nothing will be applied."


def rolling_back(rid: str) -> str:
    """Ack of ``rollback``."""
    return (f":leftwards_arrow_with_hook: Rolling back {run_id(rid)}… progress is shown in its "
            "plan message and the result here.")


def rollback_done(rid: str, state: str, detail: str) -> str:
    """The end of a rollback of an interrupted run."""
    return f":leftwards_arrow_with_hook: Run {run_id(rid)} is {escape_mrkdwn(state)}: " \
        f"{escape_mrkdwn(detail[:1500])}"


def action_failed() -> str:
    """A button or form could not be handled."""
    return INTERNAL_ERROR


def modal_field_error(err: InputError) -> str:
    """The error text under a modal field (plain text, at most 150 characters shown well)."""
    return str(err)[:300]
