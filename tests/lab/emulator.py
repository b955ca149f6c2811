"""A small Kubernetes API server emulator for the test lab (DESIGN.md §11).

Plain HTTP on loopback, real REST paths, so the official ``kubernetes`` client and ``kubectl``
work unchanged: discovery (``/version``, ``/api``, ``/apis``... for ``store.BUILTIN`` kinds and
stored CRDs; ``/openapi/*`` is 404, kubectl copes), list / get / create / replace / patch
(strategic merge on built-ins, merge, JSON patch) / delete, ``pods/<name>/log``, ``dryRun=All``,
``labelSelector``, ``fieldSelector``, ``limit``/``continue``, ``watch=1`` (current objects as
ADDED lines, then the stream ends), a global resourceVersion with 409 conflicts, no-op updates
that keep the resourceVersion, apiserver-shaped Status bodies (400/403/404/409/410/415/422/500),
CRD schema defaults, pruning and type / required / enum checks for custom resources.

Faults are set from Python only (``forbid``, ``delay``, ``expire_continue``, ``garbage``);
every request is recorded (``requests``, ``calls``).

Not emulated: Table output (kubectl prints NAME/AGE), server-side apply, deletecollection,
status subresources (writes may change status), finalizers (deletion is immediate), real
watches, consistent snapshots across list pages (a continue token carries the start key).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import json
import random
import re
import socket
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.lab.kubeconfig import LAB_TOKEN, write_kubeconfig
from tests.lab.store import (
    BUILTIN,
    Resource,
    Store,
    field_matches,
    parse_selector,
    selector_matches,
)

Obj = dict[str, Any]

DEFAULT_USER = "system:serviceaccount:k8snet:k8snet"
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json")
# Built-ins whose writes bump metadata.generation / whose DELETE answers with the object
# rather than a Status (custom resources: both).
GENERATION = {"deployments", "daemonsets", "networkpolicies", "customresourcedefinitions",
              "validatingwebhookconfigurations"}
DELETE_RETURNS_OBJECT = {"pods", "services", "serviceaccounts", "persistentvolumes",
                         "resourcequotas", "namespaces", "customresourcedefinitions"}
FIELD_LABELS = {  # field selectors the apiserver supports beyond metadata.name/namespace
    "pods": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.hostNetwork",
             "spec.serviceAccountName", "status.phase", "status.podIP", "status.nominatedNodeName"},
    "events": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
               "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.fieldPath",
               "involvedObject.resourceVersion", "reason", "reportingComponent", "source", "type"},
    "nodes": {"spec.unschedulable"}, "namespaces": {"status.phase"},
}
_BUILTIN_GROUPS = list(dict.fromkeys(r.group for r in BUILTIN))
_NAME_RULES = {  # plural -> (regex, max length, message); default: DNS-1123 subdomain
    "": (r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", 253,
         "a DNS-1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
         "and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
         "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    "namespaces": (r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", 63,
                   "a DNS-1123 label must consist of lower case alphanumeric characters or '-', "
                   "and must start and end with an alphanumeric character (e.g. 'my-name',  or "
                   "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
    "services": (r"[a-z]([-a-z0-9]*[a-z0-9])?", 63,
                 "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                 "start with an alphabetic character, and end with an alphanumeric character "
                 "(e.g. 'my-name',  or 'abc-123', regex used for validation is "
                 "'[a-z]([-a-z0-9]*[a-z0-9])?')"),
}
EXPIRED_CONTINUE = ("The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.")
GARBAGE_BODY = b"<html><body><h1>200 OK</h1>upstream proxy says hello</body></html>\n"


class Request(NamedTuple):
    """One recorded API call: method, path (no query), query parameters, HTTP status code."""

    method: str
    path: str
    query: dict[str, str]
    code: int = 0


class Response(NamedTuple):
    """An answer: HTTP status code, body bytes, Content-Type."""

    code: int
    body: bytes
    content_type: str = JSON


class ApiError(Exception):
    """An error answer: ``code`` and a Status dict (or raw bytes with ``content_type``)."""

    def __init__(self, code: int, body: Obj | bytes, content_type: str = JSON) -> None:
        super().__init__(code)
        self.code, self.body, self.content_type = code, body, content_type

    def response(self) -> Response:
        body = self.body if isinstance(self.body, bytes) else encode(self.body)
        return Response(self.code, body, self.content_type)


def encode(obj: Any, sort_keys: bool = False) -> bytes:
    """JSON as Go's ``encoding/json`` Encoder writes it: compact, ``<``, ``>``, ``&`` escaped,
    trailing newline. ``sort_keys`` mimics unstructured (custom resource) objects."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n").encode()


def status(code: int, reason: str, message: str, *, name: str = "", group: str = "",
           kind: str = "", causes: list[Obj] | None = None) -> Obj:
    """A failure ``Status`` with the apiserver's field order (empty details omitted)."""
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "message": message, "reason": reason}
    details = {k: v for k, v in (("name", name), ("group", group), ("kind", kind),
                                 ("causes", causes)) if v}
    if details:
        body["details"] = details
    body["code"] = code
    return body


