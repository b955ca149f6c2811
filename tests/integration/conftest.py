"""Fixtures for integration tests. Keep each group in its own section with clearly named
fixtures; other groups may be added below."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.lab.emulator import Emulator

# ------------------------------------------------------------------- Kubernetes API emulator

EmulatorFactory = Callable[..., Emulator]


@pytest.fixture
def emulator_factory() -> Iterator[EmulatorFactory]:
    """``make(scenario=None, **kwargs) -> Emulator``: a started emulator, seeded from the named
    scenario (``"a"``...) or a ``Scenario``, or empty (namespaces default, kube-system,
    kube-public, kube-node-lease) when ``scenario`` is None. ``kwargs`` go to the Emulator
    constructor (``user=``, ``require_token=``...). Every emulator made is stopped at teardown."""
    made: list[Emulator] = []

    def make(scenario: Any = None, **kwargs: Any) -> Emulator:
        emu = Emulator.from_scenario(scenario, **kwargs) if scenario is not None \
            else Emulator(**kwargs)
        made.append(emu.start())
        return emu

    yield make
    for emu in made:
        emu.stop()


@pytest.fixture
def emulator(emulator_factory: EmulatorFactory) -> Emulator:
    """A started emulator seeded with scenario (a) (kubeadm + Flannel + MetalLB legacy)."""
    return emulator_factory("a")
