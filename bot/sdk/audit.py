"""Audit records and the port the engine writes them through (implemented in
``bot.adapters.db``). Append-only: there is no update or delete in this port."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class CommandRecord:
    """One slash command or CLI call.

    ``actor``: Slack user id (``U0123ABC``) or ``cli:<os user>``; ``source``: ``slack`` or
    ``cli``; ``channel``: Slack channel id, or ``terminal``; ``text``: the command as typed
    (tokens are never part of it); ``cluster``: the cluster it targeted, if any; ``outcome``:
    ``ok``, ``error``, ``refused`` or ``rejected``; ``detail``: one-line reason or summary;
    ``duration_ms``: wall time in milliseconds.
    """

    actor: str
    source: str
    channel: str
    text: str
    cluster: str | None
    outcome: str
    detail: str = ""
    duration_ms: int = 0
    started_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class AuditSink(Protocol):
    """Where command records go. ``record_command`` returns the new row's id."""

    def record_command(self, record: CommandRecord) -> int:
        """Append one record; returns its id. Raises on storage failure (callers decide)."""
        ...
