"""Offline management of a store: merge, summarize over time, decay and archive, profile.

The runner (`Consolidator`, `STEPS`) is in `consolidator`, one module per step beside it;
the public names are re-exported here, which is where callers import them from.
"""

from memsvc.consolidate.consolidator import (
    STEP_REGISTRY,
    STEPS,
    ConsolidationConfig,
    ConsolidationReport,
    Consolidator,
    Progress,
    Step,
)
from memsvc.consolidate.context import StepContext
from memsvc.consolidate.decay import strength
from memsvc.consolidate.profile import render_profile
from memsvc.consolidate.sentences import extractive_summary, pick_sentences, profile_line

__all__ = [
    "STEPS",
    "STEP_REGISTRY",
    "ConsolidationConfig",
    "ConsolidationReport",
    "Consolidator",
    "Progress",
    "Step",
    "StepContext",
    "extractive_summary",
    "pick_sentences",
    "profile_line",
    "render_profile",
    "strength",
]
