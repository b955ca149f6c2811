"""Version strings as Kubernetes components print them, as comparable tuples.

Shapes: ``v1.34.0``, ``1.34``, ``v1.30.4+k3s1``, ``v1.35.0-rc.1``; ``/version`` answers
``{"major": "1", "minor": "34+", "gitVersion": "v1.34.0-eks-..."}``; images
``registry.k8s.io/kube-proxy:v1.34.0``, ``quay.io/cilium/cilium:v1.15.5@sha256:...``.
"""

from __future__ import annotations

import re
from typing import Any

Version = tuple[int, int, int]

_VER = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: Any) -> Version | None:
    """``(major, minor, patch)`` from the first ``[v]X.Y[.Z]`` in ``text`` (pre-release and
    build suffixes ignored; missing patch = 0), or None when there is none."""
    if not isinstance(text, str):
        return None
    m = _VER.search(text)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def server_version(info: dict[str, Any]) -> Version | None:
    """The API server version from a ``/version`` answer: ``gitVersion`` when parseable, else
    ``major``/``minor`` (``"34+"`` → 34); None when neither is usable."""
    v = parse_version(info.get("gitVersion"))
    if v:
        return v
    try:
        major = int(str(info.get("major", "")).rstrip("+"))
        minor = int(str(info.get("minor", "")).rstrip("+"))
    except ValueError:
        return None
    return major, minor, 0


def image_tag(image: str) -> str | None:
    """The tag of an image reference (``repo/name:tag[@digest]``), None when untagged
    (a registry port such as ``host:5000/name`` is not a tag)."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    return last.rsplit(":", 1)[1] or None


def image_version(image: str) -> str | None:
    """The tag of an image when it looks like a version (``v1.34.0``, ``v0.28.9``,
    ``1.16.5``), else None (``latest``, ``master-head``)."""
    tag = image_tag(image)
    return tag if tag and parse_version(tag) else None


def fmt(v: Version | None) -> str:
    """``"1.34.0"`` (or ``"unknown"`` for None)."""
    return "unknown" if v is None else ".".join(str(p) for p in v)
