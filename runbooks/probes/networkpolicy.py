"""Status probe for the ``networkpolicy`` section: per-namespace coverage (API only).

What it reads: every NetworkPolicy and Namespace (a 403 on either makes the section unknown);
for DNS analysis the cluster DNS Service (``kube-system/kube-dns``, else a ``*dns*`` Service with
port 53 in kube-system other than NodeLocal's ``kube-dns-upstream``), its pods, its EndpointSlices
(``kubernetes.io/service-name``) and the ``node-local-dns`` DaemonSet; admission webhook
configurations (to flag default-deny ingress in namespaces hosting webhooks). Facts read:
``ctx.facts["cni"]["enforces_networkpolicy"]`` (and ``cni``); when the ``cni`` probe published
nothing, enforcement is reported as unknown, never assumed.

Facts published (``ctx.facts["networkpolicy"]``)::

    {"enforced": bool|None, "cni": str|None, "policies": int,
     "namespaces": {"<ns>": {"policies": int, "ingress": state, "egress": state,
                             "dns_egress": "allowed"|"udp-only"|"denied"|"denied-for-some-pods"|
                                           "udp-only-for-some-pods"|"not-restricted"|"unknown"|
                                           "not-enforced",
                             "system": bool}},
     "coverage": {"namespaces": int, "default_deny_ingress": int, "default_deny_egress": int},
     "dns": {"service", "selector", "pods", "ports", "nodelocal_ips"} | None}

``state`` is ``none``/``partial``/``default-deny``/``allow-all``
(``runbooks._lib.netpol.Isolation``); when the CNI does not enforce NetworkPolicy it is
``not-enforced`` (never an isolation claim) and the declared states are under
``declared_ingress``/``declared_egress``; coverage counts are then 0.
System namespaces (kube-system, kube-public, kube-node-lease) are analysed but left out of the
coverage counts and of NP001. Domain sources: DOMAIN.md §4 and §5.1; codes in
``docs/findings.md``.
"""

from __future__ import annotations

from typing import Any

from bot.sdk import Finding, Inspection, Probe, ProbeContext, Severity
from runbooks._lib import netpol as np
from runbooks._lib import netpol_live

Obj = dict[str, Any]
SECTION = "networkpolicy"
API = "networking.k8s.io/v1"
_DISPLAY = {"flannel": "Flannel", "canal": "Canal", "calico": "Calico", "cilium": "Cilium",
            "antrea": "Antrea", "weave": "Weave Net"}


def _f(code: str, severity: Severity, subject: str, message: str, evidence: dict[str, Any],
       runbook: str | None = None, params: dict[str, Any] | None = None) -> Finding:
    return Finding(code=code, severity=severity, section=SECTION, subject=subject,
                   message=message, evidence=evidence, runbook=runbook, params=params)


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _plural(n: int, word: str) -> str:
    many = word[:-1] + "ies" if word.endswith("y") else word + "s"
    return f"{n} {word}" if n == 1 else f"{n} {many}"


def _dirs(ing: bool, eg: bool) -> str:
    return "ingress and egress" if ing and eg else ("ingress" if ing else "egress")


