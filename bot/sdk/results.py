"""Frozen, JSON-serialisable results that probes and runbooks return.

Shapes (all pydantic v2 models, frozen):

- :class:`Finding`: one observation about a cluster, with a stable ``code`` (e.g. ``KP001``),
  a :class:`Severity`, the ``subject`` it is about (``configmap/kube-system/kube-proxy``,
  ``node/node-1``, ``namespace/example``...), one plain ``message`` sentence, ``evidence``
  (JSON-compatible dict) and, when a runbook can fix it, ``runbook`` plus suggested ``params``.
- :class:`Inspection`: what one probe (or a runbook's ``inspect``) returns: findings plus
  ``facts`` (JSON dict) that later probes and the report may read, and a one-line ``summary``.
- :class:`SectionReport`: one section of the status report (CNI, kube-proxy, ...), its
  overall :class:`SectionStatus` and, when the probe failed, the reason.
- :class:`ClusterReport`: the whole status report for one cluster.

No Slack markup, emoji or terminal formatting lives here: rendering is ``bot.render``'s job.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Severity(enum.StrEnum):
    """How bad a finding is. Ordered: ``info < warning < critical``.

    ``info`` describes state an operator should know (e.g. "kube-proxy replaced by Cilium"),
    ``warning`` is a misconfiguration or risk, ``critical`` means traffic is (or will be)
    broken now.
    """

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


class SectionStatus(enum.StrEnum):
    """Overall state of a report section.

    ``unknown`` means the probe could not decide (403, timeout, unreachable, garbage data):
    it is never shown as healthy.
    """

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Finding(_Frozen):
    """One observation. ``code`` is stable and documented in ``docs/findings.md``.

    ``section`` names the report section it belongs to (``cni``, ``kube-proxy``, ``conntrack``,
    ``metallb``, ``networkpolicy``, ``bgp``, ``nodes``). ``runbook`` is the name of the runbook
    that would fix it (even when that runbook ships in a later release) and ``params`` its
    suggested parameters.
    """

    code: str = Field(pattern=r"^[A-Z]{2,5}\d{3}$")
    severity: Severity
    section: str
    subject: str
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    runbook: str | None = None
    params: dict[str, Any] | None = None

    def key(self) -> tuple[str, str]:
        """(code, subject): the identity drift checks use for one problem on one cluster."""
        return (self.code, self.subject)


class Inspection(_Frozen):
    """What a probe or a runbook's ``inspect`` returns.

    ``summary`` is one plain line for the section header (e.g. "Flannel, VXLAN, no
    NetworkPolicy enforcement"); ``facts`` is JSON data later probes may read through
    ``ProbeContext.facts``.
    """

    summary: str = ""
    findings: tuple[Finding, ...] = ()
    facts: dict[str, Any] = Field(default_factory=dict)


class SectionReport(_Frozen):
    """One section of the status report.

    ``status`` is ``unknown`` when ``error`` is set (the probe failed or could not decide;
    ``error`` says why in one sentence); otherwise it is the worst severity among ``findings``
    (``info`` counts as ok). ``not_checked`` names what this release cannot check at all (e.g.
    live conntrack usage, which needs node access): shown with the section, but it does not
    make the section unknown, so a healthy cluster does not read "unknown" forever.
    """

    name: str
    title: str
    status: SectionStatus
    summary: str = ""
    error: str | None = None
    not_checked: str | None = None
    findings: tuple[Finding, ...] = ()
    facts: dict[str, Any] = Field(default_factory=dict)


class ClusterReport(_Frozen):
    """The status report for one cluster: what ``k8snet status --output json`` prints.

    ``status`` is the worst section status (``unknown`` ranks between ``ok`` and ``warning``:
    an unknown section never makes the report "ok").
    """

    cluster: str
    generated_at: datetime
    server: str = ""
    kubernetes_version: str | None = None
    status: SectionStatus
    sections: tuple[SectionReport, ...]
    duration_ms: int = 0

    @property
    def findings(self) -> tuple[Finding, ...]:
        """All findings of all sections, in section order."""
        return tuple(f for s in self.sections for f in s.findings)

    def to_json_dict(self) -> dict[str, Any]:
        """The stable JSON shape: cluster, status, sections (without their findings) and a flat
        ``findings`` list whose items have code, severity, section, subject, message, evidence
        and, when fixable, runbook and params."""
        sections = []
        for s in self.sections:
            d = s.model_dump(mode="json", exclude={"findings"})
            d["finding_codes"] = [f.code for f in s.findings]
            sections.append(d)
        findings = []
        for f in self.findings:
            fd = f.model_dump(mode="json")
            if fd.get("runbook") is None:
                fd.pop("runbook", None)
                fd.pop("params", None)
            findings.append(fd)
        return {
            "cluster": self.cluster,
            "server": self.server,
            "kubernetes_version": self.kubernetes_version,
            "generated_at": self.generated_at.isoformat(),
            "duration_ms": self.duration_ms,
            "status": self.status.value,
            "sections": sections,
            "findings": findings,
        }


def worst_status(findings: tuple[Finding, ...] | list[Finding]) -> SectionStatus:
    """The section status implied by findings: critical > warning > ok (info is ok)."""
    rank = max((f.severity.rank for f in findings), default=0)
    return {0: SectionStatus.OK, 1: SectionStatus.WARNING, 2: SectionStatus.CRITICAL}[rank]
