"""The lab's Kubernetes API emulator, driven by the official client, raw HTTP and kubectl.

Error bodies are compared with the real apiserver responses in ``fixtures/api`` byte for byte
where the fixture's object can be reproduced, field by field otherwise.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client
from kubernetes import config as kube_config

from tests.lab.emulator import EXPIRED_CONTINUE, Emulator, encode, strategic_merge
from tests.lab.kubeconfig import write_kubeconfig
from tests.lab.paths import API, REPO
from tests.lab.scenarios._build import metallb_crds

MLB = ("metallb.io", "v1beta1")


# ------------------------------------------------------------------------------- helpers
def fixture_bytes(name: str) -> bytes:
    return (API / name).read_bytes()


def fixture_json(name: str) -> dict[str, Any]:
    return json.loads(fixture_bytes(name))


def api(emu: Emulator) -> client.ApiClient:
    cfg = client.Configuration(host=emu.url)
    cfg.api_key = {"authorization": "Bearer lab-token"}
    return client.ApiClient(cfg)


def raw(emu: Emulator, method: str, path: str, body: Any = None,
        content_type: str = "application/json") -> tuple[int, str, bytes]:
    """One request on a fresh connection: (status, Content-Type, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn.request(method, path, data, {"Content-Type": content_type,
                                      "Authorization": "Bearer x"})
    resp = conn.getresponse()
    out = (resp.status, resp.getheader("Content-Type") or "", resp.read())
    conn.close()
    return out


def cm(name: str, ns: str = "default", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": labels}, "data": {"k": name}}


def pool(name: str, *addresses: str) -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": "metallb-system"},
            "spec": {"addresses": list(addresses)}}


@pytest.fixture
def mlb(emulator: Emulator) -> Emulator:
    """Scenario (a) plus the real MetalLB CRDs."""
    emulator.add(*metallb_crds())
    return emulator


# ------------------------------------------------------------------------------ discovery
def test_discovery_lists_builtin_and_custom_resources(mlb: Emulator) -> None:
    code, _, body = raw(mlb, "GET", "/api")
    assert code == 200 and json.loads(body)["versions"] == ["v1"]
    core = {r["name"]: r for r in json.loads(raw(mlb, "GET", "/api/v1")[2])["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and core["pods"]["namespaced"] is True
    assert core["configmaps"]["shortNames"] == ["cm"] and core["configmaps"]["kind"] == "ConfigMap"
    assert core["nodes"]["namespaced"] is False and core["namespaces"]["shortNames"] == ["ns"]
    assert core["pods/log"]["verbs"] == ["get"]
    assert {"get", "list", "create", "update", "patch", "delete", "watch"} <= \
        set(core["services"]["verbs"])
    groups = {g["name"]: g for g in json.loads(raw(mlb, "GET", "/apis")[2])["groups"]}
    assert groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    assert [v["version"] for v in groups["metallb.io"]["versions"]] == ["v1beta2", "v1beta1"]
    res = {r["name"]: r for r in
           json.loads(raw(mlb, "GET", "/apis/metallb.io/v1beta1")[2])["resources"]}
    assert res["ipaddresspools"]["kind"] == "IPAddressPool"
    assert res["ipaddresspools"]["singularName"] == "ipaddresspool"
    apps = {r["name"]: r for r in json.loads(raw(mlb, "GET", "/apis/apps/v1")[2])["resources"]}
    assert apps["daemonsets"]["shortNames"] == ["ds"]
    netpol = json.loads(raw(mlb, "GET", "/apis/networking.k8s.io/v1")[2])["resources"]
    assert netpol[0]["shortNames"] == ["netpol"]
    assert raw(mlb, "GET", "/openapi/v2")[0] == 404
    assert raw(mlb, "GET", "/openapi/v3")[0] == 404
    assert raw(mlb, "GET", "/apis/nope.example.com/v1")[:2] == (404, "text/plain; charset=utf-8")


def test_version_comes_from_the_scenario(emulator: Emulator) -> None:
    info = client.VersionApi(api(emulator)).get_code()
    assert info.git_version == "v1.34.0" and info.minor == "34"


def test_crd_created_over_http_is_served_and_deleting_it_unserves(emulator: Emulator) -> None:
    crd = next(c for c in metallb_crds() if c["spec"]["names"]["plural"] == "ipaddresspools")
    ext = client.ApiextensionsV1Api(api(emulator))
    ext.create_custom_resource_definition(crd, _preload_content=False)
    assert raw(emulator, "GET", "/apis/metallb.io/v1beta1/ipaddresspools")[0] == 200
    ext.delete_custom_resource_definition("ipaddresspools.metallb.io")
    assert raw(emulator, "GET", "/apis/metallb.io/v1beta1/ipaddresspools")[0] == 404


# ------------------------------------------------------------------- CRUD, official client
def test_core_crud_with_the_official_client(emulator: Emulator) -> None:
    core = client.CoreV1Api(api(emulator))
    created = core.create_namespaced_config_map("default", cm("demo", app="x"))
    rv1 = int(created.metadata.resource_version)
    assert created.metadata.uid and created.metadata.creation_timestamp is not None
    assert created.metadata.generation is None  # ConfigMaps have no generation
    got = core.read_namespaced_config_map("demo", "default")
    assert got.data == {"k": "demo"} and got.metadata.resource_version == str(rv1)
    got.data["extra"] = "1"
    replaced = core.replace_namespaced_config_map("demo", "default", got)
    assert int(replaced.metadata.resource_version) > rv1
    assert replaced.metadata.uid == created.metadata.uid
    patched = core.patch_namespaced_config_map("demo", "default", {"data": {"p": "2"}})
    assert patched.data == {"k": "demo", "extra": "1", "p": "2"}
    names = [c.metadata.name for c in core.list_namespaced_config_map("default").items]
    assert names == ["demo"]
    status = core.delete_namespaced_config_map("demo", "default")
    assert status["status"] == "Success" and status["details"]["uid"] == created.metadata.uid
    with pytest.raises(client.ApiException) as e:
        core.read_namespaced_config_map("demo", "default")
    assert e.value.status == 404 and json.loads(e.value.body)["reason"] == "NotFound"


def test_list_of_builtin_kind_has_list_kind_and_untyped_items(emulator: Emulator) -> None:
    code, ctype, body = raw(emulator, "GET", "/api/v1/pods")
    doc = json.loads(body)
    assert (code, ctype) == (200, "application/json")
    assert list(doc) == ["kind", "apiVersion", "metadata", "items"]
    assert doc["kind"] == "PodList" and doc["apiVersion"] == "v1"
    assert int(doc["metadata"]["resourceVersion"]) > 0 and "continue" not in doc["metadata"]
    assert len(doc["items"]) == 12 and "kind" not in doc["items"][0]
    ds = json.loads(raw(emulator, "GET", "/apis/apps/v1/namespaces/kube-system/daemonsets")[2])
    assert ds["kind"] == "DaemonSetList" and ds["apiVersion"] == "apps/v1"
    assert [d["metadata"]["name"] for d in ds["items"]] == ["kube-proxy"]


def test_update_with_stale_resource_version_is_409_conflict(emulator: Emulator) -> None:
    core = client.CoreV1Api(api(emulator))
    old = core.read_namespaced_config_map("kube-proxy", "kube-system")
    fresh = core.patch_namespaced_config_map("kube-proxy", "kube-system", {"data": {"a": "1"}})
    old.data["b"] = "2"
    with pytest.raises(client.ApiException) as e:
        core.replace_namespaced_config_map("kube-proxy", "kube-system", old)
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "Conflict"
    stale = {"metadata": {"resourceVersion": old.metadata.resource_version}, "data": {"c": "3"}}
    with pytest.raises(client.ApiException) as e:
        core.patch_namespaced_config_map("kube-proxy", "kube-system", stale)
    assert e.value.status == 409
    now = core.read_namespaced_config_map("kube-proxy", "kube-system")
    assert now.metadata.resource_version == fresh.metadata.resource_version
    assert "b" not in now.data and "c" not in now.data


def test_noop_update_keeps_the_resource_version(emulator: Emulator) -> None:
    core = client.CoreV1Api(api(emulator))
    before = core.read_namespaced_config_map("kube-proxy", "kube-system")
    after = core.patch_namespaced_config_map("kube-proxy", "kube-system",
                                             {"data": {"config.conf": before.data["config.conf"]}})
    assert after.metadata.resource_version == before.metadata.resource_version
    again = core.replace_namespaced_config_map("kube-proxy", "kube-system", before)
    assert again.metadata.resource_version == before.metadata.resource_version


def test_keep_alive_connection_serves_writes_and_reads(emulator: Emulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    seen = []
    for i in range(20):
        conn.request("POST", "/api/v1/namespaces/default/configmaps",
                     json.dumps(cm(f"ka-{i}")).encode(), {"Content-Type": "application/json"})
        r = conn.getresponse()
        seen.append((r.status, json.loads(r.read())["metadata"]["name"]))
        conn.request("GET", f"/api/v1/namespaces/default/configmaps/ka-{i}")
        r = conn.getresponse()
        seen.append((r.status, json.loads(r.read())["metadata"]["name"]))
    conn.close()
    assert seen == [p for i in range(20) for p in ((201, f"ka-{i}"), (200, f"ka-{i}"))]


def test_stop_closes_the_port(emulator_factory: Any) -> None:
    emu = emulator_factory()
    port = emu.port
    assert raw(emu, "GET", "/version")[0] == 200
    emu.stop()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/version")


# ------------------------------------------------------------------- Status bodies vs fixtures
def test_404_body_is_the_apiserver_body(emulator: Emulator) -> None:
    code, ctype, body = raw(emulator, "GET", "/api/v1/namespaces/default/pods/abc")
    assert (code, ctype) == (404, "application/json")
    assert body == fixture_bytes("status-404-notfound.json")


def test_409_already_exists_body_is_the_apiserver_body(emulator: Emulator) -> None:
    pv = {"apiVersion": "v1", "kind": "PersistentVolume",
          "metadata": {"name": "mysql-instance-pv"},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                   "hostPath": {"path": "/mnt/data"}}}
    assert raw(emulator, "POST", "/api/v1/persistentvolumes", pv)[0] == 201
    code, _, body = raw(emulator, "POST", "/api/v1/persistentvolumes", pv)
    assert code == 409
    assert body == fixture_bytes("status-409-alreadyexists.json")


def test_409_conflict_body_is_the_apiserver_body(emulator: Emulator) -> None:
    quota = {"apiVersion": "v1", "kind": "ResourceQuota",
             "metadata": {"name": "gke-resource-quotas", "namespace": "kube-system"},
             "spec": {"hard": {"pods": "1500"}}}
    code, _, body = raw(emulator, "POST", "/api/v1/namespaces/kube-system/resourcequotas", quota)
    assert code == 201
    stale = json.loads(body)
    path = "/api/v1/namespaces/kube-system/resourcequotas/gke-resource-quotas"
    assert raw(emulator, "PATCH", path, {"spec": {"hard": {"pods": "2000"}}},
               "application/merge-patch+json")[0] == 200
    stale["spec"]["hard"]["pods"] = "10"
    code, _, body = raw(emulator, "PUT", path, stale)
    assert code == 409
    assert body == fixture_bytes("status-409-conflict.json")


def test_422_invalid_body_is_the_apiserver_body(emulator: Emulator) -> None:
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "test_deploy"},
              "spec": {"selector": {"matchLabels": {"app": "t"}},
                       "template": {"metadata": {"labels": {"app": "t"}},
                                    "spec": {"containers": []}}}}
    code, _, body = raw(emulator, "POST", "/apis/apps/v1/namespaces/default/deployments", deploy)
    assert code == 422
    assert body == fixture_bytes("status-422-invalid.json")


def test_422_for_missing_name_and_bad_namespace_name(emulator: Emulator) -> None:
    code, _, body = raw(emulator, "POST", "/api/v1/namespaces/default/configmaps",
                        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    doc = json.loads(body)
    assert code == 422 and doc["reason"] == "Invalid"
    assert doc["message"] == ('ConfigMap "" is invalid: metadata.name: Required value: name or '
                              "generateName is required")
    assert doc["details"] == {"kind": "ConfigMap", "causes": [
        {"reason": "FieldValueRequired", "message": "Required value: name or generateName is "
         "required", "field": "metadata.name"}]}
    code, _, body = raw(emulator, "POST", "/api/v1/namespaces",
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Prod.1"}})
    doc = json.loads(body)
    assert code == 422 and doc["message"].startswith(
        'Namespace "Prod.1" is invalid: metadata.name: Invalid value: "Prod.1": a DNS-1123 label')


def test_other_create_errors(emulator: Emulator) -> None:
    code, _, body = raw(emulator, "POST", "/api/v1/namespaces/nope/configmaps", cm("x", "nope"))
    assert code == 404 and json.loads(body)["message"] == 'namespaces "nope" not found'
    with_rv = cm("x")
    with_rv["metadata"]["resourceVersion"] = "5"
    code, _, body = raw(emulator, "POST", "/api/v1/namespaces/default/configmaps", with_rv)
    assert code == 500 and "resourceVersion should not be set" in json.loads(body)["message"]
    code, _, body = raw(emulator, "POST", "/api/v1/namespaces/default/configmaps", b"{nope")
    assert code == 400 and json.loads(body)["reason"] == "BadRequest"
    gen = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}
    code, _, body = raw(emulator, "POST", "/api/v1/namespaces/default/configmaps", gen)
    name = json.loads(body)["metadata"]["name"]
    assert code == 201 and name.startswith("gen-") and len(name) == 9


def test_415_strategic_merge_on_custom_resource(mlb: Emulator) -> None:
    mlb.add(pool("p1", "10.0.0.0/28"))
    path = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/p1"
    code, _, body = raw(mlb, "PATCH", path, {"spec": {"autoAssign": False}},
                        "application/strategic-merge-patch+json")
    assert code == 415
    assert body == fixture_bytes("status-415-unsupported-media-type.json")
    custom = client.CustomObjectsApi(api(mlb))
    with pytest.raises(client.ApiException) as e:
        custom.patch_namespaced_custom_object(
            *MLB, "metallb-system", "ipaddresspools", "p1", {"spec": {"autoAssign": False}},
            _content_type="application/strategic-merge-patch+json")
    assert e.value.status == 415


def test_403_body_is_the_apiserver_body(emulator_factory: Any) -> None:
    emu = emulator_factory("a", user="system:serviceaccount:gluu:default")
    emu.forbid("list", "pods", "gluu")
    code, ctype, body = raw(emu, "GET", "/api/v1/namespaces/gluu/pods")
    assert (code, ctype) == (403, "application/json")
    # the fixture was pasted pretty-printed; the apiserver sends it compact
    assert body == encode(fixture_json("status-403-forbidden.json"))
    assert raw(emu, "GET", "/api/v1/namespaces/kube-system/pods")[0] == 200


def test_403_messages_for_named_and_cluster_scoped_requests(emulator: Emulator) -> None:
    emulator.forbid("get", "configmaps", "kube-system")
    emulator.forbid("list", "nodes")
    emulator.forbid("patch", "daemonsets")
    core = client.CoreV1Api(api(emulator))
    with pytest.raises(client.ApiException) as e:
        core.read_namespaced_config_map("kube-proxy", "kube-system")
    doc = json.loads(e.value.body)
    assert e.value.status == 403 and doc["details"] == {"name": "kube-proxy", "kind": "configmaps"}
    assert doc["message"] == (
        'configmaps "kube-proxy" is forbidden: User "system:serviceaccount:k8snet:k8snet" cannot '
        'get resource "configmaps" in API group "" in the namespace "kube-system"')
    with pytest.raises(client.ApiException) as e:
        core.list_node()
    assert json.loads(e.value.body)["message"] == (
        'nodes is forbidden: User "system:serviceaccount:k8snet:k8snet" cannot list resource '
        '"nodes" in API group "" at the cluster scope')
    code, _, body = raw(emulator, "PATCH", "/apis/apps/v1/namespaces/kube-system/daemonsets/"
                        "kube-proxy", {}, "application/merge-patch+json")
    assert code == 403 and json.loads(body)["details"]["group"] == "apps"
    assert core.list_namespaced_config_map("default").kind == "ConfigMapList"  # others fine


def test_410_expired_continue(emulator: Emulator) -> None:
    emulator.add(*[cm(f"c{i:03d}") for i in range(30)])
    core = client.CoreV1Api(api(emulator))
    first = core.list_namespaced_config_map("default", limit=10)
    emulator.expire_continue()
    with pytest.raises(client.ApiException) as e:
        core.list_namespaced_config_map("default", limit=10, _continue=first.metadata._continue)
    doc = json.loads(e.value.body)
    ref = fixture_json("status-410-expired.json")
    assert e.value.status == 410 and list(doc) == list(ref)
    assert {k: doc[k] for k in ("kind", "apiVersion", "status", "reason", "code")} == \
        {k: ref[k] for k in ("kind", "apiVersion", "status", "reason", "code")}
    assert doc["message"] == EXPIRED_CONTINUE
    # only the next continued request expires; a new list and later pages work
    again = core.list_namespaced_config_map("default", limit=10)
    nxt = core.list_namespaced_config_map("default", limit=10, _continue=again.metadata._continue)
    assert nxt.items[0].metadata.name == "c010"


def test_garbage_answers_200_with_a_non_json_body(emulator: Emulator) -> None:
    emulator.garbage("services")
    code, _, body = raw(emulator, "GET", "/api/v1/services")
    assert code == 200
    with pytest.raises(ValueError):
        json.loads(body)
    assert json.loads(raw(emulator, "GET", "/api/v1/nodes")[2])["kind"] == "NodeList"


def test_delay_triggers_client_timeouts(emulator: Emulator) -> None:
    emulator.delay("nodes", 1.5)
    core = client.CoreV1Api(api(emulator))
    with pytest.raises((urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.MaxRetryError)):
        core.list_node(_request_timeout=0.3, _preload_content=False)
    assert core.list_namespace(_request_timeout=5).items  # other resources answer
    emulator.delay("nodes", 0)
    nodes = core.list_node(_request_timeout=5, _preload_content=False)
    assert len(json.loads(nodes.data)["items"]) == 3


def test_request_log_counts_calls(emulator: Emulator) -> None:
    emulator.clear_requests()
    core = client.CoreV1Api(api(emulator))
    core.list_node(_preload_content=False)
    core.list_node(_preload_content=False)
    core.read_namespaced_config_map("kube-proxy", "kube-system")
    assert len(emulator.calls("GET", "/api/v1/nodes")) == 2
    assert emulator.calls(path="/api/v1/namespaces/kube-system")[0].code == 200
    assert [r.method for r in emulator.requests] == ["GET", "GET", "GET"]


# ------------------------------------------------------------------------------- dry run
def test_dry_run_validates_and_stores_nothing(emulator: Emulator) -> None:
    core = client.CoreV1Api(api(emulator))
    rv = core.list_namespace().metadata.resource_version
    made = core.create_namespaced_config_map("default", cm("dry"), dry_run="All")
    assert made.metadata.name == "dry" and made.metadata.uid
    with pytest.raises(client.ApiException) as e:
        core.create_namespaced_config_map("default", cm("Bad_Name"), dry_run="All")
    assert e.value.status == 422
    cur = core.read_namespaced_config_map("kube-proxy", "kube-system")
    cur.data["mode"] = "ipvs"
    out = core.replace_namespaced_config_map("kube-proxy", "kube-system", cur, dry_run="All")
    assert out.data["mode"] == "ipvs"
    out = core.patch_namespaced_config_map("kube-proxy", "kube-system", {"data": {"m": "x"}},
                                           dry_run="All")
    assert out.data["m"] == "x"
    core.delete_namespaced_config_map("kube-proxy", "kube-system", dry_run="All")
    after = core.read_namespaced_config_map("kube-proxy", "kube-system")
    assert after.data == {k: v for k, v in cur.data.items() if k != "mode"}
    assert after.metadata.resource_version == cur.metadata.resource_version
    with pytest.raises(client.ApiException):
        core.read_namespaced_config_map("dry", "default")
    assert core.list_namespace().metadata.resource_version == rv


# ------------------------------------------------------------------------------ pagination
def test_pagination_of_5000_configmaps_in_pages_of_500(emulator: Emulator) -> None:
    emulator.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bulk"}})
    emulator.add(*[cm(f"cm-{i:04d}", "bulk", n=str(i % 2)) for i in range(5000)])
    core = client.CoreV1Api(api(emulator))
    names: list[str] = []
    token, pages, rvs = None, 0, set()
    while True:
        page = core.list_namespaced_config_map("bulk", limit=500, _continue=token)
        pages += 1
        names += [c.metadata.name for c in page.items]
        rvs.add(page.metadata.resource_version)
        token = page.metadata._continue
        if not token:
            assert page.metadata.remaining_item_count is None
            break
        assert page.metadata.remaining_item_count == 5000 - 500 * pages
    assert pages == 10 and len(rvs) == 1
    assert names == [f"cm-{i:04d}" for i in range(5000)]
    # raw page shape like the documented list chunk (fixtures/api/list-page-1.json)
    ref = fixture_json("list-page-1.json")
    doc = json.loads(raw(emulator, "GET", "/api/v1/namespaces/bulk/configmaps?limit=500")[2])
    assert list(doc) == list(ref) and list(doc["metadata"]) == list(ref["metadata"])
    assert doc["kind"] == "ConfigMapList" and doc["metadata"]["remainingItemCount"] == 4500
    # with a selector: pages still cover every match once, no remainingItemCount
    token, odd = None, []
    while True:
        page = core.list_namespaced_config_map("bulk", limit=700, label_selector="n=1",
                                               _continue=token)
        assert page.metadata.remaining_item_count is None
        odd += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert odd == [f"cm-{i:04d}" for i in range(1, 5000, 2)]


def test_all_namespaces_pagination_and_bad_continue(emulator: Emulator) -> None:
    seen, token = [], None
    core = client.CoreV1Api(api(emulator))
    while True:
        page = core.list_config_map_for_all_namespaces(limit=1, _continue=token)
        seen += [(c.metadata.namespace, c.metadata.name) for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) >= 3
    code, _, body = raw(emulator, "GET", "/api/v1/configmaps?limit=1&continue=%25%25%25")
    assert code == 400 and json.loads(body)["reason"] == "BadRequest"


# ------------------------------------------------------------------------------- selectors
def test_label_and_field_selectors(emulator: Emulator) -> None:
    emulator.add(cm("s1", tier="web", env="prod"), cm("s2", tier="db", env="prod"),
                 cm("s3", tier="web"))
    core = client.CoreV1Api(api(emulator))

    def names(**kw: Any) -> list[str]:
        return [c.metadata.name for c in core.list_namespaced_config_map("default", **kw).items]

    assert names(label_selector="tier=web") == ["s1", "s3"]
    assert names(label_selector="tier in (web,db),env") == ["s1", "s2"]
    assert names(label_selector="tier!=web,tier") == ["s2"]
    assert names(label_selector="!env,tier notin (db)") == ["s3"]
    assert names(field_selector="metadata.name=s2") == ["s2"]
    assert names(field_selector="metadata.name!=s2", label_selector="tier") == ["s1", "s3"]
    on_node = json.loads(raw(emulator, "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3D"
                                              "node-2,metadata.namespace%3Dkube-system")[2])
    assert {p["spec"]["nodeName"] for p in on_node["items"]} == {"node-2"}
    assert len(on_node["items"]) == 2  # coredns + kube-proxy
    for query in ("labelSelector=a%20b%20c", "fieldSelector=spec.bogus%3Dx",
                  "fieldSelector=nonsense"):
        code, _, body = raw(emulator, "GET", f"/api/v1/namespaces/default/configmaps?{query}")
        assert code == 400 and json.loads(body)["reason"] == "BadRequest", query


# ------------------------------------------------------------------------- custom resources
def test_custom_objects_crud_and_three_patch_types(mlb: Emulator) -> None:
    custom = client.CustomObjectsApi(api(mlb))
    args = (*MLB, "metallb-system", "ipaddresspools")
    made = custom.create_namespaced_custom_object(*args, pool("lab", "192.168.10.200/29"))
    assert made["spec"] == {"addresses": ["192.168.10.200/29"], "autoAssign": True,
                            "avoidBuggyIPs": False}  # CRD schema defaults
    assert made["metadata"]["generation"] == 1
    merged = custom.patch_namespaced_custom_object(*args, "lab", {"spec": {"autoAssign": False}})
    assert merged["spec"]["autoAssign"] is False and merged["metadata"]["generation"] == 2
    jp = [{"op": "add", "path": "/spec/addresses/-", "value": "10.9.0.0/24"},
          {"op": "test", "path": "/metadata/name", "value": "lab"}]
    jpatched = custom.patch_namespaced_custom_object(
        *args, "lab", jp, _content_type="application/json-patch+json")
    assert jpatched["spec"]["addresses"] == ["192.168.10.200/29", "10.9.0.0/24"]
    with pytest.raises(client.ApiException) as e:
        custom.patch_namespaced_custom_object(*args, "lab", {"spec": {"autoAssign": True}},
                                              _content_type="application/strategic-merge-patch+json")
    assert e.value.status == 415
    listed = custom.list_namespaced_custom_object(*args)
    assert listed["kind"] == "IPAddressPoolList" and listed["apiVersion"] == "metallb.io/v1beta1"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["lab"]
    assert listed["items"][0]["kind"] == "IPAddressPool"  # unstructured items keep their kind
    everywhere = custom.list_cluster_custom_object(*MLB, "ipaddresspools")
    assert len(everywhere["items"]) == 1
    gone = custom.delete_namespaced_custom_object(*args, "lab")
    assert gone["metadata"]["name"] == "lab"  # custom resources answer with the object
    with pytest.raises(client.ApiException) as e:
        custom.get_namespaced_custom_object(*args, "lab")
    assert json.loads(e.value.body)["message"] == 'ipaddresspools.metallb.io "lab" not found'


def test_custom_resource_schema_validation_and_pruning(mlb: Emulator) -> None:
    bad = pool("bad", "10.0.0.0/24")
    bad["spec"]["autoAssign"] = "yes"
    del bad["spec"]["addresses"]
    bad["spec"]["unknownField"] = 1
    code, _, body = raw(mlb, "POST", "/apis/metallb.io/v1beta1/namespaces/metallb-system/"
                        "ipaddresspools", bad)
    doc = json.loads(body)
    assert code == 422 and doc["details"]["group"] == "metallb.io"
    assert doc["details"]["kind"] == "IPAddressPool"
    assert sorted(doc["details"]["causes"], key=lambda c: c["field"]) == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.addresses"},
        {"reason": "FieldValueTypeInvalid", "field": "spec.autoAssign",
         "message": 'Invalid value: "string": spec.autoAssign in body must be of type boolean: '
                    '"yes"'}]
    extra = pool("extra", "10.0.0.0/24")
    extra["spec"]["unknownField"] = 1
    code, _, body = raw(mlb, "POST", "/apis/metallb.io/v1beta1/namespaces/metallb-system/"
                        "ipaddresspools", extra)
    assert code == 201 and "unknownField" not in json.loads(body)["spec"]
    stored = mlb.get_object("metallb.io/v1beta1", "ipaddresspools", "extra", "metallb-system")
    assert stored is not None and "unknownField" not in stored["spec"]
    # PUT of a custom resource needs metadata.resourceVersion
    del stored["metadata"]["resourceVersion"]
    code, _, body = raw(mlb, "PUT", "/apis/metallb.io/v1beta1/namespaces/metallb-system/"
                        "ipaddresspools/extra", stored)
    assert code == 422 and json.loads(body)["details"]["causes"][0]["field"] == \
        "metadata.resourceVersion"


# ------------------------------------------------------------------ strategic merge, status
def test_strategic_merge_on_a_daemonset(emulator: Emulator) -> None:
    apps = client.AppsV1Api(api(emulator))
    before = apps.read_namespaced_daemon_set("kube-proxy", "kube-system", _preload_content=False)
    before = json.loads(before.data)
    tmpl = before["spec"]["template"]["spec"]
    patch = {"spec": {"template": {
        "metadata": {"annotations": {"k8snet/restartedAt": "now"}},
        "spec": {"containers": [{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v9",
                                 "env": [{"name": "EXTRA", "value": "1"}]}],
                 "volumes": [{"name": "lab-extra", "emptyDir": {}},
                             {"name": tmpl["volumes"][0]["name"], "$patch": "delete"}]}}}}
    resp = apps.patch_namespaced_daemon_set("kube-proxy", "kube-system", patch,
                                            _preload_content=False)
    after = json.loads(resp.data)
    c = after["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "registry.k8s.io/kube-proxy:v9"
    assert c["command"] == tmpl["containers"][0]["command"]  # merged, not replaced
    assert {"name": "EXTRA", "value": "1"} in c["env"]
    assert c["volumeMounts"] == tmpl["containers"][0]["volumeMounts"]
    vols = [v["name"] for v in after["spec"]["template"]["spec"]["volumes"]]
    assert vols == [v["name"] for v in tmpl["volumes"][1:]] + ["lab-extra"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert after["status"] == before["status"]


def test_strategic_merge_keys() -> None:
    svc = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}],
                    "selector": {"a": "b"}}}
    out = strategic_merge(svc, {"spec": {"ports": [{"port": 443, "targetPort": 8443}],
                                         "selector": {"a": None, "c": "d"}}}, "Service")
    assert out["spec"]["ports"] == [{"port": 80, "name": "http"},
                                    {"port": 443, "name": "https", "targetPort": 8443}]
    assert out["spec"]["selector"] == {"c": "d"}
    pod = {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 1}],
                                    "volumeMounts": [{"mountPath": "/x", "name": "v"}],
                                    "args": ["1", "2"]}],
                    "tolerations": [{"key": "t"}]}}
    out = strategic_merge(pod, {"spec": {"containers": [{
        "name": "a", "ports": [{"containerPort": 2}], "args": ["3"],
        "volumeMounts": [{"mountPath": "/x", "readOnly": True}]}],
        "tolerations": [{"key": "u"}]}}, "Pod")
    c = out["spec"]["containers"][0]
    assert c["ports"] == [{"containerPort": 1}, {"containerPort": 2}]
    assert c["args"] == ["3"] and c["volumeMounts"] == [{"mountPath": "/x", "name": "v",
                                                         "readOnly": True}]
    assert out["spec"]["tolerations"] == [{"key": "u"}]  # no merge key: replaced
    assert strategic_merge({"spec": {"a": 1, "b": 2}}, {"spec": {"$patch": "replace", "a": 3}},
                           "X") == {"spec": {"a": 3}}


