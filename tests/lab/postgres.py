"""A throwaway PostgreSQL server for tests (DESIGN.md §11): ``initdb`` + ``pg_ctl`` on a free port.

- Binaries: ``$K8SNET_PG_BINDIR`` when set (and nothing else then), else
  ``/usr/lib/postgresql/15/bin``, else ``pg_config --bindir``, else the directory of ``initdb``
  on ``PATH`` (:func:`find_bindir`; ``None`` when none has ``initdb``, ``pg_ctl`` and
  ``postgres``).
- Running as root (as in the lab image), the cluster directory is owned by the ``postgres`` OS
  user and ``initdb`` / ``pg_ctl`` run as that user through ``runuser``; as any other user they
  run directly.
- The server listens on ``127.0.0.1:<free port>`` and on a Unix socket in its temp dir, trusts
  every local connection (``-A trust``), superuser ``postgres``, with ``fsync=off``: a test
  server, never a store for anything that matters.
- :meth:`PostgresServer.stop` runs ``pg_ctl stop -m immediate``; if that fails it kills the
  postmaster pid recorded at start (from ``postmaster.pid``), never anything found by name.

Measured on the lab machine (2 cores, root, Debian 12): start 0.6-0.9 s (initdb + ``pg_ctl -w
start``), ``CREATE DATABASE`` 120-190 ms, stop ~130 ms. ``python -m tests.lab.postgres``
starts one, prints those timings and its URL, and stops it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DEFAULT_BINDIR = Path("/usr/lib/postgresql/15/bin")
ENV_BINDIR = "K8SNET_PG_BINDIR"
OS_USER = "postgres"
SUPERUSER = "postgres"


class PostgresLabError(RuntimeError):
    """The throwaway server could not be created, started or used; the message carries the
    failing command and the tail of its output or of the server log."""


def _has_server_binaries(d: Path) -> bool:
    return all(os.access(d / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


def find_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or ``None`` (see the
    module docstring for the search order)."""
    if os.environ.get(ENV_BINDIR):  # explicit: no fallback
        explicit = Path(os.environ[ENV_BINDIR])
        return explicit if _has_server_binaries(explicit) else None
    candidates: list[Path] = [DEFAULT_BINDIR]
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for d in candidates:
        if _has_server_binaries(d):
            return d
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's pick; racy by nature, so
    :meth:`PostgresServer.start` retries on another port if the server cannot bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class PostgresServer:
    """One throwaway PostgreSQL server. Use :func:`running_postgres` or call :meth:`start` /
    :meth:`stop` yourself (``stop`` is also registered with :mod:`atexit` as a safety net).

    ``bindir``: directory of the server binaries (:func:`find_bindir`). ``host``: the address
    to listen on. After :meth:`start`: ``port``, ``pid`` (the postmaster), ``root`` (the temp
    dir holding ``data/``, ``server.log`` and the Unix socket).
    """

    def __init__(self, bindir: Path, host: str = "127.0.0.1") -> None:
        self.bindir = Path(bindir)
        self.host = host
        self.port: int | None = None
        self.pid: int | None = None
        self.root: Path | None = None
        self._as_postgres = os.geteuid() == 0
        self._db_counter = 0

    # ------------------------------------------------------------------ paths and commands
    @property
    def datadir(self) -> Path:
        assert self.root is not None, "server not started"
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        assert self.root is not None, "server not started"
        return self.root / "server.log"

    def _run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        if self._as_postgres:
            argv = ["runuser", "-u", OS_USER, "--", *argv]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
            cwd=self.root,
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self, attempts: int = 3) -> PostgresServer:
        """initdb a fresh cluster in a new temp dir and start it on a free port.

        Raises PostgresLabError (with the command's output or the log tail) when initdb or
        the server fails; retries the start on another port up to ``attempts`` times.
        """
        if self.root is not None:
            raise PostgresLabError("server already started")
        self.root = Path(tempfile.mkdtemp(prefix="k8snet-pg-"))
        if self._as_postgres:
            shutil.chown(self.root, user=OS_USER, group=None)
        atexit.register(self.stop)
        init = self._run([
            str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust", "--no-sync",
            "-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-instructions",
        ])
        if init.returncode != 0:
            self.stop()
            raise PostgresLabError(
                f"initdb failed (exit {init.returncode}): {(init.stderr or init.stdout)[-2000:]}"
            )
        last = ""
        for _ in range(attempts):
            port = free_port(self.host)
            opts = (
                f"-k {self.root} -c listen_addresses={self.host} -p {port} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off"
            )
            res = self._run([
                str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
                "-w", "-t", "30", "-o", opts, "start",
            ])
            if res.returncode == 0:
                self.port = port
                self.pid = self._read_pid()
                return self
            last = f"{res.stderr or res.stdout}\n{_tail(self.logfile)}"
        self.stop()
        raise PostgresLabError(f"pg_ctl start failed {attempts} times; last output:\n{last}")

    def _read_pid(self) -> int | None:
        try:
            first = (self.datadir / "postmaster.pid").read_text().splitlines()[0]
            return int(first.strip())
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m immediate``, else SIGKILL to the recorded
        postmaster pid) and remove its temp dir. Safe to call twice."""
        if self.root is None:
            return
        if self.port is not None and self.datadir.exists():
            res = None
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                res = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                                 "-m", "immediate", "-w", "-t", "10", "stop"], timeout=20)
            if (res is None or res.returncode != 0) and self.pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(self.pid, signal.SIGKILL)
                    self._wait_gone(self.pid)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        self.port = None
        self.pid = None
        atexit.unregister(self.stop)

    @staticmethod
    def _wait_gone(pid: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    # ------------------------------------------------------------------ databases
    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of database ``dbname``: ``postgresql+psycopg://postgres@127.0.0.1:
        <port>/<dbname>`` (no password: the server trusts local connections)."""
        if self.port is None:
            raise PostgresLabError("server not started")
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """``CREATE DATABASE`` (``name`` or ``k8snet_test_<n>``); returns its SQLAlchemy URL.
        Needs psycopg (the ``postgres`` extra)."""
        import psycopg

        if self.port is None:
            raise PostgresLabError("server not started")
        if name is None:
            self._db_counter += 1
            name = f"k8snet_test_{self._db_counter}"
        with psycopg.connect(host=self.host, port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)


@contextlib.contextmanager
def running_postgres(bindir: Path | None = None) -> Iterator[PostgresServer]:
    """Start a throwaway server for the ``with`` block; stop it after. Raises
    PostgresLabError when no binaries are found (``bindir`` None and :func:`find_bindir`
    finds none) or the server fails to start."""
    bindir = bindir or find_bindir()
    if bindir is None:
        raise PostgresLabError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _main() -> None:  # pragma: no cover - manual measurement
    t0 = time.perf_counter()
    with running_postgres() as server:
        t1 = time.perf_counter()
        url = server.create_database("measure")
        t2 = time.perf_counter()
        print(f"started in {t1 - t0:.2f} s, CREATE DATABASE in {(t2 - t1) * 1000:.0f} ms: {url}")
        t3 = time.perf_counter()
    print(f"stopped in {(time.perf_counter() - t3) * 1000:.0f} ms")


if __name__ == "__main__":  # pragma: no cover
    _main()
