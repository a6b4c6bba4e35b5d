"""The runtime's contracts: submitting intents, compiling and verifying plans, executions, steps, the
kill switch and runners."""

from __future__ import annotations

from controlplane.kernel.contracts import (
    CODES,
    COMMAND,
    COUNT,
    DATE_TIME,
    HEX64,
    PRINCIPAL_REF,
    QUERY,
    TEXT,
    TRACE_ID,
    Contract,
    event_contract,
    obj,
    schema,
)
from controlplane.policy.contracts import ENVIRONMENT, POLICY_CONTEXT, PROFILE_REF, TIER, VERDICT

OWNER = "controlplane.runtime"
COVERS = (
    "controlplane.intent.",
    "controlplane.plan.",
    "controlplane.execution.",
    "controlplane.killswitch.",
    "controlplane.runner.",
)

EXECUTION_KEY = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
STEP_KEY = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,62}$"}
EXECUTOR_ERROR = {
    "type": "object",
    "required": ["code", "detail", "retryable"],
    "properties": {
        "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
        "detail": {"type": "string"},
        "retryable": {"type": "boolean"},
    },
    "description": "The executor's error; a runner's refusal adds its own fields (e.g. `runner_code`).",
}


DRAFT_STEP = obj(
    {"key": STEP_KEY, "action": TEXT},
    {
        "version": {"type": "string"},
        "inputs": {"type": "object", "description": "Validated against the action's input schema."},
        "depends_on": {"type": "array", "items": STEP_KEY, "uniqueItems": True},
    },
)
DRAFT = obj(
    {"goal": TEXT, "steps": {"type": "array", "minItems": 1, "maxItems": 200, "items": DRAFT_STEP}},
    {"context": {"type": "object", "description": "Free-form; scalar values become policy labels."}},
    description="A typed plan draft (natural language is out of scope).",
)
COMPILED_STEP = obj(
    {
        "key": STEP_KEY,
        "action": TEXT,
        "action_version": TEXT,
        "risk_tier": TIER,
        "executor": TEXT,
        "contract_hash": HEX64,
        "inputs": {"type": "object"},
        "depends_on": {"type": "array", "items": STEP_KEY},
        "execution_key": EXECUTION_KEY,
    }
)
STEP_VERDICT = obj(
    {
        "step": STEP_KEY,
        "verdict": VERDICT,
        "enforced": {"type": "boolean"},
        "effective_verdict": VERDICT,
        "tier": TIER,
        "quorum": COUNT,
        "decision_hash": HEX64,
        "reason_codes": CODES,
    }
)
STEP_REF = {"execution": HEX64, "step": STEP_KEY, "execution_key": EXECUTION_KEY}


# --- commands -------------------------------------------------------------------------------------------

_COMMANDS = [
    Contract(
        "intent.submit",
        COMMAND,
        OWNER,
        "Submit a plan draft. It is compiled, verified by policy and started in one transaction; the same "
        "principal and idempotency key always return the same intent, another draft under the key is "
        "refused (IDEMPOTENCY_KEY_CONFLICT). A draft that does not compile is recorded and answered 400 "
        "with its PLAN_* code.",
        schema(
            obj(
                {
                    "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 255},
                    "draft": DRAFT,
                },
                {"traceparent": {"type": "string", "description": "W3C trace context; a new one if absent"}},
                description="Over HTTP: the body is the draft; `Idempotency-Key` and `traceparent` are "
                "headers.",
            )
        ),
        api=("POST /api/v1/intents/",),
        service="controlplane.runtime.services.intent_submit",
        capability="intents.submit",
    ),
    Contract(
        "plan.compile",
        COMMAND,
        OWNER,
        "Compile a draft into a deterministic step DAG (pure: no database, clock or randomness): acyclic, "
        "unique keys, known dependencies and actions, inputs valid against each action's schema. The plan "
        "id is the hash of the canonical plan; each step's execution key derives from it. Runs inside "
        "intent.submit; replay runs it again.",
        schema(DRAFT),
        api=("POST /api/v1/intents/",),
        service="controlplane.runtime.compiler.plan_compile",
        cli=("manage.py replay --verify",),
        capability="intents.submit",
    ),
    Contract(
        "plan.verify",
        COMMAND,
        OWNER,
        "Give every step of a plan a policy verdict (allow, require_approval with a quorum, or deny) with "
        "its reason codes, under the profile active for the environment; recorded as plan.verified. Runs "
        "inside intent.submit; replay runs it again under the recorded profile version.",
        schema(
            obj(
                {"plan": HEX64, "principal": PRINCIPAL_REF, "environment": ENVIRONMENT},
                {"context": {"type": "object", "description": "The plan's context (labels)."}},
            )
        ),
        api=("POST /api/v1/intents/",),
        service="controlplane.runtime.verdicts.step_decide",
        cli=("manage.py replay --verify",),
        capability="intents.submit",
    ),
    Contract(
        "execution.start",
        COMMAND,
        OWNER,
        "Start the execution of a verified plan for its intent: deny blocks a step, require_approval opens "
        "an approval request (runtime.step), allow clears it; cleared steps whose dependencies completed are "
        "dispatched to workers when the transaction commits. Runs inside intent.submit.",
        schema(obj({"intent": HEX64})),
        api=("POST /api/v1/intents/",),
        service="controlplane.runtime.services.intent_submit",
        capability="intents.submit",
    ),
    Contract(
        "execution.cancel",
        COMMAND,
        OWNER,
        "Stop an execution: steps not yet running are cancelled (their pending approvals too); a running "
        "step finishes and is recorded. EXECUTION_NOT_RUNNING once it has ended.",
        schema(obj({"execution": HEX64, "reason": TEXT})),
        api=("POST /api/v1/executions/{id}/cancel/",),
        service="controlplane.runtime.services.execution_cancel",
        capability="executions.cancel",
    ),
]