def test_json_patch_failures_are_422_and_change_nothing(emulator: Emulator) -> None:
    path = "/api/v1/namespaces/kube-system/configmaps/kube-proxy"
    before = json.loads(raw(emulator, "GET", path)[2])
    ops = [{"op": "add", "path": "/data/x", "value": "1"},
           {"op": "test", "path": "/metadata/resourceVersion", "value": "1"}]
    code, _, body = raw(emulator, "PATCH", path, ops, "application/json-patch+json")
    doc = json.loads(body)
    assert code == 422 and doc["reason"] == "Invalid"
    assert doc["details"]["causes"][0]["reason"] == "UnexpectedServerResponse"
    assert json.loads(raw(emulator, "GET", path)[2]) == before
    code, _, _ = raw(emulator, "PATCH", path, {"op": "add"}, "application/json-patch+json")
    assert code == 400
    code, _, _ = raw(emulator, "PATCH", path, {"data": {}}, "application/apply-patch+yaml")
    assert code == 415


def test_delete_namespace_removes_its_objects(emulator: Emulator) -> None:
    core = client.CoreV1Api(api(emulator))
    assert core.list_namespaced_service("shop").items
    out = core.delete_namespace("shop")
    assert out["kind"] == "Namespace" and out["metadata"]["name"] == "shop"
    assert core.list_namespaced_service("shop").items == []