def _gr(r: Resource) -> str:
    return f"{r.plural}.{r.group}" if r.group else r.plural


def not_found(r: Resource, name: str) -> ApiError:
    """404 NotFound, e.g. ``pods "abc" not found``."""
    return ApiError(404, status(404, "NotFound", f'{_gr(r)} "{name}" not found', name=name,
                                group=r.group, kind=r.plural))


def bad_request(message: str) -> ApiError:
    """400 BadRequest with ``message``."""
    return ApiError(400, status(400, "BadRequest", message))


def invalid(r: Resource, name: str, causes: list[Obj]) -> ApiError:
    """422 Invalid; the message joins ``field: message`` of the causes like Go's aggregate."""
    msgs = list(dict.fromkeys(f"{c['field']}: {c['message']}" for c in causes))
    agg = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    kind = f"{r.kind}.{r.group}" if r.group else r.kind
    return ApiError(422, status(422, "Invalid", f'{kind} "{name}" is invalid: {agg}',
                                name=name, group=r.group, kind=r.kind, causes=causes))


def cause(reason: str, field: str, message: str) -> Obj:
    """One ``details.causes`` entry (reason, message, field)."""
    return {"reason": reason, "message": message, "field": field}


def page_not_found() -> ApiError:
    """What the apiserver answers for paths it does not serve."""
    return ApiError(404, b"404 page not found\n", TEXT)


def _not_allowed() -> ApiError:
    return ApiError(405, status(405, "MethodNotAllowed",
                                "the server does not allow this method on the requested resource"))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version_key(v: str) -> tuple[int, int, int, str]:
    """Kube-aware version priority: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > others."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (3, 0, 0, v)
    return ({"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""], -int(m.group(1)),
            -int(m.group(3) or 0), v)


def _ordered(obj: Obj, r: Resource, api_version: str) -> Obj:
    """A shallow copy with kind and apiVersion (as requested) first, like the apiserver."""
    return {"kind": r.kind, "apiVersion": api_version,
            **{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}}


# ---------------------------------------------------------------------------------- patches
_MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
               "volumes": "name", "env": "name", "imagePullSecrets": "name",
               "volumeMounts": "mountPath", "volumeDevices": "devicePath", "conditions": "type",
               "ownerReferences": "uid", "hostAliases": "ip"}


def _merge_key(field: str, path: tuple[str, ...], kind: str) -> str | None:
    if field == "ports":
        if path and path[-1] in ("containers", "initContainers", "ephemeralContainers"):
            return "containerPort"
        return "port" if kind == "Service" and path == ("spec",) else None
    return _MERGE_KEYS.get(field)


def strategic_merge(orig: Any, patch: Any, kind: str, path: tuple[str, ...] = ()) -> Any:
    """Strategic merge patch for built-in kinds, kept small: maps merge (``null`` deletes);
    lists with a merge key merge item by item (containers, volumes, env by ``name``;
    volumeMounts by ``mountPath``; container ports by ``containerPort``; Service ports by
    ``port``; conditions by ``type``; ownerReferences by ``uid``); ``metadata.finalizers`` is a
    set union; other lists are replaced. Directives ``$patch: replace|delete`` and
    ``$deleteFromPrimitiveList/<f>``; other ``$`` keys are ignored. Returns the merged value
    (None for ``$patch: delete``); never mutates its arguments."""
    if not isinstance(patch, dict) or not isinstance(orig, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") in ("replace", "delete"):
        return None if patch["$patch"] == "delete" else \
            {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out = dict(orig)
    for k, v in patch.items():
        cur = out.get(k)
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            out[f] = [x for x in out.get(f) or [] if x not in (v or [])]
        elif k.startswith("$"):
            continue
        elif v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(cur, dict):
            out[k] = strategic_merge(cur, v, kind, (*path, k))
            if out[k] is None:
                del out[k]
        elif isinstance(v, list) and isinstance(cur, list) and _merge_key(k, path, kind):
            out[k] = _merge_list(cur, v, str(_merge_key(k, path, kind)), kind, (*path, k))
        elif isinstance(v, list) and isinstance(cur, list) and (k, path) == ("finalizers",
                                                                             ("metadata",)):
            out[k] = list(dict.fromkeys([*cur, *v]))
        else:
            out[k] = copy.deepcopy(v)
    return out


def _merge_list(cur: list[Any], items: list[Any], key: str, kind: str,
                path: tuple[str, ...]) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in items):
        return [copy.deepcopy(i) for i in items
                if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    out = list(cur)
    for item in items:
        if not isinstance(item, dict) or key not in item:
            out.append(copy.deepcopy(item))
            continue
        idx = next((i for i, x in enumerate(out)
                    if isinstance(x, dict) and x.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            out = [x for i, x in enumerate(out) if i != idx]
        elif idx is None:
            out.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            out[idx] = strategic_merge(out[idx], item, kind, path)
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge recursively, ``null`` deletes, lists replace."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class PatchError(ValueError):
    """A JSON patch operation that does not apply (answered as 422)."""


def _walk(doc: Any, path: Any, upto: int = 0) -> tuple[Any, str]:
    """(container, last token) for a JSON pointer; ``upto=-1`` stops at the parent."""
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]
    for t in tokens[:len(tokens) + upto]:
        if isinstance(doc, dict) and t in doc:
            doc = doc[t]
        elif isinstance(doc, list) and t.isdigit() and int(t) < len(doc):
            doc = doc[int(t)]
        else:
            raise PatchError(f"doc is missing path: {path!r}: missing value")
    return doc, tokens[-1] if tokens else ""


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test) on a copy of ``doc``.
    Raises PatchError (422) when an operation does not apply, ValueError (400) when the patch
    is not a list of operations."""
    if not isinstance(ops, list) or not all(isinstance(o, dict) for o in ops):
        raise ValueError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)

    def put(path: str, value: Any, insert: bool) -> None:
        parent, last = _walk(doc, path, -1)
        if isinstance(parent, dict) and (insert or last in parent):
            parent[last] = value
        elif isinstance(parent, list) and insert and last == "-":
            parent.append(value)
        elif isinstance(parent, list) and last.isdigit() and int(last) <= len(parent) - 1 + insert:
            parent[int(last):int(last) + (0 if insert else 1)] = [value]
        else:
            raise PatchError(f"{'add' if insert else 'replace'} operation does not apply: doc is "
                             f"missing path: {path}")

    def remove(path: str) -> Any:
        parent, last = _walk(doc, path, -1)
        _walk(parent, "/" + last.replace("~", "~0").replace("/", "~1"))
        return parent.pop(int(last) if isinstance(parent, list) else last)

    for op in ops:
        name, path = op.get("op"), op.get("path")
        if name in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{name} operation does not apply: missing value")
        if name in ("add", "replace"):
            put(path, copy.deepcopy(op["value"]), name == "add")
        elif name == "remove":
            remove(path)
        elif name == "move":
            put(path, remove(op.get("from")), True)
        elif name == "copy":
            put(path, copy.deepcopy(_walk(doc, op.get("from"))[0]), True)
        elif name == "test":
            if _walk(doc, path)[0] != op["value"]:
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {name}")
    return doc