# --- queries --------------------------------------------------------------------------------------------

_QUERIES = [
    Contract(
        "execution.get",
        QUERY,
        OWNER,
        "One execution with every step's verdict, decision trail, approval, attempts and outcome.",
        schema(obj({"id": HEX64})),
        api=("GET /api/v1/executions/{id}/",),
        service="controlplane.runtime.api.ExecutionViewSet",
        capability="executions.read",
    ),
    Contract(
        "execution.list",
        QUERY,
        OWNER,
        "The executions of the caller's tenant, newest first, paginated; filter by status or trace.",
        schema(
            obj(
                {},
                {
                    "status": {"enum": ["running", "completed", "failed", "cancelled"]},
                    "trace_id": TRACE_ID,
                    "page": {"type": "integer", "minimum": 1},
                },
            )
        ),
        api=("GET /api/v1/executions/",),
        service="controlplane.runtime.api.ExecutionViewSet",
        capability="executions.read",
    ),
    Contract(
        "trace.get",
        QUERY,
        OWNER,
        "The tree of one trace: intent -> plan -> verdicts -> approvals -> step runs -> outcomes, each node "
        "with the seq and hash of the ledger event that records it.",
        schema(obj({"trace_id": TRACE_ID})),
        api=("GET /api/v1/traces/{trace_id}/",),
        service="controlplane.runtime.traces.trace_get",
        cli=("manage.py trace show TRACE_ID",),
        capability="executions.read",
    ),
]

# --- events (ledger payloads) ---------------------------------------------------------------------------

