"""Read-only status probes, one module per report section (DESIGN.md §4).

Every module here defines one ``bot.sdk.Probe`` subclass; :func:`all_probes` finds them.

Sections, run order / display position, and the facts each publishes for later probes
(``ctx.facts[section]``; a probe that failed publishes nothing, so readers must cope with a
missing entry and say "unknown" rather than guess):

- ``nodes`` (order 10, position 70): ``{"nodes": [{"name", "ready": bool, "internal_ip",
  "kernel", "os", "cpus": int|None, "excluded_from_lb": bool, "control_plane": bool}]}``
- ``cni`` (20 / 10): ``{"cni": "flannel"|"canal"|"calico"|"cilium"|"kube-router"|"antrea"|
  "weave"|"unknown", "encapsulation": str|None, "calico_backend": "bird"|"vxlan"|"none"|None,
  "enforces_networkpolicy": bool|None, "kube_proxy_replacement": bool|None}`` (None: unknown,
  e.g. ``cilium-config`` unreadable — never to be read as "does not replace")
- ``kube-proxy`` (30 / 20): ``{"deployed": bool, "replaced_by": str|None,
  "mode": "iptables"|"ipvs"|"nftables"|None, "strict_arp": bool|None,
  "config_source": "configmap"|"flags"|"unknown"|None, "version": str|None}``
- ``conntrack`` (40 / 30): kube-proxy's conntrack settings and the per-node target.
- ``metallb`` (50 / 40): MetalLB generation, pools, advertisements, LoadBalancer Services.
- ``networkpolicy`` (60 / 50): per-namespace coverage.
- ``bgp`` (70 / 60): Calico BGP mesh, peers, peer states.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from bot.sdk.probe import Probe


def all_probes() -> list[Probe]:
    """One instance of every probe class defined in this package, in run order."""
    found: list[Probe] = []
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if m.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{m.name}")
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if issubclass(cls, Probe) and cls is not Probe and cls.__module__ == mod.__name__:
                found.append(cls())
    return sorted(found, key=lambda p: p.order)
