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
    KubeError,
    KubeForbidden,
    KubeTimeout,
    KubeUnreachable,
)
from bot.slack.grammar import MAX_TEXT, GrammarError, Reason

COMMAND = "/k8snet"

HELP = (
    "*k8snet* answers \"what is my cluster's network doing?\"\n"
    f"• `{COMMAND} status [cluster]`: network status report (CNI, kube-proxy, conntrack, "
    "MetalLB, NetworkPolicy, BGP, nodes), posted in this channel\n"
    f"• `{COMMAND} clusters`: the clusters I know, and the default one\n"
    f"• `{COMMAND} help`: this message"
)

VALID_SUBCOMMANDS = "Valid subcommands: `help`, `status [cluster]`, `clusters`."

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


def grammar_error(err: GrammarError) -> str:
    """Why a command text was refused, and what is valid."""
    if err.reason is Reason.TOO_LONG:
        return (f":no_entry: That command is {err.length} characters long; the limit is "
                f"{MAX_TEXT}. Nothing was run.")
    if err.reason is Reason.CONTROL_CHARACTERS:
        return (":no_entry: That command contains control characters (tabs, line breaks or "
                "invisible direction marks). Type it on one line without them. Nothing was run.")
    if err.reason is Reason.TOO_MANY_ARGUMENTS:
        usage = "status [cluster]" if err.subcommand == "status" else err.subcommand
        return (f":warning: Too many words: usage is `{COMMAND} {usage}`. Nothing was run.\n"
                f"{VALID_SUBCOMMANDS}")
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
