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
  ``apply``/          a write must be ``allowed`` (the engine allows only the objects of the
  ``rollback``        approved plan: in apply the planned object *and* action, in rollback
                      any action on a planned object) and pass ``before_write`` (the engine
                      confirms it still holds the cluster lock: :class:`LockLost` otherwise);
                      each one is reported to ``on_write(event)`` *before* it is sent
                      (``stage="start"``) and after it returns (``stage="done"``, with the
                      object's ``uid``) or fails (``stage="error"``, with ``outcome``
                      ``"failed"``: the server refused it, or ``"unknown"``: it may have been
                      applied), so a process that dies mid-write leaves evidence of what may
                      have been applied
  ==================  =====================================================================

  A write that went out but whose ``done`` event could not be recorded raises
  :class:`WriteNotRecorded` (the engine still knows it happened and undoes it).

- :func:`runbook_writer` / :func:`runbook_reader`: what runbooks get as ``ctx.writer`` and
  ``ctx.kube``: objects with only the port's methods, whose wrapped writer or reader is not
  reachable as an attribute (the adapter behind a reader is often also the cluster's writer).
- :class:`PhaseReader`: the reader a runbook's phase reads through, a ``CachingReader`` made
  fresh for each phase (verify sees what apply wrote); the engine calls
  :meth:`PhaseReader.invalidate` after each write so later reads in the same phase are not
  stale.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from bot.engine.status import CachingReader
from bot.sdk.errors import K8snetError, KubeApiError, KubeForbidden, KubeNotFound
from bot.sdk.ports import KubeReader
from bot.sdk.runbook import KubeWriter, PhaseError

__all__ = ["WRITE_PHASES", "GuardedWriter", "LockLost", "PhaseReader", "WriteEvent",
           "WriteNotRecorded", "outcome_unknown", "runbook_reader", "runbook_writer"]

WRITE_PHASES = frozenset({"apply", "rollback"})
"""Phases in which real (non-dry-run) writes are allowed."""

DRY_RUN_PHASES = frozenset({"plan"})
"""Phases in which every write is forced to a server-side dry run."""

WriteEvent = dict[str, Any]
"""What ``on_write`` receives: ``{"seq": int (per writer, from 1), "stage": "start" | "done" |
"error", "phase": str, "verb": "create" | "replace" | "patch" | "delete", "api_version": str,
"plural": str, "namespace": str | None, "name": str, "target": "plural/ns/name",
"uid": str | None (stage done: the object's uid as the server returned it),
"error": str and "outcome": "failed" | "unknown" (stage error only)}``."""

Allowed = Callable[[str, str, str, str, str | None, str], bool]
"""``allowed(phase, verb, api_version, plural, namespace, name)``: may this real write go out?"""


class LockLost(K8snetError):
    """This process no longer holds the cluster lock of its run: the write was not sent."""


class WriteNotRecorded(K8snetError):
    """The write was sent and the server accepted it, but recording it in the audit trail
    failed; the run must treat it as applied."""


def outcome_unknown(err: BaseException) -> bool:
    """Whether a write that raised ``err`` may nevertheless have been applied: True for
    timeouts, connection errors, 5xx answers and anything unexpected; False when the API
    server answered with a refusal (403, 404, 4xx Status) or the guard refused it."""
    if isinstance(err, KubeForbidden | KubeNotFound | PhaseError | LockLost):
        return False
    if isinstance(err, KubeApiError):
        return not 400 <= err.code < 500 or err.code == 408
    return True


class PhaseReader(CachingReader):
    """A ``CachingReader`` for one phase, whose cache the engine can drop after a write."""

    def invalidate(self) -> None:
        """Forget every cached read (called after each write of apply/rollback)."""
        with self._lock:
            self._cache.clear()


class GuardedWriter:
    """A ``KubeWriter`` that enforces the current phase (see the module docstring). Engine
    side only: runbooks get :func:`runbook_writer` of it.

    ``inner``: the real writer; ``phase_getter``: returns the current phase name;
    ``on_write``: called with a :data:`WriteEvent` before and after each apply/rollback write
    (its exceptions propagate: a write whose start cannot be recorded is not sent; one whose
    end cannot be recorded raises :class:`WriteNotRecorded` or the original error);
    ``allowed``: see :data:`Allowed` (None: every object); ``before_write``: called before
    each real write, may raise (e.g. :class:`LockLost`) to stop it. ``writes`` counts the
    writes that were sent for real, ``dry_runs`` the forced or requested dry runs.
    Thread-safe.
    """

    def __init__(self, inner: KubeWriter, phase_getter: Callable[[], str],
                 on_write: Callable[[WriteEvent], None] | None = None, *,
                 allowed: Allowed | None = None,
                 before_write: Callable[[], None] | None = None) -> None:
        self._inner = inner
        self._phase_getter = phase_getter
        self._on_write = on_write
        self._allowed = allowed
        self._before_write = before_write
        self.writes = 0
        self.dry_runs = 0
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def _send(self, verb: str, api_version: str, plural: str, name: str,
              namespace: str | None, dry_run: bool, call: Callable[[bool], Any]) -> Any:
        phase = self._phase_getter()
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
        if self._allowed is not None and \
                not self._allowed(phase, verb, api_version, plural, namespace, name):
            what = "this action on an object" if phase == "apply" else "an object"
            raise PhaseError(f"The {phase} phase may not write: {verb} {target} refused "
                             f"({what} that is not in the approved plan).")
        if self._before_write is not None:
            self._before_write()
        with self._lock:
            seq = next(self._seq)
        event: WriteEvent = {"seq": seq, "stage": "start", "phase": phase, "verb": verb,
                             "api_version": api_version, "plural": plural,
                             "namespace": namespace, "name": name, "target": target}
        if self._on_write is not None:
            self._on_write(dict(event))
        try:
            result = call(False)
        except Exception as e:
            if self._on_write is not None:
                self._on_write({**event, "stage": "error", "error": str(e)[:1000],
                                "outcome": "unknown" if outcome_unknown(e) else "failed"})
            raise
        with self._lock:
            self.writes += 1
        if self._on_write is not None:
            meta = result.get("metadata") if isinstance(result, dict) else None
            uid = meta.get("uid") if isinstance(meta, dict) else None
            try:
                self._on_write({**event, "stage": "done",
                                "uid": str(uid) if uid else None})
            except Exception as e:
                raise WriteNotRecorded(
                    f"{verb} {target} was applied, but recording it in the audit trail "
                    f"failed: {e}") from e
        return result

    def create(self, api_version: str, plural: str, obj: dict[str, Any],
               namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        """POST, guarded."""
        name = str((obj.get("metadata") or {}).get("name")
                   or (obj.get("metadata") or {}).get("generateName") or "")
        result: dict[str, Any] = self._send(
            "create", api_version, plural, name, namespace, dry_run,
            lambda dr: self._inner.create(api_version, plural, obj, namespace, dry_run=dr))
        return result

    def replace(self, api_version: str, plural: str, name: str, obj: dict[str, Any],
                namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        """PUT, guarded."""
        result: dict[str, Any] = self._send(
            "replace", api_version, plural, name, namespace, dry_run,
            lambda dr: self._inner.replace(api_version, plural, name, obj, namespace,
                                           dry_run=dr))
        return result

    def patch(self, api_version: str, plural: str, name: str, patch: Any,
              namespace: str | None = None, *, patch_type: str = "merge",
              dry_run: bool = False) -> dict[str, Any]:
        """PATCH, guarded."""
        result: dict[str, Any] = self._send(
            "patch", api_version, plural, name, namespace, dry_run,
            lambda dr: self._inner.patch(api_version, plural, name, patch, namespace,
                                         patch_type=patch_type, dry_run=dr))
        return result

    def delete(self, api_version: str, plural: str, name: str, namespace: str | None = None,
               *, dry_run: bool = False) -> None:
        """DELETE, guarded."""
        self._send("delete", api_version, plural, name, namespace, dry_run,
                   lambda dr: self._inner.delete(api_version, plural, name, namespace,
                                                 dry_run=dr))


def runbook_writer(guard: GuardedWriter) -> KubeWriter:
    """What a runbook gets as ``ctx.writer``: the four write methods of ``guard`` and nothing
    else (no attribute leads to ``guard`` or the writer it wraps)."""

    class RunbookWriter:
        """The phase-guarded writer of this run (create, replace, patch, delete)."""

        __slots__ = ()

        def create(self, api_version: str, plural: str, obj: dict[str, Any],
                   namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
            """POST, guarded."""
            return guard.create(api_version, plural, obj, namespace, dry_run=dry_run)

        def replace(self, api_version: str, plural: str, name: str, obj: dict[str, Any],
                    namespace: str | None = None, *, dry_run: bool = False
                    ) -> dict[str, Any]:
            """PUT, guarded."""
            return guard.replace(api_version, plural, name, obj, namespace, dry_run=dry_run)

        def patch(self, api_version: str, plural: str, name: str, patch: Any,
                  namespace: str | None = None, *, patch_type: str = "merge",
                  dry_run: bool = False) -> dict[str, Any]:
            """PATCH, guarded."""
            return guard.patch(api_version, plural, name, patch, namespace,
                               patch_type=patch_type, dry_run=dry_run)

        def delete(self, api_version: str, plural: str, name: str,
                   namespace: str | None = None, *, dry_run: bool = False) -> None:
            """DELETE, guarded."""
            guard.delete(api_version, plural, name, namespace, dry_run=dry_run)

        def __repr__(self) -> str:
            return "<k8snet phase-guarded writer>"

    return RunbookWriter()


def runbook_reader(reader: KubeReader) -> KubeReader:
    """What a runbook gets as ``ctx.kube``: the ``KubeReader`` methods of ``reader`` and
    nothing else (the adapter behind a reader usually writes too)."""

    class RunbookReader:
        """The reader of this run's current phase."""

        __slots__ = ()

        def list(self, api_version: str, plural: str, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None
                 ) -> list[dict[str, Any]]:
            """All items of a kind (see ``KubeReader.list``)."""
            return reader.list(api_version, plural, namespace, label_selector, field_selector)

        def get(self, api_version: str, plural: str, name: str,
                namespace: str | None = None) -> dict[str, Any] | None:
            """One object, or None (see ``KubeReader.get``)."""
            return reader.get(api_version, plural, name, namespace)

        def served(self, api_version: str, plural: str) -> bool:
            """Whether the server serves this resource."""
            return reader.served(api_version, plural)

        def pod_log(self, namespace: str, name: str, container: str | None = None,
                    tail_lines: int = 200) -> str:
            """The last lines of a pod's log."""
            return reader.pod_log(namespace, name, container, tail_lines)

        def server_version(self) -> dict[str, Any]:
            """``/version``."""
            return reader.server_version()

        def __repr__(self) -> str:
            return "<k8snet phase reader>"

    return RunbookReader()
