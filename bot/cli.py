"""``k8snet``: the terminal CLI over the same engine as the Slack bot.

Commands: ``status``, ``clusters``, ``runbooks``, ``plan``, ``apply``, ``history``, ``show``,
``rollback``, ``audit verify|export``, ``db upgrade|downgrade``, ``serve``. Every command is
recorded in the audit trail (``commands``) with its outcome.

Runbooks from a terminal: ``k8snet plan <runbook> k=v ...`` prints the plan's diff and the run
id; the run then awaits approval, which happens in Slack (``/k8snet approve <id>``, by someone
other than the requester); ``k8snet apply <id>`` executes an approved run and prints its
progress and outcome. There is no approve command in the CLI.

Exit status (stable, for scripts):

- 0: the command did its job (for ``status``: the report was made, whatever it says, unless
  ``--fail-on`` is given; for ``apply``: the run succeeded or had nothing to do; for
  ``audit verify``: every chain is intact);
- 1: ``--fail-on`` threshold reached (``warning``: any warning or critical finding, or any
  section that could not be decided; ``critical``: any critical finding); ``apply`` or
  ``rollback`` ended failed, rolled back, rollback failed or stale; ``audit verify`` found a
  broken chain (naming ``<table> row <id>``);
- 2: bad usage or input (unknown cluster, runbook, parameter, run; bad flag value) or a
  refusal (not approved, expired, role, locked);
- 3: the cluster could not be reached or refused the first request;
- 4: bad settings, kubeconfig or database.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from bot import __version__
from bot.engine.core import Actor, Engine
from bot.render.runs import RunViewLike, state_of
from bot.render.text import (
    clusters_text,
    history_json,
    history_text,
    report_json,
    report_text,
    run_json,
    run_text,
    runbooks_json,
    runbooks_text,
)
from bot.sdk.audit import AuditSink, CommandRecord
from bot.sdk.errors import InputError, K8snetError, KubeError, Refused, SettingsError
from bot.sdk.results import SectionStatus, Severity
from bot.settings import Settings, load_settings

if TYPE_CHECKING:
    from bot.wiring import Runs

EXIT_FAIL_ON = 1
EXIT_RUN_FAILED = 1
EXIT_BROKEN = 1
EXIT_INPUT = 2
EXIT_CLUSTER = 3
EXIT_SETTINGS = 4

_OK_STATES = frozenset({"succeeded", "nothing_to_do"})


def _actor() -> Actor:
    """The terminal user, from the process's real uid (never from ``$USER``/``$LOGNAME``,
    which anyone can set): ``cli:<login name>``, or ``cli:uid-<n>`` without a passwd entry."""
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name or f"uid-{uid}"
    except KeyError:
        user = f"uid-{uid}"
    return Actor(user=f"cli:{user}", source="cli", channel="terminal")


def _command_text() -> str:
    """The command as the audit trail records it, rebuilt from the parsed parameters (so it
    is the same whether run from a shell or a test): arguments, then options, e.g.
    ``k8snet plan netpol-dns-allow namespaces=web --cluster prod --output text``."""
    ctx = click.get_current_context()
    parts = [ctx.command_path]
    params = sorted(ctx.command.params, key=lambda p: not isinstance(p, click.Argument))
    for param in params:  # arguments first, then options, each in declaration order
        name = param.name or ""
        value = ctx.params.get(name)
        if value is None or value is False or value == ():
            continue
        if isinstance(param, click.Argument):
            values = value if isinstance(value, tuple) else (value,)
            parts.extend(shlex.quote(str(v)) for v in values)
            continue
        flag = "--" + name.replace("_", "-")
        parts.append(flag if value is True else f"{flag} {shlex.quote(str(value))}")
    text = " ".join(parts)
    return text if len(text) <= 2000 else text[:2000] + "…"


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


def _drive(ctx: click.Context, run_id: str, kubeconfig: str | None, output: str,
           action: str, ok_states: frozenset[str]) -> None:
    """Execute (``apply``) or roll back (``rollback``) a run, printing progress and the
    outcome; audited; exit 1 unless the run ends in ``ok_states``, 2 when refused."""
    t0, started_at = time.monotonic(), datetime.now(UTC)
    printer = _ProgressPrinter(err=output == "json")
    printer.run_id = run_id.strip()
    with _runs(ctx, kubeconfig, printer) as (engine, runs):
        try:
            view = (runs.service.execute(_actor(), run_id) if action == "apply"
                    else runs.service.rollback_interrupted(_actor(), run_id))
        except K8snetError as e:
            _fail(engine, t0, started_at, None, e, output)
            return
        state = state_of(view.run)
        verb = "applied" if action == "apply" else "rollback of"
        _record(engine, t0, started_at, view.run.cluster,
                "ok" if state in ok_states else "error", f"{verb} {view.run.id}: {state}")
    click.echo(run_json(view) if output == "json" else run_text(view, diff=False),
               nl=output == "json")
    if state not in ok_states:
        sys.exit(EXIT_RUN_FAILED)


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
        codes = sorted({f.code for f in report.findings if f.severity.rank >= threshold.rank})
        unknown = [s.name for s in report.sections if s.status is SectionStatus.UNKNOWN] \
            if threshold is Severity.WARNING else []
        if codes or unknown:
            why = []
            if codes:
                why.append(f"findings at or above {fail_on}: {', '.join(codes)}")
            if unknown:
                why.append(f"sections that could not be decided: {', '.join(unknown)}")
            click.echo(f"--fail-on {fail_on}: " + "; ".join(why), err=True)
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
    engine.record(_actor(), _command_text(), None, "ok",
                  f"{len(rows)} cluster{'' if len(rows) == 1 else 's'}", t0,
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
    """Migrate the audit database (settings `database_url`) up to --revision (default: the
    newest)."""
    _migrate(ctx, "upgrade", revision)


@db.command("downgrade")
@click.argument("revision")
@click.pass_context
def db_downgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the audit database down to REVISION; `base` drops every table."""
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
    from bot.wiring import build_serve

    settings = _settings(ctx)
    try:
        engine, runs, client = build_serve(settings, kubeconfig=kubeconfig)
    except K8snetError as e:
        _die(str(e), EXIT_SETTINGS)
        return
    try:
        slack_serve(engine, settings, port=port, host=host, socket_mode=socket_mode,
                    runs=runs.service, client=client, attach_message=runs.attach_message)
    except SettingsError as e:
        _die(str(e), EXIT_SETTINGS)
    finally:
        runs.close()


