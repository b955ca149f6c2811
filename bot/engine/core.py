"""The engine facade that the CLI and Slack both drive: clusters, status, audit.

``Engine`` is built by ``bot.wiring`` from settings; callers never construct adapters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.engine import metrics
from bot.engine.status import build_report
from bot.sdk.audit import AuditSink, CommandRecord
from bot.sdk.errors import InputError, K8snetError
from bot.sdk.ports import KubeReader
from bot.sdk.probe import Probe
from bot.sdk.results import ClusterReport


@dataclass(frozen=True)
class ClusterRef:
    """A cluster the engine knows: its ``name`` and the API ``server`` URL ("" if unknown)."""

    name: str
    server: str = ""


@dataclass(frozen=True)
class Actor:
    """Who asked: ``user`` (Slack user id or ``cli:<os user>``), ``source`` (``slack``/``cli``),
    ``channel`` (Slack channel id or ``terminal``)."""

    user: str
    source: str
    channel: str


class Engine:
    """Clusters, status reports and the audit trail, independent of Slack and terminals.

    ``readers(name)`` returns a ``KubeReader`` for a known cluster (built lazily by wiring);
    ``servers`` maps cluster name -> API server URL for display.
    """

    def __init__(
        self,
        *,
        clusters: Sequence[ClusterRef],
        default_cluster: str | None,
        readers: Callable[[str], KubeReader],
        probes: Sequence[Probe],
        audit: AuditSink,
    ) -> None:
        self._clusters = {c.name: c for c in clusters}
        self.default_cluster = default_cluster
        self._readers = readers
        self.probes = list(probes)
        self.audit = audit

    def clusters(self) -> list[ClusterRef]:
        """Known clusters, sorted by name."""
        return [self._clusters[n] for n in sorted(self._clusters)]

    def resolve_cluster(self, name: str | None) -> ClusterRef:
        """The named cluster, or the default one. Raises InputError (field ``cluster``) that
        lists the valid names when the name is unknown or no default exists."""
        valid = ", ".join(sorted(self._clusters)) or "(none configured)"
        if not name:
            if self.default_cluster and self.default_cluster in self._clusters:
                return self._clusters[self.default_cluster]
            raise InputError(f"No cluster given and no default cluster is set. Known clusters: "
                             f"{valid}.", field="cluster")
        if name not in self._clusters:
            raise InputError(f"Unknown cluster {name!r}. Known clusters: {valid}.",
                             field="cluster")
        return self._clusters[name]

    def status(self, cluster: str | None) -> ClusterReport:
        """Build the status report of one cluster. Raises InputError for an unknown cluster and
        KubeError when its API server cannot be reached at all."""
        ref = self.resolve_cluster(cluster)
        return build_report(ref.name, self._readers(ref.name), self.probes, server=ref.server)

    def record(self, actor: Actor, text: str, cluster: str | None, outcome: str, detail: str,
               started: float, started_at: datetime | None = None) -> int:
        """Append one command to the audit trail; ``started`` is a ``time.monotonic()`` value.
        Returns the row id. Storage errors propagate (an unaudited command is an error)."""
        metrics.COMMANDS.labels(actor.source, outcome).inc()
        return self.audit.record_command(CommandRecord(
            actor=actor.user, source=actor.source, channel=actor.channel, text=text,
            cluster=cluster, outcome=outcome, detail=detail[:1000],
            duration_ms=int((time.monotonic() - started) * 1000),
            started_at=started_at or datetime.now(UTC)))

    def run_status(self, actor: Actor, text: str, cluster: str | None) -> ClusterReport:
        """``status`` as one audited command: resolves the cluster, builds the report, records
        outcome ``ok`` (detail = overall status) or ``error`` (detail = the message) and
        re-raises errors after recording them."""
        t0 = time.monotonic()
        started_at = datetime.now(UTC)
        name = cluster
        try:
            ref = self.resolve_cluster(cluster)
            name = ref.name
            report = build_report(ref.name, self._readers(ref.name), self.probes,
                                  server=ref.server)
        except K8snetError as e:
            self.record(actor, text, name, "error", str(e), t0, started_at)
            raise
        self.record(actor, text, name, "ok", f"status {report.status.value}", t0, started_at)
        return report
