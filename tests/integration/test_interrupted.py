"""A process dies mid-apply: the next engine finds the run, marks it ``interrupted`` with what
was applied, and an approver rolls it back.

A real subprocess (``tests.lab.engine_child``) executes the ``test-slow`` runbook on a SQLite
file and the API emulator (served by this test process); it creates the first ConfigMap, then
holds. The test waits until the write of change 1 is confirmed in the run's events, kills the
child with SIGKILL by its pid, and starts a fresh ``RunService`` on the same database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters import db
from bot.adapters.db import RunStoreSQL
from bot.adapters.kube import KubeAdapter
from bot.engine.core import Actor
from bot.engine.policy import PolicyEngine
from bot.engine.runs import RunState
from bot.engine.service import RunService, default_holder
from bot.settings import Policy
from tests.lab.emulator import Emulator
from tests.lab.fake_runbooks import make_registry

REPO = Path(__file__).resolve().parents[2]
OP = Actor("cli:op", "cli", "terminal")
AP = Actor("cli:ap", "cli", "terminal")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[str, Path, Emulator]]:
    url = f"sqlite:///{tmp_path / 'runs.sqlite3'}"
    db.upgrade(url)
    with Emulator() as emu:
        kc = emu.write_kubeconfig(tmp_path / "kubeconfig", context="lab")
        yield url, kc, emu


def _service(url: str, kc: Path) -> tuple[RunService, RunStoreSQL]:
    kube = KubeAdapter("lab", kubeconfig=str(kc), context="lab")
    store = RunStoreSQL(url)
    svc = RunService(registry=make_registry(), store=store, policy=PolicyEngine(Policy()),
                     clusters=["lab"], readers=lambda c: kube, writers=lambda c: kube,
                     holder=default_holder(), lock_lease_seconds=600)
    return svc, store


@pytest.mark.slow
def test_killed_mid_apply_is_interrupted_then_rolled_back(
        world: tuple[str, Path, Emulator]) -> None:
    url, kc, emu = world
    svc, store = _service(url, kc)
    try:
        view = svc.plan(OP, "lab", "test-slow", {"namespace": "default",
                                                 "names": "slow-1,slow-2",
                                                 "hold_seconds": "120"})
        rid = view.run.id
        assert [c.target for c in view.plan.changes] == ["configmap/default/slow-1",
                                                         "configmap/default/slow-2"]
        assert svc.approve(AP, rid).run.state is RunState.APPROVED
    finally:
        svc.shutdown()
        store.close()

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.lab.engine_child", "--db", url, "--kubeconfig", str(kc),
         "--run", rid], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        watcher = RunStoreSQL(url)
        deadline = time.monotonic() + 60
        while True:
            writes = [e.data for e in watcher.events(rid) if e.kind == "write"]
            if any(w["stage"] == "done" and w["change"] == 0 for w in writes):
                break
            if child.poll() is not None:
                pytest.fail(f"child exited early: {child.communicate()}")
            assert time.monotonic() < deadline, "the child never confirmed change 1"
            time.sleep(0.05)
        holder = next(e.data["holder"] for e in watcher.events(rid)
                      if e.kind == "state" and e.data.get("to") == "running")
        assert holder.split(":")[1] == str(child.pid)
        assert watcher.get_run(rid).state is RunState.RUNNING  # type: ignore[union-attr]
        watcher.close()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert emu.get_object("v1", "configmaps", "slow-1", "default") is not None
    assert emu.get_object("v1", "configmaps", "slow-2", "default") is None

    svc, store = _service(url, kc)
    try:
        recovered = svc.recover_interrupted()
        assert [v.run.id for v in recovered] == [rid]
        run = recovered[0].run
        assert run.state is RunState.INTERRUPTED
        assert f"process {child.pid} on this host has exited" in run.detail
        assert "Applied: configmap/default/slow-1." in run.detail
        assert [a["target"] for a in run.applied] == ["configmap/default/slow-1"]
        ev = next(e.data for e in store.events(rid) if e.kind == "interrupted")
        assert ev["applied"] == ["configmap/default/slow-1"] and ev["maybe_applied"] == []
        assert svc.recover_interrupted() == []

        out = svc.rollback_interrupted(AP, rid)
        assert out.run.state is RunState.ROLLED_BACK, out.run.detail
        assert emu.get_object("v1", "configmaps", "slow-1", "default") is None
        assert store.events(rid)[-1].data["to"] == "rolled_back"
        assert db.AuditStore(url).verify_chain().ok
    finally:
        svc.shutdown()
        store.close()
