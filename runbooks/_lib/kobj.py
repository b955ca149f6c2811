"""Small, pure accessors over Kubernetes API objects (plain JSON dicts as the API server sends
them, see ``bot.sdk.ports``).

Everything here tolerates missing or oddly typed fields (objects from ``kubectl get -o yaml``
dumps, trimmed case files, partially filled test objects): accessors return ``None`` / empty
values instead of raising. Times are RFC 3339 strings in the API (``2025-11-05T09:56:43Z``) and
timezone-aware :class:`datetime.datetime` values here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def dig(obj: Any, *path: str | int, default: Any = None) -> Any:
    """``obj[path[0]][path[1]]...`` or ``default`` as soon as a step is missing or the wrong
    type (a str key on a list, an int index on a dict, an index out of range)."""
    cur = obj
    for p in path:
        if isinstance(p, int):
            if not isinstance(cur, list) or not -len(cur) <= p < len(cur):
                return default
            cur = cur[p]
        else:
            if not isinstance(cur, dict) or p not in cur:
                return default
            cur = cur[p]
    return default if cur is None else cur


def name(obj: Obj) -> str:
    """``metadata.name`` ("" when absent)."""
    return str(dig(obj, "metadata", "name", default=""))


def namespace(obj: Obj) -> str:
    """``metadata.namespace`` ("" for cluster-scoped objects)."""
    return str(dig(obj, "metadata", "namespace", default=""))


def subject(kind: str, obj: Obj) -> str:
    """A finding subject: ``<kind>/<namespace>/<name>`` for namespaced objects,
    ``<kind>/<name>`` otherwise (``kind`` lower-case, e.g. ``daemonset``)."""
    ns = namespace(obj)
    return f"{kind}/{ns}/{name(obj)}" if ns else f"{kind}/{name(obj)}"


def labels(obj: Obj) -> dict[str, str]:
    """``metadata.labels`` (empty dict when absent)."""
    v = dig(obj, "metadata", "labels", default={})
    return v if isinstance(v, dict) else {}


def annotations_of(obj: Obj) -> dict[str, str]:
    """``metadata.annotations`` (empty dict when absent)."""
    v = dig(obj, "metadata", "annotations", default={})
    return v if isinstance(v, dict) else {}


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 API timestamp (``2025-11-05T09:56:43Z``, fractional seconds and offsets
    accepted; also a ``datetime`` as PyYAML produces for unquoted timestamps) as an aware
    datetime in UTC, or None when absent or unparseable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def last_changed(obj: Obj) -> datetime | None:
    """When an object was last written, as far as the API shows it: the latest
    ``metadata.managedFields[].time``, else ``metadata.creationTimestamp``; None when neither
    is present. (resourceVersion is opaque and cannot be turned into a time.)"""
    times = [parse_time(m.get("time")) for m in dig(obj, "metadata", "managedFields", default=[])
             if isinstance(m, dict)]
    known = [t for t in times if t is not None]
    if known:
        return max(known)
    return parse_time(dig(obj, "metadata", "creationTimestamp"))


def last_manager(obj: Obj) -> str | None:
    """The field manager (``kubeadm``, ``kubectl-edit``, ``k8snet``...) of the latest
    ``metadata.managedFields`` entry, None when there are none."""
    entries = [(parse_time(m.get("time")), str(m.get("manager", "")))
               for m in dig(obj, "metadata", "managedFields", default=[]) if isinstance(m, dict)]
    timed = [(t, m) for t, m in entries if t is not None and m]
    return max(timed)[1] if timed else None


# ---- Pods ------------------------------------------------------------------------------


def pod_ready(pod: Obj) -> bool | None:
    """The pod's ``Ready`` condition (True/False), else whether every container status says
    ``ready``; None when the pod reports neither."""
    for c in dig(pod, "status", "conditions", default=[]):
        if isinstance(c, dict) and c.get("type") == "Ready":
            return str(c.get("status")) == "True"
    statuses = dig(pod, "status", "containerStatuses", default=[])
    if statuses:
        return all(bool(s.get("ready")) for s in statuses if isinstance(s, dict))
    return None


def pod_condition_message(pod: Obj, ctype: str = "Ready") -> str:
    """``message`` of a pod condition ("" when absent)."""
    for c in dig(pod, "status", "conditions", default=[]):
        if isinstance(c, dict) and c.get("type") == ctype:
            return str(c.get("message") or "")
    return ""


def waiting_reasons(pod: Obj) -> list[str]:
    """``state.waiting.reason`` of every container that is waiting (e.g.
    ``CrashLoopBackOff``, ``ContainerCreating``), init containers included."""
    out = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for s in dig(pod, "status", key, default=[]):
            r = dig(s, "state", "waiting", "reason")
            if r:
                out.append(str(r))
    return out


def restart_count(pod: Obj) -> int:
    """Sum of ``restartCount`` over the pod's containers (0 when not reported)."""
    total = 0
    for s in dig(pod, "status", "containerStatuses", default=[]):
        try:
            total += int(s.get("restartCount") or 0)
        except (TypeError, ValueError, AttributeError):
            continue
    return total


