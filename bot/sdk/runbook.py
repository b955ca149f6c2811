"""The runbook contract (DESIGN.md §3): versioned, planned, approved, applied, verified and
rolled back by the engine.

A runbook is a subclass of :class:`Runbook` in ``runbooks/<name>.py`` with:

- ``name``: stable id (``netpol-dns-allow``); ``version``: SemVer (``1.0.0``; major = params or
  semantics change); ``risk``: :class:`Risk`; ``Params``: a :class:`Params` subclass (pydantic,
  ``extra="forbid"``, frozen, constrained types): the one source of help text, CLI flags, Slack
  modal fields and error messages. The class docstring's first line is its summary.
- phases, each returning frozen data:

  ========================================  ==================================================
  ``inspect(ctx) -> Inspection``            reads only
  ``plan(ctx, params, inspection) -> Plan`` reads; writes only as server-side dry-run
                                            (the engine forces ``dryRun=All``)
  ``apply(ctx, params, plan)``              writes; returns one :class:`Applied` per change
  ``verify(ctx, params, plan, applied)``    reads; returns :class:`Verification`
  ``rollback(ctx, params, plan, applied)``  writes, from each change's ``before``
  ========================================  ==================================================

The engine, not the runbook, enforces phases: ``ctx.writer`` raises :class:`PhaseError` outside
apply/rollback and turns every write during plan into a dry run; in apply it accepts only the
objects and actions of the approved plan, in rollback only the plan's objects. The default
``apply`` and ``rollback`` here execute :class:`Change` objects generically (create / replace /
patch / delete and their inverses, rollback in reverse order), so most runbooks only write
``inspect``, ``plan`` and ``verify``.

Rollback gets, besides what apply reported, what the engine's write log shows was applied or
may have been (``Applied.uncertain``: a timeout or a lost answer), with the uid each create
returned (``Applied.uid``). :func:`undo_change` reads the live object first and deletes a
created object only when it is provably this run's (that uid, or the :data:`RUN_ID_LABEL` a
runbook may set in ``prepare_write``).
"""

from __future__ import annotations

import abc
import contextlib
import enum
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from bot.errors import K8snetError, KubeNotFound
from bot.sdk.ports import KubeReader
from bot.sdk.results import Inspection

_DONE = {"create": "created", "replace": "replaced", "patch": "patched", "delete": "deleted"}
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
NOISE_METADATA = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields",
                  "selfLink")


class PhaseError(K8snetError):
    """A runbook tried something its current phase does not allow (e.g. a write in verify)."""


class LeftInPlace(K8snetError):
    """Rollback left an object untouched on purpose: it may not be the one this run wrote
    (e.g. a create whose answer was lost, and the object has no mark of this run)."""


RUN_ID_LABEL = "k8snet.io/run-id"
"""Label a runbook may set (in ``prepare_write``) on what it creates, to the run id: the
generic rollback deletes an object whose create had an unknown outcome only when it carries
this run's label (or the uid the create returned)."""


def run_label(run_id: str) -> str | None:
    """``run_id`` as a valid label value (at most 63 characters of ``[A-Za-z0-9._-]``,
    alphanumeric at both ends), or None when nothing usable is left."""
    text = re.sub(r"[^A-Za-z0-9._-]", "-", run_id)[:63].strip("._-")
    return text or None


class Risk(enum.StrEnum):
    """How dangerous a runbook is; drives the approval policy (DESIGN.md §5).

    ``read-only``: never writes; ``low``: reversible, no traffic impact expected;
    ``disruptive``: may interrupt traffic; needs N approvals from approvers who are not the
    requester.
    """

    READ_ONLY = "read-only"
    LOW = "low"
    DISRUPTIVE = "disruptive"


class Params(BaseModel):
    """Base of every runbook's parameters: unknown keys are refused, values are frozen.
    Field ``description`` is the help text shown in Slack and the CLI."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def strip_noise(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy of an API object without server-set noise (resourceVersion, uid,
    creationTimestamp, generation, managedFields, selfLink, status), for diffs and hashes."""
    if obj is None:
        return None
    out = json.loads(json.dumps(obj))
    meta = out.get("metadata") or {}
    for k in NOISE_METADATA:
        meta.pop(k, None)
    ann = meta.get("annotations")
    if isinstance(ann, dict):
        ann.pop("kubectl.kubernetes.io/last-applied-configuration", None)
        if not ann:
            meta.pop("annotations")
    out.pop("status", None)
    return out


