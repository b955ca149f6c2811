"""Status report assembly (DESIGN.md §4): run every probe, never lose the report.

Each probe runs in ``order``; its facts are visible to later probes. A probe that raises marks
its own section ``unknown`` with the reason; the other sections stand. Reads are cached for the
duration of one report, so probes may read the same list freely and the report costs a bounded
number of API calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.engine import metrics
from bot.sdk.errors import K8snetError, KubeError, KubeForbidden
from bot.sdk.ports import KubeReader, ProbeContext
from bot.sdk.probe import Probe
from bot.sdk.results import (
    ClusterReport,
    Finding,
    SectionReport,
    SectionStatus,
    worst_status,
)

_STATUS_RANK = {SectionStatus.OK: 0, SectionStatus.UNKNOWN: 1, SectionStatus.WARNING: 2,
                SectionStatus.CRITICAL: 3}


class CachingReader:
    """A ``KubeReader`` that remembers each distinct read (result or error) for one report.

    Thread-safe. ``calls`` counts reads that reached the wrapped reader.
    """

    def __init__(self, inner: KubeReader) -> None:
        self.inner = inner
        self.calls = 0
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple[Any, ...], fn: Any) -> Any:
        with self._lock:
            if key in self._cache:
                kind, value = self._cache[key]
                if kind == "err":
                    raise value
                return value
        try:
            self.calls += 1
            value = fn()
        except K8snetError as e:
            with self._lock:
                self._cache[key] = ("err", e)
            raise
        with self._lock:
            self._cache[key] = ("ok", value)
        return value

    def list(self, api_version: str, plural: str, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None
             ) -> list[dict[str, Any]]:
        key = ("list", api_version, plural, namespace, label_selector, field_selector)
        return list(self._cached(key, lambda: self.inner.list(
            api_version, plural, namespace, label_selector, field_selector)))

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None
            ) -> dict[str, Any] | None:
        key = ("get", api_version, plural, name, namespace)
        value: dict[str, Any] | None = self._cached(
            key, lambda: self.inner.get(api_version, plural, name, namespace))
        return value

    def served(self, api_version: str, plural: str) -> bool:
        return bool(self._cached(("served", api_version, plural),
                                 lambda: self.inner.served(api_version, plural)))

    def pod_log(self, namespace: str, name: str, container: str | None = None,
                tail_lines: int = 200) -> str:
        return str(self._cached(("log", namespace, name, container, tail_lines),
                                lambda: self.inner.pod_log(namespace, name, container, tail_lines)))

    def server_version(self) -> dict[str, Any]:
        return dict(self._cached(("version",), self.inner.server_version))


def _reason(err: Exception) -> str:
    if isinstance(err, KubeForbidden):
        return str(err)
    if isinstance(err, K8snetError):
        return str(err)
    return f"internal error in probe: {type(err).__name__}: {err}"


def build_report(
    cluster: str,
    reader: KubeReader,
    probes: Sequence[Probe],
    *,
    server: str = "",
) -> ClusterReport:
    """Run ``probes`` against ``reader`` and assemble the report.

    Raises the ``KubeError`` of ``/version`` when the API server cannot be reached at all
    (there is no report to make); every other failure becomes an ``unknown`` section.
    Sections are displayed in each probe's ``position`` (then ``order``).
    """
    t0 = time.monotonic()
    cached = CachingReader(reader)
    version = cached.server_version()  # unreachable cluster: raise, no report
    ctx = ProbeContext(cluster=cluster, kube=cached)
    sections: dict[str, SectionReport] = {}
    for probe in sorted(probes, key=lambda p: p.order):
        try:
            insp = probe.inspect(ctx)
        except (KubeError, K8snetError, Exception) as e:
            sections[probe.section] = SectionReport(
                name=probe.section, title=probe.title, status=SectionStatus.UNKNOWN,
                summary="unknown", error=_reason(e))
            continue
        ctx.facts[probe.section] = dict(insp.facts)
        findings: tuple[Finding, ...] = insp.findings
        status = worst_status(findings)
        if insp.facts.get("undecided"):
            status = max(status, SectionStatus.UNKNOWN, key=_STATUS_RANK.__getitem__)
        sections[probe.section] = SectionReport(
            name=probe.section, title=probe.title, status=status, summary=insp.summary,
            error=insp.facts.get("undecided") or None,
            not_checked=insp.facts.get("not_checked") or None, findings=findings,
            facts=insp.facts)
    ordered = [sections[p.section] for p in sorted(
        probes, key=lambda p: (getattr(p, "position", p.order), p.order))]
    overall = max((s.status for s in ordered), key=_STATUS_RANK.__getitem__,
                  default=SectionStatus.OK)
    elapsed = time.monotonic() - t0
    metrics.STATUS_SECONDS.labels(cluster).observe(elapsed)
    for st in SectionStatus:
        metrics.STATUS_SECTIONS.labels(cluster, st.value).set(
            sum(1 for s in ordered if s.status is st))
    return ClusterReport(
        cluster=cluster, generated_at=datetime.now(UTC), server=server,
        kubernetes_version=version.get("gitVersion"), status=overall, sections=tuple(ordered),
        duration_ms=int(elapsed * 1000))
