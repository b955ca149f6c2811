"""The read-only probe contract that ``status`` runs.

A probe is a class with a ``section`` name, a human ``title``, an ``order`` (probes run in
ascending order so later ones can read earlier ones' facts), a ``position`` (display order in
the report) and an ``inspect`` method. A probe that decided only part of its section sets
``facts["undecided"]`` to the reason: the section then shows ``unknown`` next to its findings.
What a probe cannot check at all in this release (it needs node access, say) goes in
``facts["not_checked"]``: shown with the section, without making it unknown. Its
docstring's first line is its summary. Probes only read: they receive a ``ProbeContext``
whose ``kube`` is a ``KubeReader``.

Rules (DESIGN.md §4): a probe that cannot decide raises (any ``KubeError``, or ``ProbeError``
for data it cannot use); the engine then marks the section ``unknown`` with the reason and the
rest of the report stands. Malformed configuration *inside* an object (a broken ``config.conf``,
``net-conf.json`` or MetalLB YAML) is a finding, not an exception.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from bot.sdk.errors import K8snetError
from bot.sdk.ports import ProbeContext
from bot.sdk.results import Inspection


class ProbeError(K8snetError):
    """A probe could not decide its section; the message says why in one sentence."""


class Probe(abc.ABC):
    """Base class for status probes. Subclasses set ``section``, ``title``, ``order`` and
    implement :meth:`inspect`."""

    section: ClassVar[str]
    title: ClassVar[str]
    order: ClassVar[int] = 100
    position: ClassVar[int] = 100

    @abc.abstractmethod
    def inspect(self, ctx: ProbeContext) -> Inspection:
        """Read the cluster and return findings and facts. Raises ``KubeError``/``ProbeError``
        when the section cannot be decided."""

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else cls.section
