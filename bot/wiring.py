"""Composition root: the only module that builds adapters and loads runbooks and probes.

``build_engine(settings)`` gives the CLI and the Slack app the same ``Engine``: one
``KubeAdapter`` per known cluster (lazy: nothing connects until a command needs it), every
status probe from ``runbooks.probes``, and the SQL audit store (a fresh SQLite file is
migrated on first start; PostgreSQL must be migrated with ``k8snet db upgrade``).

``build_all(settings)`` gives the same ``Engine`` plus the runbook side (:class:`Runs`): a
``RunService`` over ``Registry().discover()`` (every runbook in ``runbooks/``), the SQL run
store at ``settings.database_url``, ``PolicyEngine(settings.policy, group_members)``, the same
kube adapters as readers and writers, and a lock holder from ``default_holder()`` (host,
pid, random, PID namespace).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.adapters import db
from bot.adapters.kube import KubeAdapter
from bot.engine.core import ClusterRef, Engine
from bot.engine.policy import PolicyEngine
from bot.engine.registry import Registry
from bot.engine.service import RunNotifier, RunService, default_holder
from bot.settings import Settings, default_database_url, resolve_clusters
from runbooks.probes import all_probes


def build_adapters(settings: Settings, kubeconfig: str | os.PathLike[str] | None = None
                   ) -> tuple[dict[str, KubeAdapter], str | None]:
    """One adapter per cluster (see ``bot.settings.resolve_clusters``) and the default name.
    Raises SettingsError for an invalid default cluster or an unreadable kubeconfig."""
    clusters, default = resolve_clusters(settings, kubeconfig)
    adapters = {
        name: KubeAdapter(
            name,
            kubeconfig=str(c.kubeconfig) if c.kubeconfig else None,
            context=c.context,
            in_cluster=c.in_cluster,
            timeout=c.request_timeout_seconds,
        )
        for name, c in clusters.items()
    }
    return adapters, default


def build_audit(settings: Settings) -> db.AuditStore:
    """The audit store at ``settings.database_url``, schema checked (SQLite migrated)."""
    db.ensure_schema(settings.database_url,
                     create_dir=settings.database_url == default_database_url())
    return db.AuditStore(settings.database_url)


def _engine(adapters: dict[str, KubeAdapter], default: str | None,
            audit: db.AuditStore) -> Engine:
    refs = [ClusterRef(name=n, server=a.server) for n, a in adapters.items()]
    return Engine(clusters=refs, default_cluster=default, readers=adapters.__getitem__,
                  probes=all_probes(), audit=audit)


def build_engine(settings: Settings, *, kubeconfig: str | os.PathLike[str] | None = None
                 ) -> Engine:
    """The engine for CLI and Slack. Raises SettingsError (bad settings/kubeconfig) or the
    database's error when the audit store cannot be used."""
    adapters, default = build_adapters(settings, kubeconfig)
    return _engine(adapters, default, build_audit(settings))


@dataclass
class Runs:
    """The runbook side: ``service`` (plans, approvals, executions), its SQL ``store`` and the
    ``audit`` store (``verify``/``export`` of the hash chains)."""

    service: RunService
    store: db.RunStoreSQL
    audit: db.AuditStore

    def attach_message(self, run_id: str, channel: str, ts: str) -> None:
        """Store where a run's plan message was posted in Slack (for later edits)."""
        self.store.update_fields(run_id, message_channel=channel, message_ts=ts)

    def close(self) -> None:
        """Stop the service's executor (waiting for running executions) and close the
        database connections."""
        self.service.shutdown(wait=True)
        self.store.close()


def build_registry(package: str = "runbooks") -> Registry:
    """Every runbook of ``package`` (``Registry().discover()``)."""
    registry = Registry()
    registry.discover(package)
    return registry


def build_runs(settings: Settings, adapters: dict[str, KubeAdapter], default: str | None, *,
               audit: db.AuditStore | None = None, notifier: RunNotifier | None = None,
               group_members: Callable[[str], set[str]] | None = None,
               holder: str | None = None) -> Runs:
    """The ``RunService`` over ``adapters`` (readers and writers), the discovered runbooks,
    the run store at ``settings.database_url`` (schema checked; SQLite migrated) and the
    approval policy of ``settings.policy``."""
    db.ensure_schema(settings.database_url,
                     create_dir=settings.database_url == default_database_url())
    store = db.RunStoreSQL(settings.database_url)
    policy = settings.policy
    service = RunService(
        registry=build_registry(), store=store,
        policy=PolicyEngine(policy, group_members),
        clusters=list(adapters), readers=adapters.__getitem__, writers=adapters.__getitem__,
        holder=holder or default_holder(),
        ttl=timedelta(minutes=policy.approval_ttl_minutes),
        lock_lease_seconds=policy.lock_lease_seconds, notifier=notifier,
        default_cluster=default)
    return Runs(service=service, store=store,
                audit=audit or db.AuditStore(settings.database_url))


def build_all(settings: Settings, *, kubeconfig: str | os.PathLike[str] | None = None,
              notifier: RunNotifier | None = None,
              group_members: Callable[[str], set[str]] | None = None
              ) -> tuple[Engine, Runs]:
    """The ``Engine`` and the :class:`Runs` sharing one set of kube adapters and one audit
    store. Raises SettingsError or the database's error like :func:`build_engine`."""
    adapters, default = build_adapters(settings, kubeconfig)
    audit = build_audit(settings)
    engine = _engine(adapters, default, audit)
    runs = build_runs(settings, adapters, default, audit=audit, notifier=notifier,
                      group_members=group_members)
    return engine, runs


def build_serve(settings: Settings, *, kubeconfig: str | os.PathLike[str] | None = None
                ) -> tuple[Engine, Runs, Any]:
    """What ``k8snet serve`` runs: the engine, the runs (roles may name Slack user groups,
    resolved with the bot token, cached) and the Slack WebClient (None without a bot token;
    ``serve`` then refuses to start, naming the missing setting)."""
    from bot.slack.app import make_client
    from bot.slack.groups import SlackGroupMembers

    client = make_client(settings) if settings.slack_bot_token is not None else None
    groups = SlackGroupMembers(client) if client is not None else None
    engine, runs = build_all(settings, kubeconfig=kubeconfig, group_members=groups)
    return engine, runs, client
