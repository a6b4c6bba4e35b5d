"""Every write of the runtime: intent -> plan -> verdicts -> execution -> step runs -> outcome.

`intent_submit` compiles the draft (deterministically), records the plan, asks policy for a verdict per
step, opens approval requests where people must consent, and starts the execution; ready steps are
dispatched to Celery when the transaction commits. Every transition appends its ledger event in the same
transaction. The modules, by sub-domain:

- `intents`: accept a draft, compile it, verify each step with policy, start the execution.
- `dispatch`: dispatch cleared steps, the outbox, the end of an execution (the only module that talks to
  Celery).
- `steps`: the worker side (claim, run, finish, retry, fail) and cancelling an execution.
- `sweep`: the sweeper (lost workers, the outbox, tasks the broker lost, held steps re-checked).
- `killswitch`: engaging and releasing the kill switch (the first dispatch gate), and what it held.
- `approval_subject`: the `runtime.step` approval subject and its resolver.

Reads are in `controlplane.runtime.selectors`; the recorded verdict's shape is in
`controlplane.runtime.verdicts`.
"""

from __future__ import annotations

from controlplane.runtime.services.approval_subject import (
    APPROVAL_SUBJECT,
    step_approval_await,
    step_approval_resolve,
    step_content_hash,
)
from controlplane.runtime.services.dispatch import (
    execution_advance,
    step_block,
    step_dispatch,
    step_hold,
    step_publish,
    step_publish_on_commit,
    step_resume,
)
from controlplane.runtime.services.intents import execution_start, intent_submit
from controlplane.runtime.services.killswitch import (
    HELD_CHOICES,
    killswitch_held_decide,
    killswitch_set,
)
from controlplane.runtime.services.steps import (
    execution_cancel,
    retry_delay_seconds,
    step_fail,
    step_run_execute,
    step_run_lock,
)
from controlplane.runtime.services.sweep import OUTBOX_GRACE_SECONDS, held_steps_recheck, step_runs_sweep

__all__ = [
    "APPROVAL_SUBJECT",
    "HELD_CHOICES",
    "OUTBOX_GRACE_SECONDS",
    "execution_advance",
    "execution_cancel",
    "execution_start",
    "held_steps_recheck",
    "intent_submit",
    "killswitch_held_decide",
    "killswitch_set",
    "retry_delay_seconds",
    "step_approval_await",
    "step_approval_resolve",
    "step_block",
    "step_content_hash",
    "step_dispatch",
    "step_fail",
    "step_hold",
    "step_publish",
    "step_publish_on_commit",
    "step_resume",
    "step_run_execute",
    "step_run_lock",
    "step_runs_sweep",
]