# ------------------------------------------------------------------------------- validation
def validate_name(plural: str, name: str) -> list[Obj]:
    """Causes for ``metadata.name`` (DNS-1123 subdomain; namespaces DNS-1123 label; services
    DNS-1035 label), worded like the apiserver."""
    rx, maxlen, msg = _NAME_RULES.get(plural, _NAME_RULES[""])
    bad = [f"must be no more than {maxlen} characters"] if len(name) > maxlen else []
    bad += [] if re.fullmatch(rx, name) else [msg]
    return [cause("FieldValueInvalid", "metadata.name", f"Invalid value: {json.dumps(name)}: {m}")
            for m in bad]


def _jtype(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(v), "null")


def apply_schema(schema: Obj, value: Any, path: str, causes: list[Obj]) -> Any:
    """Structural-schema handling of a custom resource value: apply ``default``s, prune
    unknown fields (unless ``x-kubernetes-preserve-unknown-fields``), check ``type``,
    ``required`` and ``enum``; appends causes worded like the apiserver. Returns the value."""
    want, got = schema.get("type"), _jtype(value)
    if value is None or schema.get("x-kubernetes-int-or-string"):
        return value
    if want and got != want and not (want == "number" and got == "integer"):
        causes.append(cause("FieldValueTypeInvalid", path, f'Invalid value: "{got}": {path} in '
                            f"body must be of type {want}: {json.dumps(value)}"))
        return value
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(e) for e in schema["enum"])
        causes.append(cause("FieldValueNotSupported", path,
                            f"Unsupported value: {json.dumps(value)}: supported values: {allowed}"))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_schema(schema["items"], v, f"{path}[{i}]", causes)
                for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
    keep = schema.get("x-kubernetes-preserve-unknown-fields") or extra is True
    out = {}
    for k, v in value.items():
        sub = f"{path}.{k}" if path else k
        if k in props or isinstance(extra, dict):
            out[k] = apply_schema(props.get(k, extra), v, sub, causes)
        elif keep:
            out[k] = v
    out.update({k: copy.deepcopy(s["default"]) for k, s in props.items()
                if k not in out and "default" in s})
    causes += [cause("FieldValueRequired", f"{path}.{k}" if path else k, "Required value")
               for k in schema.get("required") or [] if k not in out]
    return out


