"""Errors the product raises, as one tree. Every message is one plain sentence fit for an operator.

::

    K8snetError
    ├── SettingsError           bad settings file or environment (names the key)
    ├── InputError              bad input from a person (names the field)
    ├── Refused                 understood but not allowed: role, four eyes, expired, channel,
    │                           state (names the reason)
    └── KubeError               anything from a Kubernetes API server (names the cluster)
        ├── KubeUnreachable     connection refused / DNS / TLS / no route: names server and cause
        ├── KubeTimeout         no answer within the timeout (seconds)
        ├── KubeForbidden       403: names the verb and resource the bot lacks
        ├── KubeNotFound        404 for a named object or an API the server does not serve
        └── KubeApiError        any other Status (409, 410, 422, 5xx...), with code and reason
"""

from __future__ import annotations


class K8snetError(Exception):
    """Base of every error k8snet raises on purpose. ``str(err)`` is the user-facing message."""


class SettingsError(K8snetError):
    """The settings file or environment is invalid. ``key`` is the offending setting's path
    (e.g. ``clusters.prod.kubeconfig``), when known."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class InputError(K8snetError):
    """Input from a person (Slack text, CLI flag, modal field) is invalid; ``field`` names it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Refused(K8snetError):
    """A request that is understood but not allowed now: missing role, self-approval, expired
    approval, channel not allowed, run in the wrong state, cluster locked. ``reason`` is a
    short stable code (``role``, ``self-approval``, ``expired``, ``channel``, ``state``,
    ``locked``, ``stale``); the message says why in one sentence."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class KubeError(K8snetError):
    """An error talking to one cluster's API server.

    ``cluster`` is the configured cluster name, ``server`` the API server URL when known.
    """

    def __init__(self, message: str, *, cluster: str = "", server: str = "") -> None:
        super().__init__(message)
        self.cluster = cluster
        self.server = server


class KubeUnreachable(KubeError):
    """The API server could not be reached at all (refused, DNS, TLS, no route)."""


class KubeTimeout(KubeError):
    """The API server did not answer within the configured timeout."""


class KubeForbidden(KubeError):
    """HTTP 403: the bot's identity lacks ``verb`` on ``resource`` (``group`` "" = core API).

    ``namespace`` is set for namespaced requests.
    """

    def __init__(
        self,
        message: str,
        *,
        verb: str,
        resource: str,
        group: str = "",
        namespace: str | None = None,
        cluster: str = "",
        server: str = "",
    ) -> None:
        super().__init__(message, cluster=cluster, server=server)
        self.verb = verb
        self.resource = resource
        self.group = group
        self.namespace = namespace


class KubeNotFound(KubeError):
    """HTTP 404: the object (or the API group/resource) does not exist on this server."""


class KubeApiError(KubeError):
    """Any other failing Status from the API server; ``code`` is the HTTP status and ``reason``
    the Status reason (``Conflict``, ``Expired``, ``Invalid``...)."""

    def __init__(
        self, message: str, *, code: int, reason: str = "", cluster: str = "", server: str = ""
    ) -> None:
        super().__init__(message, cluster=cluster, server=server)
        self.code = code
        self.reason = reason
