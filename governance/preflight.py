"""Preflight: would the candidate profile and its environment's modes have refused recorded traffic?

`preflight_run` replays, from the ledger, what was recorded since a time (docs/governance.md):

- **intents and their steps**: every recorded step evaluated again under the candidate profile, with its
  recorded policy context moved to the candidate's environment (the building blocks of
  `replay --against-profile`, controlplane/runtime/replay/simulation.py); a `deny` is a rejection, under
  the simulated reason codes;
- **ingest deliveries**: each accepted delivery's recorded signature verdict under the environment's
  signing mode (an unsigned delivery under `require-signed` is SIGNATURE_MISSING, an expired key under
  `require-valid-signature` KEY_EXPIRED);
- **model-call telemetry** taken in warn mode with a noncanonical field (TELEMETRY_NONCANONICAL under an
  enforcing envelope);
- **learning updates**: none are recorded yet (the learning app has no updates); counted when it does.

It reports the rejection ratio (basis points) by reason code and tenant, runs `governance validate`, and
looks on the ledger for a rollback toggle exercised (a change to `warn` followed by a change back). It is
`ready` only when the ratio is at most CONTROLPLANE_PREFLIGHT_MAX_REJECTION_BP, validation has no
findings and the toggle was exercised. The report is ledgered (`controlplane.governance.preflight.
completed`); activating the strict profile in prod needs a ready one within
CONTROLPLANE_PREFLIGHT_MAX_AGE_SECONDS (`activation_guard`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.identity.models import Principal
from controlplane.kernel import governance as kernel
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from controlplane.policy import shipped
from controlplane.policy.evaluation import evaluate
from controlplane.policy.models import PolicyProfile, PolicyVerdict
from controlplane.policy.selectors import profile_get
from controlplane.runtime.replay.fold import fold, recorded_facts, runtime_events
from controlplane.runtime.verdicts import policy_context_from_record, verdict_acting, verdict_record
from governance.services import _actor_ref, since_parse

PREFLIGHT = "controlplane.governance.preflight.completed"
TOGGLE = "controlplane.governance.enforcement.changed"

# The refusal each recorded signature verdict would meet under a signing mode.
_SIGNING_REFUSALS = {
    "require-valid-signature": {
        "unsigned": "SIGNATURE_MISSING",
        "unchecked": "SIGNATURE_MISSING",
        "expired-key": "KEY_EXPIRED",
    },
    "require-signed": {"unsigned": "SIGNATURE_MISSING", "unchecked": "SIGNATURE_MISSING"},
    "allow-unsigned": {},
    "off": {},
}


class _Tally:
    def __init__(self) -> None:
        self.decisions = 0
        self.rejections = 0
        self.by_code: Counter = Counter()
        self.by_tenant: Counter = Counter()
        self.sources: Counter = Counter()

    def decide(self, *, source: str, tenant: str, codes: list[str] | None) -> None:
        self.decisions += 1
        self.sources[source] += 1
        if codes is None:
            return
        self.rejections += 1
        self.by_tenant[tenant or ""] += 1
        self.by_code.update(codes or ["UNSPECIFIED"])


def _replay_steps(tally: _Tally, *, profile: PolicyProfile, environment: str, since: dt.datetime) -> None:
    content = profile.as_content()
    ledger = fold(runtime_events())
    for execution in sorted(ledger.executions.values(), key=lambda e: e.seq):
        if execution.context is None or execution.started_at < since:
            continue
        context = policy_context_from_record(recorded={**execution.context, "environment": environment})
        plan = ledger.plans[execution.plan]
        for _key, facts in recorded_facts(plan).items():
            simulated = verdict_record(decision=evaluate(step=facts, context=context, profile=content))
            denied = verdict_acting(verdict=simulated) == PolicyVerdict.DENY
            tally.decide(
                source="steps",
                tenant=execution.tenant,
                codes=list(simulated["reason_codes"]) if denied else None,
            )


def _replay_ingest(tally: _Tally, *, environment: str, since: dt.datetime) -> None:
    signing = kernel.mode_matrix().get(environment, {}).get("signing", "require-valid-signature")
    refusals = _SIGNING_REFUSALS.get(signing, {})
    deliveries = LedgerEvent.objects.filter(time__gte=since, provenance__has_key="verdict").values_list(
        "tenant", "provenance"
    )
    for tenant, provenance in deliveries.iterator():
        code = refusals.get((provenance or {}).get("verdict", ""))
        tally.decide(source="ingest", tenant=tenant, codes=[code] if code else None)


def _replay_telemetry(tally: _Tally, *, environment: str, since: dt.datetime) -> None:
    enforcing = kernel.mode_matrix().get(environment, {}).get("envelope") == kernel.ENFORCE
    calls = LedgerEvent.objects.filter(
        type="controlplane.telemetry.model_call.reported", time__gte=since
    ).values_list("tenant", "data")
    for tenant, data in calls.iterator():
        noncanonical = "TELEMETRY_NONCANONICAL" in (data or {}).get("warnings", [])
        tally.decide(
            source="telemetry",
            tenant=tenant,
            codes=["TELEMETRY_NONCANONICAL"] if enforcing and noncanonical else None,
        )


def rollback_exercised() -> bool:
    """A change of the toggle to `warn` followed, later, by a change away from `warn` (proved reversible)."""
    went_warn = False
    for data in LedgerEvent.objects.filter(type=TOGGLE).order_by("seq").values_list("data", flat=True):
        if data.get("mode") == kernel.WARN:
            went_warn = True
        elif went_warn:
            return True
    return False


def preflight_run(
    *,
    name: str,
    version: int | None,
    environment: str,
    since: str,
    actor: Principal | str | None,
) -> dict[str, Any]:
    """Replay recorded traffic under the candidate profile and the environment's modes; ledger the report."""
    if environment not in kernel.ENVIRONMENTS:
        raise ControlPlaneError(
            "VALIDATION_FAILED", f"environment is one of {', '.join(kernel.ENVIRONMENTS)}"
        )
    window = since_parse(since)
    profile = profile_get(name=name, version=version)
    tally = _Tally()
    _replay_steps(tally, profile=profile, environment=environment, since=window.start)
    _replay_ingest(tally, environment=environment, since=window.start)
    _replay_telemetry(tally, environment=environment, since=window.start)
    validation = kernel.validate()
    exercised = rollback_exercised()
    ratio = (tally.rejections * 10000) // tally.decisions if tally.decisions else 0
    limit = settings.CONTROLPLANE_PREFLIGHT_MAX_REJECTION_BP
    reasons = []
    if ratio > limit:
        reasons.append(f"rejection ratio {ratio} bp is above the {limit} bp allowed")
    if not validation.ok:
        reasons.append(f"governance validate has {len(validation.findings)} finding(s)")
    if not exercised:
        reasons.append("the rollback toggle has not been exercised (warn, then back)")
    report = {
        "profile": profile.ref,
        "profile_hash": profile.content_hash,
        "environment": environment,
        "since": window.label,
        "ready": not reasons,
        "decisions": tally.decisions,
        "rejections": tally.rejections,
        "rejection_ratio_bp": ratio,
        "max_rejection_ratio_bp": limit,
        "by_code": dict(sorted(tally.by_code.items())),
        "by_tenant": dict(sorted(tally.by_tenant.items())),
        "sources": {
            source: tally.sources.get(source, 0) for source in ("steps", "ingest", "telemetry", "learning")
        },
        "validation_ok": validation.ok,
        "validation_codes": sorted(validation.by_code()),
        "rollback_exercised": exercised,
        "reasons": reasons,
    }
    with transaction.atomic():
        event = ledger_append(
            type=PREFLIGHT,
            subject=f"governance/preflight/{profile.name}",
            data=report,
            actor=_actor_ref(actor),
            fidelity="simulated",
            reason_codes=["TELEMETRY_SIMULATED"],
        )
    return {**report, "seq": event.seq}


