"""The one registry of the control plane's contracts: commands, queries and events.

Each contract has a name in the `controlPlane` namespace (`intent.submit`, `execution.get`,
`intent.received`), a kind, the app that owns it, a description, a JSON Schema (2020-12) and the surfaces
that implement it. For a command or a query the schema describes its input; for an event it describes the
ledger payload (`data`) of the event type `controlplane.<name>`. `docs/contracts.md` is generated from
this module (`manage.py contracts docs`) and a test fails when it is stale; another test runs the whole
action flow through the services and validates every event it wrote against its contract.

Event schemas close their objects (`additionalProperties: false`): a field the runtime starts writing
must be added here first, or the test fails. Consumers should still ignore fields they do not know, as
CloudEvents consumers do: adding an optional field is a compatible change, removing or retyping one is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

NAMESPACE = "controlPlane"
LEDGER_PREFIX = "controlplane."

COMMAND, QUERY, EVENT = "command", "query", "event"
KINDS = (COMMAND, QUERY, EVENT)

RUNTIME, APPROVALS, POLICY = "controlplane.runtime", "approvals", "controlplane.policy"


@dataclass(frozen=True)
class Contract:
    """One command, query or event of the control plane."""

    name: str
    kind: str
    owner: str
    description: str
    schema: Mapping[str, Any]
    api: tuple[str, ...] = ()  # "POST /api/v1/intents/"
    service: str = ""  # the dotted path of the function that implements it
    cli: tuple[str, ...] = ()  # "manage.py approvals approve ID"
    capability: str = ""  # the capability a caller needs (events: to read them from the ledger API)

    @property
    def qualified_name(self) -> str:
        return f"{NAMESPACE}.{self.name}"

    @property
    def ledger_type(self) -> str:
        """The ledger event type an event contract describes ('' for commands and queries)."""
        return LEDGER_PREFIX + self.name if self.kind == EVENT else ""

    def errors(self, instance: Any) -> list[str]:
        """Every schema error of `instance` (an input, or an event's `data`), as `path: message`."""
        validator = Draft202012Validator(dict(self.schema))
        return sorted(
            f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in validator.iter_errors(instance)
        )


# --- schema building blocks ------------------------------------------------------------------------------

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
EXECUTION_KEY = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
STEP_KEY = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,62}$"}
TRACE_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
PRINCIPAL_REF = {"type": "string", "pattern": "^[^/]+/.+$", "description": "`<tenant>/<principal name>`"}
TIER = {"enum": ["low", "medium", "high", "critical"]}
VERDICT = {"enum": ["allow", "require_approval", "deny"]}
ENVIRONMENT = {"enum": ["dev", "stage", "prod"]}
CODES = {"type": "array", "items": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"}}
TEXT = {"type": "string", "minLength": 1}
COUNT = {"type": "integer", "minimum": 0}
DATE_TIME = {"type": "string", "format": "date-time", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T.+Z$"}
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


def obj(required: Mapping[str, Any], optional: Mapping[str, Any] | None = None, **extra: Any) -> dict:
    """A closed object: the `required` properties, plus `optional` ones."""
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
        **extra,
    }


def schema(body: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": SCHEMA_DIALECT, **body}


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
PROFILE_REF = obj(
    {
        "name": {"type": "string"},
        "version": {"type": ["integer", "null"]},
        "content_hash": {"type": "string", "pattern": "^([0-9a-f]{64})?$"},
    },
    description="The profile the verdicts were given under (empty name, null version: none was active).",
)
POLICY_CONTEXT = obj(
    {
        "environment": ENVIRONMENT,
        "principal_kind": {"enum": ["human", "service", "agent", "tool"]},
        "principal": PRINCIPAL_REF,
        "tenant": TEXT,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    }
)
STEP_REF = {"execution": HEX64, "step": STEP_KEY, "execution_key": EXECUTION_KEY}
APPROVAL_BASE = {
    "request": HEX64,
    "subject_kind": TEXT,
    "subject_id": TEXT,
    "content_hash": HEX64,
}
NAME_VERSION = obj({"name": TEXT, "version": {"type": "integer", "minimum": 1}})
PROFILE_BASE = {"name": TEXT, "version": {"type": "integer", "minimum": 1}, "environment": ENVIRONMENT}


# --- commands -------------------------------------------------------------------------------------------

_COMMANDS = [
    Contract(
        "intent.submit",
        COMMAND,
        RUNTIME,
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
        RUNTIME,
        "Compile a draft into a deterministic step DAG (pure: no database, clock or randomness): acyclic, "
        "unique keys, known dependencies and actions, inputs valid against each action's schema. The plan "
        "id is the hash of the canonical plan; each step's execution key derives from it. Runs inside "
        "intent.submit; replay runs it again.",
        schema(DRAFT),
        api=("POST /api/v1/intents/",),
        service="controlplane.runtime.compiler.compile_plan",
        cli=("manage.py replay --verify",),
        capability="intents.submit",
    ),
    Contract(
        "plan.verify",
        COMMAND,
        RUNTIME,
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
        service="controlplane.runtime.services.step_decision",
        cli=("manage.py replay --verify",),
        capability="intents.submit",
    ),
    Contract(
        "execution.start",
        COMMAND,
        RUNTIME,
        "Start the execution of a verified plan for its intent: deny blocks a step, require_approval opens "
        "an approval request (runtime.step), allow clears it; cleared steps whose dependencies completed are "
        "dispatched to workers when the transaction commits. Runs inside intent.submit.",
        schema(obj({"intent": HEX64})),
        api=("POST /api/v1/intents/",),
        service="controlplane.runtime.services.intent_submit",
        capability="intents.submit",
    ),
    Contract(
        "execution.approve",
        COMMAND,
        APPROVALS,
        "Approve a step waiting for people: a human holding approvals.decide, not the requester, naming "
        "the content hash they reviewed, with a reason. At quorum the request is approved, consumed once and "
        "the step is dispatched.",
        schema(
            obj(
                {
                    "request": HEX64,
                    "decision": {"const": "approve"},
                    "reason": TEXT,
                    "content_hash": HEX64,
                }
            )
        ),
        api=("POST /api/v1/approvals/{id}/decide/", "POST /api/v1/approvals/bulk-decide/"),
        service="approvals.services.approval_decide",
        cli=("manage.py approvals approve ID --as TENANT/NAME --reason R",),
        capability="approvals.decide",
    ),
    Contract(
        "execution.reject",
        COMMAND,
        APPROVALS,
        "Reject a step waiting for people (same rules as execution.approve): the step is blocked with "
        "APPROVAL_REJECTED and the execution fails, cancelling its other steps.",
        schema(
            obj(
                {
                    "request": HEX64,
                    "decision": {"const": "reject"},
                    "reason": TEXT,
                    "content_hash": HEX64,
                }
            )
        ),
        api=("POST /api/v1/approvals/{id}/decide/", "POST /api/v1/approvals/bulk-decide/"),
        service="approvals.services.approval_decide",
        cli=("manage.py approvals reject ID --as TENANT/NAME --reason R",),
        capability="approvals.decide",
    ),
    Contract(
        "execution.cancel",
        COMMAND,
        RUNTIME,
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
        RUNTIME,
        "One execution with every step's verdict, decision trail, approval, attempts and outcome.",
        schema(obj({"id": HEX64})),
        api=("GET /api/v1/executions/{id}/",),
        service="controlplane.runtime.api.ExecutionViewSet",
        capability="executions.read",
    ),
    Contract(
        "execution.list",
        QUERY,
        RUNTIME,
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
        RUNTIME,
        "The tree of one trace: intent -> plan -> verdicts -> approvals -> step runs -> outcomes, each node "
        "with the seq and hash of the ledger event that records it.",
        schema(obj({"trace_id": TRACE_ID})),
        api=("GET /api/v1/traces/{trace_id}/",),
        service="controlplane.runtime.traces.trace_get",
        cli=("manage.py trace show TRACE_ID",),
        capability="executions.read",
    ),
    Contract(
        "policy.explain",
        QUERY,
        POLICY,
        "The verdict a real or hypothetical step would get, with the rule trail that produced it, under the "
        "active profile or a given one. Records nothing.",
        schema(
            obj(
                {"action": TEXT, "tier": TIER},
                {
                    "action_version": {"type": "string"},
                    "inputs": {"type": "object"},
                    "principal_kind": {"enum": ["human", "service", "agent", "tool"]},
                    "environment": ENVIRONMENT,
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "profile": {"type": "integer", "description": "A profile id (e.g. a draft)."},
                },
            )
        ),
        api=("POST /api/v1/policy/explain/",),
        service="controlplane.policy.selectors.explain",
        cli=("manage.py policy explain",),
        capability="policy.read",
    ),
]

# --- events (ledger payloads) ---------------------------------------------------------------------------


def _event(name: str, owner: str, description: str, body: dict[str, Any], service: str) -> Contract:
    return Contract(
        name,
        EVENT,
        owner,
        description,
        schema(body),
        api=(f"GET /api/v1/ledger/events/?type=controlplane.{name}",),
        service=service,
        capability="ledger.read",
    )


_RUNTIME_SERVICES = "controlplane.runtime.services"
_EVENTS = [
    _event(
        "intent.received",
        RUNTIME,
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
    _event(
        "plan.compiled",
        RUNTIME,
        "The draft compiled; the plan with every step's contract, inputs and execution key. Subject "
        "`plan/<id>`.",
        obj(
            {
                "intent": HEX64,
                "plan": HEX64,
                "canonical_sha256": HEX64,
                "goal": TEXT,
                "context": {"type": "object"},
                "steps": {"type": "array", "minItems": 1, "items": COMPILED_STEP},
            }
        ),
        f"{_RUNTIME_SERVICES}.intent_submit",
    ),
    _event(
        "plan.rejected",
        RUNTIME,
        "The draft did not compile; `reason_codes` holds the PLAN_* code. `contracts` is what each action "
        "lookup answered, so replay can compile it again against the same registry. Subject `intent/<id>`.",
        obj(
            {
                "intent": HEX64,
                "code": {"type": "string", "pattern": "^PLAN_[A-Z_]+$"},
                "detail": TEXT,
                "contracts": {
                    "type": "array",
                    "items": obj(
                        {
                            "action": {"type": "string"},
                            "version": {"type": ["string", "null"]},
                            "resolved": {"type": ["string", "null"]},
                        }
                    ),
                },
            },
            {"step": {"type": "string"}, "path": {"type": "string"}},
        ),
        f"{_RUNTIME_SERVICES}.intent_submit",
    ),
    _event(
        "plan.verified",
        RUNTIME,
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
        f"{_RUNTIME_SERVICES}.step_decision",
    ),
    _event(
        "execution.started",
        RUNTIME,
        "The execution of a verified plan began. Subject `execution/<id>`.",
        obj({"execution": HEX64, "intent": HEX64, "plan": HEX64}),
        f"{_RUNTIME_SERVICES}.intent_submit",
    ),
    _event(
        "execution.step.started",
        RUNTIME,
        "A worker claimed the step and is about to run its executor (attempt counts from 1).",
        obj({**STEP_REF, "attempt": {"type": "integer", "minimum": 1}}),
        "controlplane.runtime.tasks.run_step",
    ),
    _event(
        "execution.step.blocked",
        RUNTIME,
        "The step will not run: a deny, a refused or expired approval, or the kill switch; `reason_codes` "
        "says which.",
        obj(STEP_REF),
        _RUNTIME_SERVICES,
    ),
    _event(
        "execution.step.completed",
        RUNTIME,
        "The executor returned; `outcome` is its result (for http.webhook, the runner's reply).",
        obj({**STEP_REF, "outcome": {"type": "object"}}, {"attempt": {"type": "integer", "minimum": 1}}),
        "controlplane.runtime.tasks.run_step",
    ),
    _event(
        "execution.step.failed",
        RUNTIME,
        "The step failed for good: a non-retryable error, retries exhausted (STEP_RETRY_EXHAUSTED), its "
        "worker lost on the last attempt, or its action no longer installed; `reason_codes` says which.",
        obj(
            {"execution": HEX64, "step": STEP_KEY, "error": EXECUTOR_ERROR},
            {"execution_key": EXECUTION_KEY, "attempt": {"type": "integer", "minimum": 1}},
        ),
        "controlplane.runtime.tasks.run_step",
    ),
    _event(
        "execution.step.retry_scheduled",
        RUNTIME,
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
    _event(
        "execution.step.requeued",
        RUNTIME,
        "The worker running the step stopped renewing its lease (it died): the sweeper sends the step again "
        "with the same execution key (STEP_LEASE_EXPIRED).",
        obj({**STEP_REF, "attempt": {"type": "integer", "minimum": 1}, "lease_expired_at": DATE_TIME}),
        "controlplane.runtime.tasks.runtime_sweep_task",
    ),
    _event(
        "execution.completed",
        RUNTIME,
        "Every step completed; the outcomes by step key.",
        obj({"execution": HEX64, "outcomes": {"type": "object", "additionalProperties": {"type": "object"}}}),
        "controlplane.runtime.tasks.run_step",
    ),
    _event(
        "execution.failed",
        RUNTIME,
        "A step was blocked or failed and nothing is running any more; `reason_codes` gathers the steps' "
        "codes. Its other steps were cancelled.",
        obj({"execution": HEX64}),
        "controlplane.runtime.tasks.run_step",
    ),
    _event(
        "execution.cancelled",
        RUNTIME,
        "Someone cancelled the execution, with a reason.",
        obj({"execution": HEX64, "reason": {"type": "string"}}),
        f"{_RUNTIME_SERVICES}.execution_cancel",
    ),
    _event(
        "killswitch.engaged",
        RUNTIME,
        "No new step dispatches in this scope (KILL_SWITCH_ENGAGED). Subject `killswitch/<scope>/<target>`.",
        obj(
            {"scope": {"enum": ["global", "tenant", "action"]}, "target": {"type": "string"}, "reason": TEXT}
        ),
        f"{_RUNTIME_SERVICES}.killswitch_set",
    ),
    _event(
        "killswitch.released",
        RUNTIME,
        "The switch of this scope no longer holds anything.",
        obj(
            {"scope": {"enum": ["global", "tenant", "action"]}, "target": {"type": "string"}, "reason": TEXT}
        ),
        f"{_RUNTIME_SERVICES}.killswitch_set",
    ),
]

_EVENTS += [
    _event(
        "runner.registered",
        RUNTIME,
        "A runner that http.webhook steps are POSTed to was registered, changed or re-enabled. The secret is "
        "named (`secret_env`), never recorded. Subject `runner/<name>`.",
        obj(
            {
                "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
                "url": {"type": "string", "pattern": "^https?://"},
                "secret_env": {"type": "string"},
                "timeout_seconds": {"type": ["integer", "null"], "minimum": 1},
            }
        ),
        "controlplane.runtime.runners.runner_register",
    ),
    _event(
        "runner.disabled",
        RUNTIME,
        "Steps are no longer sent to this runner (they fail with RUNNER_UNKNOWN).",
        obj({"name": {"type": "string"}, "reason": TEXT}),
        "controlplane.runtime.runners.runner_disable",
    ),
]

_APPROVAL_SERVICES = "approvals.services"
_APPROVAL_EVENTS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "opened",
        "People must consent to exactly this content (hash); `reason_codes` are the policy's.",
        {"quorum": {"type": "integer", "minimum": 1}, "risk_tier": TIER, "requested_by": PRINCIPAL_REF},
        "approval_request_open",
    ),
    (
        "decided",
        "One person's decision, with their reason.",
        {"decision": {"enum": ["approve", "reject"]}, "approver": PRINCIPAL_REF, "reason": TEXT},
        "approval_decide",
    ),
    ("approved", "The quorum was reached.", {"approvals": COUNT, "quorum": COUNT}, "approval_decide"),
    ("rejected", "Someone rejected it.", {"approvals": COUNT, "quorum": COUNT}, "approval_decide"),
    ("consumed", "The granted approval was used, once.", {}, "approval_consume"),
    ("cancelled", "Withdrawn (e.g. its execution ended).", {"reason": {"type": "string"}}, "approval_cancel"),
    ("expired", "No decision in time: fails closed (APPROVAL_EXPIRED).", {}, "approvals_sweep"),
    ("escalated", "The escalation ladder reached `level`.", {"level": COUNT}, "approvals_sweep"),
]
_EVENTS += [
    _event(
        f"approval.request.{verb}",
        APPROVALS,
        f"{description} Subject `approval/<id>`.",
        obj({**APPROVAL_BASE, **fields}),
        f"{_APPROVAL_SERVICES}.{service}",
    )
    for verb, description, fields, service in _APPROVAL_EVENTS
]
_EVENTS += [
    _event(
        "policy.profile.created",
        POLICY,
        "A new, immutable profile version (a draft). Subject `policy-profile/<name>`.",
        obj({**PROFILE_BASE, "content_hash": HEX64, "content": {"type": "object"}}),
        "controlplane.policy.services.profile_create",
    ),
    _event(
        "policy.profile.activated",
        POLICY,
        "The profile version now decides for its environment.",
        obj(
            {
                **PROFILE_BASE,
                "content_hash": HEX64,
                "previous": {"oneOf": [{"type": "null"}, NAME_VERSION]},
                "reason": TEXT,
            }
        ),
        "controlplane.policy.services.profile_activate",
    ),
    _event(
        "policy.profile.retired",
        POLICY,
        "The version stopped deciding, replaced by another (it may be activated again).",
        obj({**PROFILE_BASE, "content_hash": HEX64, "replaced_by": NAME_VERSION, "reason": TEXT}),
        "controlplane.policy.services.profile_activate",
    ),
]


@dataclass(frozen=True)
class Registry:
    contracts: tuple[Contract, ...] = field(default_factory=tuple)

    def __iter__(self):
        return iter(self.contracts)

    def of_kind(self, kind: str) -> list[Contract]:
        return [c for c in self.contracts if c.kind == kind]

    def get(self, name: str) -> Contract | None:
        return next((c for c in self.contracts if c.name == name), None)

    def for_ledger_type(self, event_type: str) -> Contract | None:
        """The event contract of a ledger event type (`controlplane.intent.received`), if registered."""
        return next((c for c in self.contracts if c.kind == EVENT and c.ledger_type == event_type), None)


REGISTRY = Registry(tuple([*_COMMANDS, *_QUERIES, *_EVENTS]))
# The ledger event families this registry covers: every event of these types must have a contract.
COVERED_EVENT_PREFIXES = (
    "controlplane.intent.",
    "controlplane.plan.",
    "controlplane.execution.",
    "controlplane.killswitch.",
    "controlplane.runner.",
    "controlplane.approval.request.",
    "controlplane.policy.profile.",
)