# --------------------------------------------------------------------------- logs and watch
def test_pod_log_subresource(emulator: Emulator) -> None:
    pods = json.loads(raw(emulator, "GET", "/api/v1/namespaces/kube-system/pods?labelSelector="
                                           "k8s-app%3Dkube-proxy")[2])["items"]
    name = pods[0]["metadata"]["name"]
    full = (API / "kube-proxy-startup-iptables.txt").read_text()
    core = client.CoreV1Api(api(emulator))
    text = core.read_namespaced_pod_log(name, "kube-system")
    assert "Using iptables Proxier" in text and text.strip() == full.strip()
    tail = core.read_namespaced_pod_log(name, "kube-system", tail_lines=2,
                                        container="kube-proxy")
    assert tail.splitlines() == full.strip().splitlines()[-2:]
    code, ctype, _ = raw(emulator, "GET", f"/api/v1/namespaces/kube-system/pods/{name}/log")
    assert (code, ctype) == (200, "text/plain; charset=utf-8")
    code, _, body = raw(emulator, "GET",
                        f"/api/v1/namespaces/kube-system/pods/{name}/log?container=nope")
    assert code == 400 and b"container nope is not valid" in body
    assert raw(emulator, "GET", "/api/v1/namespaces/kube-system/pods/ghost/log")[0] == 404
    emulator.forbid("get", "pods/log", "kube-system")
    code, _, body = raw(emulator, "GET", f"/api/v1/namespaces/kube-system/pods/{name}/log")
    assert code == 403 and 'cannot get resource "pods/log"' in json.loads(body)["message"]