def preflight_recent(*, profile: PolicyProfile, now: dt.datetime | None = None) -> LedgerEvent | None:
    """The newest ready preflight of exactly this profile content within the allowed age, if any."""
    oldest = (now or timezone.now()) - dt.timedelta(seconds=settings.CONTROLPLANE_PREFLIGHT_MAX_AGE_SECONDS)
    for event in LedgerEvent.objects.filter(type=PREFLIGHT, time__gte=oldest).order_by("-seq"):
        if event.data.get("profile_hash") == profile.content_hash and event.data.get("ready") is True:
            return event
    return None


def activation_guard(*, profile: PolicyProfile, previous: PolicyProfile | None) -> None:
    """The policy app's activation hook: moving prod to the strict profile needs a ready preflight of that
    content on the ledger within CONTROLPLANE_PREFLIGHT_MAX_AGE_SECONDS (GOVERNANCE_PREFLIGHT_REQUIRED). A
    first activation (nothing active: every step is denied with POLICY_MISSING) is not a loosening, and
    passes, so an installation can bootstrap."""
    if profile.environment != "prod" or profile.name != shipped.STRICT or previous is None:
        return
    if preflight_recent(profile=profile) is None:
        raise ControlPlaneError(
            "GOVERNANCE_PREFLIGHT_REQUIRED",
            f"no ready preflight of {profile.ref} ({profile.content_hash[:12]}) in the last "
            f"{settings.CONTROLPLANE_PREFLIGHT_MAX_AGE_SECONDS}s: run `manage.py governance preflight "
            f"--profile {profile.name}`",
        )
