"""Status probe for the ``nodes`` section: readiness, addresses, kernels, load-balancer
exclusion.

Facts (contract in ``runbooks/probes/__init__.py``): ``{"nodes": [{"name", "ready",
"internal_ip", "kernel", "os", "cpus", "excluded_from_lb", "control_plane"}]}``; later probes
use ``cpus`` (conntrack sizing), ``kernel`` (nftables needs >= 5.13) and ``internal_ip``
(Calico address autodetection).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bot.sdk import Finding, Inspection, Probe, ProbeContext, Severity
from runbooks._lib.kobj import dig, labels, name, node_internal_ip, node_ready, parse_cpu

SECTION = "nodes"
EXCLUDE_LB = "node.kubernetes.io/exclude-from-external-load-balancers"
CONTROL_PLANE = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


class NodesProbe(Probe):
    """Nodes: readiness, InternalIP, kernel and OS, load-balancer exclusion."""

    section = SECTION
    title = "Nodes"
    order = 10
    position = 70

    def inspect(self, ctx: ProbeContext) -> Inspection:
        """Read every Node once. Findings: NODE001 (NotReady, critical), NODE002 (no
        InternalIP, warning), NODE003 (excluded from external load balancers, info), NODE004
        (no Node objects at all, warning). Raises the reader's ``KubeError`` when nodes cannot
        be listed (the section is then unknown)."""
        nodes = ctx.kube.list("v1", "nodes")
        facts: list[dict[str, Any]] = []
        findings: list[Finding] = []
        for n in sorted(nodes, key=name):
            nm = name(n)
            ready, cond = node_ready(n)
            ip = node_internal_ip(n)
            lab = labels(n)
            info = dig(n, "status", "nodeInfo", default={})
            entry = {
                "name": nm,
                "ready": bool(ready),
                "internal_ip": ip,
                "kernel": info.get("kernelVersion") or None,
                "os": info.get("osImage") or None,
                "cpus": parse_cpu(dig(n, "status", "capacity", "cpu")),
                "excluded_from_lb": EXCLUDE_LB in lab,
                "control_plane": any(k in lab for k in CONTROL_PLANE),
            }
            facts.append(entry)
            subject = f"node/{nm}"
            if not ready:
                status = cond.get("status") if cond else None
                reason = (cond or {}).get("reason") or (
                    "no Ready condition reported" if cond is None else "")
                msg = (f"Node {nm} is not Ready ({reason})." if reason
                       else f"Node {nm} is not Ready.")
                findings.append(Finding(
                    code="NODE001", severity=Severity.CRITICAL, section=SECTION,
                    subject=subject, message=msg,
                    evidence={"ready_status": status, "reason": (cond or {}).get("reason"),
                              "condition_message": (cond or {}).get("message"),
                              "since": (cond or {}).get("lastTransitionTime")}))
            if not ip:
                findings.append(Finding(
                    code="NODE002", severity=Severity.WARNING, section=SECTION,
                    subject=subject,
                    message=(f"Node {nm} reports no InternalIP address, so node access and "
                             f"address checks cannot use it."),
                    evidence={"addresses": dig(n, "status", "addresses", default=[])}))
            if entry["excluded_from_lb"]:
                findings.append(Finding(
                    code="NODE003", severity=Severity.INFO, section=SECTION, subject=subject,
                    message=(f"Node {nm} carries the {EXCLUDE_LB} label, so MetalLB layer 2 "
                             f"will not announce LoadBalancer IPs from it."),
                    evidence={"label": EXCLUDE_LB, "value": lab.get(EXCLUDE_LB),
                              "control_plane": entry["control_plane"]}))
        if not nodes:
            findings.append(Finding(
                code="NODE004", severity=Severity.WARNING, section=SECTION, subject="cluster",
                message="The API server lists no Node objects.", evidence={"nodes": 0}))
        return Inspection(summary=_summary(facts), findings=tuple(findings),
                          facts={"nodes": facts})


def _summary(nodes: list[dict[str, Any]]) -> str:
    if not nodes:
        return "no nodes"
    ready = sum(1 for n in nodes if n["ready"])
    parts = [f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}, {ready} Ready"]
    for key, label in (("kernel", "kernel"), ("os", "")):
        vals = Counter(n[key] for n in nodes if n[key])
        if len(vals) == 1:
            v = next(iter(vals))
            parts.append(f"{label} {v}".strip())
        elif vals:
            parts.append(f"{len(vals)} different {label or 'OS'} versions")
    return ", ".join(parts)
