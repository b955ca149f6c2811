"""Runbooks for engine tests (never shipped): small, deterministic, one ConfigMap per namespace.

==========================  ===================================================================
``test-configmap`` 1.0.0    one ConfigMap ``<name>`` per namespace with ``data.value`` (create,
                            or merge-patch when it differs); verify reads it back
``test-configmap`` 1.1.0    same, another minor (``@1`` resolves here)
``test-configmap`` 2.0.0    same plus a ``label`` param (the newest)
``test-disruptive``         ``test-configmap`` with risk ``disruptive``
``test-readonly``           risk ``read-only``; its plan is always empty
``test-slow``               creates ``names`` in ``namespace``; apply creates the first, then
                            waits until ``gate_file`` exists (at most ``hold_seconds``), then
                            creates the rest
``test-verify-fails``       ``test-configmap`` whose verify always fails
``test-apply-fails``        ``test-configmap`` plus a patch of a ConfigMap that does not exist:
                            the last change fails at apply
``test-plan-writes``        writes (not as a dry run) during plan: the engine must force a dry
                            run
``test-verify-writes``      deletes during verify: the engine must raise PhaseError
==========================  ===================================================================

:func:`make_registry` registers them all in a fresh ``Registry``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from bot.engine.registry import Registry
from bot.sdk.results import Inspection
from bot.sdk.runbook import (
    Applied,
    Change,
    Check,
    Params,
    Plan,
    Risk,
    Runbook,
    RunContext,
    Verification,
    execute_change,
    strip_noise,
)

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _namespace(v: str) -> str:
    if not _LABEL.match(v):
        raise ValueError(f"{v!r} is not a valid namespace name (RFC 1123 label)")
    return v


def _name(v: str) -> str:
    if not _LABEL.match(v):
        raise ValueError(f"{v!r} is not a valid object name (RFC 1123 label)")
    return v


Namespace = Annotated[str, AfterValidator(_namespace)]
Name = Annotated[str, AfterValidator(_name)]


class ConfigMapParams(Params):
    """Which ConfigMap to write where."""

    namespaces: tuple[Namespace, ...] = Field(min_length=1, max_length=20,
                                              description="Namespaces to write the ConfigMap in.")
    name: Name = Field("k8snet-test", description="Name of the ConfigMap.")
    value: str = Field("on", max_length=100, description="Value of data.value.")
    replicas: int = Field(1, ge=1, le=10, description="A bounded int, copied to data.replicas.")
    enabled: bool = Field(True, description="Copied to data.enabled.")


def configmap(ns: str, name: str, data: dict[str, str],
              labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A ConfigMap object."""
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)}


class TestConfigMap(Runbook):
    """Write one test ConfigMap per namespace."""

    __test__ = False  # not a pytest class
    name = "test-configmap"
    version = "1.0.0"
    risk = Risk.LOW
    Params = ConfigMapParams

    def desired(self, params: Any) -> dict[str, str]:
        """The ConfigMap data the params ask for."""
        return {"value": params.value, "replicas": str(params.replicas),
                "enabled": "true" if params.enabled else "false"}

    def inspect(self, ctx: RunContext) -> Inspection:
        return Inspection(summary="test", facts={"cluster": ctx.cluster})

    def plan(self, ctx: RunContext, params: Any, inspection: Inspection) -> Plan:
        want = self.desired(params)
        changes = []
        for ns in params.namespaces:
            live = ctx.kube.get("v1", "configmaps", params.name, ns)
            if live is None:
                changes.append(Change(
                    api_version="v1", plural="configmaps", kind="ConfigMap", namespace=ns,
                    name=params.name, action="create",
                    after=configmap(ns, params.name, want), summary="create"))
            elif live.get("data") != want:
                before = strip_noise(live)
                assert before is not None
                after = {**before, "data": want}
                changes.append(Change(
                    api_version="v1", plural="configmaps", kind="ConfigMap", namespace=ns,
                    name=params.name, action="patch", before=before, after=after,
                    patch={"data": {**{k: None for k in live.get("data") or {}}, **want}},
                    summary="update data"))
        return Plan(changes=tuple(changes))

    def verify(self, ctx: RunContext, params: Any, plan: Plan,
               applied: tuple[Applied, ...]) -> Verification:
        want = self.desired(params)
        checks = []
        for a in applied:
            ch = plan.changes[a.index]
            live = ctx.kube.get("v1", "configmaps", ch.name, ch.namespace)
            ok = live is not None and live.get("data") == want
            got = (live or {}).get("data")
            checks.append(Check(name=f"{ch.target} data", passed=ok,
                                message="as planned" if ok else f"data is {got}"))
        return Verification(checks=tuple(checks))


class TestConfigMapV11(TestConfigMap):
    """Write one test ConfigMap per namespace (1.1)."""

    version = "1.1.0"


class ConfigMapParamsV2(ConfigMapParams):
    """Version 2 adds a label."""

    label: Name = Field("k8snet", description="Value of the app label.")


