"""In-memory object store shared by the API emulator and by unit tests.

- ``RESOURCES``: the built-in kinds the lab serves: (group, version, plural) -> kind, namespaced.
  Custom resources are added from CustomResourceDefinition objects (``Store.add``).
- ``parse_selector`` / ``selector_matches``: Kubernetes label-selector syntax
  (``a=b,c!=d,e in (x,y),f notin (z),g,!h``), as in
  https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/.
- ``StaticKubeReader``: a ``bot.sdk.KubeReader`` over a ``Store`` with no HTTP, for unit tests
  of probes. End-to-end tests use the emulator (HTTP) and the real adapter instead.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from bot.sdk.errors import KubeNotFound


@dataclass(frozen=True)
class Resource:
    """One REST resource: group ("" = core), version, plural, kind, namespaced; discovery extras
    (``short_names`` e.g. ``("cm",)``, ``singular``, ``categories`` e.g. ``("all",)``) and
    ``custom`` (True when served from a CustomResourceDefinition)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    singular: str = ""
    categories: tuple[str, ...] = ()
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


BUILTIN: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",)),
    Resource("", "v1", "nodes", "Node", False, ("no",)),
    Resource("", "v1", "pods", "Pod", True, ("po",), categories=("all",)),
    Resource("", "v1", "services", "Service", True, ("svc",), categories=("all",)),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    Resource("", "v1", "events", "Event", True, ("ev",)),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    Resource("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",)),
    Resource("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",)),
    Resource("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), categories=("all",)),
    Resource("apps", "v1", "deployments", "Deployment", True, ("deploy",), categories=("all",)),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True),
    Resource("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
             "ValidatingWebhookConfiguration", False),
    Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
             "CustomResourceDefinition", False, ("crd", "crds")),
)

_REQ = re.compile(
    r"""\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9./_-]+)\s*
        (?:(?P<op>==|=|!=)\s*(?P<val>[A-Za-z0-9._-]*)
          |\s+(?P<setop>in|notin)\s*\((?P<vals>[^)]*)\))?\s*""",
    re.X,
)