def test_watch_streams_current_objects_as_added(emulator: Emulator) -> None:
    code, _, body = raw(emulator, "GET", "/api/v1/namespaces?watch=1")
    events = [json.loads(line) for line in body.splitlines()]
    assert code == 200 and {e["type"] for e in events} == {"ADDED"}
    assert all(list(e) == ["type", "object"] for e in events)
    assert events[0]["object"]["kind"] == "Namespace"
    assert len(events) == 8


# -------------------------------------------------------------------------- kubeconfig, CLI
def test_write_kubeconfig_with_several_contexts(tmp_path: Path, emulator_factory: Any) -> None:
    a, b = emulator_factory("a"), emulator_factory()
    path = write_kubeconfig(tmp_path / "kc", {"lab-a": a.url, "lab-empty": b.url}, "lab-empty")
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "lab-empty" and oct(path.stat().st_mode & 0o777) == "0o600"
    assert [c["name"] for c in doc["contexts"]] == ["lab-a", "lab-empty"]
    cfg = client.Configuration()
    kube_config.load_kube_config(str(path), context="lab-a", client_configuration=cfg)
    assert cfg.host == a.url
    nodes = client.CoreV1Api(client.ApiClient(cfg)).list_node(_preload_content=False)
    assert len(json.loads(nodes.data)["items"]) == 3
    with pytest.raises(ValueError):
        write_kubeconfig(tmp_path / "x", {"a": a.url}, "b")


