"""Runs: the data the engine keeps about one runbook execution, and the store port it keeps
them in (implemented by ``bot.adapters.db.RunStoreSQL``). States and transitions: see
:mod:`bot.sdk.runs`.

Defined in :mod:`bot.sdk.runs` (so the db adapter, a sibling layer of the engine, can implement
the port without importing the engine: DESIGN.md §2) and re-exported here unchanged; these are
the same objects.
"""

from bot.sdk.runs import (
    FINAL_STATES,
    ApprovalRecord,
    RunEvent,
    RunRecord,
    RunState,
    RunStore,
    new_run_id,
)

__all__ = ["FINAL_STATES", "ApprovalRecord", "RunEvent", "RunRecord", "RunState", "RunStore",
           "new_run_id"]