def _split_top(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_selector(selector: str | None) -> list[tuple[str, str, tuple[str, ...]]]:
    """Parse a label selector into (key, op, values) with op in =, !=, in, notin, exists,
    !exists. Raises ValueError on bad syntax (the emulator answers 400)."""
    if not selector:
        return []
    reqs = []
    for part in _split_top(selector):
        m = _REQ.fullmatch(part)
        if not m:
            raise ValueError(f"unable to parse requirement: {part!r}")
        key = m.group("key")
        if m.group("neg"):
            if m.group("op") or m.group("setop"):
                raise ValueError(f"unable to parse requirement: {part!r}")
            reqs.append((key, "!exists", ()))
        elif m.group("op"):
            op = "!=" if m.group("op") == "!=" else "="
            reqs.append((key, op, (m.group("val"),)))
        elif m.group("setop"):
            vals = tuple(v.strip() for v in m.group("vals").split(",") if v.strip())
            reqs.append((key, m.group("setop"), vals))
        else:
            reqs.append((key, "exists", ()))
    return reqs


def selector_matches(reqs: list[tuple[str, str, tuple[str, ...]]], labels: dict[str, str]) -> bool:
    """Whether ``labels`` satisfy every parsed requirement."""
    for key, op, vals in reqs:
        present = key in labels
        val = labels.get(key)
        if op == "=" and val != vals[0]:
            return False
        if op == "!=" and present and val == vals[0]:
            return False
        if op == "in" and (not present or val not in vals):
            return False
        if op == "notin" and present and val in vals:
            return False
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
    return True


def field_matches(selector: str | None, obj: dict[str, Any]) -> bool:
    """Field selectors ``metadata.name=x``, ``metadata.namespace=y``, ``spec.nodeName=z``,
    ``involvedObject.name=...`` (dotted paths, = / == / !=)."""
    if not selector:
        return True
    for part in selector.split(","):
        m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*", part)
        if not m:
            raise ValueError(f"invalid field selector: {part!r}")
        path, op, want = m.groups()
        cur: Any = obj
        for p in path.split("."):
            cur = cur.get(p) if isinstance(cur, dict) else None
        got = "" if cur is None else str(cur).lower() if isinstance(cur, bool) else str(cur)
        if (op == "!=") == (got == want):
            return False
    return True


class Store:
    """Objects by (group, plural) -> {(namespace, name): object}. Not thread-safe by itself;
    the emulator serialises access with its own lock."""

    def __init__(self) -> None:
        self.resources: dict[tuple[str, str], Resource] = {}
        self.objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        for r in BUILTIN:
            self.register(r)

    def register(self, r: Resource) -> None:
        """Serve a resource (built-in or from a CRD version)."""
        self.resources[(r.api_version, r.plural)] = r
        self.objects.setdefault((r.group, r.plural), {})

    def resource_for_kind(self, api_version: str, kind: str) -> Resource:
        """The resource serving ``kind`` at ``api_version``; KeyError if none."""
        for r in self.resources.values():
            if r.api_version == api_version and r.kind == kind:
                return r
        raise KeyError(f"no resource for {api_version} {kind}")

    def register_crd(self, crd: dict[str, Any]) -> None:
        """Serve every version of a CustomResourceDefinition."""
        spec = crd["spec"]
        names = spec["names"]
        for v in spec.get("versions", []):
            if v.get("served", True):
                self.register(
                    Resource(spec["group"], v["name"], names["plural"], names["kind"],
                             spec.get("scope", "Namespaced") == "Namespaced",
                             tuple(names.get("shortNames") or ()),
                             names.get("singular") or names["kind"].lower(),
                             tuple(names.get("categories") or ()), custom=True)
                )

    def unregister_crd(self, crd: dict[str, Any], drop_objects: bool = True) -> None:
        """Stop serving a CRD's resources (all versions); with ``drop_objects`` also forget its
        custom objects (what deleting a CRD does)."""
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        for key, r in list(self.resources.items()):
            if r.custom and r.group == group and r.plural == plural:
                del self.resources[key]
        if drop_objects:
            self.objects.pop((group, plural), None)

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Insert or replace one object (no resourceVersion bookkeeping: the emulator adds
        that). CRDs register their resources. Returns the stored copy."""
        obj = copy.deepcopy(obj)
        r = self.resource_for_kind(obj["apiVersion"], obj["kind"])
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "default") if r.namespaced else ""
        if r.namespaced:
            meta["namespace"] = ns
        self.objects[(r.group, r.plural)][(ns, meta["name"])] = obj
        if obj["kind"] == "CustomResourceDefinition":
            self.register_crd(obj)
        return obj

    def select(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Matching objects sorted by (namespace, name), each converted to ``api_version``
        (same group, stored objects keep their spec: versions share one schema here)."""
        r = self.resources.get((api_version, plural))
        if r is None:
            raise KeyError(f"{plural}.{api_version} is not served")
        reqs = parse_selector(label_selector)
        out = []
        for (ns, _name), obj in sorted(self.objects[(r.group, r.plural)].items()):
            if namespace is not None and r.namespaced and ns != namespace:
                continue
            if not selector_matches(reqs, obj.get("metadata", {}).get("labels") or {}):
                continue
            if not field_matches(field_selector, obj):
                continue
            o = copy.deepcopy(obj)
            o["apiVersion"] = api_version
            out.append(o)
        return out


class StaticKubeReader:
    """A ``KubeReader`` over a ``Store``; ``logs`` maps (namespace, pod) -> log text,
    ``version`` is what ``server_version`` returns, ``forbidden`` a set of plurals whose reads
    raise the given exception factory (to test partial reports)."""

    def __init__(
        self,
        store: Store,
        logs: dict[tuple[str, str], str] | None = None,
        version: dict[str, Any] | None = None,
        errors: dict[str, Exception] | None = None,
    ) -> None:
        self.store = store
        self.logs = logs or {}
        self.version = version or {"major": "1", "minor": "34", "gitVersion": "v1.34.0"}
        self.errors = errors or {}

    def _check(self, plural: str) -> None:
        if plural in self.errors:
            raise self.errors[plural]

    def list(self, api_version: str, plural: str, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None
             ) -> list[dict[str, Any]]:
        self._check(plural)
        try:
            return self.store.select(api_version, plural, namespace, label_selector, field_selector)
        except KeyError as e:
            raise KubeNotFound(
                f"the server could not find the requested resource ({plural})") from e

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None
            ) -> dict[str, Any] | None:
        self._check(plural)
        items = [o for o in self.list(api_version, plural, namespace)
                 if o["metadata"]["name"] == name]
        return items[0] if items else None

    def served(self, api_version: str, plural: str) -> bool:
        return (api_version, plural) in self.store.resources

    def pod_log(self, namespace: str, name: str, container: str | None = None,
                tail_lines: int = 200) -> str:
        self._check("pods/log")
        if self.get("v1", "pods", name, namespace) is None:
            raise KubeNotFound(f'pods "{name}" not found')
        # like the emulator and a container that has printed nothing: an empty log
        return "\n".join(self.logs.get((namespace, name), "").splitlines()[-tail_lines:])

    def server_version(self) -> dict[str, Any]:
        return dict(self.version)
