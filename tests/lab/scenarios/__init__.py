"""Lab scenarios: each module ``<name>.py`` here defines ``build() -> Scenario`` and may set
``ALIASES``. ``SCENARIOS`` maps every name and alias to its builder.

Scenarios seed the API emulator (HTTP, for end-to-end tests and ``python -m tests.lab``) and
``StaticKubeReader`` (unit tests). They are built from ``../shared/fixtures/real`` and
``../shared/cases`` at run time; the fixture files are never modified.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from tests.lab.scenarios._build import Scenario

SCENARIOS: dict[str, Callable[[], Scenario]] = {}
CANONICAL: list[str] = []

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name.startswith("_"):
        continue
    _mod = importlib.import_module(f"{__name__}.{_m.name}")
    _name = _m.name.replace("_", "-")
    SCENARIOS[_name] = _mod.build
    CANONICAL.append(_name)
    for _alias in getattr(_mod, "ALIASES", ()):
        SCENARIOS[_alias] = _mod.build


def get(name: str) -> Scenario:
    """Build the named scenario; KeyError lists the known names."""
    try:
        return SCENARIOS[name]()
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(CANONICAL)}") from None


__all__ = ["CANONICAL", "SCENARIOS", "Scenario", "get"]