# ============================================================================ runbooks


class _ProgressPrinter:
    """A ``RunNotifier`` for the terminal: prints each progress sentence of the run being
    applied (to stderr with ``--output json``, so stdout stays one JSON document)."""

    def __init__(self, err: bool) -> None:
        self.err = err
        self.run_id = ""

    def run_changed(self, view: RunViewLike, message: str) -> None:
        if message and (not self.run_id or view.run.id == self.run_id):
            click.echo(f"  … {message}", err=self.err)


@contextmanager
def _runs(ctx: click.Context, kubeconfig: str | None = None,
          printer: _ProgressPrinter | None = None) -> Iterator[tuple[Engine, Runs]]:
    """The engine and the runs of the settings; closed (executions finished) afterwards."""
    from bot.wiring import build_all

    settings = _settings(ctx)
    try:
        engine, runs = build_all(settings, kubeconfig=kubeconfig, notifier=printer)
    except K8snetError as e:
        _die(str(e), EXIT_SETTINGS)
        raise AssertionError("unreachable") from e
    try:
        yield engine, runs
    finally:
        runs.close()


def _record(audit: AuditSink | Engine, t0: float, started_at: datetime, cluster: str | None,
            outcome: str, detail: str) -> None:
    """Record the current CLI command in the audit trail."""
    actor = _actor()
    text = _command_text()
    if isinstance(audit, Engine):
        audit.record(actor, text, cluster, outcome, detail, t0, started_at)
        return
    audit.record_command(CommandRecord(
        actor=actor.user, source=actor.source, channel=actor.channel, text=text,
        cluster=cluster, outcome=outcome, detail=detail[:1000],
        duration_ms=int((time.monotonic() - t0) * 1000), started_at=started_at))


