"""Write kubeconfig files pointing at lab emulators (one context per emulator)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

LAB_TOKEN = "lab-token"  # any bearer token is accepted by the emulator


def write_kubeconfig(path: str | Path, servers: dict[str, str], current: str | None = None,
                     token: str = LAB_TOKEN) -> Path:
    """Write a normal kubeconfig (``apiVersion: v1``, ``kind: Config``) to ``path``.

    ``servers`` maps context name -> server URL (e.g. ``{"lab-a": "http://127.0.0.1:40123"}``);
    each context gets a cluster and a user of the same name, the user carrying ``token``.
    ``current`` is the current-context (default: the first context). The file is written with
    mode 0600 (parents created). Returns the path. Raises ValueError when ``servers`` is empty
    or ``current`` is not one of its names.
    """
    if not servers:
        raise ValueError("write_kubeconfig: no servers given")
    current = current or next(iter(servers))
    if current not in servers:
        raise ValueError(f"write_kubeconfig: current context {current!r} not in {list(servers)}")
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in servers.items()],
        "users": [{"name": n, "user": {"token": token}} for n in servers],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in servers],
        "current-context": current,
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    os.chmod(p, 0o600)
    return p
