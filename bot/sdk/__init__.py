"""What runbooks and probes may import: results, ports, errors and the probe base.

Stdlib and pydantic only (DESIGN.md §2).
"""

from bot.sdk.errors import (
    InputError,
    K8snetError,
    KubeApiError,
    KubeError,
    KubeForbidden,
    KubeNotFound,
    KubeTimeout,
    KubeUnreachable,
    SettingsError,
)
from bot.sdk.ports import KubeReader, ProbeContext
from bot.sdk.probe import Probe, ProbeError
from bot.sdk.results import (
    ClusterReport,
    Finding,
    Inspection,
    SectionReport,
    SectionStatus,
    Severity,
    worst_status,
)

__all__ = [
    "ClusterReport",
    "Finding",
    "InputError",
    "Inspection",
    "K8snetError",
    "KubeApiError",
    "KubeError",
    "KubeForbidden",
    "KubeNotFound",
    "KubeReader",
    "KubeTimeout",
    "KubeUnreachable",
    "Probe",
    "ProbeContext",
    "ProbeError",
    "SectionReport",
    "SectionStatus",
    "SettingsError",
    "Severity",
    "worst_status",
]
