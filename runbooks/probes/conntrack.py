"""Status probe for the ``conntrack`` section, API only: kube-proxy's conntrack settings and
the ``nf_conntrack_max`` value it will write at start on each node (DOMAIN.md section 2.1;
kubernetes/kubernetes#75575, #141943).

Live usage (``nf_conntrack_count`` / ``nf_conntrack_max`` per node) needs node access, which
this release does not have: the section says so in ``facts["not_checked"]`` (shown with the
section, never as an "ok" for usage) and its status comes from what the API shows. When
kube-proxy's conntrack settings themselves cannot be read, ``facts["undecided"]`` makes the
section unknown.

Facts: ``{"managed_by_kube_proxy": bool|None, "max_per_core": int|None, "min": int|None,
"shape": str|None, "kube_proxy_version": str|None, "cap": int|None, "nodes": [{"name",
"cpus", "target", "scaled", "capped"}], "not_checked": str, "undecided": str (only when
the settings are unknown)}``; ``target`` None means
kube-proxy leaves the node's value alone (or the CPU count is unknown).
"""

from __future__ import annotations

from typing import Any

from bot.sdk import Finding, Inspection, KubeError, Probe, ProbeContext, ProbeError, Severity
from runbooks._lib import kobj as k
from runbooks._lib import kubeproxy as kp
from runbooks._lib.cni import DISPLAY
from runbooks._lib.versions import parse_version

SECTION = "conntrack"
NOT_CHECKED = ("live conntrack usage per node (nf_conntrack_count against nf_conntrack_max) "
               "needs node access (SSH), which this release does not have")
KP_SUBJECT = "configmap/kube-system/kube-proxy"


def _f(code: str, sev: Severity, subj: str, msg: str, ev: dict[str, Any],
       runbook: str | None = None, params: dict[str, Any] | None = None) -> Finding:
    return Finding(code=code, severity=sev, section=SECTION, subject=subj, message=msg,
                   evidence=ev, runbook=runbook, params=params)


def _n(v: int | None) -> str:
    return "unknown" if v is None else f"{v:,}"


class ConntrackProbe(Probe):
    """conntrack: kube-proxy's settings and the per-node nf_conntrack_max it will set."""

    section = SECTION
    title = "conntrack"
    order = 40
    position = 30

    def inspect(self, ctx: ProbeContext) -> Inspection:
        """Compute per-node targets from ``ctx.facts["kube-proxy"]`` and node CPU counts
        (``ctx.facts["nodes"]``, else one Node list). Findings CT001-CT005. Raises
        ``ProbeError`` when the kube-proxy section failed (its configuration is unknown)."""
        kpf = ctx.facts.get("kube-proxy")
        if kpf is None:
            raise ProbeError("kube-proxy's configuration is unknown (its probe failed), so "
                             "the conntrack limits kube-proxy sets cannot be computed.")
        nodes = _nodes(ctx)
        facts: dict[str, Any] = {
            "managed_by_kube_proxy": None, "max_per_core": None, "min": None, "shape": None,
            "kube_proxy_version": kpf.get("version"), "cap": None,
            "nodes": [{"name": n["name"], "cpus": n.get("cpus"), "target": None,
                       "scaled": None, "capped": False} for n in nodes],
            "not_checked": NOT_CHECKED}
        findings: list[Finding] = []
        if not kpf.get("deployed") or kpf.get("no_pods"):
            # no kube-proxy runs (absent, or its DaemonSet schedules no pod): nothing sizes
            # conntrack at start
            facts["managed_by_kube_proxy"] = False
            who = kpf.get("replaced_by")
            who_name = DISPLAY.get(str(who), str(who))
            what = "the kube-proxy DaemonSet runs no pod" if kpf.get("deployed") \
                else "kube-proxy is not deployed"
            reason = f"{what} and {who_name} replaces it" if who else what
            findings.append(_f(
                "CT003", Severity.INFO, "daemonset/kube-system/kube-proxy",
                f"conntrack limits are not managed by kube-proxy because {reason}, so the "
                f"nodes' own sysctl settings decide nf_conntrack_max.",
                {"kube_proxy_deployed": bool(kpf.get("deployed")),
                 "kube_proxy_pods": 0 if kpf.get("no_pods") else None, "replaced_by": who}))
            state = "no pod" if kpf.get("deployed") else "not deployed"
            short = f"{state}, {who_name} replaces it" if who else state
            return Inspection(summary=f"not managed by kube-proxy ({short})",
                              findings=tuple(findings), facts=facts)
        ct = kpf.get("conntrack")
        if not isinstance(ct, dict):
            facts["undecided"] = ("kube-proxy's conntrack settings are unknown (its "
                                  "configuration could not be read)")
            return Inspection(summary="kube-proxy's conntrack settings unknown (configuration "
                              "not visible)", facts=facts)
        subj = kpf.get("configmap") or KP_SUBJECT
        mpc, mn = ct.get("max_per_core"), ct.get("min")
        version = parse_version(kpf.get("version") or "") or \
            parse_version(kpf.get("server_version") or "")
        facts.update(managed_by_kube_proxy=bool(ct.get("managed")), max_per_core=mpc, min=mn,
                     shape=ct.get("shape"))
        if version and version >= kp.CONNTRACK_CAP_SINCE:
            facts["cap"] = kp.CONNTRACK_CAP
        base = {"max_per_core": mpc, "min": mn, "max_per_core_raw": ct.get("max_per_core_raw"),
                "min_raw": ct.get("min_raw"), "shape": ct.get("shape"),
                "kube_proxy_version": kpf.get("version"), "cap": facts["cap"]}
        if ct.get("obsolete_max"):
            findings.append(_f(
                "CT004", Severity.WARNING, subj,
                f"The kube-proxy configuration sets the removed field conntrack.max "
                f"({ct['obsolete_max']}), which kube-proxy ignores: the limit comes from "
                f"maxPerCore x CPUs and min instead.",
                {**base, "conntrack.max": ct["obsolete_max"]},
                runbook="conntrack-limits"))
        if not ct.get("managed"):
            findings.append(_f(
                "CT003", Severity.INFO, subj,
                "kube-proxy leaves nf_conntrack_max alone (conntrack.maxPerCore is 0), so the "
                "nodes' own sysctl settings decide the limit.", base))
            return Inspection(summary="kube-proxy leaves nf_conntrack_max alone (maxPerCore 0)",
                              findings=tuple(findings), facts=facts)
        by_node: dict[str, dict[str, Any]] = {}
        for entry in facts["nodes"]:
            cpus = entry.get("cpus")
            if not cpus:
                continue
            t = kp.conntrack_target(int(mpc or 0), mn, int(cpus), version)
            entry.update(target=t.value, scaled=t.scaled, capped=t.capped)
            by_node[entry["name"]] = entry
        capped = [e for e in facts["nodes"] if e["capped"]]
        if capped:
            findings.append(_f(
                "CT005", Severity.INFO, subj,
                f"kube-proxy {kpf.get('version') or ''} caps maxPerCore x CPUs at "
                f"{kp.CONNTRACK_CAP:,}, so on {len(capped)} node(s) it sets less than "
                f"maxPerCore x CPUs.".replace("  ", " "),
                {**base, "cap": kp.CONNTRACK_CAP,
                 "nodes": [{"name": e["name"], "cpus": e["cpus"], "scaled": e["scaled"],
                            "target": e["target"]} for e in capped]}))
        findings += _crash_findings(kpf, by_node, base, version)
        return Inspection(summary=_summary(facts, mpc, mn), findings=tuple(findings),
                          facts=facts)


