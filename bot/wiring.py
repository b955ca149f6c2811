"""Composition root: the only module that builds adapters and loads runbooks and probes.

``build_engine(settings)`` gives the CLI and the Slack app the same ``Engine``: one
``KubeAdapter`` per known cluster (lazy: nothing connects until a command needs it), every
status probe from ``runbooks.probes``, and the SQL audit store (a fresh SQLite file is
migrated on first start; PostgreSQL must be migrated with ``k8snet db upgrade``).
"""

from __future__ import annotations

import os

from bot.adapters import db
from bot.adapters.kube import KubeAdapter
from bot.engine.core import ClusterRef, Engine
from bot.settings import Settings, resolve_clusters
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
    db.ensure_schema(settings.database_url)
    return db.AuditStore(settings.database_url)


def build_engine(settings: Settings, *, kubeconfig: str | os.PathLike[str] | None = None
                 ) -> Engine:
    """The engine for CLI and Slack. Raises SettingsError (bad settings/kubeconfig) or the
    database's error when the audit store cannot be used."""
    adapters, default = build_adapters(settings, kubeconfig)
    audit = build_audit(settings)
    refs = [ClusterRef(name=n, server=a.server) for n, a in adapters.items()]
    return Engine(clusters=refs, default_cluster=default, readers=adapters.__getitem__,
                  probes=all_probes(), audit=audit)
