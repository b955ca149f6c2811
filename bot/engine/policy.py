"""Who may do what on which cluster (DESIGN.md §5, §13), from ``bot.settings.Policy``.

Roles are cumulative: ``viewer < operator < approver < admin`` (an approver is also an operator
and a viewer). Members are Slack user ids, Slack user group ids (``S...``: resolved through
``group_members``), ``cli:<user>``, ``cli:*`` (every terminal user) or ``*`` (everyone). The
``*`` cluster key applies to every cluster and is merged with the cluster's own key. With no
``roles`` configured at all, everyone is an operator and an approver (never an admin); four eyes
still apply (the service refuses self-approval).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.errors import Refused
from bot.sdk.runbook import Risk
from bot.settings import ROLES, Policy, RoleMembers

__all__ = ["ROLES", "PolicyEngine"]

log = logging.getLogger(__name__)

_OPEN_ROLES = frozenset({"viewer", "operator", "approver"})


class PolicyEngine:
    """Role checks and approval counts.

    ``group_members(group_id) -> set of user ids`` resolves Slack user groups (None: groups
    match nobody). A lookup that raises is logged and treated as "not a member" (fail closed).
    """

    def __init__(self, policy: Policy,
                 group_members: Callable[[str], set[str]] | None = None) -> None:
        self.policy = policy
        self.group_members = group_members

    def _matches(self, user: str, entry: str) -> bool:
        if entry == "*" or entry == user:
            return True
        if entry == "cli:*":
            return user.startswith("cli:")
        if entry.startswith("S") and self.group_members is not None:
            try:
                return user in self.group_members(entry)
            except Exception:  # Slack API down: fail closed, but say so
                log.warning("could not resolve members of user group %s", entry,
                            exc_info=True)
                return False
        return False

    def roles_of(self, user: str, cluster: str) -> set[str]:
        """The roles ``user`` holds on ``cluster`` (cumulative, e.g. ``{"viewer", "operator",
        "approver"}`` for an approver), from the ``*`` key and the cluster's own key."""
        if not self.policy.roles:
            return set(_OPEN_ROLES)
        entries: list[RoleMembers] = [m for k, m in self.policy.roles.items()
                                      if k in ("*", cluster)]
        best = -1
        for members in entries:
            for rank, role in enumerate(ROLES):
                if rank > best and any(self._matches(user, e) for e in getattr(members, role)):
                    best = rank
        return set(ROLES[: best + 1])

    def has_role(self, user: str, cluster: str, role: str) -> bool:
        """Whether ``user`` holds ``role`` (or a higher one) on ``cluster``. ValueError for an
        unknown role name."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        return role in self.roles_of(user, cluster)

    def require(self, user: str, cluster: str, role: str, action: str = "") -> None:
        """Raise ``Refused(reason="role")`` unless ``user`` holds ``role`` on ``cluster``; the
        message names the role, the cluster and (when given) the ``action`` refused, e.g.
        "You need the approver role on cluster prod to approve runs."."""
        if not self.has_role(user, cluster, role):
            what = f" to {action}" if action else ""
            raise Refused(f"You need the {role} role on cluster {cluster}{what}.",
                          reason="role")

    def approvals_needed(self, risk: Risk | str) -> int:
        """Approvals a run of this risk needs: 0 for ``read-only``, 1 for ``low``,
        ``policy.approvals_required`` for ``disruptive``."""
        r = Risk(risk)
        if r is Risk.READ_ONLY:
            return 0
        if r is Risk.LOW:
            return 1
        return self.policy.approvals_required