class TestConfigMapV2(TestConfigMap):
    """Write one labelled test ConfigMap per namespace."""

    version = "2.0.0"
    Params = ConfigMapParamsV2


class TestDisruptive(TestConfigMap):
    """A disruptive test runbook (needs policy.approvals_required approvals)."""

    name = "test-disruptive"
    risk = Risk.DISRUPTIVE


class TestReadOnly(TestConfigMap):
    """A read-only test runbook: never plans a change."""

    name = "test-readonly"
    risk = Risk.READ_ONLY

    def plan(self, ctx: RunContext, params: Any, inspection: Inspection) -> Plan:
        return Plan(notes=("read only",))


class SlowParams(Params):
    """Where to create the slow runbook's ConfigMaps and how long to hold between them."""

    namespace: Namespace = Field("default", description="Namespace.")
    names: tuple[Name, ...] = Field(("slow-1", "slow-2"), min_length=1, max_length=5,
                                    description="ConfigMaps to create, in order.")
    gate_file: str = Field("", max_length=500,
                           description="Apply waits for this file after the first change.")
    hold_seconds: float = Field(0, ge=0, le=600,
                                description="Longest wait for the gate file (s).")


class TestSlow(Runbook):
    """Create ConfigMaps one by one, pausing after the first."""

    __test__ = False
    name = "test-slow"
    version = "1.0.0"
    risk = Risk.LOW
    Params = SlowParams

    def plan(self, ctx: RunContext, params: Any, inspection: Inspection) -> Plan:
        changes = []
        for n in params.names:
            if ctx.kube.get("v1", "configmaps", n, params.namespace) is None:
                changes.append(Change(
                    api_version="v1", plural="configmaps", kind="ConfigMap",
                    namespace=params.namespace, name=n, action="create",
                    after=configmap(params.namespace, n, {"slow": "yes"})))
        return Plan(changes=tuple(changes))

    @staticmethod
    def wait(params: Any) -> None:
        """Wait until the gate file exists or ``hold_seconds`` pass."""
        deadline = time.monotonic() + params.hold_seconds
        while time.monotonic() < deadline:
            if params.gate_file and Path(params.gate_file).exists():
                return
            time.sleep(0.02)

    def apply(self, ctx: RunContext, params: Any, plan: Plan) -> tuple[Applied, ...]:
        out = []
        for i, ch in enumerate(plan.changes):
            if i == 1:
                ctx.progress("holding")
                self.wait(params)
            execute_change(ctx.writer, ch)
            out.append(Applied(index=i, target=ch.target, action=ch.action, ok=True,
                               message=f"created {ch.target}"))
        return tuple(out)


class TestVerifyFails(TestConfigMap):
    """A runbook whose verify always fails."""

    name = "test-verify-fails"

    def verify(self, ctx: RunContext, params: Any, plan: Plan,
               applied: tuple[Applied, ...]) -> Verification:
        return Verification(checks=(Check(name="always", passed=False,
                                          message="this check always fails"),))


class TestApplyFails(TestConfigMap):
    """A runbook whose last change fails at apply (patch of a missing ConfigMap)."""

    name = "test-apply-fails"

    def plan(self, ctx: RunContext, params: Any, inspection: Inspection) -> Plan:
        base = super().plan(ctx, params, inspection)
        ns = params.namespaces[0]
        missing = Change(api_version="v1", plural="configmaps", kind="ConfigMap",
                         namespace=ns, name="does-not-exist", action="patch",
                         before=configmap(ns, "does-not-exist", {}), patch={"data": {"x": "1"}})
        return Plan(changes=(*base.changes, missing)) if base.changes else base


class TestPlanWrites(TestConfigMap):
    """A runbook that writes during plan without asking for a dry run."""

    name = "test-plan-writes"

    def plan(self, ctx: RunContext, params: Any, inspection: Inspection) -> Plan:
        for ns in params.namespaces:
            ctx.writer.create("v1", "configmaps", configmap(ns, "sneaky", {"x": "1"}), ns,
                              dry_run=False)
        return super().plan(ctx, params, inspection)


class TestVerifyWrites(TestConfigMap):
    """A runbook that writes during verify (must raise PhaseError)."""

    name = "test-verify-writes"

    def verify(self, ctx: RunContext, params: Any, plan: Plan,
               applied: tuple[Applied, ...]) -> Verification:
        ch = plan.changes[0]
        ctx.writer.delete("v1", "configmaps", ch.name, ch.namespace)
        return Verification(checks=(Check(name="unreachable", passed=True),))


ALL: tuple[type[Runbook], ...] = (
    TestConfigMap, TestConfigMapV11, TestConfigMapV2, TestDisruptive, TestReadOnly, TestSlow,
    TestVerifyFails, TestApplyFails, TestPlanWrites, TestVerifyWrites,
)


def make_registry() -> Registry:
    """A fresh Registry with every test runbook."""
    reg = Registry()
    for cls in ALL:
        reg.register(cls)
    return reg
