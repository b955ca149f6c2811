"""``k8snet``: the terminal CLI over the same engine as the Slack bot.

Exit status (stable, for scripts):

- 0: the command did its job (for ``status``: the report was made, whatever it says, unless
  ``--fail-on`` is given);
- 1: ``--fail-on`` threshold reached (``warning``: any warning or critical finding, or any
  section that could not be decided; ``critical``: any critical finding);
- 2: bad usage or input (unknown cluster, bad flag value);
- 3: the cluster could not be reached or refused the first request;
- 4: bad settings, kubeconfig or database.
"""

from __future__ import annotations

import getpass
import json
import shlex
import shutil
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click

from bot import __version__
from bot.engine.core import Actor, Engine
from bot.render.text import clusters_text, report_json, report_text
from bot.sdk.audit import CommandRecord
from bot.sdk.errors import InputError, K8snetError, KubeError, SettingsError
from bot.sdk.results import SectionStatus, Severity
from bot.settings import Settings, load_settings

EXIT_FAIL_ON = 1
EXIT_INPUT = 2
EXIT_CLUSTER = 3
EXIT_SETTINGS = 4


def _actor() -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(user=f"cli:{user}", source="cli", channel="terminal")


def _command_text() -> str:
    """The command as the audit trail records it, rebuilt from the parsed parameters (so it
    is the same whether run from a shell or a test), e.g. ``k8snet status --cluster prod``."""
    ctx = click.get_current_context()
    parts = [ctx.command_path]
    for name, value in ctx.params.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        parts.append(flag if value is True else f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


def _die(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _settings(ctx: click.Context) -> Settings:
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings(obj.get("config"))
        except SettingsError as e:
            _die(str(e), EXIT_SETTINGS)
    settings: Settings = obj["settings"]
    return settings


def _engine(ctx: click.Context, kubeconfig: str | None) -> Engine:
    from bot.wiring import build_engine

    settings = _settings(ctx)
    try:
        return build_engine(settings, kubeconfig=kubeconfig)
    except K8snetError as e:
        _die(str(e), EXIT_SETTINGS)
    raise AssertionError("unreachable")


def _use_color(no_color: bool) -> bool:
    return not no_color and sys.stdout.isatty()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              envvar="K8SNET_CONFIG", help="Settings file (YAML). Env: K8SNET_CONFIG.")
@click.version_option(__version__, prog_name="k8snet")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """k8snet: what your bare-metal cluster's network is doing, and runbooks to fix it."""
    ctx.ensure_object(dict)["config"] = config


@cli.command()
@click.option("--cluster", "cluster", default=None, metavar="NAME",
              help="Cluster name (default: the default cluster / current kubeconfig context).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="Use the contexts of this kubeconfig file as the clusters.")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Readable tables, or one JSON object for scripts.")
@click.option("--fail-on", type=click.Choice(["warning", "critical"]), default=None,
              help="Exit 1 when a finding at or above this severity exists (warning also "
                   "counts sections that could not be decided).")
@click.option("--no-color", is_flag=True, help="Plain text even on a terminal.")
@click.pass_context
def status(ctx: click.Context, cluster: str | None, kubeconfig: str | None, output: str,
           fail_on: str | None, no_color: bool) -> None:
    """Report the networking state of a cluster: CNI, kube-proxy, conntrack, MetalLB,
    NetworkPolicy, BGP, nodes."""
    engine = _engine(ctx, kubeconfig)
    try:
        report = engine.run_status(_actor(), _command_text(), cluster)
    except InputError as e:
        _error_out(output, cluster, str(e))
        sys.exit(EXIT_INPUT)
    except KubeError as e:
        _error_out(output, cluster or engine.default_cluster, str(e))
        sys.exit(EXIT_CLUSTER)
    if output == "json":
        click.echo(report_json(report))
    else:
        width = shutil.get_terminal_size((120, 40)).columns if sys.stdout.isatty() else 120
        click.echo(report_text(report, width=max(80, width), color=_use_color(no_color)),
                   nl=False)
    if fail_on:
        threshold = Severity.WARNING if fail_on == "warning" else Severity.CRITICAL
        hit = any(f.severity.rank >= threshold.rank for f in report.findings)
        if threshold is Severity.WARNING:
            hit = hit or any(s.status is SectionStatus.UNKNOWN for s in report.sections)
        if hit:
            sys.exit(EXIT_FAIL_ON)


def _error_out(output: str, cluster: str | None, message: str) -> None:
    if output == "json":
        click.echo(json.dumps({"cluster": cluster, "error": message}))
    click.echo(f"Error: {message}", err=True)


@cli.command()
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="Use the contexts of this kubeconfig file as the clusters.")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.pass_context
def clusters(ctx: click.Context, kubeconfig: str | None, output: str) -> None:
    """List the clusters k8snet knows and the default one."""
    engine = _engine(ctx, kubeconfig)
    t0 = time.monotonic()
    rows = [{"name": c.name, "server": c.server, "default": c.name == engine.default_cluster}
            for c in engine.clusters()]
    engine.record(_actor(), _command_text(), None, "ok", f"{len(rows)} clusters", t0,
                  datetime.now(UTC))
    if output == "json":
        click.echo(json.dumps({"default": engine.default_cluster, "clusters": rows}, indent=2))
    else:
        click.echo(clusters_text(rows), nl=False)


