"""Benchmark: `status` on an emulated cluster of 50 / 500 / 5,000 Services (with matching pods,
EndpointSlices and some NetworkPolicies), against `kubectl get` of the same objects on the same
emulator, measured side by side in one run (DESIGN.md §12). Prints ratios; asserts nothing.

Run: ``python -m tests.bench.bench_status [--sizes 50,500,5000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bot.adapters.kube import KubeAdapter
from bot.engine.status import build_report
from runbooks.probes import all_probes
from tests.lab.emulator import Emulator
from tests.lab.scenarios import get


def workload(n: int) -> list[dict[str, Any]]:
    """n Services in 10 namespaces, one pod and one EndpointSlice each, a policy per 10."""
    objs: list[dict[str, Any]] = []
    for ns_i in range(10):
        ns = f"app-{ns_i}"
        objs.append({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}})
    for i in range(n):
        ns, name = f"app-{i % 10}", f"svc-{i:05d}"
        objs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": name, "namespace": ns},
                     "spec": {"type": "ClusterIP", "selector": {"app": name},
                              "clusterIP": f"10.96.{(i // 250) % 250}.{i % 250 + 1}",
                              "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}})
        objs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"{name}-pod", "namespace": ns,
                                  "labels": {"app": name}},
                     "spec": {"nodeName": "node-2", "containers": [{"name": "app",
                                                                    "image": "nginx:1.27"}]},
                     "status": {"phase": "Running", "podIP": f"10.244.{i // 250}.{i % 250}"}})
        objs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": f"{name}-x", "namespace": ns,
                                  "labels": {"kubernetes.io/service-name": name}},
                     "addressType": "IPv4",
                     "endpoints": [{"addresses": [f"10.244.{i // 250}.{i % 250}"],
                                    "conditions": {"ready": True}}],
                     "ports": [{"port": 8080, "protocol": "TCP"}]})
        if i % 10 == 0:
            objs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                         "metadata": {"name": f"np-{i:05d}", "namespace": ns},
                         "spec": {"podSelector": {"matchLabels": {"app": name}},
                                  "policyTypes": ["Ingress"],
                                  "ingress": [{"from": [{"podSelector": {}}]}]}})
    return objs


def time_status(kubeconfig: Path) -> tuple[float, int, int]:
    """Seconds, API requests and peak traced memory (bytes) of one status report."""
    adapter = KubeAdapter("bench", kubeconfig=str(kubeconfig), context="bench", timeout=60)
    tracemalloc.start()
    t0 = time.perf_counter()
    build_report("bench", adapter, all_probes())
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return dt, adapter.requests, peak


def time_kubectl(kubeconfig: Path) -> float:
    """Seconds for kubectl to fetch the same kinds as JSON."""
    t0 = time.perf_counter()
    subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get",
                    "services,pods,endpointslices,networkpolicies,nodes,configmaps,daemonsets,"
                    "deployments,namespaces", "-A", "-o", "json"],
                   check=True, capture_output=True, timeout=300)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,500,5000")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    kubectl = shutil.which("kubectl")
    print(f"{'services':>8} {'status s':>9} {'kubectl s':>9} {'ratio':>6} {'API calls':>9} "
          f"{'peak MiB':>8}")
    for n in (int(x) for x in args.sizes.split(",")):
        emu = Emulator.from_scenario(get("a")).start()
        try:
            emu.add(*workload(n))
            with tempfile.TemporaryDirectory() as d:
                kc = Path(d) / "kc"
                emu.write_kubeconfig(kc, context="bench")
                runs = [time_status(kc) for _ in range(args.repeat)]
                st = statistics.median(r[0] for r in runs)
                kt = statistics.median(time_kubectl(kc) for _ in range(args.repeat)) \
                    if kubectl else float("nan")
                calls, peak = runs[-1][1], max(r[2] for r in runs)
                print(f"{n:>8} {st:>9.3f} {kt:>9.3f} {st / kt:>6.2f} {calls:>9} "
                      f"{peak / 2**20:>8.1f}")
        finally:
            emu.stop()
    if not kubectl:
        print("kubectl not found: the kubectl column is empty")


if __name__ == "__main__":
    main()
