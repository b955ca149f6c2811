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
    Refused,
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
from bot.sdk.runbook import (
    Applied,
    Change,
    Check,
    KubeWriter,
    Params,
    PhaseError,
    Plan,
    Risk,
    Runbook,
    RunContext,
    Verification,
    strip_noise,
)

__all__ = [
    "Applied",
    "Change",
    "Check",
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
    "KubeWriter",
    "Params",
    "PhaseError",
    "Plan",
    "Probe",
    "ProbeContext",
    "ProbeError",
    "Refused",
    "Risk",
    "RunContext",
    "Runbook",
    "SectionReport",
    "SectionStatus",
    "SettingsError",
    "Severity",
    "Verification",
    "strip_noise",
    "worst_status",
]
