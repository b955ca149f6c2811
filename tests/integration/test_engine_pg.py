"""Two engines (two ``RunService`` on two ``RunStoreSQL``) sharing one PostgreSQL database and
one emulated cluster: simultaneous approvals move the run once, simultaneous executions apply
it once (the compare-and-set and the cluster lock hold across "replicas")."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters import db
from bot.adapters.db import RunStoreSQL
from bot.adapters.kube import KubeAdapter
from bot.engine.core import Actor
from bot.engine.policy import PolicyEngine
from bot.engine.runs import RunState
from bot.engine.service import RunService, RunView, default_holder
from bot.sdk.errors import Refused
from bot.settings import Policy, RoleMembers
from tests.lab.emulator import Emulator
from tests.lab.fake_runbooks import make_registry
from tests.lab.postgres import PostgresServer

pytestmark = pytest.mark.postgres

OP = Actor("U0OP", "slack", "C0CHAN")
AP1 = Actor("U0AP1", "slack", "C0CHAN")
AP2 = Actor("U0AP2", "slack", "C0CHAN")
POLICY = Policy(roles={"*": RoleMembers(operator=["U0OP"], approver=["U0AP1", "U0AP2"])})
ROUNDS = 5


@pytest.fixture
def replicas(postgres_server: PostgresServer, tmp_path: Path
             ) -> Iterator[tuple[RunService, RunService, Emulator, RunStoreSQL]]:
    url = postgres_server.create_database()
    db.upgrade(url)
    emu = Emulator().start()
    emu.add(*({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns{i}"}}
              for i in range(ROUNDS)))
    kc = emu.write_kubeconfig(tmp_path / "kubeconfig", context="lab")
    stores = [RunStoreSQL(url), RunStoreSQL(url)]
    services = []
    for store in stores:
        kube = KubeAdapter("lab", kubeconfig=str(kc), context="lab")
        services.append(RunService(
            registry=make_registry(), store=store, policy=PolicyEngine(POLICY),
            clusters=["lab"], readers=lambda c, k=kube: k, writers=lambda c, k=kube: k,
            holder=default_holder(), lock_lease_seconds=60))
    try:
        yield services[0], services[1], emu, stores[0]
    finally:
        for s in services:
            s.shutdown()
        for st in stores:
            st.close()
        emu.stop()


def _race(fns: list[Callable[[], Any]]) -> list[Any]:
    """Run the callables at the same moment (a barrier); each result or Refused."""
    barrier = threading.Barrier(len(fns))
    out: list[Any] = [None] * len(fns)

    def go(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fns[i]()
        except Refused as e:
            out[i] = e

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


def test_two_engines_approve_and_execute_a_run_exactly_once(
        replicas: tuple[RunService, RunService, Emulator, RunStoreSQL]) -> None:
    a, b, emu, store = replicas
    for i in range(ROUNDS):
        ns = f"ns{i}"
        view = a.plan(OP, "lab", "test-configmap", {"namespaces": ns, "value": f"v{i}"})
        assert view.run.state is RunState.AWAITING_APPROVAL
        rid = view.run.id

        approvals = _race([lambda r=rid: a.approve(AP1, r), lambda r=rid: b.approve(AP2, r)])
        for r in approvals:  # a loser that came after the winner's transition is refused
            assert (isinstance(r, RunView) and r.run.state is RunState.APPROVED) \
                or (isinstance(r, Refused) and r.reason == "state"), r
        moved = [e for e in store.events(rid)
                 if e.kind == "state" and e.data["to"] == "approved"]
        assert len(moved) == 1

        emu.clear_requests()
        results = _race([lambda r=rid: a.execute(AP1, r), lambda r=rid: b.execute(AP2, r)])
        done = [r for r in results if isinstance(r, RunView)]
        refused = [r for r in results if isinstance(r, Refused)]
        assert len(done) == 1 and len(refused) == 1, results
        assert refused[0].reason in ("locked", "state")
        assert done[0].run.state is RunState.SUCCEEDED, done[0].run.detail
        writes = [r for r in emu.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")
                  and r.query.get("dryRun") != "All"]
        assert len(writes) == 1, writes
        assert emu.get_object("v1", "configmaps", "k8snet-test", ns) is not None
        assert a.get(rid).run.state is RunState.SUCCEEDED
        assert b.get(rid).run.state is RunState.SUCCEEDED
        running = [e for e in store.events(rid) if e.kind == "state" and e.data["to"] == "running"]
        assert len(running) == 1


def test_lock_is_shared_between_engines(
        replicas: tuple[RunService, RunService, Emulator, RunStoreSQL]) -> None:
    a, b, _emu, store = replicas
    v1 = a.plan(OP, "lab", "test-configmap", {"namespaces": "ns0"})
    a.approve(AP1, v1.run.id)
    assert store.acquire_lock("lab", f"{a.holder}:r-someother", 60)
    with pytest.raises(Refused) as ei:
        b.execute(AP2, v1.run.id)
    assert ei.value.reason == "locked"
    assert b.get(v1.run.id).run.state is RunState.APPROVED
    store.release_lock("lab", f"{a.holder}:r-someother")
    assert b.execute(AP2, v1.run.id).run.state is RunState.SUCCEEDED
