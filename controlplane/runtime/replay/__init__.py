"""Replay of the action flow: rebuild intents, plans, executions, steps, approvals and kill switches from
the ledger alone, compare them with the projection tables, and re-run the deterministic decisions.

Four kinds of check, each reported as a `controlplane.kernel.replay.Difference` (recorded vs rebuilt):

1. **Projection** — a pure fold of the ledger events (`fold`) gives the state every row should have;
   each row is compared column by column (recorded = the table, rebuilt = the fold). A row with no
   events, or events with no row, is a difference too.
2. **Compilation** — the recorded draft is compiled again (`plan_compile`) against the contract versions
   the plan recorded (not the newest ones); the plan id, its steps and execution keys, or the refusal with
   its reason code, must come out the same (recorded = the ledger, rebuilt = the new compilation).
3. **Policy** — every step is evaluated again (`evaluate`, pure) with the recorded context under the
   *recorded* profile version, looked up by name and version and checked against the recorded content
   hash; activating another profile later changes nothing here. Verdict, tier, quorum, reason codes and
   the decision hash must match (recorded = the ledger, rebuilt = the new evaluation).
4. **Decisions** — every approval is re-taken from its recorded events (quorum of distinct human
   approvers, none of them the requester, before the deadline, on the content hash of the step it
   released) and every recorded step start is judged against the kill switches engaged before its seq
   (`decisions`); each violation's rebuilt side starts with its reason code.

`simulate_profile` is the what-if (like OPA's or Cedar's policy simulation): the recorded steps evaluated
under another profile, reporting which verdicts would change, counted by reason code.

Replay trusts that the ledger is authentic: `manage.py ledger verify` proves that; replay proves the
projections and decisions follow from it.
"""

from controlplane.runtime.replay.fold import Ledger, fold, runtime_events
from controlplane.runtime.replay.simulation import Simulation, VerdictChange, outcome_label, simulate_profile
from controlplane.runtime.replay.verify import replay_verify

__all__ = [
    "Ledger",
    "Simulation",
    "VerdictChange",
    "fold",
    "outcome_label",
    "replay_verify",
    "runtime_events",
    "simulate_profile",
]
