"""A throwaway engine process for crash tests: executes one approved run and exits.

``python -m tests.lab.engine_child --db URL --kubeconfig PATH --run RUN_ID``

Builds a ``RunService`` (the test runbooks of ``tests.lab.fake_runbooks``, a ``RunStoreSQL`` on
``--db``, a ``KubeAdapter`` on context ``lab`` of ``--kubeconfig``, holder
``"<host>:<pid>:<random>"``) and calls ``execute`` as an approver. Prints the final state.
Tests kill it by pid mid-apply (``test-slow`` holds between its changes) to leave a run
``running`` with a dead holder.
"""

from __future__ import annotations

import argparse

from bot.adapters.db import RunStoreSQL
from bot.adapters.kube import KubeAdapter
from bot.engine.core import Actor
from bot.engine.policy import PolicyEngine
from bot.engine.service import RunService, default_holder
from bot.settings import Policy
from tests.lab.fake_runbooks import make_registry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", required=True)
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--run", required=True)
    args = ap.parse_args(argv)
    kube = KubeAdapter("lab", kubeconfig=args.kubeconfig, context="lab")
    store = RunStoreSQL(args.db)
    svc = RunService(registry=make_registry(), store=store, policy=PolicyEngine(Policy()),
                     clusters=["lab"], readers=lambda c: kube, writers=lambda c: kube,
                     holder=default_holder(), lock_lease_seconds=600)
    try:
        view = svc.execute(Actor("cli:child", "cli", "terminal"), args.run)
        print(view.run.state.value, flush=True)
    finally:
        svc.shutdown()
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