def _fail(engine: Engine, t0: float, started_at: datetime, cluster: str | None,
          err: K8snetError, output: str) -> None:
    """Record and report an error of a runbook command, then exit with its status."""
    if isinstance(err, Refused):
        outcome, code, detail = "refused", EXIT_INPUT, f"{err.reason}: {err}"
    elif isinstance(err, InputError):
        outcome, code, detail = "error", EXIT_INPUT, str(err)
    elif isinstance(err, KubeError):
        outcome, code, detail = "error", EXIT_CLUSTER, str(err)
    else:
        outcome, code, detail = "error", EXIT_SETTINGS, str(err)
    _record(engine, t0, started_at, cluster, outcome, detail)
    message = str(err)
    if isinstance(err, InputError) and err.field:
        message += f" (field: {err.field})"
    if output == "json":
        click.echo(json.dumps({"error": message, "outcome": outcome,
                               **({"field": err.field} if isinstance(err, InputError) else {}),
                               **({"reason": err.reason} if isinstance(err, Refused) else {})}))
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _raw_params(pairs: tuple[str, ...]) -> tuple[dict[str, Any], str | None]:
    """``k=v`` words as the engine takes them (a repeated key gives a list) and the value of
    ``cluster=`` if one was given. UsageError for a word without ``=``."""
    raw: dict[str, Any] = {}
    cluster: str | None = None
    for word in pairs:
        key, sep, value = word.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.UsageError(f"{word!r} is not a key=value parameter")
        if key == "cluster":
            cluster = value
            continue
        if key in raw:
            prev = raw[key]
            raw[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            raw[key] = value
    return raw, cluster


_OUTPUT = click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text",
                       show_default=True, help="Readable text, or JSON for scripts.")
_KUBECONFIG = click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
                           help="Use the contexts of this kubeconfig file as the clusters.")


@cli.command()
@_OUTPUT
@click.pass_context
def runbooks(ctx: click.Context, output: str) -> None:
    """List the runbooks: versions, risk and summary."""
    t0, started_at = time.monotonic(), datetime.now(UTC)
    with _runs(ctx) as (engine, runs):
        infos = runs.service.runbooks()
        _record(engine, t0, started_at, None, "ok", f"{len(infos)} runbooks")
    click.echo(runbooks_json(infos) if output == "json" else runbooks_text(infos),
               nl=output == "json")


@cli.command()
@click.argument("runbook", metavar="RUNBOOK[@MAJOR]")
@click.argument("params", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--cluster", "cluster", default=None, metavar="NAME",
              help="Cluster name (default: the default cluster).")
@_KUBECONFIG
@_OUTPUT
@click.pass_context
def plan(ctx: click.Context, runbook: str, params: tuple[str, ...], cluster: str | None,
         kubeconfig: str | None, output: str) -> None:
    """Plan a runbook run and print its diff and run id. Nothing changes: the run awaits
    approval in Slack (`/k8snet approve <id>`, by someone else), then `k8snet apply <id>`.

    PARAMS are KEY=VALUE words; lists are comma separated (namespaces=shop,web) or repeated
    keys; quote values with spaces."""
    t0, started_at = time.monotonic(), datetime.now(UTC)
    raw, cluster_param = _raw_params(params)
    cluster = cluster or cluster_param
    with _runs(ctx, kubeconfig) as (engine, runs):
        try:
            view = runs.service.plan(_actor(), cluster, runbook, raw)
        except K8snetError as e:
            _fail(engine, t0, started_at, cluster, e, output)
            return
        run = view.run
        _record(engine, t0, started_at, run.cluster, "ok",
                f"planned {run.id}: {run.runbook}@{run.version}, {len(view.plan.changes)} "
                f"changes, {state_of(run)}")
    if output == "json":
        click.echo(run_json(view))
        return
    click.echo(run_text(view), nl=False)
    if state_of(run) == "awaiting_approval":
        click.echo(f"\nRun id: {run.id}\nIt awaits approval in Slack by someone other than "
                   f"you: /k8snet approve {run.id}\nThen apply it: k8snet apply {run.id}")
    else:
        click.echo(f"\nRun id: {run.id} (nothing to apply)")


@cli.command()
@click.argument("run_id", metavar="RUN_ID")
@_KUBECONFIG
@_OUTPUT
@click.pass_context
def apply(ctx: click.Context, run_id: str, kubeconfig: str | None, output: str) -> None:
    """Apply an approved run: re-check, apply, verify (rolled back when verification fails);
    print the progress and the outcome. Exit 0 succeeded, 1 failed / rolled back / stale,
    2 refused (e.g. not approved)."""
    _drive(ctx, run_id, kubeconfig, output, "apply", _OK_STATES)


@cli.command()
@click.option("-n", "limit", type=click.IntRange(1, 100), default=10, show_default=True,
              help="How many runs, newest first.")
@click.option("--cluster", "cluster", default=None, metavar="NAME", help="Only this cluster.")
@_OUTPUT
@click.pass_context
def history(ctx: click.Context, limit: int, cluster: str | None, output: str) -> None:
    """The newest runs: id, runbook, cluster, state, requester."""
    t0, started_at = time.monotonic(), datetime.now(UTC)
    with _runs(ctx) as (engine, runs):
        try:
            runs.service.recover_interrupted()  # runs whose process died (no serve needed)
            views = runs.service.history(limit=limit, cluster=cluster)
        except K8snetError as e:
            _fail(engine, t0, started_at, cluster, e, output)
            return
        _record(engine, t0, started_at, cluster, "ok", f"{len(views)} runs")
    click.echo(history_json(views) if output == "json" else history_text(views),
               nl=output == "json")