def test_cli_list_and_serve(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "tests.lab", "list"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert "a-kubeadm-flannel (alias: a):" in out
    kc, pidf = tmp_path / "kc", tmp_path / "emu.pid"
    proc = subprocess.Popen([sys.executable, "-m", "tests.lab", "serve", "a", "--kubeconfig",
                             str(kc), "--pid-file", str(pidf)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        lines = dict(proc.stdout.readline().rstrip("\n").split(": ", 1) for _ in range(5))
        assert lines["kubeconfig"] == str(kc) and lines["context"] == "lab-a"
        assert int(pidf.read_text()) == proc.pid == int(lines["pid"])
        cfg = client.Configuration()
        kube_config.load_kube_config(str(kc), client_configuration=cfg)
        assert cfg.host == lines["url"]
        assert client.VersionApi(client.ApiClient(cfg)).get_code().git_version == "v1.34.0"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0 and not pidf.exists()


def test_cli_demo_runs_k8snet_status(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "tests.lab", "demo", "a", "--output", "json"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    report = json.loads(res.stdout)
    assert report["cluster"] == "lab-a", res.stderr
    assert report["server"].startswith("http://127.0.0.1:")
    bad = subprocess.run([sys.executable, "-m", "tests.lab", "demo", "a", "--no-such-flag"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2  # the CLI's usage error exit code is passed through


# ---------------------------------------------------------------------------------- kubectl
@pytest.fixture
def kubectl(tmp_path: Path, mlb: Emulator) -> Any:
    """Run kubectl against the emulator (scenario a + MetalLB CRDs + one IPAddressPool)."""
    exe = shutil.which("kubectl")
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("kubectl is not on PATH (CI=true: the kubectl tests must run)",
                        pytrace=False)
        pytest.skip("kubectl is not on PATH")
    mlb.add(pool("lab-pool", "192.168.10.200/29"))
    kc = mlb.write_kubeconfig(tmp_path / "kubeconfig", "lab-a")

    def run(*args: str) -> str:
        res = subprocess.run([exe, "--kubeconfig", str(kc), "--cache-dir",
                              str(tmp_path / "cache"), *args],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        return res.stdout

    return run


@pytest.mark.kubectl
def test_kubectl_get_pods_all_namespaces(kubectl: Any, mlb: Emulator) -> None:
    out = kubectl("get", "pods", "-A")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    pods = json.loads(raw(mlb, "GET", "/api/v1/pods")[2])["items"]
    assert sorted(tuple(line.split()[:2]) for line in lines[1:]) == sorted(
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods)


@pytest.mark.kubectl
def test_kubectl_get_configmap_yaml(kubectl: Any, mlb: Emulator) -> None:
    doc = yaml.safe_load(kubectl("get", "cm", "-n", "kube-system", "kube-proxy", "-o", "yaml"))
    stored = mlb.get_object("v1", "configmaps", "kube-proxy", "kube-system")
    assert stored is not None
    assert doc["kind"] == "ConfigMap" and doc["data"] == stored["data"]
    assert doc["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    assert "mode: \"\"" in doc["data"]["config.conf"]


@pytest.mark.kubectl
def test_kubectl_get_custom_resources_via_discovery(kubectl: Any) -> None:
    out = kubectl("get", "ipaddresspools", "-A")
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["NAMESPACE", "NAME"], ["metallb-system", "lab-pool"]]
    doc = json.loads(kubectl("get", "ipaddresspools.metallb.io", "-n", "metallb-system",
                             "lab-pool", "-o", "json"))
    assert doc["spec"]["addresses"] == ["192.168.10.200/29"]
    short = kubectl("get", "ds,netpol", "-n", "kube-system", "-o", "name")
    assert short.split() == ["daemonset.apps/kube-proxy"]


@pytest.mark.kubectl
def test_kubectl_patch_and_server_dry_run(kubectl: Any, mlb: Emulator) -> None:
    kubectl("patch", "cm", "-n", "kube-system", "kube-proxy", "--type", "merge", "-p",
            '{"data":{"lab":"1"}}', "--dry-run=server")
    stored = mlb.get_object("v1", "configmaps", "kube-proxy", "kube-system")
    assert stored is not None and "lab" not in stored["data"]
    kubectl("patch", "cm", "-n", "kube-system", "kube-proxy", "-p", '{"data":{"lab":"1"}}')
    stored = mlb.get_object("v1", "configmaps", "kube-proxy", "kube-system")
    assert stored is not None and stored["data"]["lab"] == "1"
    assert any(r.method == "PATCH" and r.query.get("dryRun") == "All" for r in mlb.requests)


def test_server_sockets_use_tcp_nodelay(emulator: Emulator) -> None:
    """DESIGN.md §11: ~46 ms per answer until TCP_NODELAY was set on accepted sockets."""
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    conn.request("GET", "/version")
    assert conn.getresponse().read()
    server = emulator._server
    assert server is not None
    with server.conns_lock:
        socks = list(server.conns)
    assert socks and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in socks)
    conn.close()
