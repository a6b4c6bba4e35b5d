"""The one catalogue of reason codes.

Every refusal anywhere in the product carries one of these codes: in the API body, in the console, on
the ledger and in CLI output. `docs/reason-codes.md` is generated from this module
(`manage.py reasons docs`) and a test fails when it is stale.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    code: str
    status: int
    description: str


_CATALOGUE = [
    # Requests and identity
    Reason("AUTH_REQUIRED", 401, "The request carries no credentials."),
    Reason("AUTH_INVALID_TOKEN", 401, "The bearer token is unknown, malformed, expired or revoked."),
    Reason("AUTH_INVALID_CREDENTIALS", 401, "The username or password is wrong."),
    Reason("AUTH_THROTTLED", 429, "Too many failed authentications from this source; try again later."),
    Reason("AUTH_NO_PRINCIPAL", 403, "The signed-in user is not linked to an active principal."),
    Reason("CAPABILITY_MISSING", 403, "The principal holds no grant for the capability this action needs."),
    Reason("CAPABILITY_UNKNOWN", 400, "The capability named is not in the capability catalogue."),
    Reason("GRANT_NOT_FOUND", 404, "No active grant of that capability exists for the principal."),
    Reason("PRINCIPAL_NOT_FOUND", 404, "No principal with that name exists in the tenant."),
    Reason("PRINCIPAL_EXISTS", 409, "A principal with that name already exists in the tenant."),
    Reason("TENANT_NOT_FOUND", 404, "No tenant with that slug exists."),
    Reason("TOKEN_NOT_FOUND", 404, "No API token with that prefix exists."),
    Reason(
        "PLATFORM_SCOPE_REQUIRED",
        403,
        "An installation-wide act (global or action kill switch, another tenant's switch, policy profiles, "
        "runners) needs a platform grant; tenant principals act only inside their tenant.",
    ),
    Reason("PLATFORM_GRANT_REFUSED", 400, "Platform capabilities go to human and service principals only."),
    Reason("NOT_FOUND", 404, "The resource does not exist or is not visible to this principal."),
    Reason("VALIDATION_FAILED", 400, "The request body or parameters are invalid."),
    Reason("METHOD_NOT_ALLOWED", 405, "The HTTP method is not allowed here."),
    Reason("PAYLOAD_TOO_LARGE", 413, "The body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE; it was not read."),
    Reason(
        "MALFORMED_JSON",
        400,
        "The body is not JSON, or nests deeper than CONTROLPLANE_JSON_MAX_DEPTH arrays and objects.",
    ),
    Reason("UNSUPPORTED_MEDIA_TYPE", 415, "The API takes application/json bodies only."),
    Reason("NOT_ACCEPTABLE", 406, "The API answers application/json only."),
    Reason("INTERNAL_ERROR", 500, "The server failed; the request id names it in the logs."),
    Reason("CSRF_FAILED", 403, "The console form's CSRF token is missing or wrong; reload the page."),
    Reason("RATE_LIMITED", 429, "Too many requests."),
    Reason("DATABASE_UNAVAILABLE", 503, "The database is unreachable; nothing was changed. Retry shortly."),
    Reason("ADMIN_OTP_REQUIRED", 401, "The Django admin needs a second factor: verify a TOTP code first."),
    # Ledger
    Reason("LEDGER_WRITE_FAILED", 503, "The ledger could not append the event; nothing was changed."),
    Reason("LEDGER_KEY_UNAVAILABLE", 503, "No usable ledger signing key is loaded; writes fail closed."),
    Reason("LEDGER_NOT_CANONICAL", 400, "The payload cannot be canonicalised (RFC 8785) for signing."),
    Reason("LEDGER_APPEND_ONLY", 409, "Ledger events and checkpoints cannot be changed or deleted."),
    Reason("LEDGER_HASH_MISMATCH", 409, "An event's stored fields or hash do not match what was signed."),
    Reason("LEDGER_CHAIN_BROKEN", 409, "An event's prev_hash is not the hash of the event before it."),
    Reason("LEDGER_SIGNATURE_INVALID", 409, "An event's or checkpoint's Ed25519 signature does not verify."),
    Reason("LEDGER_KEY_REVOKED", 409, "An event was signed by a revoked ledger key."),
    Reason("LEDGER_KEY_UNKNOWN", 409, "An event names a ledger key the trust store does not hold."),
    Reason("LEDGER_KEY_NOT_VALID", 409, "An event was signed by a key outside the key's validity range."),
    Reason("LEDGER_SEQ_GAP", 409, "The chain skips or repeats a sequence number."),
    Reason("LEDGER_CHECKPOINT_MISMATCH", 409, "A signed checkpoint does not match the chain at its seq."),
    Reason("LEDGER_BUNDLE_MALFORMED", 400, "The export bundle is not a readable Control Plane bundle."),
    Reason("LEDGER_KEY_NOT_FOUND", 404, "No ledger signing key with that id exists."),
    Reason("LEDGER_RANGE_INVALID", 400, "The seq range is empty or reversed."),
    Reason(
        "LEDGER_IDEMPOTENCY_RACE",
        409,
        "A concurrent request appended an event with the same idempotency key first; nothing was changed.",
    ),
    # Ledger: proofs to an outsider (witness, pinned trust, receipts)
    Reason("LEDGER_TRUNCATED", 409, "A checkpoint or witness record names a seq beyond the chain's head."),
    Reason(
        "LEDGER_FORKED",
        409,
        "The chain differs from a signed checkpoint or witness record at a seq, or a tree head does not "
        "extend the last one the witness cosigned.",
    ),
    Reason(
        "LEDGER_KEY_UNTRUSTED",
        409,
        "A key is not pinned in the trusted-keys file, or its public key or validity differs from the pin.",
    ),
    Reason("LEDGER_TRUSTED_KEYS_MALFORMED", 400, "The trusted-keys file is not a readable pinned key set."),
    Reason("LEDGER_WITNESS_INVALID", 409, "The witness log or a witness cosignature does not verify."),
    Reason(
        "LEDGER_WITNESS_UNAVAILABLE",
        503,
        "The witness (its key, its log or its URL) is unavailable; the checkpoint is not cosigned.",
    ),
    Reason("LEDGER_PROOF_INVALID", 409, "A Merkle inclusion or consistency proof is missing or wrong."),
    Reason(
        "RECEIPT_INVALID",
        409,
        "The receipt does not prove its event: malformed, or a hash, proof or signature does not verify.",
    ),
    Reason(
        "LEDGER_KEY_STORE_GUARDED",
        409,
        "Ledger signing keys change only through the key services, each change a signed ledger event.",
    ),
    # Event ingest
    Reason("SIGNATURE_MISSING", 401, "The signing mode requires a signature and none was sent."),
    Reason("SIGNATURE_INVALID", 401, "No signature in webhook-signature verifies for this delivery."),
    Reason("KEY_UNKNOWN", 401, "The producer has no key that could have made this signature."),
    Reason("KEY_REVOKED", 401, "The signature was made with a revoked producer key."),
    Reason("KEY_EXPIRED", 401, "The signature was made with a producer key outside its validity window."),
    Reason("STALE_TIMESTAMP", 401, "webhook-timestamp is more than the tolerance away from now."),
    Reason("MALFORMED_EVENT", 400, "The body is not a valid CloudEvents 1.0 structured-mode JSON event."),
    Reason("EVENT_TYPE_RESERVED", 400, "Producers may not send events whose type starts with controlplane."),
    Reason("DUPLICATE_EVENT", 409, "A delivery with this webhook-id or CloudEvents id was already accepted."),
    Reason("PRODUCER_UNKNOWN", 403, "The authenticated principal is not registered as an event producer."),
    Reason("PRODUCER_EXISTS", 409, "A producer with that name already exists."),
    Reason("PRODUCER_NOT_FOUND", 404, "No producer with that name exists."),
    Reason("PRODUCER_KEY_NOT_FOUND", 404, "No producer key with that id exists."),
    Reason("INGEST_OVERLOADED", 503, "The ingest path is saturated; retry with backoff."),
    # Channels: chat and code-host webhooks (docs/channels.md)
    Reason("CHANNEL_NOT_FOUND", 404, "No channel connection with that id exists for this provider."),
    Reason("CHANNEL_EXISTS", 409, "A channel connection with that provider and name exists in the tenant."),
    Reason(
        "CHANNEL_NOT_CONFIGURED",
        401,
        "The channel connection holds no secret to verify with; it refuses all.",
    ),
    Reason("CHANNEL_SIGNATURE_MISSING", 401, "The provider's signature header is missing."),
    Reason(
        "CHANNEL_SIGNATURE_INVALID",
        401,
        "The provider's signature does not verify with the connection's secret.",
    ),
    Reason("CHANNEL_STALE_TIMESTAMP", 401, "The provider's signed timestamp is outside the allowed window."),
    Reason("CHANNEL_VERIFY_TOKEN_INVALID", 403, "The verification handshake named the wrong verify token."),
    Reason(
        "CHANNEL_DUPLICATE_DELIVERY", 409, "A delivery with this provider delivery id was already accepted."
    ),
    Reason("CHANNEL_MALFORMED", 400, "The delivery is not what the provider sends (body, fields, encoding)."),
    Reason(
        "CHANNEL_SECRETS_INVALID", 400, "The secrets given are not the provider's (unknown or missing keys)."
    ),
    Reason(
        "CHANNEL_SECRETS_KEY_UNAVAILABLE", 503, "No usable CONTROLPLANE_SECRETS_KEY decrypts channel secrets."
    ),
    Reason("CHANNEL_IDENTITY_UNLINKED", 403, "The chat identity is mapped to no principal of the tenant."),
    Reason(
        "CHANNEL_COMMAND_INVALID", 400, "The chat command is not of the documented grammar, or is ambiguous."
    ),
    Reason(
        "CHANNEL_OUTBOUND_FAILED", 502, "The provider's API refused or did not answer the outbound message."
    ),
    # Channels: identity links by one-time code, chat commands (issue 16)
    Reason("CHANNEL_LINK_CODE_INVALID", 403, "No pending link of this chat identity has that code."),
    Reason("CHANNEL_LINK_CODE_EXPIRED", 403, "The link code expired before it was typed back; start again."),
    Reason("CHANNEL_LINK_CODE_USED", 409, "The link code was used already; a code links once."),
    Reason("CHANNEL_APPROVAL_CODE_INVALID", 403, "No approval of this channel has that reply code."),
    Reason(
        "CHANNEL_APPROVAL_CODE_USED", 409, "The approval's reply code was used already; a code decides once."
    ),
    Reason(
        "CHANNEL_LINK_UNSUPPORTED", 400, "This provider cannot carry a link code (GitHub: admins map logins)."
    ),
    # Policy (verdict codes: the ones with status 200 explain a decision, they refuse nothing)
    Reason("POLICY_MISSING", 403, "No policy profile is active for the environment; every step is denied."),
    Reason("POLICY_DENY_RISK_TIER", 403, "The step's effective risk tier is blocked by the active profile."),
    Reason("POLICY_DENY_DANGEROUS_ACTION", 403, "A deny rule of the profile forbids this action."),
    Reason("POLICY_TIER_UNKNOWN", 403, "The step's base risk tier is not low, medium, high or critical."),
    Reason("POLICY_REQUIRES_APPROVAL", 409, "The step needs approval (quorum per its tier) before it runs."),
    Reason("POLICY_ALLOW_TIER_AUTONOMOUS", 200, "Allowed: the step's effective tier is autonomous."),
    Reason("POLICY_NO_RULE_MATCHED", 200, "No raise or deny rule matched; the base tier's mode decided."),
    Reason("POLICY_TIER_RAISED_PROD_TARGET", 200, "Tier raised: the step targets a production environment."),
    Reason("POLICY_TIER_RAISED_PROD_ENVIRONMENT", 200, "Tier raised: the control plane runs in production."),
    Reason("POLICY_TIER_RAISED_AGENT_PRINCIPAL", 200, "Tier raised: an agent asked for this step."),
    Reason("POLICY_DEV_WARN_ONLY", 200, "Dev mode: the deny is recorded as a warning, not enforced."),
    Reason("POLICY_PROFILE_INVALID", 400, "The policy profile content is invalid (names the path at fault)."),
    Reason("POLICY_PROFILE_NOT_FOUND", 404, "No policy profile with that id, name or version exists."),
    Reason("POLICY_PROFILE_IMMUTABLE", 409, "A saved policy profile cannot change or be deleted."),
    Reason("POLICY_PROFILE_CONFLICT", 409, "A concurrent change to the same profile or environment won."),
    Reason("POLICY_PROFILE_HASH_MISMATCH", 409, "The profile's content does not match the hash expected."),
    # Approvals
    Reason("APPROVAL_NOT_FOUND", 404, "No approval request with that id is visible to this principal."),
    Reason("APPROVAL_SUBJECT_UNKNOWN", 400, "No app has registered that approval subject kind."),
    Reason("APPROVAL_SELF_APPROVAL", 403, "Nobody approves their own request."),
    Reason(
        "APPROVAL_APPROVER_NOT_HUMAN", 403, "Agents, services and tools cannot approve; only people decide."
    ),
    Reason("APPROVAL_REASON_REQUIRED", 400, "Every approval decision needs a reason."),
    Reason("APPROVAL_DUPLICATE_DECISION", 409, "This approver has already decided on this request."),
    Reason(
        "APPROVAL_NOT_PENDING", 409, "The request is no longer pending (approved, rejected or cancelled)."
    ),
    Reason("APPROVAL_EXPIRED", 409, "The request expired before a decision; it fails closed."),
    Reason("APPROVAL_CONTENT_CHANGED", 409, "The content changed since it was shown; the approval is void."),
    Reason("APPROVAL_NOT_GRANTED", 409, "The approval has not been granted."),
    Reason("APPROVAL_ALREADY_CONSUMED", 409, "A granted approval is used once."),
    Reason("APPROVAL_REJECTED", 409, "People rejected the step; it is blocked."),
    Reason("APPROVAL_CANCELLED", 409, "The approval request was cancelled; the step is blocked."),
    # Runtime
    Reason("KILL_SWITCH_ENGAGED", 503, "A kill switch covers this tenant or action: nothing new dispatches."),
    Reason("KILL_SWITCH_REASON_REQUIRED", 400, "Engaging or releasing a kill switch needs a reason."),
    Reason("EXECUTION_NOT_RUNNING", 409, "The execution already finished or was cancelled."),
    Reason("EXECUTOR_UNAVAILABLE", 503, "No executor for this action is available in the worker."),
    Reason("EXECUTOR_FAILED", 502, "The executor (or the runner behind it) failed the step."),
    Reason("EXECUTOR_TIMEOUT", 504, "The runner did not answer within the timeout; retried (same key)."),
    Reason("EXECUTOR_OUTPUT_INVALID", 502, "The outcome is not a JSON object matching the output schema."),
    Reason("RUNNER_UNKNOWN", 404, "No enabled runner with that name is registered."),
    Reason(
        "RUNNER_NOT_GRANTED",
        403,
        "The step names a runner that is neither its tenant's own nor a shared runner granted to the tenant.",
    ),
    Reason("RUNNER_INVALID", 400, "The runner's name, URL, secret variable or timeout is invalid."),
    Reason("RUNNER_SECRET_MISSING", 503, "The runner's signing secret is not set in the environment."),
    Reason("RUNNER_SIGNATURE_INVALID", 401, "The signature or its timestamp does not verify at the runner."),
    Reason("RUNNER_UNREACHABLE", 502, "The runner could not be reached (refused, reset); retried."),
    Reason("RUNNER_ERROR", 502, "The runner answered 5xx, 429 or 408; retried with backoff."),
    Reason("RUNNER_REJECTED", 422, "The runner refused the step (another 4xx); not retried."),
    Reason("STEP_RETRY_EXHAUSTED", 409, "The step failed on every attempt allowed (STEP_MAX_ATTEMPTS)."),
    Reason("STEP_LEASE_EXPIRED", 503, "The step's worker stopped renewing its lease (it died); sent again."),
    Reason("BROKER_UNAVAILABLE", 503, "The broker is unreachable; the step waits in the outbox (sweeper)."),
    Reason("TRACE_ID_INVALID", 400, "A trace id is 32 lowercase hex digits (W3C), not all zero."),
    Reason("TRACE_NOT_FOUND", 404, "No intent or ledger event visible to this principal has that trace id."),
    # Plans
    Reason("IDEMPOTENCY_KEY_REQUIRED", 400, "Commands need an Idempotency-Key header (1-255 characters)."),
    Reason(
        "IDEMPOTENCY_KEY_CONFLICT", 409, "The Idempotency-Key was already used for a different request body."
    ),
    Reason("PLAN_INVALID", 400, "The plan draft is not of the documented shape (names the path at fault)."),
    Reason("PLAN_DUPLICATE_STEP", 400, "Two steps of the draft share a key."),
    Reason("PLAN_UNKNOWN_DEPENDENCY", 400, "A step depends on a step key the draft does not have."),
    Reason("PLAN_CYCLE", 400, "The steps' dependencies form a cycle."),
    Reason("PLAN_UNKNOWN_ACTION", 400, "A step names an action no installed skill provides."),
    Reason("PLAN_INPUT_INVALID", 400, "A step's inputs do not validate against its action's JSON Schema."),
    # Skills: signed manifests, the publisher trust store, install and run (docs/skills.md)
    Reason(
        "SKILL_ENVELOPE_INVALID", 400, "The skill envelope is not a DSSE v1 envelope (names what is wrong)."
    ),
    Reason(
        "SKILL_PAYLOAD_TYPE",
        400,
        "The envelope's payloadType is not application/vnd.controlplane.skill.v1+json.",
    ),
    Reason("SKILL_UNSIGNED", 400, "The skill envelope carries no signature."),
    Reason(
        "SKILL_SIGNATURE_INVALID",
        400,
        "A signature verifies under none of the publisher's keys (tampered, or an unknown key).",
    ),
    Reason(
        "SKILL_SIGNATURE_THRESHOLD",
        400,
        "Fewer valid signatures than the publisher's threshold (k of n keys).",
    ),
    Reason("SKILL_PUBLISHER_UNKNOWN", 400, "The manifest's publisher is not in the trust store."),
    Reason(
        "SKILL_KEY_EXPIRED", 400, "A signing key is outside its validity window at the time of the action."
    ),
    Reason(
        "SKILL_KEY_REVOKED", 400, "A signing key was revoked; an installed skill it signed is quarantined."
    ),
    Reason(
        "SKILL_MANIFEST_INVALID",
        400,
        "The manifest fails the skill-manifest/v1 schema (names the path at fault).",
    ),
    Reason("SKILL_EXPIRED", 400, "The manifest's expires_at is past at the time of the action."),
    Reason(
        "SKILL_ROLLBACK",
        409,
        "The version is not above every installed or ever-installed version of the skill.",
    ),
    Reason(
        "SKILL_INCOMPATIBLE", 400, "The skill requires runtime contracts or plugins this installation lacks."
    ),
    Reason("SKILL_ACTION_CONFLICT", 409, "An action of the skill is already provided by another skill."),
    Reason("SKILL_NOT_FOUND", 404, "No installed skill has that name."),
    Reason(
        "SKILL_NOT_ACTIVE",
        409,
        "The action's skill is not installed and verified (disabled, quarantined, superseded).",
    ),
    Reason("SKILL_ALREADY_DISABLED", 409, "The skill is already disabled."),
    Reason("SKILL_REASON_REQUIRED", 400, "This skill or trust-store change needs a reason."),
    Reason("PUBLISHER_INVALID", 400, "The publisher or key is invalid (names the field at fault)."),
    Reason(
        "PUBLISHER_EXISTS",
        409,
        "A publisher of that name, or a key with that id, is already in the trust store.",
    ),
    Reason(
        "PUBLISHER_ROTATION_INVALID",
        400,
        "A key rotation is not signed by a threshold of the publisher's current keys.",
    ),
    # Skills, issue 13 (approval-gated install, run time, digests; docs/skills.md)
    Reason(
        "SKILL_INSTALL_NEEDS_APPROVAL",
        409,
        "A person's skill install waits for its skills.install approval (quorum by its highest risk tier).",
    ),
    Reason(
        "SKILL_DIGEST_MISMATCH",
        400,
        "A file of the code bundle is missing or its SHA-256 differs from the manifest's artifacts.",
    ),
    Reason(
        "SKILL_DISABLED",
        409,
        "The action's skill is disabled: its steps wait (held) until the skill is enabled again.",
    ),
    Reason("SKILL_NOT_DISABLED", 409, "The skill is not disabled, so there is nothing to enable."),
    Reason(
        "SKILL_MANIFEST_CHANGED",
        409,
        "The installed manifest's hash differs from the one its install recorded on the ledger.",
    ),
    Reason(
        "SKILL_CAPABILITY_UNDECLARED",
        403,
        "The action asked for a capability its manifest does not declare.",
    ),
    Reason("PUBLISHER_KEY_NOT_FOUND", 404, "No key with that id is in the publisher trust store."),
    Reason("ROLLBACK_STEP_UNKNOWN", 404, "The execution has no step with that key."),
    Reason("ROLLBACK_STEP_NOT_COMPLETED", 409, "Only a completed step can be rolled back."),
    Reason("ROLLBACK_NOT_REVERSIBLE", 409, "The step's action declares no compensating action."),
    Reason(
        "ROLLBACK_INPUT_UNMAPPED",
        409,
        "The compensating action's input mapping names a value the undone step does not have.",
    ),
    Reason(
        "PLAN_BLAST_RADIUS_EXCEEDED",
        400,
        "A step names more targets than its action's blast radius allows (names the input).",
    ),
    # Replay
    Reason("REPLAY_DIFFERENCE", 409, "Replay found a state or decision that the ledger does not support."),
    Reason("REPLAY_UNAVAILABLE", 501, "The replay asked for is not part of this build."),
    # Incidents: signals, detection, promotion (status 200: a decision's explanation, not a refusal)
    Reason("SIGNAL_INVALID", 400, "The alert payload cannot be normalised (names the field at fault)."),
    Reason("SIGNAL_SOURCE_SIGNATURE_INVALID", 401, "The source's signature (e.g. Grafana's HMAC) is wrong."),
    Reason("SIGNAL_SOURCE_SIGNATURE_MISSING", 401, "A signature secret is configured and none was sent."),
    Reason("THRESHOLD_MET", 200, "A detection rule's threshold (N signals within W) was met."),
    Reason("CONFIDENCE_MET", 200, "The evidence's confidence reached the promotion threshold (0.6)."),
    Reason("CONFIDENCE_BELOW_THRESHOLD", 200, "The evidence's confidence is below the promotion threshold."),
    Reason("SUPPRESSED_BY_SILENCE", 200, "A silence matched the signal; it is stored but not detected on."),
    Reason("EVIDENCE_ATTACHED_TO_OPEN_INCIDENT", 200, "The service has an open incident of this rule."),
    Reason("RULE_INVALID", 400, "The detection rule content is invalid (names the field at fault)."),
    Reason("RULE_VERSION_IMMUTABLE", 409, "A saved detection rule version never changes; make a new one."),
    # Incidents: lifecycle and silences
    Reason("INCIDENT_NOT_FOUND", 404, "No incident with that id is visible to this principal."),
    Reason("INCIDENT_TRANSITION_NOT_ALLOWED", 409, "The incident's state does not allow this transition."),
    Reason("INCIDENT_ACTOR_NOT_HUMAN", 403, "Only people change incidents and silences."),
    Reason("INCIDENT_REASON_REQUIRED", 400, "This incident or silence change needs a reason."),
    Reason("INCIDENT_SEVERITY_NOT_RAISED", 409, "A person may only raise an incident's severity."),
    Reason("INCIDENT_REMEDIATION_REQUIRED", 400, "Mitigating needs one remediation: a draft or an intent."),
    Reason("SILENCE_INVALID", 400, "The silence is invalid (names the field at fault)."),
    Reason("SILENCE_TOO_LONG", 400, "The silence lasts longer than CONTROLPLANE_SILENCE_MAX_SECONDS."),
    Reason("SILENCE_REQUIRES_APPROVAL", 202, "It could hide high or critical signals: people approve it."),
    Reason("SILENCE_NOT_ACTIVE", 409, "The silence is not active (pending, rejected or already expired)."),
    # Incidents: assignment and notes (who is on it, and what people wrote)
    Reason(
        "INCIDENT_ASSIGNEE_INVALID",
        400,
        "The assignee is not a person of the tenant who may manage incidents.",
    ),
    Reason(
        "INCIDENT_ASSIGNEE_UNCHANGED", 409, "The incident is assigned to that person already (or to nobody)."
    ),
    Reason("INCIDENT_NOTE_EMPTY", 400, "A note needs some text."),
    Reason("INCIDENT_NOTE_TOO_LONG", 400, "A note is at most 10,000 characters."),
    # Replay: decisions re-taken from the recorded inputs (docs/replay.md)
    Reason("APPROVAL_QUORUM_NOT_MET", 409, "Fewer distinct people than the quorum validly approved it."),
    Reason(
        "REPLAY_SUPPRESSION_MISMATCH",
        409,
        "A signal's recorded suppression is not what the silences in force at its time give.",
    ),
    Reason(
        "REPLAY_CONFIDENCE_MISMATCH",
        409,
        "The recorded confidence is not what the recorded model version computes from the evidence.",
    ),
    Reason(
        "REPLAY_DECISION_MISMATCH",
        409,
        "The recorded promotion decision is not what the recorded rule and model versions give.",
    ),
    # Learning (issue 15): the anti-gaming codes (findings) and the review's refusals
    Reason(
        "LEARNING_ABUSE_NO_TRACE",
        400,
        "An outcome claimed with no trace on the chain (no plan, verdict or start for it): hard-blocked, "
        "kept out of rewards.",
    ),
    Reason(
        "LEARNING_ABUSE_SELF_CONFIRMED",
        400,
        "Success reported only by the acting agent, with no runner, approval or other person confirming it: "
        "hard-blocked.",
    ),
    Reason("LEARNING_ABUSE_REPLAYED", 400, "The same outcome claimed again: hard-blocked."),
    Reason(
        "LEARNING_ABUSE_EVALUATOR_TAMPERING",
        400,
        "An action whose inputs name the learning loop's own data or API (the evaluator's artefacts): "
        "hard-blocked.",
    ),
    Reason(
        "LEARNING_REVIEW_RUBBER_STAMP",
        400,
        "An approver approving everything within seconds of its opening: a soft penalty until reviewed.",
    ),
    Reason(
        "LEARNING_REVIEW_SYNTHETIC_SUCCESS",
        400,
        "A burst of trivial low-tier successes of one agent in a short window: a soft penalty until "
        "reviewed.",
    ),
    Reason("LEARNING_LABEL_INVALID", 400, "The label is not one an outcome of that kind takes."),
    Reason("LEARNING_LABEL_DUPLICATE", 409, "This reviewer has labelled this outcome already."),
    Reason(
        "LEARNING_SELF_LABEL", 403, "A reviewer cannot label (or decide a finding about) their own action."
    ),
    Reason("LEARNING_REVIEWER_NOT_HUMAN", 403, "Outcomes are labelled and findings decided by people only."),
    Reason("LEARNING_FINDING_DECIDED", 409, "The finding was confirmed or dismissed already."),
    # Runtime: what the kill switch held, decided by a person (docs/runtime.md, "The kill switch")
    Reason("KILL_SWITCH_NOTHING_HELD", 409, "The execution has no step held by the kill switch."),
    Reason(
        "KILL_SWITCH_HELD_CHOICE_INVALID",
        400,
        "What becomes of held work is one of resume, cancel or decide (one by one).",
    ),
    # Governance and telemetry: the envelope, `governance validate`, warn -> enforce (docs/governance.md)
    Reason(
        "TELEMETRY_NONCANONICAL",
        400,
        "Telemetry with a field no registered translator knows (enforce; warn mode drops and counts it).",
    ),
    Reason(
        "TELEMETRY_FALLBACK_UNSPECIFIED",
        200,
        "A fallback reported in a dialect whose reason is not a catalogue code (translated, not refused).",
    ),
    Reason(
        "TELEMETRY_SIMULATED",
        200,
        "The answer is a simulation or a hypothetical evaluation (preflight, explain), not what happened.",
    ),
    Reason("GOVERNANCE_SCHEMA_INVALID", 409, "An object does not validate against its shipped JSON Schema."),
    Reason(
        "GOVERNANCE_FALLBACK_INCONSISTENT",
        409,
        "A declared fallback or non-live path has no catalogue reason or no route, or vocabularies differ.",
    ),
    Reason(
        "GOVERNANCE_MODE_REGRESSION",
        409,
        "An environment is weaker than a less production-like one (prod < stage or stage < dev) on a mode.",
    ),
    Reason(
        "GOVERNANCE_INCOMPATIBLE",
        409,
        "A plugin or skill is incompatible with the contracts or its dependencies.",
    ),
    Reason(
        "GOVERNANCE_SKILL_UNVERIFIED",
        409,
        "An installed skill no longer verifies (signature, threshold, trust).",
    ),
    Reason("GOVERNANCE_CONTRACT_MISSING", 409, "An event type on the chain has no contract."),
    Reason("GOVERNANCE_DOCS_STALE", 409, "A generated document is not what its command writes now."),
    Reason("GOVERNANCE_CHECK_FAILED", 409, "A validation check crashed; its error is the finding."),
    Reason(
        "GOVERNANCE_PREFLIGHT_REQUIRED",
        409,
        "Activating the strict profile in prod needs a passing preflight on the ledger within "
        "CONTROLPLANE_PREFLIGHT_MAX_AGE_SECONDS.",
    ),
    Reason("GOVERNANCE_ENFORCEMENT_INVALID", 400, "The enforcement toggle takes warn, enforce or clear."),
    Reason("GOVERNANCE_REASON_REQUIRED", 400, "Changing the enforcement toggle needs a reason."),
    Reason(
        "TELEMETRY_AGENT_REQUIRED",
        403,
        "Model-call telemetry is reported by an agent principal, for a trace of its own tenant.",
    ),
    # Plugins: registry, heartbeats, supervision, quarantine and release (plugins app, docs/plugins.md)
    Reason("PLUGIN_NOT_FOUND", 404, "No plugin with that name is visible to this principal."),
    Reason("PLUGIN_EXISTS", 409, "A plugin with that name is registered in another scope."),
    Reason("PLUGIN_MANIFEST_INVALID", 400, "The plugin manifest is invalid (names the field at fault)."),
    Reason("PLUGIN_DEPENDENCY_CYCLE", 400, "The plugin's depends_on closes a cycle; it is not registered."),
    Reason(
        "PLUGIN_DEPENDENCY_MISSING",
        400,
        "A dependency is not registered in reach of the plugin, or its version is outside the range.",
    ),
    Reason(
        "PLUGIN_INCOMPATIBLE",
        409,
        "The plugin is not compatible with this runtime's contract versions: quarantined at once.",
    ),
    Reason("PLUGIN_PRINCIPAL_MISMATCH", 403, "The token's principal is not the one this plugin registered."),
    Reason("PLUGIN_HEARTBEAT_INVALID", 400, "The heartbeat body is not a heartbeat (names the field)."),
    Reason(
        "PLUGIN_SIGNATURE_INVALID",
        401,
        "No signature of the heartbeat verifies with the plugin's key: refused and counted as a signature "
        "policy violation (quarantined at once).",
    ),
    Reason(
        "PLUGIN_KEY_UNKNOWN",
        401,
        "The heartbeat is signed with a scheme or key the plugin did not register: a signature violation.",
    ),
    Reason(
        "PLUGIN_SEQUENCE_STALE",
        409,
        "The heartbeat's sequence is not after the last one of its instance (a replay): a violation.",
    ),
    Reason("PLUGIN_NO_EVIDENCE", 200, "No heartbeat since registration or release: the plugin is unknown."),
    Reason("PLUGIN_EVIDENCE_OK", 200, "A fresh heartbeat, passing checks and probes: the plugin is healthy."),
    Reason("PLUGIN_HEARTBEAT_MISSED", 503, "No heartbeat for the configured number of intervals: crashed."),
    Reason(
        "PLUGIN_HEARTBEAT_LATE", 200, "The last heartbeat is late (past 1.5 intervals): degraded, reviewed."
    ),
    Reason(
        "PLUGIN_PROBE_FAILED", 503, "The health URL's probe failed or timed out (1 s): degraded, reviewed."
    ),
    Reason("PLUGIN_PROBE_FLAPPING", 200, "The health probe keeps changing its answer: degraded, reviewed."),
    Reason("PLUGIN_CHECK_DEGRADED", 200, "A self-reported check is not ok: degraded, reviewed."),
    Reason(
        "PLUGIN_CRASH_LOOP",
        503,
        "More restarts than the restart intensity within its period (OTP): quarantined at once.",
    ),
    Reason("PLUGIN_DEPENDENCY_UNHEALTHY", 503, "A plugin this one depends on is not healthy: blocked."),
    Reason(
        "PLUGIN_DEPENDENCY_BROKEN",
        503,
        "Blocked by a dependency for longer than CONTROLPLANE_PLUGIN_DEPENDENCY_BREAK_SECONDS: quarantined.",
    ),
    Reason("PLUGIN_QUARANTINED_BY_REVIEW", 200, "An operator quarantined the plugin from the review queue."),
    Reason("PLUGIN_RELEASED", 200, "Released from quarantine by an approval: unknown until fresh evidence."),
    Reason(
        "PLUGIN_UNHEALTHY", 503, "The plugin behind this step is not healthy: the step waits (fail closed)."
    ),
    Reason("PLUGIN_NOT_QUARANTINED", 409, "The plugin is not quarantined; there is nothing to release."),
    Reason("PLUGIN_ALREADY_QUARANTINED", 409, "The plugin is quarantined already."),
    Reason("PLUGIN_REVIEW_NOT_OPEN", 409, "The review item was decided already."),
    Reason("PLUGIN_REASON_REQUIRED", 400, "This plugin decision needs a reason."),
    Reason(
        "PLUGIN_RELEASE_EVIDENCE_CHANGED",
        409,
        "The plugin's quarantine evidence changed since the release was requested; ask again.",
    ),
    # Load shedding and alert attribution (the 3 AM path: docs/operations.md, docs/incidents.md)
    Reason(
        "SERVER_OVERLOADED",
        503,
        "This process is serving as many requests as it admits (CONTROLPLANE_MAX_INFLIGHT_REQUESTS); "
        "nothing was done. Retry after Retry-After.",
    ),
    Reason(
        "DATABASE_BUSY",
        503,
        "Every database connection is in use (the pool's DATABASE_POOL_TIMEOUT passed, or PostgreSQL has "
        "no slot left); nothing was changed. Retry after Retry-After.",
    ),
    Reason(
        "SIGNAL_UNATTRIBUTED",
        202,
        "No label the tenant's label mapping names (service <- service | app | job ...) was on the alert: "
        "it is stored as an unattributed signal, counted and replayable, and no rule counts it.",
    ),
    Reason(
        "SIGNAL_NO_RULE_MATCHED",
        200,
        "No current detection rule of the tenant matches the signal: it is stored, and counts toward no "
        "incident until a rule names its service (docs/incidents.md, 'A new service needs a rule').",
    ),
    Reason("LABEL_MAPPING_INVALID", 400, "The label mapping is invalid (names the field at fault)."),
    Reason(
        "REPLAY_ATTRIBUTION_MISMATCH",
        409,
        "A signal's recorded service (or none) or 'no rule matched' is not what its recorded labels give "
        "under the label mapping and rules in force when it was recorded.",
    ),
]

CATALOGUE: dict[str, Reason] = {r.code: r for r in _CATALOGUE}


def reason(code: str) -> Reason:
    """Look up a code; an unknown code is a programming error, so it fails loudly."""
    return CATALOGUE[code]
