"""Phase guards (DESIGN.md §3): the engine, not the runbook, decides what a phase may do.

- :class:`GuardedWriter` wraps the cluster's ``KubeWriter``. The current phase comes from
  ``phase_getter()`` (held by the engine, not by the runbook's ``RunContext``, so a runbook
  cannot talk its way into a write phase):

  ==================  =====================================================================
  ``inspect``/        every write raises :class:`PhaseError`
  ``verify``/other
  ``plan``            every write is sent with ``dry_run=True`` whatever the argument
                      (server-side ``dryRun=All``: admission and validation run, nothing is
                      stored)
  ``apply``/          writes pass through; each one is reported to ``on_write(event)``
  ``rollback``        *before* it is sent (``stage="start"``) and after it returns
                      (``stage="done"``) or fails (``stage="error"``), so a process that dies
                      mid-write leaves evidence of what may have been applied
  ==================  =====================================================================

- :class:`PhaseReader`: the reader a runbook gets, a ``CachingReader`` made fresh for each
  phase (verify sees what apply wrote); the engine calls :meth:`PhaseReader.invalidate` after
  each write so later reads in the same phase are not stale.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from bot.engine.status import CachingReader
from bot.sdk.runbook import KubeWriter, PhaseError

__all__ = ["WRITE_PHASES", "GuardedWriter", "PhaseReader", "WriteEvent"]

WRITE_PHASES = frozenset({"apply", "rollback"})
"""Phases in which real (non-dry-run) writes are allowed."""

DRY_RUN_PHASES = frozenset({"plan"})
"""Phases in which every write is forced to a server-side dry run."""

WriteEvent = dict[str, Any]
"""What ``on_write`` receives: ``{"seq": int (per writer, from 1), "stage": "start" | "done" |
"error", "phase": str, "verb": "create" | "replace" | "patch" | "delete", "api_version": str,
"plural": str, "namespace": str | None, "name": str, "target": "plural/ns/name",
"error": str (stage error only)}``."""


class PhaseReader(CachingReader):
    """A ``CachingReader`` for one phase, whose cache the engine can drop after a write."""

    def invalidate(self) -> None:
        """Forget every cached read (called after each write of apply/rollback)."""
        with self._lock:
            self._cache.clear()


class GuardedWriter:
    """A ``KubeWriter`` that enforces the current phase (see the module docstring).

    ``inner``: the real writer; ``phase_getter``: returns the current phase name;
    ``on_write``: called with a :data:`WriteEvent` before and after each apply/rollback write
    (its exceptions propagate: a write that cannot be recorded is not sent). ``writes`` counts
    the writes that were sent for real, ``dry_runs`` the forced or requested dry runs.
    Thread-safe.
    """

    def __init__(self, inner: KubeWriter, phase_getter: Callable[[], str],
                 on_write: Callable[[WriteEvent], None] | None = None) -> None:
        self.inner = inner
        self.phase_getter = phase_getter
        self.on_write = on_write
        self.writes = 0
        self.dry_runs = 0
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def _send(self, verb: str, api_version: str, plural: str, name: str,
              namespace: str | None, dry_run: bool, call: Callable[[bool], Any]) -> Any:
        phase = self.phase_getter()
        target = f"{plural}/{namespace}/{name}" if namespace else f"{plural}/{name}"
        if phase in DRY_RUN_PHASES:
            with self._lock:
                self.dry_runs += 1
            return call(True)
        if phase not in WRITE_PHASES:
            raise PhaseError(f"The {phase or 'current'} phase may not write: {verb} {target} "
                             "refused (writes are allowed only in apply and rollback).")
        if dry_run:
            with self._lock:
                self.dry_runs += 1
            return call(True)
        with self._lock:
            seq = next(self._seq)
        event: WriteEvent = {"seq": seq, "stage": "start", "phase": phase, "verb": verb,
                             "api_version": api_version, "plural": plural,
                             "namespace": namespace, "name": name, "target": target}
        if self.on_write is not None:
            self.on_write(dict(event))
        try:
            result = call(False)
        except Exception as e:
            if self.on_write is not None:
                self.on_write({**event, "stage": "error", "error": str(e)[:1000]})
            raise
        with self._lock:
            self.writes += 1
        if self.on_write is not None:
            self.on_write({**event, "stage": "done"})
        return result

    def create(self, api_version: str, plural: str, obj: dict[str, Any],
               namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        """POST, guarded."""
        name = str((obj.get("metadata") or {}).get("name")
                   or (obj.get("metadata") or {}).get("generateName") or "")
        result: dict[str, Any] = self._send(
            "create", api_version, plural, name, namespace, dry_run,
            lambda dr: self.inner.create(api_version, plural, obj, namespace, dry_run=dr))
        return result

    def replace(self, api_version: str, plural: str, name: str, obj: dict[str, Any],
                namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        """PUT, guarded."""
        result: dict[str, Any] = self._send(
            "replace", api_version, plural, name, namespace, dry_run,
            lambda dr: self.inner.replace(api_version, plural, name, obj, namespace,
                                          dry_run=dr))
        return result

    def patch(self, api_version: str, plural: str, name: str, patch: Any,
              namespace: str | None = None, *, patch_type: str = "merge",
              dry_run: bool = False) -> dict[str, Any]:
        """PATCH, guarded."""
        result: dict[str, Any] = self._send(
            "patch", api_version, plural, name, namespace, dry_run,
            lambda dr: self.inner.patch(api_version, plural, name, patch, namespace,
                                        patch_type=patch_type, dry_run=dr))
        return result

    def delete(self, api_version: str, plural: str, name: str, namespace: str | None = None,
               *, dry_run: bool = False) -> None:
        """DELETE, guarded."""
        self._send("delete", api_version, plural, name, namespace, dry_run,
                   lambda dr: self.inner.delete(api_version, plural, name, namespace,
                                                dry_run=dr))