def pod_started(pod: Obj) -> datetime | None:
    """When the pod's current containers started: the earliest running container's
    ``state.running.startedAt``, else ``status.startTime``; None when unknown (e.g. a
    container in CrashLoopBackOff with no start time reported)."""
    starts = [parse_time(dig(s, "state", "running", "startedAt"))
              for s in dig(pod, "status", "containerStatuses", default=[])]
    known = [t for t in starts if t is not None]
    if known:
        return min(known)
    return parse_time(dig(pod, "status", "startTime"))


def pod_node(pod: Obj) -> str:
    """``spec.nodeName`` ("" when unscheduled)."""
    return str(dig(pod, "spec", "nodeName", default=""))


def container_images(spec: Obj) -> list[str]:
    """Images of the containers (not init containers) of a pod spec."""
    return [str(c.get("image", "")) for c in dig(spec, "containers", default=[])
            if isinstance(c, dict)]


def template_spec(owner: Obj) -> Obj:
    """The pod spec of a DaemonSet/Deployment template (empty dict when absent)."""
    v = dig(owner, "spec", "template", "spec", default={})
    return v if isinstance(v, dict) else {}


def container_env(container: Obj, key: str) -> str | None:
    """The literal ``value`` of env var ``key`` in a container (None when absent or set
    through ``valueFrom``)."""
    for e in container.get("env") or []:
        if isinstance(e, dict) and e.get("name") == key and "value" in e:
            return str(e["value"])
    return None


# ---- Nodes -----------------------------------------------------------------------------


def node_internal_ip(node: Obj) -> str | None:
    """The node's first ``InternalIP`` address (None when it has none)."""
    for a in dig(node, "status", "addresses", default=[]):
        if isinstance(a, dict) and a.get("type") == "InternalIP" and a.get("address"):
            return str(a["address"])
    return None


def node_ready(node: Obj) -> tuple[bool | None, Obj | None]:
    """(ready, the Ready condition). ready is None when the node reports no Ready condition;
    ``status: Unknown`` (node lost) counts as not ready."""
    for c in dig(node, "status", "conditions", default=[]):
        if isinstance(c, dict) and c.get("type") == "Ready":
            return str(c.get("status")) == "True", c
    return None, None


_CPU = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m?)\s*$")


def parse_cpu(quantity: Any) -> int | None:
    """A CPU quantity (``"32"``, ``32``, ``"3500m"``) as whole CPUs, rounded down but at least
    1 for a positive value; None when absent or unparseable. kube-proxy itself counts CPUs
    from sysfs on the node (DOMAIN.md section 2.1), so ``status.capacity.cpu`` is an estimate
    of that count."""
    if isinstance(quantity, bool) or quantity is None:
        return None
    if isinstance(quantity, int | float):
        value = float(quantity)
    else:
        m = _CPU.match(str(quantity))
        if not m:
            return None
        value = float(m.group(1)) / (1000 if m.group(2) else 1)
    if value <= 0:
        return None
    return max(1, int(value))