_RUNTIME_SERVICES = "controlplane.runtime.services"
_EVENTS = [
    event_contract(
        "intent.received",
        OWNER,
        "A draft was accepted for compilation (first, before any refusal). Subject `intent/<id>`.",
        obj(
            {
                "intent": HEX64,
                "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 255},
                "draft_hash": HEX64,
                "draft": {"description": "The draft exactly as submitted (it may be malformed)."},
            }
        ),
        f"{_RUNTIME_SERVICES}.intent_submit",
    ),
    event_contract(
        "plan.compiled",
        OWNER,
        "The draft compiled; the plan with every step's contract, inputs and execution key, and the tenant "
        "its id includes. Subject `plan/<id>`.",
        obj(
            {
                "intent": HEX64,
                "plan": HEX64,
                "canonical_sha256": HEX64,
                "goal": TEXT,
                "context": {"type": "object"},
                "steps": {"type": "array", "minItems": 1, "items": COMPILED_STEP},
            },
            {"tenant": {"type": "string", "description": "The tenant in the plan id (not on old plans)."}},
        ),
        f"{_RUNTIME_SERVICES}.intent_submit",
    ),
    event_contract(
        "plan.rejected",
        OWNER,
        "The draft did not compile; `reason_codes` holds the PLAN_* code. `contracts` is what each action "
        "lookup answered, so replay can compile it again against the same registry. Subject `intent/<id>`.",
        obj(
            {
                "intent": HEX64,
                "code": {"type": "string", "pattern": "^(PLAN|SKILL)_[A-Z_]+$"},
                "detail": TEXT,
                "contracts": {
                    "type": "array",
                    "items": obj(
                        {
                            "action": {"type": "string"},
                            "version": {"type": ["string", "null"]},
                            "resolved": {"type": ["string", "null"]},
                        },
                        {
                            "refused": {
                                "type": "string",
                                "description": "the registry's code (SKILL_NOT_ACTIVE)",
                            }
                        },
                    ),
                },
            },
            {"step": {"type": "string"}, "path": {"type": "string"}},
        ),
        f"{_RUNTIME_SERVICES}.intent_submit",
    ),
    event_contract(
        "plan.verified",
        OWNER,
        "A policy verdict per step, with the profile version and the context they were given under. "
        "Subject `execution/<id>`.",
        obj(
            {
                "execution": HEX64,
                "plan": HEX64,
                "environment": ENVIRONMENT,
                "profile": PROFILE_REF,
                "context": POLICY_CONTEXT,
                "verdicts": {"type": "array", "minItems": 1, "items": STEP_VERDICT},
            }
        ),
        "controlplane.runtime.verdicts.step_decide",
    ),
    event_contract(
        "execution.started",
        OWNER,
        "The execution of a verified plan began. Subject `execution/<id>`.",
        obj({"execution": HEX64, "intent": HEX64, "plan": HEX64}),
        f"{_RUNTIME_SERVICES}.intent_submit",
    ),
    event_contract(
        "execution.step.started",
        OWNER,
        "A worker claimed the step and is about to run its executor (attempt counts from 1).",
        obj({**STEP_REF, "attempt": {"type": "integer", "minimum": 1}}),
        "controlplane.runtime.tasks.run_step",
    ),
    event_contract(
        "execution.step.blocked",
        OWNER,
        "The step will not run: a deny, a refused or expired approval, or a hold past its gate's limit; "
        "`reason_codes` says which.",
        obj(STEP_REF),
        _RUNTIME_SERVICES,
    ),
    event_contract(
        "execution.step.held",
        OWNER,
        "A dispatch gate holds the cleared step instead of dispatching it (`reason_codes`: the hold's "
        "code, e.g. KILL_SWITCH_ENGAGED, PLUGIN_UNHEALTHY); the execution goes on running and the step "
        "waits (controlplane.runtime.gates).",
        obj(
            {**STEP_REF, "gate": {"type": "string", "minLength": 1}, "detail": {"type": "string"}},
            {"hold": {"type": "object"}},
        ),
        _RUNTIME_SERVICES,
    ),
    event_contract(
        "execution.step.resumed",
        OWNER,
        "The hold on a step cleared (its gate let it go, or a person chose to resume it; `actor` says "
        "who) and the step is dispatched again.",
        obj(
            {
                **STEP_REF,
                "gate": {"type": "string"},
                "reason": {"type": "string"},
                "held_seconds": {"type": "number", "minimum": 0},
            }
        ),
        _RUNTIME_SERVICES,
    ),
    event_contract(
        "execution.step.completed",
        OWNER,
        "The executor returned; `outcome` is its result (for http.webhook, the runner's reply).",
        obj({**STEP_REF, "outcome": {"type": "object"}}, {"attempt": {"type": "integer", "minimum": 1}}),
        "controlplane.runtime.tasks.run_step",
    ),
    event_contract(
        "execution.step.failed",
        OWNER,
        "The step failed for good: a non-retryable error, retries exhausted (STEP_RETRY_EXHAUSTED), its "
        "worker lost on the last attempt, or its action no longer installed; `reason_codes` says which.",
        obj(
            {"execution": HEX64, "step": STEP_KEY, "error": EXECUTOR_ERROR},
            {"execution_key": EXECUTION_KEY, "attempt": {"type": "integer", "minimum": 1}},
        ),
        "controlplane.runtime.tasks.run_step",
    ),
    event_contract(
        "execution.step.retry_scheduled",
        OWNER,
        "The attempt failed with a retryable error (`reason_codes`); the step goes back to the queue and "
        "runs again, with the same execution key, from `retry_at` (exponential backoff).",
        obj(
            {
                **STEP_REF,
                "attempt": {"type": "integer", "minimum": 1},
                "retry_at": DATE_TIME,
                "error": EXECUTOR_ERROR,
            }
        ),
        "controlplane.runtime.tasks.run_step",
    ),
    event_contract(
        "execution.step.requeued",
        OWNER,
        "The worker running the step stopped renewing its lease (it died): the sweeper sends the step again "
        "with the same execution key (STEP_LEASE_EXPIRED).",
        obj({**STEP_REF, "attempt": {"type": "integer", "minimum": 1}, "lease_expired_at": DATE_TIME}),
        "controlplane.runtime.tasks.runtime_sweep_task",
    ),
    event_contract(
        "execution.completed",
        OWNER,
        "Every step completed; the outcomes by step key.",
        obj({"execution": HEX64, "outcomes": {"type": "object", "additionalProperties": {"type": "object"}}}),
        "controlplane.runtime.tasks.run_step",
    ),
    event_contract(
        "execution.failed",
        OWNER,
        "A step was blocked or failed and nothing is running any more; `reason_codes` gathers the steps' "
        "codes. Its other steps were cancelled.",
        obj({"execution": HEX64}),
        "controlplane.runtime.tasks.run_step",
    ),
    event_contract(
        "execution.cancelled",
        OWNER,
        "Someone cancelled the execution, with a reason.",
        obj({"execution": HEX64, "reason": {"type": "string"}}),
        f"{_RUNTIME_SERVICES}.execution_cancel",
    ),
    event_contract(
        "killswitch.engaged",
        OWNER,
        "No new step dispatches in this scope: a cleared step it covers is held (KILL_SWITCH_ENGAGED). "
        "Subject `killswitch/<scope>/<target>`.",
        obj(
            {"scope": {"enum": ["global", "tenant", "action"]}, "target": {"type": "string"}, "reason": TEXT}
        ),
        f"{_RUNTIME_SERVICES}.killswitch_set",
    ),
    event_contract(
        "killswitch.released",
        OWNER,
        "The switch of this scope holds nothing new. `held` is what the person releasing it chose for the "
        "steps it held: `resume` (step.resumed events follow), `cancel` (execution.cancelled events "
        "follow) or `decide` one by one (they stay held).",
        obj(
            {"scope": {"enum": ["global", "tenant", "action"]}, "target": {"type": "string"}, "reason": TEXT},
            {"held": {"enum": ["resume", "cancel", "decide"]}},
        ),
        f"{_RUNTIME_SERVICES}.killswitch_set",
    ),
]