# -------------------------------------------------------------------------------- emulator
class Emulator:
    """The Kubernetes API emulator.

    ``Emulator(store=None, *, logs=None, version=None, host="127.0.0.1", port=0,
    user=DEFAULT_USER)``: ``store`` defaults to a Store holding the namespaces default,
    kube-system, kube-public and kube-node-lease; ``logs`` maps (namespace, pod) -> log text;
    ``version`` is the ``/version`` body (missing build fields filled in); ``port`` 0 picks a
    free port; ``user`` is named in 403 messages. Any bearer token (or none) is accepted.

    ``start()`` / ``stop()`` or ``with Emulator(...) as emu:``; then ``emu.url`` is
    ``http://127.0.0.1:<port>``. Store access is serialised by ``lock``; seed or inspect
    objects at run time with ``add()`` / ``get_object()``.
    """

    def __init__(self, store: Store | None = None, *,
                 logs: dict[tuple[str, str], str] | None = None,
                 version: dict[str, Any] | None = None, host: str = "127.0.0.1", port: int = 0,
                 user: str = DEFAULT_USER) -> None:
        self.lock = threading.RLock()
        self.store = store if store is not None else Store()
        self.logs = dict(logs or {})
        self.version = {"major": "1", "minor": "34", "gitVersion": "v1.34.0",
                        "gitCommit": "0" * 40, "gitTreeState": "clean",
                        "buildDate": "2025-08-27T00:00:00Z", "goVersion": "go1.24.6",
                        "compiler": "gc", "platform": "linux/amd64", **(version or {})}
        self.host, self.user, self._port = host, user, port
        self._rv = 1000
        self._started_at = _now()
        self._requests: list[Request] = []
        self._forbidden: list[tuple[str, str, str | None]] = []
        self._delays: dict[str, float] = {}
        self._garbage: set[str] = set()
        self._expire = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        if store is None:
            from tests.lab.scenarios._common import base_namespaces
            for ns in base_namespaces():
                self.store.add(ns)
        for r in {(r.group, r.plural): r for r in self.store.resources.values()}.values():
            for obj in self._bucket(r).values():
                self._stamp(r, obj)

    @classmethod
    def from_scenario(cls, scenario: Any, **kwargs: Any) -> Emulator:
        """An emulator seeded from a ``Scenario`` (or a scenario name): its objects (CRDs
        first), pod logs and ``/version``. Keyword arguments go to the constructor."""
        if isinstance(scenario, str):
            from tests.lab.scenarios import get
            scenario = get(scenario)
        return cls(scenario.store(), logs=scenario.logs, version=scenario.version, **kwargs)

    # ----------------------------------------------------------------------- lifecycle
    @property
    def port(self) -> int:
        """The TCP port (known after ``start()``)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``; RuntimeError before ``start()``."""
        if self._server is None:
            raise RuntimeError("emulator not started")
        return f"http://{self.host}:{self._port}"

    def start(self) -> Emulator:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is None:
            self._server = _Server((self.host, self._port), _Handler)
            self._server.emulator = self
            self._port = self._server.server_address[1]
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name=f"k8s-emulator-{self._port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open keep-alive connections and the listening socket."""
        srv, self._server = self._server, None
        if srv is not None:
            srv.shutdown()
            srv.close_all()
            srv.server_close()
            if self._thread:
                self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: str | Path, context: str = "lab",
                         token: str = LAB_TOKEN) -> Path:
        """Write a kubeconfig with one context ``context`` pointing at this emulator."""
        return write_kubeconfig(path, {context: self.url}, context, token)

    # ----------------------------------------------------------------------- faults, log
    def forbid(self, verb: str, plural: str, namespace: str | None = None) -> None:
        """Answer 403 Forbidden to ``verb`` (get, list, watch, create, update, patch, delete
        or ``*``) on ``plural`` (``pods``, ``pods/log``, ``ipaddresspools``...), in
        ``namespace`` only, or everywhere (including cluster scope) when None."""
        with self.lock:
            self._forbidden.append((verb, plural, namespace))

    def delay(self, plural: str, seconds: float) -> None:
        """Sleep ``seconds`` before answering any request on ``plural`` (0 clears)."""
        with self.lock:
            self._delays[plural] = seconds

    def expire_continue(self, times: int = 1) -> None:
        """The next ``times`` list requests carrying a continue token get 410 Expired."""
        with self.lock:
            self._expire += times

    def garbage(self, plural: str) -> None:
        """Answer requests on ``plural`` with 200 and a non-JSON body (Content-Type
        application/json), like a broken proxy."""
        with self.lock:
            self._garbage.add(plural)

    def clear_faults(self) -> None:
        """Remove every forbid / delay / garbage / pending expiry."""
        with self.lock:
            self._forbidden, self._delays, self._garbage, self._expire = [], {}, set(), 0

    @property
    def requests(self) -> list[Request]:
        """A copy of the request log (oldest first)."""
        with self.lock:
            return list(self._requests)

    def calls(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """Recorded requests filtered by method and by path prefix."""
        return [r for r in self.requests if (method is None or r.method == method)
                and (path is None or r.path.startswith(path))]

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self.lock:
            self._requests.clear()

    # ----------------------------------------------------------------------- store access
    def add(self, *objs: Obj) -> list[Obj]:
        """Insert or replace objects directly (no validation, no faults), stamping uid,
        creationTimestamp, generation and a fresh resourceVersion. CRDs register their
        resources. Returns the stored copies. KeyError for kinds not served."""
        out = []
        with self.lock:
            for o in sorted(objs, key=lambda o: o.get("kind") != "CustomResourceDefinition"):
                stored = self.store.add(o)
                stored["metadata"].pop("resourceVersion", None)
                self._stamp(self.store.resource_for_kind(stored["apiVersion"], stored["kind"]),
                            stored)
                out.append(copy.deepcopy(stored))
        return out

    def get_object(self, api_version: str, plural: str, name: str,
                   namespace: str | None = None) -> Obj | None:
        """A deep copy of one stored object, or None. KeyError for resources not served."""
        with self.lock:
            r = self.store.resources[(api_version, plural)]
            obj = self._bucket(r).get(((namespace or "") if r.namespaced else "", name))
            return copy.deepcopy(_ordered(obj, r, api_version)) if obj else None

    def _bucket(self, r: Resource) -> dict[tuple[str, str], Obj]:
        return self.store.objects.setdefault((r.group, r.plural), {})

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _stamp(self, r: Resource, obj: Obj) -> None:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", self._started_at)
        if r.custom or r.plural in GENERATION:
            meta.setdefault("generation", 1)
        if not meta.get("resourceVersion"):
            meta["resourceVersion"] = self._next_rv()

    def _schema(self, r: Resource) -> Obj | None:
        crds = self.store.objects.get(("apiextensions.k8s.io", "customresourcedefinitions"), {})
        crd = crds.get(("", f"{r.plural}.{r.group}")) or {}
        for v in (crd.get("spec") or {}).get("versions") or []:
            if v.get("name") == r.version:
                return (v.get("schema") or {}).get("openAPIV3Schema")
        return None

    # ----------------------------------------------------------------------- dispatch
    def handle(self, method: str, path: str, query: dict[str, str], headers: Any,
               body: bytes) -> Response:
        """Answer one request (the HTTP handler's only call; usable in-process too).
        ``headers``: any mapping with ``.get`` (``Content-Type`` is read for PATCH)."""
        try:
            resp = self._route(method, path, query, headers, body)
        except ApiError as e:
            resp = e.response()
        with self.lock:
            self._requests.append(Request(method, path, dict(query), resp.code))
        return resp

    def _route(self, method: str, path: str, query: dict[str, str], headers: Any,
               body: bytes) -> Response:
        parts = [p for p in path.split("/") if p]
        if parts in (["healthz"], ["livez"], ["readyz"]):
            return Response(200, b"ok", TEXT)
        if parts == ["version"]:
            return Response(200, encode(self.version))
        if (parts[:1], len(parts) <= 2) == (["api"], True) or \
                (parts[:1], len(parts) <= 3) == (["apis"], True):
            if method != "GET":
                raise _not_allowed()
            return Response(200, encode(self._discovery(parts)))
        if parts[:2] == ["api", "v1"]:
            api_version, rest = "v1", parts[2:]
        elif parts[:1] == ["apis"]:
            api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            raise page_not_found()
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        plural, name, sub = [*rest, None, None][:3]
        with self.lock:
            r = self.store.resources.get((api_version, plural))
        if r is None or len(rest) > 3 or (ns is not None and not r.namespaced) or \
                (sub and (sub, plural, method) != ("log", "pods", "GET")):
            raise page_not_found()
        watch = query.get("watch") in ("1", "true")
        verb = {"GET": "get" if name else "watch" if watch else "list", "POST": "create",
                "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
        if verb is None or (method != "GET" and (name is None) != (method == "POST")):
            raise _not_allowed()
        self._faults(verb, r, ns, name, sub)
        dry, ns = query.get("dryRun") == "All", ns or ""
        if sub == "log":
            return self._log(ns, str(name), query)
        if verb in ("list", "watch"):
            return self._list(r, api_version, ns or None, query, watch)
        if verb == "get":
            return self._get(r, api_version, ns, str(name))
        doc = self._body(body)
        if verb == "create":
            return self._create(r, api_version, ns, doc, dry)
        if verb == "update":
            return self._update(r, api_version, ns, str(name), doc, dry)
        if verb == "patch":
            ctype = (headers.get("Content-Type") or "").split(";")[0].strip()
            return self._patch(r, api_version, ns, str(name), ctype, doc, dry)
        return self._delete(r, api_version, ns, str(name), dry)

    def _faults(self, verb: str, r: Resource, ns: str | None, name: str | None,
                sub: str | None) -> None:
        res = f"{r.plural}/{sub}" if sub else r.plural
        with self.lock:
            wait = self._delays.get(res, self._delays.get(r.plural, 0))
            denied = any(v in (verb, "*") and p == res and n in (None, ns)
                         for v, p, n in self._forbidden)
            garbage = res in self._garbage or r.plural in self._garbage
        if wait > 0:
            time.sleep(wait)
        if denied:
            where = f'in the namespace "{ns}"' if ns else "at the cluster scope"
            subject = f'{_gr(r)} "{name}"' if name else _gr(r)
            raise ApiError(403, status(403, "Forbidden", f'{subject} is forbidden: User '
                                       f'"{self.user}" cannot {verb} resource "{res}" in API '
                                       f'group "{r.group}" {where}', name=name or "",
                                       group=r.group, kind=r.plural))
        if garbage:
            raise ApiError(200, GARBAGE_BODY, JSON)

    @staticmethod
    def _body(body: bytes) -> Any:
        try:
            return json.loads(body) if body.strip() else None
        except ValueError as e:
            raise bad_request(f"error decoding request body: {e}") from None

    @staticmethod
    def _out(r: Resource, obj: Obj, api_version: str, code: int = 200) -> Response:
        return Response(code, encode(_ordered(obj, r, api_version), sort_keys=r.custom))

    # ----------------------------------------------------------------------- discovery
    def _discovery(self, parts: list[str]) -> Obj:
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self._port}"}]}
        with self.lock:
            resources = list(self.store.resources.values())
        groups: dict[str, list[str]] = {}
        for r in resources:
            if r.group and r.version not in groups.setdefault(r.group, []):
                groups[r.group].append(r.version)

        def group_obj(g: str) -> Obj:
            vs = [{"groupVersion": f"{g}/{v}", "version": v}
                  for v in sorted(groups[g], key=_version_key)]
            return {"name": g, "versions": vs, "preferredVersion": vs[0]}

        if parts == ["apis"]:
            order = [g for g in _BUILTIN_GROUPS if g in groups] + \
                sorted(g for g in groups if g not in _BUILTIN_GROUPS)
            return {"kind": "APIGroupList", "apiVersion": "v1",
                    "groups": [group_obj(g) for g in order]}
        if parts[0] == "apis" and parts[1] not in groups:
            raise page_not_found()
        if len(parts) == 2 and parts[0] == "apis":
            return {"kind": "APIGroup", "apiVersion": "v1", **group_obj(parts[1])}
        gv = "/".join(parts[1:])
        out: list[Obj] = []
        for r in (r for r in resources if r.api_version == gv):
            out.append({"name": r.plural, "singularName": r.singular or r.kind.lower(),
                        "namespaced": r.namespaced, "kind": r.kind, "verbs": VERBS,
                        **({"shortNames": list(r.short_names)} if r.short_names else {}),
                        **({"categories": list(r.categories)} if r.categories else {})})
            if r.plural == "pods" and not r.group:
                out.append({"name": "pods/log", "singularName": "", "namespaced": True,
                            "kind": "Pod", "verbs": ["get"]})
        if not out:
            raise page_not_found()
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": out}

    # ----------------------------------------------------------------------- reads
    def _get(self, r: Resource, api_version: str, ns: str, name: str) -> Response:
        with self.lock:
            obj = self._bucket(r).get((ns, name))
        if obj is None:
            raise not_found(r, name)
        return self._out(r, obj, api_version)

    def _list(self, r: Resource, api_version: str, ns: str | None, query: dict[str, str],
              watch: bool) -> Response:
        try:
            reqs = parse_selector(query.get("labelSelector"))
        except ValueError as e:
            raise bad_request(f"unable to parse requirement: {e}") from None
        fsel = query.get("fieldSelector") or None
        for part in (fsel or "").split(",") if fsel else []:
            m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*", part)
            if not m:
                raise bad_request(f"invalid selector: '{fsel}'; can't understand '{part}'")
            if m.group(1) not in {"metadata.name", "metadata.namespace",
                                  *FIELD_LABELS.get(r.plural, ())}:
                raise bad_request(f"field label not supported: {m.group(1)}")
        if not (query.get("limit") or "0").isdigit():
            raise bad_request(f'strconv.ParseInt: parsing "{query["limit"]}": invalid syntax')
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        with self.lock:
            rv, start = str(self._rv), None
            if token:
                if self._expire > 0:
                    self._expire -= 1
                    raise ApiError(410, status(410, "Expired", EXPIRED_CONTINUE))
                rv, start = _decode_continue(token, r)
            bucket = self._bucket(r)
            matched: list[Obj] = []
            remaining, last = 0, None
            for key in sorted(k for k in bucket if ns is None or k[0] == ns):
                obj = bucket[key]
                if (start is not None and key <= start) or \
                        not selector_matches(reqs, obj["metadata"].get("labels") or {}) or \
                        (fsel and not field_matches(fsel, obj)):
                    continue
                if limit and len(matched) >= limit:
                    remaining += 1
                    if reqs or fsel:
                        break
                else:
                    matched.append(obj)
                    last = key
        if watch:
            return Response(200, b"".join(
                encode({"type": "ADDED", "object": _ordered(o, r, api_version)},
                       sort_keys=r.custom) for o in matched))
        meta: Obj = {"resourceVersion": rv}
        if remaining and last is not None:
            ns_name = f"{last[0]}/{last[1]}" if r.namespaced else last[1]
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"v": "meta.k8s.io/v1", "rv": int(rv), "start": ns_name + "\x00"},
                separators=(",", ":")).encode()).decode().rstrip("=")
            if not (reqs or fsel):  # the apiserver only counts without selectors
                meta["remainingItemCount"] = remaining
        elif r.custom:
            meta["continue"] = ""
        drop = () if r.custom else ("kind", "apiVersion")  # typed lists: bare items
        items = [{k: v for k, v in o.items() if k not in drop} for o in matched]
        return Response(200, encode({"kind": f"{r.kind}List", "apiVersion": api_version,
                                     "metadata": meta, "items": items}, sort_keys=r.custom))

    def _log(self, ns: str, name: str, query: dict[str, str]) -> Response:
        r = self.store.resources[("v1", "pods")]
        with self.lock:
            pod, text = self._bucket(r).get((ns, name)), self.logs.get((ns, name), "")
        if pod is None:
            raise not_found(r, name)
        spec = pod.get("spec") or {}
        names = [c.get("name") for c in spec.get("containers", []) + spec.get("initContainers", [])]
        container = query.get("container")
        if container and container not in names:
            raise bad_request(f"container {container} is not valid for pod {name}")
        lines = [ln if ln.endswith("\n") else ln + "\n" for ln in text.splitlines(keepends=True)]
        tail = query.get("tailLines")
        if tail is not None:
            if not tail.isdigit():
                raise bad_request(f'strconv.ParseInt: parsing "{tail}": invalid syntax')
            lines = lines[-int(tail):] if int(tail) else []
        return Response(200, "".join(lines).encode(), TEXT)

    # ----------------------------------------------------------------------- writes
    def _check(self, r: Resource, api_version: str, ns: str, obj: Any,
               name: str | None = None) -> Obj:
        """A deep copy of a request object with kind/apiVersion/namespace checked (400)."""
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise bad_request("the object provided is unrecognized or malformed")
        av, kind = obj.get("apiVersion") or api_version, obj.get("kind") or r.kind
        if av != api_version:
            raise bad_request(f"the API version in the data ({av}) does not match the expected "
                              f"API version ({api_version})")
        if kind != r.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind "
                              f"({r.kind})")
        obj = {**copy.deepcopy(obj), "apiVersion": api_version, "kind": r.kind}
        meta = obj.setdefault("metadata", {})
        if r.namespaced and (meta.get("namespace") or ns) != ns:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        if name is not None and (meta.get("name") or name) != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the "
                              f"name on the URL ({name})")
        if r.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        return obj

    def _validate(self, r: Resource, obj: Obj) -> Obj:
        """Validate (custom resources: also default and prune) an object; 422 on causes."""
        name = obj["metadata"].get("name") or ""
        causes = validate_name(r.plural, name) if name else [cause(
            "FieldValueRequired", "metadata.name",
            "Required value: name or generateName is required")]
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        if r.kind == "Pod" and not spec.get("containers"):
            causes.append(cause("FieldValueRequired", "spec.containers", "Required value"))
        if r.kind in ("Deployment", "DaemonSet") and not \
                ((spec.get("template") or {}).get("spec") or {}).get("containers"):
            causes.append(cause("FieldValueRequired", "spec.template.spec.containers",
                                "Required value"))
        schema = self._schema(r) if r.custom else None
        if schema:
            top = ("apiVersion", "kind", "metadata")
            body = apply_schema({**schema, "required": [
                k for k in schema.get("required") or [] if k not in top]},
                {k: v for k, v in obj.items() if k not in top}, "", causes)
            obj = {**{k: obj[k] for k in top}, **body}
        if causes:
            raise invalid(r, name, causes)
        return obj

    def _create(self, r: Resource, api_version: str, ns: str, doc: Any, dry: bool) -> Response:
        obj = self._check(r, api_version, ns, doc)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            msg = "resourceVersion should not be set on objects to be created"
            raise ApiError(500, status(500, "InternalError", f"Internal error occurred: {msg}",
                                       causes=[{"message": msg}]))
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "generation",
                  "managedFields", "selfLink"):
            meta.pop(k, None)
        if r.kind == "Namespace":  # what the apiserver adds
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        obj = self._validate(r, obj)
        meta, name = obj["metadata"], obj["metadata"]["name"]
        with self.lock:
            nsr = self.store.resources[("v1", "namespaces")]
            if r.namespaced and ("", ns) not in self._bucket(nsr):
                raise not_found(nsr, ns)
            if (ns, name) in self._bucket(r):
                raise ApiError(409, status(409, "AlreadyExists", f'{_gr(r)} "{name}" already '
                                           "exists", name=name, group=r.group, kind=r.plural))
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
            if r.custom or r.plural in GENERATION:
                meta["generation"] = 1
            if not dry:
                meta["resourceVersion"] = self._next_rv()
                self._bucket(r)[(ns, name)] = obj
                if r.kind == "CustomResourceDefinition":
                    self.store.register_crd(obj)
        return self._out(r, obj, api_version, 201)

    def _update(self, r: Resource, api_version: str, ns: str, name: str, doc: Any,
                dry: bool) -> Response:
        new = self._check(r, api_version, ns, doc, name)
        if r.custom and not new["metadata"].get("resourceVersion"):
            raise invalid(r, name, [cause("FieldValueInvalid", "metadata.resourceVersion",
                                          "Invalid value: 0: must be specified for an update")])
        with self.lock:
            old = self._bucket(r).get((ns, name))
            if old is None:
                raise not_found(r, name)
            return self._commit(r, api_version, ns, name, new, old, dry)

    def _patch(self, r: Resource, api_version: str, ns: str, name: str, ctype: str, doc: Any,
               dry: bool) -> Response:
        accepted = PATCH_TYPES[:2] if r.custom else PATCH_TYPES
        if ctype not in accepted:
            raise ApiError(415, status(415, "UnsupportedMediaType", "the body of the request was "
                                       "in an unknown format - accepted media types include: "
                                       + ", ".join(accepted)))
        with self.lock:
            old = self._bucket(r).get((ns, name))
            if old is None:
                raise not_found(r, name)
            cur = _ordered(old, r, api_version)
            try:
                if ctype == PATCH_TYPES[0]:
                    new = json_patch(cur, doc)
                elif ctype == PATCH_TYPES[1]:
                    new = merge_patch(cur, doc)
                else:
                    new = strategic_merge(cur, doc if doc is not None else {}, r.kind)
            except PatchError as e:
                raise ApiError(422, status(
                    422, "Invalid", "the server rejected our request due to an error in our "
                    "request", causes=[{"reason": "UnexpectedServerResponse",
                                        "message": str(e)}])) from None
            except ValueError as e:
                raise bad_request(str(e)) from None
            new = self._check(r, api_version, ns, new, name)
            return self._commit(r, api_version, ns, name, new, old, dry)

    def _commit(self, r: Resource, api_version: str, ns: str, name: str, new: Obj, old: Obj,
                dry: bool) -> Response:
        """Shared end of PUT and PATCH, lock held: resourceVersion precondition (409),
        immutable metadata, validation, no-op detection, generation, storing."""
        meta, old_meta = new["metadata"], old["metadata"]
        if meta.get("resourceVersion") not in (None, "", old_meta["resourceVersion"]):
            raise ApiError(409, status(
                409, "Conflict", f'Operation cannot be fulfilled on {_gr(r)} "{name}": the object '
                "has been modified; please apply your changes to the latest version and try "
                "again", name=name, group=r.group, kind=r.plural))
        meta["name"] = name
        for k in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            meta.pop(k, None)
            if k in old_meta:
                meta[k] = old_meta[k]
        new = self._validate(r, new)
        if _comparable(new) == _comparable(old):
            return self._out(r, old, api_version)
        if (r.custom or r.plural in GENERATION) and _spec(new) != _spec(old):
            new["metadata"]["generation"] = int(old_meta.get("generation") or 0) + 1
        if not dry:
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._bucket(r)[(ns, name)] = new
            if r.kind == "CustomResourceDefinition":
                self.store.unregister_crd(old, drop_objects=False)
                self.store.register_crd(new)
        return self._out(r, new, api_version)

    def _delete(self, r: Resource, api_version: str, ns: str, name: str, dry: bool) -> Response:
        with self.lock:
            old = self._bucket(r).get((ns, name))
            if old is None:
                raise not_found(r, name)
            if not dry:
                del self._bucket(r)[(ns, name)]
                self._next_rv()
                if r.kind == "CustomResourceDefinition":
                    self.store.unregister_crd(old)
                for bucket in self.store.objects.values() if r.kind == "Namespace" else ():
                    for key in [k for k in bucket if k[0] == name]:
                        del bucket[key]
        if r.custom or r.plural in DELETE_RETURNS_OBJECT:
            return self._out(r, old, api_version)
        details = {k: v for k, v in (("name", name), ("group", r.group), ("kind", r.plural),
                                     ("uid", old["metadata"].get("uid"))) if v}
        return Response(200, encode({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                     "status": "Success", "details": details}))


