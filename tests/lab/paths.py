"""Where the shared fixtures and cases live: ``$K8SNET_SHARED`` or ``../shared`` beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("K8SNET_SHARED", REPO.parent / "shared")).resolve()
REAL = SHARED / "fixtures" / "real"
API = SHARED / "fixtures" / "api"
CASES = SHARED / "cases"