@cli.group()
def db() -> None:
    """Audit database: migrations."""


def _migrate(ctx: click.Context, direction: str, revision: str) -> None:
    """Run an Alembic migration on the configured database and say where it stands."""
    from bot.adapters import db as dbmod

    settings = _settings(ctx)
    url = settings.database_url
    t0 = time.monotonic()
    try:
        (dbmod.upgrade if direction == "upgrade" else dbmod.downgrade)(url, revision)
        rev = dbmod.current_revision(url)
        if rev == dbmod.head_revision():  # the commands table exists: audit this command
            actor = _actor()
            with dbmod.AuditStore(url) as audit:
                audit.record_command(CommandRecord(
                    actor=actor.user, source=actor.source, channel=actor.channel,
                    text=_command_text(), cluster=None, outcome="ok",
                    detail=f"database at {rev}",
                    duration_ms=int((time.monotonic() - t0) * 1000)))
    except K8snetError as e:
        _die(str(e), EXIT_SETTINGS)
    click.echo(f"Audit database {dbmod.display_url(url)} is at revision {rev or 'base'}.")


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the audit database (settings `database_url`) to REVISION."""
    _migrate(ctx, "upgrade", revision)


@db.command("downgrade")
@click.argument("revision")
@click.pass_context
def db_downgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the audit database down to REVISION (e.g. `base`)."""
    _migrate(ctx, "downgrade", revision)


@cli.command()
@click.option("--port", default=3000, show_default=True, type=click.IntRange(1, 65535),
              help="HTTP port; Slack requests are served at /slack/events.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--socket-mode", is_flag=True,
              help="Connect to Slack over Socket Mode (no public URL; needs "
                   "K8SNET_SLACK_APP_TOKEN) instead of serving HTTP.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="Use the contexts of this kubeconfig file as the clusters.")
@click.pass_context
def serve(ctx: click.Context, port: int, host: str, socket_mode: bool,
          kubeconfig: str | None) -> None:
    """Run the Slack bot (HTTP with verified signatures, or Socket Mode)."""
    from bot.slack.server import serve as slack_serve

    settings = _settings(ctx)
    engine = _engine(ctx, kubeconfig)
    try:
        slack_serve(engine, settings, port=port, host=host, socket_mode=socket_mode)
    except SettingsError as e:
        _die(str(e), EXIT_SETTINGS)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="k8snet")


if __name__ == "__main__":  # pragma: no cover
    main()