def _nodes(ctx: ProbeContext) -> list[dict[str, Any]]:
    nf = (ctx.facts.get("nodes") or {}).get("nodes")
    if isinstance(nf, list):
        return [n for n in nf if isinstance(n, dict) and n.get("name")]
    try:
        nodes = ctx.kube.list("v1", "nodes")
    except KubeError as e:
        raise ProbeError(f"Nodes could not be read, so per-node conntrack targets are "
                         f"unknown: {e}") from e
    return [{"name": k.name(n), "cpus": k.parse_cpu(k.dig(n, "status", "capacity", "cpu"))}
            for n in nodes]


def _crash_findings(kpf: dict[str, Any], by_node: dict[str, dict[str, Any]],
                    base: dict[str, Any], version: tuple[int, int, int] | None
                    ) -> list[Finding]:
    """CT002 (a log line proves kube-proxy failed writing conntrack sysctls) and CT001
    (kube-proxy >= 1.36 crash-looping while it still sizes conntrack: the LXC regression of
    kubernetes/kubernetes#141943)."""
    out = []
    for pod in kpf.get("pods") or []:
        crashing = "CrashLoopBackOff" in (pod.get("waiting") or [])
        fatal = [ln for ln in pod.get("fatal") or []
                 if "conntrack" in ln or "hashsize" in ln]
        other_cause = any("IPVS" in ln for ln in pod.get("fatal") or [])
        node = pod.get("node") or ""
        entry = by_node.get(node, {})
        ev = {**base, "node": node, "cpus": entry.get("cpus"), "target": entry.get("target"),
              "restarts": pod.get("restarts"), "waiting": pod.get("waiting"),
              "log": fatal[:3]}
        subj = f"pod/kube-system/{pod.get('name')}"
        if fatal:
            out.append(_f(
                "CT002", Severity.CRITICAL, subj,
                f"kube-proxy on node {node or 'unknown'} fails to write the conntrack sysctls "
                f"(typical on container nodes such as LXC where they belong to the host); "
                f"conntrack.maxPerCore: 0 makes kube-proxy leave them alone.",
                ev, runbook="conntrack-limits", params={"max_per_core": 0}))
        elif crashing and not other_cause and version and version >= kp.CONNTRACK_CAP_SINCE:
            out.append(_f(
                "CT001", Severity.WARNING, subj,
                f"kube-proxy {kpf.get('version') or ''} on node {node or 'unknown'} is in "
                f"CrashLoopBackOff while it still sets nf_conntrack_max (target "
                f"{_n(entry.get('target'))}), so it may be failing to write conntrack sysctls "
                f"on a container (LXC) node; conntrack.maxPerCore: 0 makes kube-proxy leave "
                f"them alone.".replace("  ", " "),
                ev, runbook="conntrack-limits", params={"max_per_core": 0}))
    return out


def _summary(facts: dict[str, Any], mpc: Any, mn: Any) -> str:
    known = [e for e in facts["nodes"] if e.get("target")]
    tail = ""
    settings = f"maxPerCore {mpc}, min {mn}"
    if facts.get("cap") and any(e["capped"] for e in known):
        settings += ", capped at 1,048,576"
    if not known:
        return f"kube-proxy sets nf_conntrack_max at start ({settings}); node CPUs unknown{tail}"
    targets = sorted({e["target"] for e in known})
    if len(known) == 1:
        e = known[0]
        where = f"{_n(e['target'])} on {e['name']} ({e['cpus']} CPUs; {settings})"
    elif len(targets) == 1:
        where = f"{_n(targets[0])} on {len(known)} nodes ({settings})"
    else:
        where = f"{_n(targets[0])} to {_n(targets[-1])} across {len(known)} nodes ({settings})"
    return f"kube-proxy sets nf_conntrack_max at start to {where}{tail}"
