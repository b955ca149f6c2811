"""``python -m tests.lab``: run the lab's Kubernetes API emulator by hand.

- ``list``: the scenarios (name, aliases, one-line description).
- ``serve <scenario> [--port N] [--kubeconfig PATH] [--pid-file PATH]``: serve the scenario on
  127.0.0.1 until killed (SIGTERM / SIGINT); prints ``url:``, ``context:``, ``kubeconfig:``,
  ``pid-file:`` and ``pid:`` lines. The kubeconfig and pid file default to a fresh temporary
  directory; the pid file is removed on exit.
- ``demo <scenario> [k8snet args...]``: start the emulator in-process, write a temporary
  kubeconfig whose context is ``lab-<scenario>``, run
  ``python -m bot.cli status --kubeconfig <file> --cluster lab-<scenario> [args...]``, print its
  output and exit with its exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from tests.lab.emulator import Emulator
from tests.lab.paths import REPO
from tests.lab.scenarios import CANONICAL, SCENARIOS, get


def _cmd_list() -> int:
    for name in CANONICAL:
        build = SCENARIOS[name]
        aliases = [a for a, b in SCENARIOS.items() if b is build and a != name]
        sc = build()
        alias = f" (alias: {', '.join(aliases)})" if aliases else ""
        print(f"{name}{alias}: {sc.description}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    emu = Emulator.from_scenario(get(args.scenario), port=args.port)
    tmp = Path(tempfile.mkdtemp(prefix=f"k8snet-lab-{args.scenario}-"))
    kubeconfig = Path(args.kubeconfig or tmp / "kubeconfig")
    pid_file = Path(args.pid_file or tmp / "emulator.pid")
    context = f"lab-{args.scenario}"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    emu.start()
    try:
        emu.write_kubeconfig(kubeconfig, context)
        pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
        print(f"url: {emu.url}\ncontext: {context}\nkubeconfig: {kubeconfig}\n"
              f"pid-file: {pid_file}\npid: {os.getpid()}\n"
              f"try: kubectl --kubeconfig {kubeconfig} get pods -A", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
        pid_file.unlink(missing_ok=True)
        if not args.kubeconfig:
            kubeconfig.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            tmp.rmdir()  # only if empty: never remove what the user put there
    return 0


def _cmd_demo(args: argparse.Namespace, extra: list[str]) -> int:
    context = f"lab-{args.scenario}"
    with Emulator.from_scenario(get(args.scenario)) as emu, \
            tempfile.TemporaryDirectory(prefix="k8snet-demo-") as tmp:
        kubeconfig = emu.write_kubeconfig(Path(tmp) / "kubeconfig", context)
        cmd = [sys.executable, "-m", "bot.cli", "status", "--kubeconfig", str(kubeconfig),
               "--cluster", context, *extra]
        print(f"# emulator {emu.url} (scenario {args.scenario}); running: k8snet "
              + " ".join(cmd[3:]), file=sys.stderr, flush=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
        if "K8SNET_DATABASE_URL" not in os.environ:
            # a throwaway audit trail: lab commands stay out of the user's real one
            env["K8SNET_DATABASE_URL"] = f"sqlite:///{Path(tmp) / 'audit.sqlite3'}"
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              check=False)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        return proc.returncode


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for usage errors)."""
    parser = argparse.ArgumentParser(prog="python -m tests.lab",
                                     description="k8snet test lab: Kubernetes API emulator")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the scenarios")
    serve = sub.add_parser("serve", help="serve a scenario until killed")
    serve.add_argument("scenario")
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    serve.add_argument("--kubeconfig", help="where to write the kubeconfig")
    serve.add_argument("--pid-file", help="where to write the pid")
    demo = sub.add_parser("demo", help="run `k8snet status` against a scenario")
    demo.add_argument("scenario")
    args, extra = parser.parse_known_args(argv)
    if args.command != "demo" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "scenario", None) is not None and args.scenario not in SCENARIOS:
        parser.error(f"unknown scenario {args.scenario!r}; known: {', '.join(CANONICAL)}")
    if args.command == "list":
        return _cmd_list()
    if args.command == "serve":
        return _cmd_serve(args)
    return _cmd_demo(args, extra)


if __name__ == "__main__":
    sys.exit(main())
