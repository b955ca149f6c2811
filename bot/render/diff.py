"""Readable diffs of a runbook plan: per change, a unified diff of its ``before`` and ``after``
objects as YAML. Pure: data in, text out (``difflib`` + PyYAML); no Slack markup here, so the
terminal and Slack renderers share it.

- ``create``: every line of ``after`` added (``--- /dev/null``);
- ``delete``: every line of ``before`` removed (``+++ /dev/null``);
- ``replace``/``patch``: the lines that differ, with :data:`DEFAULT_CONTEXT` lines around
  them. A patch without an ``after`` shows the patch document itself.

Objects are dumped with their keys in the order the runbook built them (``apiVersion``,
``kind``, ``metadata``, ``spec`` read naturally), so the diff reads like ``kubectl diff``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import yaml

from bot.sdk.runbook import Change, Plan

__all__ = [
    "DEFAULT_CONTEXT",
    "ChangeDiff",
    "change_diff",
    "plan_diff_text",
    "plan_diffs",
    "to_yaml",
]

DEFAULT_CONTEXT = 3
"""Unchanged lines shown around each changed block."""


class _Dumper(yaml.SafeDumper):
    """A safe dumper that never emits aliases (``&id001``): every object is written out."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None  # multi-line strings (configs) stay readable
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def to_yaml(obj: Any) -> str:
    """``obj`` as block-style YAML with keys in insertion order ("" for None)."""
    if obj is None:
        return ""
    text: str = yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                          allow_unicode=True, width=100)
    return text


@dataclass(frozen=True)
class ChangeDiff:
    """One change ready to display: ``index`` in the plan, ``action`` (create, replace, patch,
    delete), ``target`` (``kind/namespace/name``), the runbook's one-sentence ``summary``,
    ``reversible`` and the unified ``diff`` text (lines end with ``\\n``; "" when before and
    after are equal)."""

    index: int
    action: str
    target: str
    summary: str
    reversible: bool
    diff: str

    @property
    def added(self) -> int:
        """Lines added by this change."""
        return sum(1 for ln in self.diff.splitlines()
                   if ln.startswith("+") and not ln.startswith("+++"))

    @property
    def removed(self) -> int:
        """Lines removed by this change."""
        return sum(1 for ln in self.diff.splitlines()
                   if ln.startswith("-") and not ln.startswith("---"))


def change_diff(change: Change, *, context: int = DEFAULT_CONTEXT) -> str:
    """The unified diff of ``change.before`` -> ``change.after`` as YAML (see the module
    docstring); every line ends with a newline."""
    before = to_yaml(change.before) if change.action != "create" else ""
    if change.action == "delete":
        after = ""
    elif change.after is None and change.action == "patch":
        after = None
    else:
        after = to_yaml(change.after)
    if after is None:  # a patch without the resulting object: show the patch document
        header = f"# {change.patch_type} patch of {change.target}\n"
        return header + "".join(f"+{ln}\n" for ln in to_yaml(change.patch).splitlines())
    src = "/dev/null" if change.action == "create" or change.before is None \
        else f"a/{change.target}"
    dst = "/dev/null" if change.action == "delete" else f"b/{change.target}"
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), fromfile=src,
                                 tofile=dst, n=context, lineterm="")
    return "".join(ln + "\n" for ln in lines)


def plan_diffs(plan: Plan, *, context: int = DEFAULT_CONTEXT) -> list[ChangeDiff]:
    """One :class:`ChangeDiff` per change of ``plan``, in plan order."""
    return [ChangeDiff(index=i, action=c.action, target=c.target, summary=c.summary,
                       reversible=c.reversible, diff=change_diff(c, context=context))
            for i, c in enumerate(plan.changes)]


def plan_diff_text(plan: Plan, *, context: int = DEFAULT_CONTEXT) -> str:
    """Every change's diff one after the other, each introduced by a ``# <action> <target>``
    line (what ``k8snet plan`` prints and the file of a very long diff holds)."""
    parts = []
    for d in plan_diffs(plan, context=context):
        head = f"# {d.index + 1}. {d.action} {d.target}"
        if d.summary:
            head += f": {d.summary}"
        if not d.reversible:
            head += " (cannot be rolled back automatically)"
        parts.append(head + "\n" + d.diff)
    return "\n".join(parts)
