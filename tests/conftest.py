"""Shared pytest fixtures. Keep each group in its own section; fixtures that start real
components skip when the component is missing, except under ``CI=true``, where they fail
(CI must not pass by skipping what it was meant to test)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.lab.postgres import PostgresServer, find_bindir


def in_ci() -> bool:
    """True when ``$CI`` is ``true`` (GitHub Actions, GitLab CI and most others set it)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def missing_component(message: str) -> NoReturn:
    """Skip the test, or fail it under CI, because a real component is not available."""
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing component fails instead of skipping)",
                    pytrace=False)
    pytest.skip(message)


# ---------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole session (``tests.lab.postgres``), stopped
    at the end. Use ``.create_database()`` for a fresh database (returns its URL). Skips when
    the server binaries or psycopg are missing; fails instead under ``CI=true``."""
    bindir = find_bindir()
    if bindir is None:
        where = (f"$K8SNET_PG_BINDIR ({os.environ['K8SNET_PG_BINDIR']})"
                 if os.environ.get("K8SNET_PG_BINDIR")
                 else "/usr/lib/postgresql/15/bin, `pg_config --bindir` or PATH")
        missing_component(
            f"PostgreSQL server binaries (initdb, pg_ctl) not found in {where} "
            "(apt-get install --no-upgrade postgresql-15)"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing_component("psycopg is not installed (pip install -e '.[dev]')")
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of a database created for this test session on the throwaway server:
    ``postgresql+psycopg://postgres@127.0.0.1:<port>/k8snet_session`` (no password, empty
    schema). Shared by every test of the session: tests that need an empty database should
    call ``postgres_server.create_database()`` instead."""
    return postgres_server.create_database("k8snet_session")
