"""``KubeAdapter`` as a ``KubeWriter`` (create / replace / patch / delete) against the API
emulator over HTTP: dry runs store nothing, optimistic concurrency (409), validation (422),
RBAC (403 naming verb and resource), admission webhook denials kept verbatim, 415 for a
strategic merge on a custom resource, and at-most-once writes (no automatic retry)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kube import KubeAdapter
from bot.sdk.errors import KubeApiError, KubeForbidden, KubeNotFound, KubeTimeout
from bot.sdk.runbook import KubeWriter
from tests.integration.conftest import EmulatorFactory
from tests.lab.emulator import ApiError, Emulator, Request, Response, status

NP = "networking.k8s.io/v1"


def adapter(emu: Emulator, tmp_path: Path, **kw: Any) -> KubeAdapter:
    kc = tmp_path / "kubeconfig"
    emu.write_kubeconfig(kc, context="lab")
    return KubeAdapter("lab", kubeconfig=str(kc), context="lab", **kw)


def policy(name: str, ns: str = "x", **labels: str) -> dict[str, Any]:
    return {"apiVersion": NP, "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


@pytest.fixture
def lab(emulator_factory: EmulatorFactory, tmp_path: Path) -> tuple[Emulator, KubeAdapter]:
    emu = emulator_factory()
    a = adapter(emu, tmp_path)
    a.create("v1", "namespaces", namespace("x"))
    return emu, a


def writes(emu: Emulator) -> list[Any]:
    return [r for r in emu.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]


def test_adapter_is_a_kube_writer(lab: tuple[Emulator, KubeAdapter]) -> None:
    _, a = lab
    w: KubeWriter = a  # mypy checks the protocol
    assert callable(w.create) and callable(w.delete)


def test_create_stores_and_returns_the_object(lab: tuple[Emulator, KubeAdapter]) -> None:
    emu, a = lab
    emu.clear_requests()
    out = a.create(NP, "networkpolicies", policy("deny", team="a"), "x")
    assert out["metadata"]["resourceVersion"] and out["metadata"]["uid"]
    assert out["spec"]["policyTypes"] == ["Ingress", "Egress"]
    live = a.get(NP, "networkpolicies", "deny", "x")
    assert live is not None and live["metadata"]["labels"] == {"team": "a"}
    (req,) = writes(emu)
    assert req.method == "POST" and req.path == "/apis/networking.k8s.io/v1/namespaces/x/" \
        "networkpolicies" and req.code == 201
    assert req.query.get("fieldManager") == "k8snet" and "dryRun" not in req.query
    # the namespace may also come from the object alone
    a.create(NP, "networkpolicies", policy("deny2"))
    assert a.get(NP, "networkpolicies", "deny2", "x") is not None


def test_dry_runs_store_nothing(lab: tuple[Emulator, KubeAdapter]) -> None:
    emu, a = lab
    emu.clear_requests()
    out = a.create(NP, "networkpolicies", policy("deny"), "x", dry_run=True)
    assert out["metadata"]["name"] == "deny"
    assert a.get(NP, "networkpolicies", "deny", "x") is None
    stored = a.create(NP, "networkpolicies", policy("deny"), "x")
    rv = stored["metadata"]["resourceVersion"]
    changed = {**stored, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    a.replace(NP, "networkpolicies", "deny", changed, "x", dry_run=True)
    a.patch(NP, "networkpolicies", "deny", {"metadata": {"labels": {"p": "1"}}}, "x",
            dry_run=True)
    a.delete(NP, "networkpolicies", "deny", "x", dry_run=True)
    live = a.get(NP, "networkpolicies", "deny", "x")
    assert live is not None and live["metadata"]["resourceVersion"] == rv
    assert live["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "p" not in (live["metadata"].get("labels") or {})
    dry = [r for r in writes(emu) if r.query.get("dryRun") == "All"]
    assert [r.method for r in dry] == ["POST", "PUT", "PATCH", "DELETE"]


def test_replace_and_stale_resource_version_conflict(lab: tuple[Emulator, KubeAdapter]) -> None:
    _, a = lab
    stored = a.create(NP, "networkpolicies", policy("deny"), "x")
    body = {**stored, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    out = a.replace(NP, "networkpolicies", "deny", body, "x")
    assert out["spec"]["policyTypes"] == ["Ingress"]
    assert out["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]
    with pytest.raises(KubeApiError) as ei:  # body still carries the old resourceVersion
        a.replace(NP, "networkpolicies", "deny", {**body, "spec": {"podSelector": {}}}, "x")
    e = ei.value
    assert (e.code, e.reason) == (409, "Conflict")
    assert "the object has been modified; please apply your changes to the latest version" \
        in str(e)
    assert "update networkpolicies.networking.k8s.io in namespace 'x'" in str(e)
    with pytest.raises(KubeNotFound, match='"gone" not found'):
        a.replace(NP, "networkpolicies", "gone", policy("gone"), "x")


def test_create_existing_is_already_exists(lab: tuple[Emulator, KubeAdapter]) -> None:
    _, a = lab
    a.create(NP, "networkpolicies", policy("deny"), "x")
    with pytest.raises(KubeApiError) as ei:
        a.create(NP, "networkpolicies", policy("deny"), "x")
    assert (ei.value.code, ei.value.reason) == (409, "AlreadyExists")
    assert 'networkpolicies.networking.k8s.io "deny" already exists' in str(ei.value)
    with pytest.raises(KubeNotFound, match='namespaces "nope" not found'):
        a.create(NP, "networkpolicies", policy("deny", ns="nope"), "nope")


def test_patch_types(lab: tuple[Emulator, KubeAdapter]) -> None:
    emu, a = lab
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "c", "namespace": "x"}, "data": {"a": "1", "b": "2"}}
    a.create("v1", "configmaps", cm)
    emu.clear_requests()
    out = a.patch("v1", "configmaps", "c", {"data": {"a": None, "c": "3"}}, "x")
    assert out["data"] == {"b": "2", "c": "3"}
    out = a.patch("v1", "configmaps", "c", [{"op": "replace", "path": "/data/b", "value": "9"}],
                  "x", patch_type="json")
    assert out["data"]["b"] == "9"
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "d", "namespace": "x"},
           "spec": {"selector": {"matchLabels": {"app": "d"}},
                    "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [
                        {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}}
    a.create("apps/v1", "deployments", dep)
    out = a.patch("apps/v1", "deployments", "d", {"spec": {"template": {"spec": {
        "containers": [{"name": "b", "image": "b:2"}]}}}}, "x", patch_type="strategic")
    images = [c["image"] for c in out["spec"]["template"]["spec"]["containers"]]
    assert images == ["a:1", "b:2"]  # merged by name, not replaced
    assert len(writes(emu)) == 4  # 2 configmap patches, 1 create, 1 deployment patch
    with pytest.raises(ValueError, match="list of operations"):
        a.patch("v1", "configmaps", "c", {"data": {}}, "x", patch_type="json")
    with pytest.raises(ValueError, match="patch_type"):
        a.patch("v1", "configmaps", "c", {}, "x", patch_type="apply")
    assert len(writes(emu)) == 4  # refused locally: nothing sent


def test_strategic_merge_on_a_custom_resource_is_415(emulator_factory: EmulatorFactory,
                                                     tmp_path: Path) -> None:
    emu = emulator_factory("b")
    a = adapter(emu, tmp_path)
    pool = a.list("metallb.io/v1beta1", "ipaddresspools", "metallb-system")[0]
    name = pool["metadata"]["name"]
    with pytest.raises(KubeApiError) as ei:
        a.patch("metallb.io/v1beta1", "ipaddresspools", name, {"spec": {"autoAssign": False}},
                "metallb-system", patch_type="strategic")
    assert ei.value.code == 415 and ei.value.reason == "UnsupportedMediaType"
    assert "application/merge-patch+json" in str(ei.value)
    out = a.patch("metallb.io/v1beta1", "ipaddresspools", name, {"spec": {"autoAssign": False}},
                  "metallb-system", patch_type="merge")
    assert out["spec"]["autoAssign"] is False


def test_invalid_is_422_with_the_field_causes(lab: tuple[Emulator, KubeAdapter]) -> None:
    _, a = lab
    with pytest.raises(KubeApiError) as ei:
        a.create(NP, "networkpolicies", policy("Bad_Name"), "x")
    e = ei.value
    assert (e.code, e.reason) == (422, "Invalid")
    assert 'NetworkPolicy.networking.k8s.io "Bad_Name" is invalid: metadata.name' in str(e)
    a.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "c", "namespace": "x"}})
    with pytest.raises(KubeApiError) as ei2:  # causes not in the message are appended
        a.patch("v1", "configmaps", "c", [{"op": "remove", "path": "/data/nope"}], "x",
                patch_type="json")
    assert ei2.value.code == 422
    assert "the server rejected our request" in str(ei2.value)
    assert "nope" in str(ei2.value)  # the cause (missing path) is in the message


def test_rbac_403_names_verb_resource_and_namespace(lab: tuple[Emulator, KubeAdapter]) -> None:
    emu, a = lab
    emu.forbid("create", "networkpolicies", "x")
    emu.forbid("delete", "networkpolicies")
    with pytest.raises(KubeForbidden) as ei:
        a.create(NP, "networkpolicies", policy("deny"), "x")
    e = ei.value
    assert "create networkpolicies.networking.k8s.io in namespace 'x'" in str(e)
    assert (e.verb, e.resource, e.group, e.namespace) == (
        "create", "networkpolicies", "networking.k8s.io", "x")
    assert "cannot create resource" in str(e)  # the apiserver's words are kept
    with pytest.raises(KubeForbidden, match=r"delete networkpolicies\.networking\.k8s\.io"):
        a.delete(NP, "networkpolicies", "deny", "x")
    assert a.get(NP, "networkpolicies", "deny", "x") is None


class WebhookEmulator(Emulator):
    """The emulator plus an admission webhook that denies NetworkPolicy creates (with the
    HTTP code the webhook chose: controller-runtime's ``admission.Denied`` uses 403)."""

    deny_code = 403

    def handle(self, method: str, path: str, query: dict[str, str], headers: Any,
               body: bytes) -> Response:
        if method == "POST" and path.endswith("/networkpolicies"):
            reason = "Forbidden" if self.deny_code == 403 else "BadRequest"
            msg = ('admission webhook "policy.example.io" denied the request: namespace x '
                   "requires the label team=<owner> on every NetworkPolicy")
            with self.lock:
                self._requests.append(Request(method, path, dict(query), self.deny_code))
            return ApiError(self.deny_code, status(self.deny_code, reason, msg)).response()
        return super().handle(method, path, query, headers, body)


@pytest.mark.parametrize("code", [403, 400])
def test_webhook_denial_is_kept_verbatim_and_not_called_rbac(tmp_path: Path, code: int) -> None:
    emu = WebhookEmulator()
    emu.deny_code = code
    with emu.start():
        a = adapter(emu, tmp_path)
        a.create("v1", "namespaces", namespace("x"))
        with pytest.raises(KubeApiError) as ei:
            a.create(NP, "networkpolicies", policy("deny"), "x", dry_run=True)
        e = ei.value
        assert not isinstance(e, KubeForbidden) and e.code == code
        assert ('admission webhook "policy.example.io" denied the request: namespace x '
                "requires the label team=<owner> on every NetworkPolicy") in str(e)
        assert "Grant" not in str(e)
        assert "networkpolicies.networking.k8s.io in namespace 'x'" in str(e)


def test_delete_and_missing_object(lab: tuple[Emulator, KubeAdapter]) -> None:
    _, a = lab
    a.create(NP, "networkpolicies", policy("deny"), "x")
    a.delete(NP, "networkpolicies", "deny", "x")
    assert a.get(NP, "networkpolicies", "deny", "x") is None
    with pytest.raises(KubeNotFound, match='"deny" not found'):
        a.delete(NP, "networkpolicies", "deny", "x")
    a.create("v1", "namespaces", namespace("y"))
    a.delete("v1", "namespaces", "y")  # cluster-scoped; answers with the object
    assert a.get("v1", "namespaces", "y") is None


def test_a_write_is_sent_at_most_once(emulator_factory: EmulatorFactory,
                                      tmp_path: Path) -> None:
    emu = emulator_factory()
    a = adapter(emu, tmp_path, timeout=0.5)
    a.create("v1", "namespaces", namespace("x"))
    emu.delay("networkpolicies", 1.2)
    emu.clear_requests()
    with pytest.raises(KubeTimeout, match="may have reached the server"):
        a.create(NP, "networkpolicies", policy("deny"), "x")
    deadline = time.monotonic() + 5
    while not emu.calls("POST") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(emu.calls("POST")) == 1  # the timed-out write was not re-sent
    emu.delay("networkpolicies", 0)
    assert a.get(NP, "networkpolicies", "deny", "x") is not None  # and it did happen