_EVENTS += [
    event_contract(
        "runner.registered",
        OWNER,
        "A runner that http.webhook steps are POSTed to was registered, changed or re-enabled. The secret is "
        "named (`secret_env`), never recorded. Subject `runner/<name>`.",
        obj(
            {
                "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
                "url": {"type": "string", "pattern": "^https?://"},
                "secret_env": {"type": "string"},
                "timeout_seconds": {"type": ["integer", "null"], "minimum": 1},
            },
            {"tenant": {"type": "string", "description": "The owning tenant; empty for a shared runner."}},
        ),
        "controlplane.runtime.runners.runner_register",
    ),
    event_contract(
        "runner.disabled",
        OWNER,
        "Steps are no longer sent to this runner (they fail with RUNNER_UNKNOWN).",
        obj({"name": {"type": "string"}, "reason": TEXT}),
        "controlplane.runtime.runners.runner_disable",
    ),
    event_contract(
        "runner.granted",
        OWNER,
        "A platform principal granted a shared runner to a tenant: its http.webhook steps may target it. "
        "Subject `runner/<name>`; the event's tenant is the grantee.",
        obj({"name": {"type": "string"}, "tenant": {"type": "string", "minLength": 1}}),
        "controlplane.runtime.runners.runner_grant",
    ),
    event_contract(
        "runner.grant_revoked",
        OWNER,
        "The tenant's steps may no longer target the shared runner (they fail with RUNNER_NOT_GRANTED).",
        obj({"name": {"type": "string"}, "tenant": {"type": "string", "minLength": 1}, "reason": TEXT}),
        "controlplane.runtime.runners.runner_grant_revoke",
    ),
]

CONTRACTS = [*_COMMANDS, *_QUERIES, *_EVENTS]
