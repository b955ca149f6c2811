"""Slack user groups for the approval policy: ``group_members(S0123ABC) -> {user ids}``.

Roles may name Slack user groups (``S...``, DESIGN.md §5); the policy engine resolves them
through a callable. :class:`SlackGroupMembers` answers from ``usergroups.users.list`` (scope
``usergroups:read``), caching each group for ``ttl`` seconds so a burst of approvals costs one
call. A Slack error propagates: the policy engine logs it and treats the user as not a member
(fail closed).
"""

from __future__ import annotations

import threading
import time

from slack_sdk import WebClient

__all__ = ["DEFAULT_TTL", "SlackGroupMembers"]

DEFAULT_TTL = 300.0
"""Seconds a group's member list is reused before it is asked again."""


class SlackGroupMembers:
    """Callable ``group_id -> set of user ids`` over ``usergroups.users.list`` with a cache."""

    def __init__(self, client: WebClient, ttl: float = DEFAULT_TTL) -> None:
        self.client = client
        self.ttl = ttl
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def __call__(self, group_id: str) -> set[str]:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(group_id)
        if hit is not None and now - hit[0] < self.ttl:
            return set(hit[1])
        resp = self.client.usergroups_users_list(usergroup=group_id)
        users = frozenset(str(u) for u in (resp.get("users") or []))
        with self._lock:
            self._cache[group_id] = (now, users)
        return set(users)
