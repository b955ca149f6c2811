"""The only module that talks to Kubernetes: a ``KubeReader`` and ``KubeWriter`` over the
official client.

One :class:`KubeAdapter` per cluster, built lazily from a kubeconfig context or the in-cluster
ServiceAccount. Reads go through the client's ``ApiClient`` (auth, TLS, proxies as configured
by the kubeconfig) and return raw JSON dicts, which is what probes want and much faster than
typed models (DESIGN.md §11: ~5x for 5,000 Services).

- Lists are paginated with ``limit``/``continue``; a 410 Gone (continue token expired) restarts
  the list from the beginning, at most ``MAX_LIST_RESTARTS`` times
  (https://kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks).
- Every request has a timeout (connect, read) in seconds from the settings.
- Errors become the ``bot.sdk.errors.KubeError`` tree with one plain sentence: a 403 names the
  verb and resource the bot lacks, an unreachable server names the server and the cause.
- Writes (``create``/``replace``/``patch``/``delete``, the ``bot.sdk.runbook.KubeWriter``
  protocol) send ``dryRun=All`` when asked (admission webhooks and validation run, nothing is
  stored) and ``fieldManager=k8snet``. They are never retried: the urllib3 retry allows one
  retry of a connection that could not be *made* (nothing was sent) and none after a request
  went out, so a write reaches the server at most once; a timeout says the change may or may
  not have been made. Write errors keep the apiserver's message verbatim: 409
  ``Conflict``/``AlreadyExists`` and other Status codes become ``KubeApiError(code, reason)``,
  a 422 ``Invalid`` message lists the field causes, a 403 from RBAC becomes ``KubeForbidden``
  naming the verb and resource, while a 403 that is *not* RBAC (an admission webhook's denial,
  a quota, a terminating namespace) becomes ``KubeApiError(code=403)`` with the apiserver's
  words, so nobody is told to grant a permission that would not help
  (https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from bot.sdk.errors import (
    KubeApiError,
    KubeError,
    KubeForbidden,
    KubeNotFound,
    KubeTimeout,
    KubeUnreachable,
)

PAGE_SIZE = 500
MAX_LIST_RESTARTS = 3
FIELD_MANAGER = "k8snet"
PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",  # RFC 7386
    "strategic": "application/strategic-merge-patch+json",  # built-in kinds only
    "json": "application/json-patch+json",  # RFC 6902
}
# What RBAC denials look like ("User \"x\" cannot create resource \"y\" in API group ..."),
# as opposed to 403s from admission webhooks, quotas or terminating namespaces.
_RBAC_DENIAL = re.compile(r"\bcannot [a-z]+ resource\b")


def _resource_path(api_version: str, plural: str, namespace: str | None,
                   name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = base
    if namespace:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    if name:
        path += f"/{quote(name, safe='')}"
    return path


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


class KubeAdapter:
    """``KubeReader`` and ``KubeWriter`` for one cluster.

    ``kubeconfig``: path or None (``$KUBECONFIG`` / ``~/.kube/config``, several files merged);
    ``context``: kubeconfig context or None (current-context); ``in_cluster``: use the Pod's
    ServiceAccount; ``timeout``: seconds per request. Nothing is loaded until the first read,
    so building adapters for every configured cluster is free.
    """

    def __init__(self, name: str, *, kubeconfig: str | None = None, context: str | None = None,
                 in_cluster: bool = False, timeout: float = 10.0,
                 page_size: int = PAGE_SIZE) -> None:
        self.name = name
        self._kubeconfig = kubeconfig
        self._context = context
        self._in_cluster = in_cluster
        self.timeout = timeout
        self.page_size = page_size
        self._api: k8s_client.ApiClient | None = None
        self._lock = threading.Lock()
        self._discovery: dict[str, set[str] | None] = {}
        self.requests = 0

    # ------------------------------------------------------------------ client

    def _client(self) -> k8s_client.ApiClient:
        with self._lock:
            if self._api is None:
                cfg = k8s_client.Configuration()
                try:
                    if self._in_cluster:
                        k8s_config.load_incluster_config(client_configuration=cfg)
                    else:
                        k8s_config.load_kube_config(
                            config_file=self._kubeconfig, context=self._context,
                            client_configuration=cfg, persist_config=False)
                except (ConfigException, OSError, TypeError, ValueError) as e:
                    where = "in-cluster ServiceAccount" if self._in_cluster else (
                        f"kubeconfig {self._kubeconfig or '(default)'}"
                        + (f", context {self._context!r}" if self._context else ""))
                    raise KubeError(
                        f"Cannot load credentials for cluster {self.name!r} from {where}: {e}",
                        cluster=self.name) from e
                # One retry for a connection that could not be made; never re-send a request
                # the server may have received (read timeouts), so writes stay at-most-once.
                cfg.retries = urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0,
                                            other=0)
                self._api = k8s_client.ApiClient(configuration=cfg)
            return self._api

    @property
    def server(self) -> str:
        """The API server URL ("" until it can be loaded)."""
        try:
            return str(self._client().configuration.host)
        except KubeError:
            return ""

    def _request(self, method: str, path: str, query: list[tuple[str, Any]] | None = None,
                 *, verb: str, resource: str, namespace: str | None = None,
                 accept: str = "application/json", body: Any = None,
                 content_type: str | None = None) -> tuple[int, bytes]:
        api = self._client()
        server = str(api.configuration.host)
        header_params = {"Accept": accept}
        if content_type:
            header_params["Content-Type"] = content_type
        m, url, headers, payload, post = api.param_serialize(
            method, path, query_params=query or [], header_params=header_params, body=body,
            auth_settings=["BearerToken"])
        self.requests += 1
        write = method not in ("GET", "HEAD")
        maybe = (" The request may have reached the server: read the object before trying "
                 "again." if write else "")
        try:
            resp = api.call_api(m, url, headers, payload, post,
                                _request_timeout=(min(5.0, self.timeout), self.timeout))
            data = resp.read()
        except urllib3.exceptions.NewConnectionError as e:
            raise KubeUnreachable(
                f"Cannot reach the API server of cluster {self.name!r} at {server}: "
                f"{_cause(e)}.", cluster=self.name, server=server) from e
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ConnectTimeoutError,
                TimeoutError) as e:
            raise KubeTimeout(
                f"The API server of cluster {self.name!r} at {server} did not answer within "
                f"{self.timeout:g} s ({verb} {resource}).{maybe}", cluster=self.name,
                server=server) from e
        except urllib3.exceptions.MaxRetryError as e:
            reason = e.reason
            if isinstance(reason, urllib3.exceptions.ReadTimeoutError | TimeoutError) or (
                    isinstance(reason, urllib3.exceptions.ConnectTimeoutError)
                    and not isinstance(reason, urllib3.exceptions.NewConnectionError)):
                raise KubeTimeout(
                    f"The API server of cluster {self.name!r} at {server} did not answer within "
                    f"{self.timeout:g} s ({verb} {resource}).{maybe}", cluster=self.name,
                    server=server) from e
            raise KubeUnreachable(
                f"Cannot reach the API server of cluster {self.name!r} at {server}: "
                f"{_cause(reason)}.", cluster=self.name, server=server) from e
        except (urllib3.exceptions.HTTPError, ApiException, OSError) as e:
            raise KubeUnreachable(
                f"Cannot reach the API server of cluster {self.name!r} at {server}: "
                f"{_cause(e)}.", cluster=self.name, server=server) from e
        if resp.status >= 400:
            raise self._status_error(resp.status, data, verb=verb, resource=resource,
                                     namespace=namespace, server=server)
        return resp.status, data

    def _status_error(self, code: int, data: bytes, *, verb: str, resource: str,
                      namespace: str | None, server: str) -> KubeError:
        causes: list[Any] = []
        try:
            status = json.loads(data)
            message = str(status.get("message", "")) if isinstance(status, dict) else ""
            reason = str(status.get("reason", "")) if isinstance(status, dict) else ""
            if isinstance(status, dict) and isinstance(status.get("details"), dict):
                causes = status["details"].get("causes") or []
        except ValueError:
            message, reason = data[:200].decode("utf-8", "replace").strip(), ""
        where = f" in namespace {namespace!r}" if namespace else " cluster-wide"
        if code == 403 and message and not _RBAC_DENIAL.search(message):
            # Not RBAC: an admission webhook's denial, a quota, a terminating namespace. The
            # apiserver's words are the explanation; granting permissions would not help.
            return KubeApiError(
                f"The API server of cluster {self.name!r} refused to {verb} {resource}{where} "
                f"(403 {reason or 'Forbidden'}): {message}",
                code=code, reason=reason or "Forbidden", cluster=self.name, server=server)
        if code == 422:
            extra = []
            for c in causes if isinstance(causes, list) else []:
                if not isinstance(c, dict):
                    continue
                text = ": ".join(str(c[k]) for k in ("field", "message") if c.get(k))
                if text and str(c.get("message", "")) not in message:
                    extra.append(text)
            if extra:
                message = f"{message} ({'; '.join(extra)})" if message else "; ".join(extra)
        if code == 403:
            res, _, grp = resource.partition(".")
            return KubeForbidden(
                f"k8snet is not allowed to {verb} {resource}{where} on cluster {self.name!r} "
                f"(403 Forbidden: {message or 'no message'}). Grant {verb} on {resource} to "
                "the bot's identity.",
                verb=verb, resource=res, group=grp, namespace=namespace,
                cluster=self.name, server=server)
        if code == 401:
            return KubeApiError(
                f"The API server of cluster {self.name!r} at {server} rejected the credentials "
                "(401 Unauthorized): check the kubeconfig token or certificate.",
                code=code, reason=reason or "Unauthorized", cluster=self.name, server=server)
        if code == 404:
            return KubeNotFound(
                f"{resource} not found on cluster {self.name!r}: {message or 'NotFound'}.",
                cluster=self.name, server=server)
        return KubeApiError(
            f"The API server of cluster {self.name!r} answered {code} {reason or ''} to "
            f"{verb} {resource}{where}: {message or 'no message'}.".replace("  ", " "),
            code=code, reason=reason, cluster=self.name, server=server)

    def _json(self, data: bytes, what: str) -> Any:
        try:
            return json.loads(data)
        except ValueError as e:
            raise KubeApiError(
                f"The API server of cluster {self.name!r} returned data that is not JSON for "
                f"{what}.", code=200, reason="BadResponse", cluster=self.name) from e

    # ------------------------------------------------------------------ KubeReader

    def list(self, api_version: str, plural: str, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None
             ) -> list[dict[str, Any]]:
        """All items of a kind (every page). Restarts on 410 Gone. Raises KubeError."""
        path = _resource_path(api_version, plural, namespace)
        resource = f"{plural}.{_group(api_version)}" if _group(api_version) else plural
        restarts = 0
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", self.page_size)]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if token:
                query.append(("continue", token))
            try:
                _, data = self._request("GET", path, query, verb="list", resource=resource,
                                        namespace=namespace)
            except KubeApiError as e:
                if e.code == 410 and token and restarts < MAX_LIST_RESTARTS:
                    restarts += 1
                    items, token = [], None
                    continue
                raise
            page = self._json(data, f"list {resource}")
            if not isinstance(page, dict) or not isinstance(page.get("items", []), list):
                raise KubeApiError(
                    f"The API server of cluster {self.name!r} returned a malformed list for "
                    f"{resource}.", code=200, reason="BadResponse", cluster=self.name)
            kind = str(page.get("kind", ""))
            item_kind = kind[:-4] if kind.endswith("List") else ""
            for it in page.get("items") or []:
                if isinstance(it, dict):
                    it.setdefault("apiVersion", api_version)
                    if item_kind:
                        it.setdefault("kind", item_kind)
                    items.append(it)
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return items

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None
            ) -> dict[str, Any] | None:
        """One object, or None on 404. Raises KubeError otherwise."""
        resource = f"{plural}.{_group(api_version)}" if _group(api_version) else plural
        try:
            _, data = self._request("GET", _resource_path(api_version, plural, namespace, name),
                                    verb="get", resource=resource, namespace=namespace)
        except KubeNotFound:
            return None
        obj = self._json(data, f"get {resource}/{name}")
        return obj if isinstance(obj, dict) else None

    def served(self, api_version: str, plural: str) -> bool:
        """Whether ``plural`` is in the server's discovery for ``api_version``."""
        with self._lock:
            known = self._discovery.get(api_version, ...)
        if known is ...:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            try:
                _, data = self._request("GET", path, verb="get", resource=f"discovery {path}")
                doc = self._json(data, f"discovery {path}")
                known = {r.get("name", "") for r in (doc.get("resources") or [])
                         if isinstance(r, dict)}
            except KubeNotFound:
                known = None
            with self._lock:
                self._discovery[api_version] = known
        return bool(known) and plural in known  # type: ignore[operator]

    def pod_log(self, namespace: str, name: str, container: str | None = None,
                tail_lines: int = 200) -> str:
        """The last ``tail_lines`` lines of a pod's log. Raises KubeError (403 names
        ``get pods/log``)."""
        query: list[tuple[str, Any]] = [("tailLines", tail_lines)]
        if container:
            query.append(("container", container))
        path = _resource_path("v1", "pods", namespace, name) + "/log"
        _, data = self._request("GET", path, query, verb="get", resource="pods/log",
                                namespace=namespace, accept="text/plain, */*")
        return data.decode("utf-8", "replace")

    def server_version(self) -> dict[str, Any]:
        """``/version`` as a dict. Raises KubeUnreachable/KubeTimeout when the server cannot
        be reached."""
        _, data = self._request("GET", "/version", verb="get", resource="version")
        doc = self._json(data, "/version")
        return doc if isinstance(doc, dict) else {}

    # ------------------------------------------------------------------ KubeWriter

    def _write(self, method: str, api_version: str, plural: str, namespace: str | None,
               name: str | None, *, verb: str, dry_run: bool, body: Any = None,
               content_type: str | None = None) -> Any:
        """One write request; returns the decoded JSON answer (a Status for most deletes)."""
        resource = f"{plural}.{_group(api_version)}" if _group(api_version) else plural
        query: list[tuple[str, Any]] = []
        if dry_run:
            query.append(("dryRun", "All"))
        if method != "DELETE":
            query.append(("fieldManager", FIELD_MANAGER))
        _, data = self._request(method, _resource_path(api_version, plural, namespace, name),
                                query, verb=verb, resource=resource, namespace=namespace,
                                body=body, content_type=content_type)
        target = f"{resource}/{name}" if name else resource
        return self._json(data, f"{verb} {target}") if data.strip() else {}

    def _object(self, doc: Any, verb: str, plural: str) -> dict[str, Any]:
        if not isinstance(doc, dict):
            raise KubeApiError(
                f"The API server of cluster {self.name!r} answered {verb} {plural} with "
                "something that is not an object.", code=200, reason="BadResponse",
                cluster=self.name)
        return doc

    def create(self, api_version: str, plural: str, obj: dict[str, Any],
               namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        """POST ``obj``; returns the object as stored (or, with ``dry_run``, as it would be:
        nothing is stored). 409 ``AlreadyExists`` -> KubeApiError(code=409); a missing
        namespace -> KubeNotFound; 422 -> KubeApiError naming the invalid fields."""
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        doc = self._write("POST", api_version, plural, ns, None, verb="create",
                          dry_run=dry_run, body=obj, content_type="application/json")
        return self._object(doc, "create", plural)

    def replace(self, api_version: str, plural: str, name: str, obj: dict[str, Any],
                namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        """PUT ``obj`` (with ``metadata.resourceVersion`` for optimistic concurrency: a stale
        one -> KubeApiError(code=409, reason="Conflict")); KubeNotFound when the object is
        gone."""
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        doc = self._write("PUT", api_version, plural, ns, name, verb="update",
                          dry_run=dry_run, body=obj, content_type="application/json")
        return self._object(doc, "update", plural)

    def patch(self, api_version: str, plural: str, name: str, patch: Any,
              namespace: str | None = None, *, patch_type: str = "merge",
              dry_run: bool = False) -> dict[str, Any]:
        """PATCH with ``patch_type`` ``merge`` (RFC 7386 ``application/merge-patch+json``),
        ``strategic`` (``application/strategic-merge-patch+json``; built-in kinds only, a
        custom resource answers 415) or ``json`` (RFC 6902 ``application/json-patch+json``,
        a list of operations). ValueError for another type or a JSON patch that is not a list
        (the official client would silently send it as a strategic merge)."""
        ctype = PATCH_CONTENT_TYPES.get(patch_type)
        if ctype is None:
            raise ValueError(f"patch_type must be one of {', '.join(PATCH_CONTENT_TYPES)}, "
                             f"not {patch_type!r}")
        if patch_type == "json" and not isinstance(patch, list):
            raise ValueError("a JSON patch (RFC 6902) is a list of operations")
        if patch_type != "json" and not isinstance(patch, dict):
            raise ValueError(f"a {patch_type} patch is a JSON object")
        doc = self._write("PATCH", api_version, plural, namespace, name, verb="patch",
                          dry_run=dry_run, body=patch, content_type=ctype)
        return self._object(doc, "patch", plural)

    def delete(self, api_version: str, plural: str, name: str, namespace: str | None = None,
               *, dry_run: bool = False) -> None:
        """DELETE one object (with ``dry_run``: nothing is deleted). KubeNotFound when it
        does not exist."""
        self._write("DELETE", api_version, plural, namespace, name, verb="delete",
                    dry_run=dry_run)

    def close(self) -> None:
        """Release the connection pool."""
        with self._lock:
            if self._api is not None:
                self._api.close()
                self._api = None


def _cause(err: BaseException | None) -> str:
    """A short human cause for a connection error ("connection refused", "name or service not
    known", certificate problems)."""
    if err is None:
        return "unknown error"
    text = str(err)
    for needle, human in (("Connection refused", "connection refused"),
                          ("Name or service not known", "host name not found"),
                          ("nodename nor servname", "host name not found"),
                          ("Temporary failure in name resolution", "host name not found"),
                          ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
                          ("No route to host", "no route to host"),
                          ("Network is unreachable", "network unreachable")):
        if needle in text:
            return human
    inner = getattr(err, "reason", None)
    if inner is not None and inner is not err and isinstance(inner, BaseException):
        return _cause(inner)
    return text.split(": ", 1)[-1][:200] or type(err).__name__
