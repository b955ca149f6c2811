"""PolicyEngine: cumulative roles per cluster, '*' cluster key, user groups, the open default,
approval counts by risk."""

from __future__ import annotations

import pytest

from bot.engine.policy import PolicyEngine
from bot.sdk.errors import Refused
from bot.sdk.runbook import Risk
from bot.settings import Policy, RoleMembers

ALL = {"viewer", "operator", "approver", "admin"}


def engine(groups: dict[str, set[str]] | None = None, **kw: object) -> PolicyEngine:
    policy = Policy(roles={
        "*": RoleMembers(viewer=["*"], operator=["U0OPS"], approver=["S0SRE"]),
        "prod": RoleMembers(approver=["U0BOSS"], admin=["U0ROOT", "cli:root"]),
        "lab": RoleMembers(operator=["cli:*"], approver=["U0LAB"]),
    }, **kw)  # type: ignore[arg-type]
    lookup = None if groups is None else (lambda g: groups.get(g, set()))
    return PolicyEngine(policy, lookup)


def test_roles_are_cumulative() -> None:
    p = engine()
    assert p.roles_of("U0ROOT", "prod") == ALL
    assert p.roles_of("U0BOSS", "prod") == {"viewer", "operator", "approver"}
    assert p.roles_of("U0OPS", "prod") == {"viewer", "operator"}


def test_star_cluster_key_merges_with_the_cluster_key() -> None:
    p = engine()
    assert p.roles_of("U0OPS", "anything") == {"viewer", "operator"}  # from '*'
    assert p.roles_of("U0BOSS", "lab") == {"viewer"}  # prod's approver is not lab's
    assert p.roles_of("U0LAB", "lab") == {"viewer", "operator", "approver"}
    assert p.roles_of("U0NOBODY", "prod") == {"viewer"}  # '*' member of viewer


def test_cli_users() -> None:
    p = engine()
    assert p.roles_of("cli:root", "prod") == ALL
    assert p.roles_of("cli:alice", "lab") == {"viewer", "operator"}  # cli:*
    assert p.roles_of("cli:alice", "prod") == {"viewer"}
    assert p.roles_of("U0SLACK", "lab") == {"viewer"}  # cli:* is not a Slack user


def test_user_groups_are_resolved_through_the_lookup() -> None:
    p = engine(groups={"S0SRE": {"U0ANNA"}})
    assert p.roles_of("U0ANNA", "prod") == {"viewer", "operator", "approver"}
    assert p.roles_of("U0BERT", "prod") == {"viewer"}
    assert engine().roles_of("U0ANNA", "prod") == {"viewer"}  # no lookup: groups match nobody


def test_a_failing_group_lookup_fails_closed() -> None:
    def boom(group: str) -> set[str]:
        raise RuntimeError("slack down")
    p = PolicyEngine(Policy(roles={"*": RoleMembers(approver=["S0SRE"])}), boom)
    assert p.roles_of("U0ANNA", "prod") == set()


def test_no_roles_at_all_makes_everyone_operator_and_approver() -> None:
    p = PolicyEngine(Policy())
    assert p.roles_of("U0ANY", "prod") == {"viewer", "operator", "approver"}
    assert p.has_role("cli:bob", "x", "approver")
    assert not p.has_role("U0ANY", "prod", "admin")


def test_someone_not_listed_has_no_role() -> None:
    p = PolicyEngine(Policy(roles={"prod": RoleMembers(operator=["U0OPS"])}))
    assert p.roles_of("U0X", "prod") == set()
    assert p.roles_of("U0OPS", "lab") == set()


def test_require_names_role_and_cluster() -> None:
    p = engine()
    p.require("U0BOSS", "prod", "approver")
    with pytest.raises(Refused) as ei:
        p.require("U0OPS", "prod", "approver", "approve runs")
    assert ei.value.reason == "role"
    assert str(ei.value) == "You need the approver role on cluster prod to approve runs."
    with pytest.raises(ValueError, match="unknown role"):
        p.require("U0OPS", "prod", "superuser")


@pytest.mark.parametrize("risk, n", [(Risk.READ_ONLY, 0), (Risk.LOW, 1), ("low", 1),
                                     (Risk.DISRUPTIVE, 3), ("disruptive", 3)])
def test_approvals_needed(risk: Risk | str, n: int) -> None:
    assert engine(approvals_required=3).approvals_needed(risk) == n


def test_approvals_needed_default_disruptive_is_one() -> None:
    assert PolicyEngine(Policy()).approvals_needed(Risk.DISRUPTIVE) == 1