class Change(_Frozen):
    """One change to one object.

    ``api_version``/``plural``/``kind``/``namespace``/``name`` identify the object;
    ``action`` is ``create``, ``replace``, ``patch`` or ``delete``; ``before`` is the live object
    (noise stripped; None for a create) and ``after`` the desired one (None for a delete);
    ``patch`` and ``patch_type`` are used for ``patch``; ``reversible`` says whether rollback
    can restore ``before``; ``summary`` is one plain sentence.
    """

    api_version: str
    plural: str
    kind: str
    namespace: str | None = None
    name: str
    action: Literal["create", "replace", "patch", "delete"]
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    patch: Any = None
    patch_type: Literal["merge", "strategic", "json"] = "merge"
    reversible: bool = True
    summary: str = ""

    @property
    def target(self) -> str:
        """``kind/namespace/name`` (``kind/name`` for cluster-scoped objects), lower-case kind."""
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind.lower()}/{ns}{self.name}"


class Plan(_Frozen):
    """What a run would change. Empty ``changes`` means nothing to do.

    ``warnings`` are shown with the plan and need the approver's attention; ``notes`` are
    informational. ``digest()`` is the plan hash bound to the approval: before apply the engine
    re-plans and refuses (state ``stale``) when the hash differs.
    """

    changes: tuple[Change, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when there is nothing to change."""
        return not self.changes

    def digest(self) -> str:
        """sha256 hex of the canonical JSON of changes and warnings."""
        body = {"changes": [c.model_dump(mode="json") for c in self.changes],
                "warnings": list(self.warnings)}
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(data).hexdigest()


class Applied(_Frozen):
    """The outcome of executing one change (``index`` into ``plan.changes``): ``ok``,
    a one-line ``message`` and the object as the server returned it (``result``, noise
    stripped; None for deletes).

    Set by the engine on what it hands to ``rollback``: ``uid``, the uid of the object a
    create made (as the server answered; None when unknown), and ``uncertain``: the write was
    sent but its outcome is unknown (a timeout, a lost answer, a process that died), so it
    may or may not have been applied; rollback must check the live object first."""

    index: int
    target: str
    action: str
    ok: bool
    message: str = ""
    result: dict[str, Any] | None = None
    uid: str | None = None
    uncertain: bool = False


class Check(_Frozen):
    """One verification check: ``name``, ``passed`` and a plain ``message``."""

    name: str
    passed: bool
    message: str = ""


class Verification(_Frozen):
    """All checks of a verify phase; ``passed`` only when every check passed (and there is at
    least one)."""

    checks: tuple[Check, ...] = ()

    @property
    def passed(self) -> bool:
        """True when there is at least one check and all passed."""
        return bool(self.checks) and all(c.passed for c in self.checks)


class KubeWriter(Protocol):
    """Writes to one cluster. ``dry_run=True`` sends ``dryRun=All`` (admission webhooks and
    schema validation run, nothing is stored). Errors are the ``KubeError`` tree (409 conflict,
    422 invalid and webhook denials carry the apiserver's message verbatim)."""

    def create(self, api_version: str, plural: str, obj: dict[str, Any],
               namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        """POST; returns the object as stored (or as it would be)."""
        ...

    def replace(self, api_version: str, plural: str, name: str, obj: dict[str, Any],
                namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        """PUT (``obj`` carries ``metadata.resourceVersion`` for optimistic concurrency)."""
        ...

    def patch(self, api_version: str, plural: str, name: str, patch: Any,
              namespace: str | None = None, *, patch_type: str = "merge",
              dry_run: bool = False) -> dict[str, Any]:
        """PATCH with ``merge`` (RFC 7386), ``strategic`` or ``json`` (RFC 6902)."""
        ...

    def delete(self, api_version: str, plural: str, name: str, namespace: str | None = None,
               *, dry_run: bool = False) -> None:
        """DELETE; raises KubeNotFound when the object does not exist."""
        ...


@dataclass
class RunContext:
    """What runbook phases get.

    ``kube``: reader (cached within a phase); ``writer``: phase-guarded ``KubeWriter``;
    ``facts``: facts of the status probes when the engine ran them (may be empty);
    ``run_id``: the run's id, to label created objects; ``phase``: current phase name;
    ``progress``: callable taking one plain sentence, shown to the operator (rate-limited by
    the engine).
    """

    cluster: str
    kube: KubeReader
    writer: KubeWriter
    run_id: str = ""
    phase: str = ""
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: Callable[[str], None] = lambda _msg: None


ParamsBase = Params


class Runbook(abc.ABC):
    """Base class of runbooks; see the module docstring for the contract."""

    name: ClassVar[str]
    version: ClassVar[str]
    risk: ClassVar[Risk] = Risk.LOW
    Params: ClassVar[type[ParamsBase]] = ParamsBase

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.name

    @classmethod
    def major(cls) -> int:
        """The major version number (``name@<major>`` pins it)."""
        return int(cls.version.split(".")[0])

    def inspect(self, ctx: RunContext) -> Inspection:
        """Read the cluster; findings and facts for ``plan``."""
        return Inspection()

    @abc.abstractmethod
    def plan(self, ctx: RunContext, params: ParamsBase, inspection: Inspection) -> Plan:
        """What would change. Must be idempotent: after apply, plan is empty."""

    def apply(self, ctx: RunContext, params: ParamsBase, plan: Plan) -> tuple[Applied, ...]:
        """Execute the plan's changes in order; stops at the first failure (later changes are
        not attempted). Returns what was attempted."""
        out: list[Applied] = []
        for i, ch in enumerate(plan.changes):
            ctx.progress(f"{ch.action} {ch.target}")
            try:
                result = execute_change(ctx.writer, self.prepare_write(ctx, ch))
            except K8snetError as e:
                out.append(Applied(index=i, target=ch.target, action=ch.action, ok=False,
                                   message=str(e)))
                break
            out.append(Applied(index=i, target=ch.target, action=ch.action, ok=True,
                               message=f"{_DONE[ch.action]} {ch.target}",
                               result=strip_noise(result)))
        return tuple(out)

    def prepare_write(self, ctx: RunContext, change: Change) -> Change:
        """Last touch on a change just before apply sends it (e.g. a label carrying the run
        id, which must not be part of the plan hash). Default: unchanged."""
        return change

    def verify(self, ctx: RunContext, params: ParamsBase, plan: Plan,
               applied: tuple[Applied, ...]) -> Verification:
        """Check that the changes took effect. Default: each applied object reads back as
        planned (exists after create/replace/patch, gone after delete)."""
        return Verification(checks=tuple(readback_check(ctx.kube, plan.changes[a.index])
                                         for a in applied if a.ok))

    def rollback(self, ctx: RunContext, params: ParamsBase, plan: Plan,
                 applied: tuple[Applied, ...]) -> tuple[Applied, ...]:
        """Undo exactly what was applied (and what may have been: ``Applied.uncertain``),
        in reverse order, from each change's ``before`` (see :func:`undo_change`)."""
        out: list[Applied] = []
        for a in reversed([a for a in applied if a.ok]):
            ch = plan.changes[a.index]
            ctx.progress(f"undo {ch.action} {ch.target}")
            try:
                message = undo_change(ctx.kube, ctx.writer, ch, uid=a.uid,
                                      uncertain=a.uncertain, run_id=ctx.run_id)
            except K8snetError as e:
                out.append(Applied(index=a.index, target=ch.target, action=f"undo-{ch.action}",
                                   ok=False, message=str(e)))
                continue
            out.append(Applied(index=a.index, target=ch.target, action=f"undo-{ch.action}",
                               ok=True, message=message))
        return tuple(out)


def execute_change(writer: KubeWriter, ch: Change, *, dry_run: bool = False) -> dict[str, Any]:
    """Send one change to the API. Returns the server's object ({} for deletes)."""
    if ch.action == "create":
        assert ch.after is not None
        return writer.create(ch.api_version, ch.plural, ch.after, ch.namespace, dry_run=dry_run)
    if ch.action == "replace":
        assert ch.after is not None
        return writer.replace(ch.api_version, ch.plural, ch.name, ch.after, ch.namespace,
                              dry_run=dry_run)
    if ch.action == "patch":
        return writer.patch(ch.api_version, ch.plural, ch.name, ch.patch, ch.namespace,
                            patch_type=ch.patch_type, dry_run=dry_run)
    writer.delete(ch.api_version, ch.plural, ch.name, ch.namespace, dry_run=dry_run)
    return {}


def _uid(obj: dict[str, Any]) -> str | None:
    uid = (obj.get("metadata") or {}).get("uid")
    return str(uid) if uid else None


def undo_change(kube: KubeReader, writer: KubeWriter, ch: Change, *, uid: str | None = None,
                uncertain: bool = False, run_id: str = "") -> str:
    """Restore ``ch.before``, reading the live object first so that undoing twice, or undoing
    what never happened, is harmless. Returns what was done, one line.

    - create: delete the object, but only the one this run made: when ``uid`` (what the
      create returned) is known, only an object with that uid; when the create's outcome is
      unknown (``uncertain``, no uid), only an object labelled :data:`RUN_ID_LABEL` with
      ``run_id``, else :class:`LeftInPlace`. Already gone: nothing to do.
    - delete: re-create ``before`` unless an object of that name exists again.
    - replace/patch: put back ``before`` on the live resourceVersion (re-create it when gone).

    Raises PhaseError for an irreversible change, LeftInPlace, or the writer's KubeError."""
    if not ch.reversible:
        raise PhaseError(f"{ch.target}: this change cannot be rolled back automatically")
    live = kube.get(ch.api_version, ch.plural, ch.name, ch.namespace)
    if ch.action == "create":
        if live is None:
            return f"{ch.target} already gone"
        live_uid = _uid(live)
        if uid is not None and live_uid != uid:
            return (f"{ch.target} is not the object this run created (uid {live_uid}, not "
                    f"{uid}); left untouched")
        if uid is None and uncertain:
            label = run_label(run_id) if run_id else None
            labels = (live.get("metadata") or {}).get("labels") or {}
            if label is None or labels.get(RUN_ID_LABEL) != label:
                raise LeftInPlace(
                    f"left in place: it may not be this run's object (its create got no usable "
                    f"answer, and it carries neither this run's {RUN_ID_LABEL} label nor a "
                    "known uid); check it and delete it by hand if it is")
        # the KubeWriter port has no delete preconditions: the uid was compared just above
        with contextlib.suppress(KubeNotFound):  # gone meanwhile: nothing to undo
            writer.delete(ch.api_version, ch.plural, ch.name, ch.namespace)
        return f"deleted {ch.target}"
    assert ch.before is not None
    if ch.action == "delete":
        if live is not None:
            return f"{ch.target} exists; nothing to restore"
        writer.create(ch.api_version, ch.plural, ch.before, ch.namespace)
        return f"restored {ch.target}"
    body = json.loads(json.dumps(ch.before))
    if live is not None:
        body.setdefault("metadata", {})["resourceVersion"] = (
            live.get("metadata") or {}).get("resourceVersion")
        writer.replace(ch.api_version, ch.plural, ch.name, body, ch.namespace)
    else:
        writer.create(ch.api_version, ch.plural, body, ch.namespace)
    return f"restored {ch.target}"


def readback_check(kube: KubeReader, ch: Change) -> Check:
    """Whether the live object matches ``ch.after`` (spec, data and labels) or is gone after a
    delete."""
    live = kube.get(ch.api_version, ch.plural, ch.name, ch.namespace)
    if ch.action == "delete":
        return Check(name=f"{ch.target} deleted", passed=live is None,
                     message="gone" if live is None else "still present")
    if live is None:
        return Check(name=f"{ch.target} present", passed=False, message="not found")
    want = strip_noise(ch.after) or {}
    got = strip_noise(live) or {}
    mismatched = [k for k in want if k not in ("metadata", "apiVersion", "kind")
                  and want[k] != got.get(k)]
    labels_w = (want.get("metadata") or {}).get("labels") or {}
    labels_g = (got.get("metadata") or {}).get("labels") or {}
    if any(labels_g.get(k) != v for k, v in labels_w.items()):
        mismatched.append("metadata.labels")
    if ch.action == "patch":
        mismatched = []  # a patch's effect is the runbook's own verify to judge
    return Check(name=f"{ch.target} as planned", passed=not mismatched,
                 message="matches the plan" if not mismatched
                 else f"differs from the plan in {', '.join(mismatched)}")


def parse_version(version: str) -> tuple[int, int, int]:
    """``"1.2.3"`` -> (1, 2, 3). Raises ValueError for anything that is not SemVer core."""
    m = SEMVER.match(version)
    if not m:
        raise ValueError(f"{version!r} is not a SemVer version like 1.0.0")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


__all__ = [
    "RUN_ID_LABEL",
    "Applied",
    "Change",
    "Check",
    "Field",
    "KubeWriter",
    "LeftInPlace",
    "Params",
    "PhaseError",
    "Plan",
    "Risk",
    "RunContext",
    "Runbook",
    "Verification",
    "execute_change",
    "parse_version",
    "readback_check",
    "run_label",
    "strip_noise",
    "undo_change",
]
