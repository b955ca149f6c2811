"""Errors of the database adapter. Every message is one sentence and shows the database URL
with its password masked (``postgresql+psycopg://k8snet:***@db/k8snet``).

::

    K8snetError                    (bot.sdk.errors)
    ├── SettingsError              database_url is not a usable URL (bad syntax, unknown
    │                              backend, missing driver): ``key == "database_url"``
    └── DatabaseError              anything else from the database; ``url`` = masked URL
        ├── DatabaseUnreachable    cannot connect or open: names host (or file) and cause
        └── SchemaNotCurrent       schema not at this version's head: says to run
                                   ``k8snet db upgrade``; ``current`` / ``head`` revisions
"""

from __future__ import annotations

from bot.sdk.errors import K8snetError


class DatabaseError(K8snetError):
    """An error from the audit database. ``url``: the database URL with the password masked."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class DatabaseUnreachable(DatabaseError):
    """The database could not be reached or opened (refused, DNS, timeout, authentication,
    missing database, unwritable SQLite file). ``host`` is the server host, or the SQLite
    file path."""

    def __init__(self, message: str, *, url: str = "", host: str = "") -> None:
        super().__init__(message, url=url)
        self.host = host


class SchemaNotCurrent(DatabaseError):
    """The schema is not at the revision this k8snet needs. ``current`` is the database's
    revision (``None``: empty database), ``head`` the one the code needs."""

    def __init__(self, message: str, *, url: str = "", current: str | None, head: str) -> None:
        super().__init__(message, url=url)
        self.current = current
        self.head = head