@cli.command()
@click.argument("run_id", metavar="RUN_ID")
@_OUTPUT
@click.pass_context
def show(ctx: click.Context, run_id: str, output: str) -> None:
    """One run: state, approvals, diff, what was applied, and every step."""
    t0, started_at = time.monotonic(), datetime.now(UTC)
    with _runs(ctx) as (engine, runs):
        try:
            runs.service.recover_interrupted([run_id])  # its process died: say so
            view = runs.service.get(run_id)
            events = runs.service.events(run_id)
        except K8snetError as e:
            _fail(engine, t0, started_at, None, e, output)
            return
        _record(engine, t0, started_at, view.run.cluster, "ok",
                f"{view.run.id} {state_of(view.run)}")
    click.echo(run_json(view, events) if output == "json" else run_text(view, events),
               nl=output == "json")


@cli.command()
@click.argument("run_id", metavar="RUN_ID")
@_KUBECONFIG
@_OUTPUT
@click.pass_context
def rollback(ctx: click.Context, run_id: str, kubeconfig: str | None, output: str) -> None:
    """Roll back a run interrupted mid-apply (its process died, was stopped, or lost the
    cluster lock; a run still marked running whose process is gone is recovered first). Needs
    the approver role. Exit 0 rolled back, 1 rollback failed, 2 refused (e.g. not
    interrupted)."""
    _drive(ctx, run_id, kubeconfig, output, "rollback", frozenset({"rolled_back"}))


# ============================================================================ audit


@cli.group()
def audit() -> None:
    """Audit trail: verify the hash chains, export them."""


def _audit_store(ctx: click.Context) -> Any:
    from bot.wiring import build_audit

    try:
        return build_audit(_settings(ctx))
    except K8snetError as e:
        _die(str(e), EXIT_SETTINGS)


@audit.command("verify")
@_OUTPUT
@click.pass_context
def audit_verify(ctx: click.Context, output: str) -> None:
    """Recompute every hash of the `commands` and `run_events` chains. Exit 0 when intact,
    1 naming the first broken row (`<table> row <id>`)."""
    t0, started_at = time.monotonic(), datetime.now(UTC)
    store = _audit_store(ctx)
    try:
        check = store.verify_chain()
        table = getattr(check, "table", None)
        _record(store, t0, started_at, None, "ok" if check.ok else "error", check.reason)
    except K8snetError as e:
        _die(str(e), EXIT_SETTINGS)
    finally:
        store.close()
    if output == "json":
        click.echo(json.dumps({"ok": check.ok, "table": table, "row": check.first_bad_id,
                               "reason": check.reason}))
    elif check.ok:
        click.echo(f"Audit trail intact: {check.reason}.")
    else:
        click.echo(f"Audit trail BROKEN: {check.reason}", err=False)
    if not check.ok:
        sys.exit(EXIT_BROKEN)


@audit.command("export")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, allow_dash=True),
              default="-", show_default=True, help="File to write the JSON lines to.")
@click.pass_context
def audit_export(ctx: click.Context, output: str) -> None:
    """Write every audit row (`commands`, then `run_events`) as JSON lines, with the hashes
    needed to check the chain independently."""
    t0, started_at = time.monotonic(), datetime.now(UTC)
    store = _audit_store(ctx)
    try:
        if output == "-":
            n = store.export_jsonl(sys.stdout)
        else:
            with open(output, "w", encoding="utf-8") as fp:
                n = store.export_jsonl(fp)
        _record(store, t0, started_at, None, "ok", f"{n} rows exported")
    except BrokenPipeError:
        raise  # the reader (e.g. `| head`) stopped reading: handled quietly by main()
    except OSError as e:
        _die(f"Cannot write {output}: {e.strerror}", EXIT_INPUT)
    except K8snetError as e:
        _die(str(e), EXIT_SETTINGS)
    finally:
        store.close()
    if output != "-":
        click.echo(f"Exported {n} audit rows to {output}.", err=True)


def main() -> None:
    """Console-script entry point. A reader that closes the pipe early (``k8snet audit export
    | head``) ends the command quietly, as with other Unix tools."""
    try:
        cli(prog_name="k8snet")
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error while flushing at exit
        sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
