"""Prometheus metrics (DESIGN.md §10), served at ``/metrics`` by the HTTP server.

- ``k8snet_commands_total{source, outcome}``: commands recorded in the audit trail
  (source ``slack``/``cli``; outcome ``ok``/``error``/``refused``/``rejected``).
- ``k8snet_status_seconds{cluster}``: wall time of one status report, seconds.
- ``k8snet_status_sections{cluster, status}``: sections per status in the last report.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

COMMANDS = Counter("k8snet_commands_total", "Commands recorded in the audit trail.",
                   ["source", "outcome"])
STATUS_SECONDS = Histogram("k8snet_status_seconds", "Wall time of one status report.",
                           ["cluster"], buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
STATUS_SECTIONS = Gauge("k8snet_status_sections", "Sections per status in the last report.",
                        ["cluster", "status"])


def exposition() -> tuple[bytes, str]:
    """The metrics in the Prometheus text format and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