def _spec(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _comparable(obj: Obj) -> Obj:
    meta = {k: v for k, v in obj["metadata"].items() if k not in ("resourceVersion",
                                                                  "managedFields")}
    return {**{k: v for k, v in obj.items() if k != "apiVersion"}, "metadata": meta}


def _decode_continue(token: str, r: Resource) -> tuple[str, tuple[str, str]]:
    """(list resourceVersion, last key served) from a continue token; 400 when invalid."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        start, rv = raw["start"].rstrip("\x00"), str(int(raw["rv"]))
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
        raise bad_request(f"continue key is not valid: {e}") from None
    ns, _, name = start.partition("/") if r.namespaced else ("", "", start)
    return rv, (ns, name)


# ------------------------------------------------------------------------------------ HTTP
_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 410: "Gone",
            415: "Unsupported Media Type", 422: "Unprocessable Entity",
            500: "Internal Server Error"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: Emulator

    def __init__(self, *args: Any) -> None:
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(*args)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients that hung up are normal
            super().handle_error(request, client_address)

    def close_all(self) -> None:
        with self.conns_lock:
            for c in list(self.conns):
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self) -> None:
        with self.server.conns_lock:
            self.server.conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""  # always read, or keep-alive stalls
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        resp = self.server.emulator.handle(self.command, unquote(parts.path), query,
                                           self.headers, body)
        head = [f"HTTP/1.1 {resp.code} {_REASONS.get(resp.code, 'Unknown')}",
                f"Audit-Id: {uuid.uuid4()}", "Cache-Control: no-cache, private",
                f"Content-Type: {resp.content_type}", f"Date: {formatdate(usegmt=True)}",
                f"Content-Length: {len(resp.body)}"]
        if self.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(data + resp.body)  # head and body in one write (with TCP_NODELAY)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