class NetworkPolicyProbe(Probe):
    """NetworkPolicy coverage: default-deny per namespace, DNS egress, enforcement by the CNI."""

    section = "networkpolicy"
    title = "NetworkPolicy"
    order = 60
    position = 50

    def inspect(self, ctx: ProbeContext) -> Inspection:
        """Analyse every namespace's policies; return NP* findings and the facts above.
        Raises ``KubeError`` when NetworkPolicies or Namespaces cannot be listed."""
        kube = ctx.kube
        policies = kube.list(API, "networkpolicies")
        namespaces = kube.list("v1", "namespaces")
        ns_labels: dict[str, dict[str, str]] = {
            _name(n): {str(k): str(v) for k, v in
                       ((n.get("metadata") or {}).get("labels") or {}).items()}
            for n in namespaces}
        by_ns: dict[str, list[Obj]] = {}
        for p in policies:
            by_ns.setdefault(np.policy_namespace(p), []).append(p)
        all_ns = sorted(set(ns_labels) | set(by_ns))

        cni = ctx.facts.get("cni")
        enforced: bool | None = cni.get("enforces_networkpolicy") if cni else None
        cni_name: str | None = (cni.get("display") or _DISPLAY.get(str(cni.get("cni")))
                                or cni.get("cni")) if cni else None
        findings: list[Finding] = []
        undecided: list[str] = []
        ns_facts: dict[str, dict[str, Any]] = {}

        if enforced is False:
            for p in policies:
                findings.append(_f(
                    "NP004", Severity.WARNING, np.policy_ref(p),
                    f"NetworkPolicy {np.policy_namespace(p)}/{_name(p)} is not enforced: the CNI "
                    f"({cni_name or 'unknown'}) does not implement NetworkPolicy, so it has no "
                    "effect and no namespace is isolated.",
                    {"cni": cni_name, "enforces_networkpolicy": False,
                     "policy_types": sorted(np.policy_types(p)),
                     "pod_selector": np.describe_selector(
                         (p.get("spec") or {}).get("podSelector", {}))}))
            for ns in all_ns:
                pols = by_ns.get(ns, [])
                ns_facts[ns] = {"policies": len(pols),
                                "ingress": "not-enforced", "egress": "not-enforced",
                                "declared_ingress": np.isolation(pols, np.INGRESS).state,
                                "declared_egress": np.isolation(pols, np.EGRESS).state,
                                "dns_egress": "not-enforced",
                                "system": ns in np.SYSTEM_NAMESPACES}
            app_ns = sorted(n for n, v in ns_facts.items() if not v["system"])
            if app_ns:
                findings.append(_f(
                    "NP013", Severity.WARNING, "cluster/networkpolicy",
                    f"No namespace is isolated: {cni_name or 'the CNI'} does not enforce "
                    f"NetworkPolicy, so pods in all {_plural(len(app_ns), 'application namespace')}"
                    " accept traffic from and send traffic to any pod.",
                    {"cni": cni_name, "enforces_networkpolicy": False, "namespaces": app_ns,
                     "policies": len(policies)}))
            summary = (f"{cni_name or 'the CNI'} does not enforce NetworkPolicy; "
                       + (f"{_plural(len(policies), 'policy')} in "
                          f"{_plural(len(by_ns), 'namespace')} "
                          f"{'has' if len(policies) == 1 else 'have'} no effect"
                          if policies else "no policies"))
            facts = {"enforced": False, "cni": cni_name, "policies": len(policies),
                     "namespaces": ns_facts, "coverage": self._coverage(ns_facts), "dns": None}
            return Inspection(summary=summary, findings=tuple(findings), facts=facts)

        if enforced is None:
            reason = ("CNI facts unavailable (the cni probe failed)" if cni is None
                      else f"cannot tell whether the CNI ({cni_name or 'unknown'}) enforces it")
            undecided.append(f"NetworkPolicy enforcement unknown: {reason}")
            findings.append(_f(
                "NP005", Severity.INFO, "cluster/networkpolicy",
                f"Whether NetworkPolicies are enforced is unknown ({reason}), so the policies "
                "below are analysed as written and no namespace is reported as isolated.",
                {"cni": cni_name, "cni_facts": cni is not None}))

        dns, dns_note = self._dns_target(ctx) if policies else (None, "no policies")
        webhooks = self._webhook_namespaces(ctx)
        dns_problems = 0
        dns_reported = False

        for ns in all_ns:
            pols = by_ns.get(ns, [])
            system = ns in np.SYSTEM_NAMESPACES
            ing = np.isolation(pols, np.INGRESS)
            eg = np.isolation(pols, np.EGRESS)
            dns_state = "not-restricted"
            refs = [f"{ns}/{_name(p)}" for p in pols]

            if not system and (ing.state in ("none", "partial") or eg.state in ("none", "partial")):
                miss_i = ing.state in ("none", "partial")
                miss_e = eg.state in ("none", "partial")
                findings.append(_f(
                    "NP001", Severity.WARNING, f"namespace/{ns}",
                    f"Namespace {ns} has no default-deny NetworkPolicy for "
                    f"{_dirs(miss_i, miss_e)}, so its pods accept and send any traffic"
                    f"{' not covered by a policy' if pols else ''}.",
                    {"ingress": ing.state, "egress": eg.state, "policies": refs,
                     "enforced": enforced},
                    runbook="netpol-dns-allow", params={"namespaces": [ns]}))

            for direction in (np.INGRESS, np.EGRESS):
                iso = ing if direction == np.INGRESS else eg
                for p in np.allow_all_policies(pols, direction):
                    others = [d for d in iso.deny_policies if d != _name(p)]
                    sel = np.describe_selector((p.get("spec") or {}).get("podSelector", {}))
                    who = "every pod" if np.selects_all_pods(p) else f"pods matching {sel}"
                    d = direction.lower()
                    findings.append(_f(
                        "NP006", Severity.WARNING, np.policy_ref(p),
                        f"NetworkPolicy {ns}/{_name(p)} allows all {d} for {who}"
                        + (f", which defeats default-deny {', '.join(others)}" if others
                           else ", so any default-deny added here has no effect")
                        + " (policies are additive).",
                        {"direction": direction, "pod_selector": sel,
                         "default_deny_policies": others}))

            for p in pols:
                spec = p.get("spec") or {}
                if isinstance(spec.get("egress"), list) and np.EGRESS not in np.policy_types(p):
                    findings.append(_f(
                        "NP012", Severity.WARNING, np.policy_ref(p),
                        f"NetworkPolicy {ns}/{_name(p)} has an egress section but its policyTypes "
                        "do not include Egress, so it does not restrict egress at all.",
                        {"policyTypes": spec.get("policyTypes"),
                         "egress_rules": len(spec["egress"])}))
                if enforced is not False:
                    bad = np.namespace_selectors_matching_nothing(p, ns_labels)
                    if bad:
                        missing = sorted({k for b in bad for k in b["missing_labels"]})
                        findings.append(_f(
                            "NP011", Severity.WARNING, np.policy_ref(p),
                            f"NetworkPolicy {ns}/{_name(p)} has a namespaceSelector that matches "
                            "no namespace"
                            + (f" (no namespace has the label {', '.join(missing)}; use "
                               f"{np.NAME_LABEL})" if missing else "")
                            + ", so that peer allows nothing.",
                            {"peers": bad}))

            if eg.state == "allow-all":
                dns_state = "allowed"
            elif eg.state in ("default-deny", "partial"):
                if dns is None:
                    dns_state = "unknown"
                    if not dns_reported:
                        dns_reported = True
                        undecided.append(f"DNS egress not evaluated: {dns_note}")
                        findings.append(_f(
                            "NP010", Severity.INFO, "service/kube-system/kube-dns",
                            f"DNS egress could not be evaluated: {dns_note}.",
                            {"reason": dns_note}))
                else:
                    all_pods = [p for p in pols
                                if np.EGRESS in np.policy_types(p) and np.selects_all_pods(p)]
                    if eg.state == "default-deny":
                        v = np.dns_egress(all_pods, ns_labels, dns)
                        dns_state = "allowed" if v.allowed else (
                            "udp-only" if v.udp else "denied")
                        f = self._dns_finding(ns, v, eg, dns, enforced)
                        if f is not None:
                            dns_problems += 1
                            findings.append(f)
                    # the namespace-wide verdict (NP002/NP003) already covers these pods
                    ns_state = dns_state if eg.state == "default-deny" else "allowed"
                    some_denied = some_udp_only = False
                    for p in pols:
                        if np.EGRESS not in np.policy_types(p) or np.selects_all_pods(p):
                            continue
                        v = np.dns_egress([p, *all_pods], ns_labels, dns)
                        if v.allowed or ns_state == "denied" or (v.udp and ns_state == "udp-only"):
                            continue
                        dns_problems += 1
                        sel = np.describe_selector((p.get("spec") or {}).get("podSelector"))
                        if not v.udp:
                            some_denied = True
                            msg = (f"NetworkPolicy {ns}/{_name(p)} restricts egress of pods "
                                   f"matching {sel} and no rule lets them reach DNS "
                                   f"({dns.service}), so name resolution fails in those pods.")
                        else:
                            some_udp_only = True
                            ports = ", ".join(str(x) for x in (dns.ports.get("TCP")
                                                               or (dns.nodelocal_port,)))
                            msg = (f"NetworkPolicy {ns}/{_name(p)} restricts egress of pods "
                                   f"matching {sel} and lets them reach DNS ({dns.service}) over "
                                   f"UDP but not TCP port {ports}, so large answers and NodeLocal "
                                   "DNSCache's force_tcp forwarding fail in those pods.")
                        findings.append(_f(
                            "NP008", Severity.WARNING, np.policy_ref(p), msg,
                            {"pod_selector": sel, "udp": v.udp, "tcp": v.tcp,
                             "reasons": list(v.reasons), "dns": dns.to_json()},
                            runbook="netpol-dns-allow", params={"namespaces": [ns]}))
                    if eg.state == "partial":
                        dns_state = ("denied-for-some-pods" if some_denied else
                                     "udp-only-for-some-pods" if some_udp_only else "allowed")

            if ing.state == "default-deny" and ns in webhooks and enforced is not False:
                hooks = webhooks[ns]
                findings.append(_f(
                    "NP007", Severity.INFO, f"namespace/{ns}",
                    f"Namespace {ns} denies ingress by default and hosts admission webhooks "
                    f"({', '.join(sorted({h['webhook'] for h in hooks}))}); the API server must "
                    "still reach them or matching API requests fail.",
                    {"webhooks": hooks, "default_deny_policies": list(ing.deny_policies)}))

            ns_facts[ns] = {"policies": len(pols), "ingress": ing.state, "egress": eg.state,
                            "dns_egress": dns_state, "system": system}

        if dns is not None and by_ns.get(dns.namespace):
            blocked = np.dns_ingress_blocked(by_ns[dns.namespace], ns_labels, dns, all_ns)
            if blocked:
                dns_problems += 1
                names = sorted(blocked)
                findings.append(_f(
                    "NP009", Severity.CRITICAL, f"namespace/{dns.namespace}",
                    f"Ingress policies in {dns.namespace} select the DNS pods and admit no DNS "
                    f"traffic from {_plural(len(names), 'namespace')} "
                    f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}), so name "
                    "resolution fails there.",
                    {"blocked": {k: blocked[k] for k in names[:50]}, "dns": dns.to_json()}))

        cov = self._coverage(ns_facts)
        head = (f"{cni_name or 'CNI'} enforces NetworkPolicy" if enforced
                else "NetworkPolicy enforcement unknown")
        summary = (f"{head}; {cov['default_deny_ingress']}/{cov['namespaces']} namespaces "
                   f"default-deny ingress, {cov['default_deny_egress']}/{cov['namespaces']} egress"
                   + (f"; {_plural(dns_problems, 'DNS problem')}" if dns_problems else ""))
        out: dict[str, Any] = {"enforced": enforced, "cni": cni_name, "policies": len(policies),
                               "namespaces": ns_facts, "coverage": cov,
                               "dns": dns.to_json() if dns else None}
        if undecided:
            out["undecided"] = "; ".join(undecided)
        return Inspection(summary=summary, findings=tuple(findings), facts=out)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _coverage(ns_facts: dict[str, dict[str, Any]]) -> dict[str, int]:
        user = {k: v for k, v in ns_facts.items() if not v["system"]}
        return {"namespaces": len(user),
                "default_deny_ingress": sum(v["ingress"] == "default-deny" for v in user.values()),
                "default_deny_egress": sum(v["egress"] == "default-deny" for v in user.values())}

    @staticmethod
    def _dns_finding(ns: str, v: np.DnsVerdict, eg: np.Isolation, dns: np.DnsTarget,
                     enforced: bool | None) -> Finding | None:
        """NP002 (UDP denied) or NP003 (TCP denied) for a namespace whose egress is
        default-denied; None when DNS is allowed."""
        if v.allowed:
            return None
        target = (f"NodeLocal DNSCache {', '.join(dns.nodelocal_ips)}" if dns.nodelocal_ips
                  else dns.service)
        evidence = {"udp": v.udp, "tcp": v.tcp, "reasons": list(v.reasons),
                    "peers": list(v.peers), "allowing_policies": list(v.allowing),
                    "default_deny_policies": list(eg.deny_policies),
                    "egress_policies": list(eg.isolating), "dns": dns.to_json(),
                    "enforced": enforced}
        params = {"namespaces": [ns]}
        if v.udp:
            ports = ", ".join(str(p) for p in (dns.ports.get("TCP") or (dns.nodelocal_port,)))
            return _f("NP003", Severity.WARNING, f"namespace/{ns}",
                      f"Egress from namespace {ns} allows DNS to {target} over UDP but not TCP "
                      f"port {ports}, so large answers and NodeLocal DNSCache's force_tcp "
                      "forwarding fail.",
                      evidence, runbook="netpol-dns-allow", params=params)
        if v.reasons:
            why = "; ".join(v.reasons)
            msg = f"DNS egress from namespace {ns} is denied: {why}."
        else:
            msg = (f"DNS egress from namespace {ns} is denied: egress is default-denied "
                   f"({', '.join(eg.deny_policies or eg.isolating)}) and no rule allows DNS to "
                   f"{target}.")
        return _f("NP002", Severity.CRITICAL, f"namespace/{ns}", msg, evidence,
                  runbook="netpol-dns-allow", params=params)

    @staticmethod
    def _dns_target(ctx: ProbeContext) -> tuple[np.DnsTarget | None, str]:
        """Discover the DNS backends (``runbooks._lib.netpol_live.discover_dns``, shared with
        the netpol-dns-allow runbook); (None, reason) when impossible — also when NodeLocal
        DNSCache runs with ``-localip`` values that are not IP addresses: pods then query an
        address that cannot be known, so judging policies against the CoreDNS pods would be a
        guess."""
        found = netpol_live.discover_dns(ctx.kube)
        if found.target is not None and found.nodelocal_unparsed:
            return None, (f"NodeLocal DNSCache {found.nodelocal} has -localip values that are "
                          f"not IP addresses ({', '.join(found.nodelocal_unparsed)}), so the "
                          "address pods send DNS queries to is unknown")
        return found.target, found.note

    @staticmethod
    def _webhook_namespaces(ctx: ProbeContext) -> dict[str, list[dict[str, Any]]]:
        """Namespace -> admission webhooks served from it, as JSON (``netpol_live``). Empty on
        any read error: this only adds context."""
        return {ns: [w.to_json() for w in hooks]
                for ns, hooks in netpol_live.webhook_services(ctx.kube).items()}

