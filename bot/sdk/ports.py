"""Ports: the narrow interfaces through which probes and runbooks see the world.

Adapters in ``bot.adapters`` implement them; tests implement them with plain functions.
Objects cross the port as plain JSON dicts exactly as the API server sends them
(``{"apiVersion": ..., "kind": ..., "metadata": {...}, ...}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class KubeReader(Protocol):
    """Read-only access to one cluster's API.

    ``api_version`` is ``"v1"`` for the core group or ``"<group>/<version>"``; ``plural`` is the
    resource name (``"configmaps"``, ``"ipaddresspools"``). Errors are the ``bot.sdk.errors``
    ``KubeError`` tree; a kind the server does not serve raises ``KubeNotFound``.
    """

    def list(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """All items (every page, ``limit``/``continue``) of a kind, cluster-wide when
        ``namespace`` is None."""
        ...

    def get(
        self, api_version: str, plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """One object, or None when it does not exist (404)."""
        ...

    def served(self, api_version: str, plural: str) -> bool:
        """Whether the server serves this resource (discovery; CRD installed). Never raises
        for "not served": returns False."""
        ...

    def pod_log(
        self, namespace: str, name: str, container: str | None = None, tail_lines: int = 200
    ) -> str:
        """The last ``tail_lines`` lines of a pod's log (``pods/log``)."""
        ...

    def server_version(self) -> dict[str, Any]:
        """``/version``: ``{"major": "1", "minor": "34", "gitVersion": "v1.34.0", ...}``."""
        ...


@dataclass
class ProbeContext:
    """What a probe's ``inspect`` gets.

    ``kube``: the cluster's reader (results are cached for one status run, so probes may read
    the same list freely). ``facts``: the ``Inspection.facts`` of probes that ran before,
    keyed by section name (a probe that failed has no entry). ``cluster``: its configured name.
    """

    cluster: str
    kube: KubeReader
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
