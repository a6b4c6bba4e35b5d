"""Tenants never touch each other, generated from the URL resolver so a URL added later is covered.

Three walks over every URL pattern (the walk of `test_deny_by_default`):

1. Tenant B's principal, holding every tenant capability there is, asks for tenant A's objects at every
   object endpoint (API: 404) and console page (the refusal page), by GET and POST, and writes nothing.
   Every URL with a path parameter must be classified below — either how to fill it with one of A's
   objects, or why it names no tenant's object — so a new object URL fails here until someone says.
2. A signed-in principal with no grants is refused everywhere but sign-in and sign-out (the console
   has no profile page yet), and writes nothing.
3. A staff user with no principal is refused everywhere (the Django admin is classified separately: its
   gate is the admin's own, see docs/security.md), and writes nothing.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from approvals.models import ApprovalRequest
from controlplane.identity.capabilities import CAPABILITIES
from controlplane.identity.models import Tenant
from controlplane.identity.scope import is_platform_capability
from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.models import Execution
from incidents.models import EvidenceBundle, Incident, Signal
from plugins.models import Plugin, ReviewItem
from tests.identity.factories import PrincipalFactory, TenantFactory, UserFactory, token_for
from tests.project.test_deny_by_default import _sample, _signed_by_provider, all_paths

pytestmark = pytest.mark.django_db


def _patterns(patterns=None, prefix: str = ""):
    """Every URL pattern as (full regex-ish route text, name), in the order the resolver has them."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _patterns(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry


def _has_parameter(route: str) -> bool:
    return bool(re.search(r"<[\w:]+>|\(\?P<", route))


def _filled(route: str, values: dict[str, str]) -> str:
    """The route with each parameter replaced by the value named for it."""
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)
    return "/" + route.replace("^", "").replace("$", "").replace("\\Z", "")


# --- tenant A's world ------------------------------------------------------------------------------------


def _world() -> dict[str, str]:
    """Tenant `acme` (the demo data: an incident, a finished execution, a pending approval) plus a silence;
    the ids of A's objects by the kind of URL parameter that names them."""
    call_command("demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    acme = Tenant.objects.get(slug="acme")
    from incidents.services.silences import silence_create

    person = PrincipalFactory(tenant=acme, human=True, capabilities=["silences.manage"])
    silence = silence_create(
        actor=person,
        reason="maintenance",
        ends_at=timezone.now() + timedelta(hours=1),
        match_service="payments",
    )
    execution = Execution.objects.filter(tenant=acme).first()
    approval = ApprovalRequest.objects.filter(tenant=acme).first()
    incident = Incident.objects.filter(tenant=acme).first()
    event = LedgerEvent.objects.filter(tenant="acme").order_by("seq").first()
    trace_event = LedgerEvent.objects.filter(tenant="acme", trace_id=execution.trace_id).first()
    assert execution and approval and incident and event and trace_event and silence
    from controlplane.channels.services.connections import channel_connect, channel_identity_map

    connection = channel_connect(
        tenant=acme, provider="github", name="ops", secret_values={"webhook_secret": "s" * 32}, actor="test"
    )
    identity = channel_identity_map(
        tenant=acme, provider="github", external_id="octocat", principal=person, actor="test"
    )
    from controlplane.celery import app as celery_app
    from controlplane.runtime import services as runtime
    from controlplane.runtime.models import StepRun
    from learning import services as learning
    from learning.models import Finding, Proposal

    agent = PrincipalFactory(tenant=acme, agent=True, capabilities=["learning.claim"])
    finished = runtime.intent_submit(
        principal=agent,
        draft={"goal": "g", "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": "m"}}]},
        idempotency_key="learning-outcome",
    )
    celery_app.conf.task_always_eager = True  # run the step here and now: a finished execution, an outcome
    try:
        runtime.step_publish(step_run_id=StepRun.objects.get(execution__intent=finished).pk)
    finally:
        celery_app.conf.task_always_eager = False
    learning.claim_record(principal=agent, execution="e" * 64, result="success")  # a finding: no trace
    learning.learning_calibrate(tenant=acme, actor="test")
    report = acme.learning_reports.first()
    proposal = Proposal.objects.create(
        tenant=acme, kind="autonomy", key="acme/x noop.echo", content={"tier": "low"},
        report_hash=report.content_hash, created_at=timezone.now(),
    )  # fmt: skip
    from controlplane.channels.services.links import channel_link_start

    slack = channel_connect(
        tenant=acme,
        provider="slack",
        name="ops",
        secret_values={"signing_secret": "s" * 32, "bot_token": "xoxb-1"},
        actor="test",
    )
    link = channel_link_start(connection=slack, principal=person, external_id="U1").link
    return {
        "learning_outcome": acme.learning_outcomes.first().pk,
        "learning_finding": Finding.objects.filter(tenant=acme).first().pk,
        "learning_report": report.content_hash,
        "learning_proposal": str(proposal.pk),
        "connection": connection.key,
        "identity": str(identity.pk),
        "link": str(link.pk),
        "execution": execution.pk,
        "step_key": execution.step_runs.select_related("step").first().step.key,
        "approval": str(approval.pk),
        "incident": incident.pk,
        "signal": Signal.objects.filter(tenant=acme).first().pk,
        "evidence": EvidenceBundle.objects.filter(tenant=acme).first().pk,
        "plugin": Plugin.objects.filter(tenant=acme).first().name,
        "review": str(ReviewItem.objects.filter(plugin__tenant=acme).first().pk),
        "silence": str(silence.pk),
        "rule": str(acme.detection_rules.first().pk),
        "trace": execution.trace_id,
        "seq": str(event.seq),
        "trace_seq": str(trace_event.seq),
    }


# How to fill each URL with parameters with tenant A's object: pattern name -> parameter -> world key.
A_OBJECT = {
    "ledger-event-detail": {"seq": "seq"},
    "trace": {"trace_id": "trace"},
    "execution-detail": {"pk": "execution"},
    "execution-cancel": {"pk": "execution"},
    "execution-rollback": {"pk": "execution", "key": "step_key"},
    "approval-detail": {"pk": "approval"},
    "approval-decide": {"pk": "approval"},
    "signal-detail": {"pk": "signal"},
    "detection-rule-detail": {"pk": "rule"},
    "evidence-detail": {"pk": "evidence"},
    "incident-detail": {"pk": "incident"},
    "incident-acknowledge": {"pk": "incident"},
    "incident-close": {"pk": "incident"},
    "incident-mitigate": {"pk": "incident"},
    "incident-raise-severity": {"pk": "incident"},
    "incident-reopen": {"pk": "incident"},
    "incident-resolve": {"pk": "incident"},
    "incident-timeline": {"pk": "incident"},
    "incident-assign": {"pk": "incident"},
    "incident-notes": {"pk": "incident"},
    "silence-detail": {"pk": "silence"},
    "silence-expire": {"pk": "silence", "silence_id": "silence"},
    "event": {"seq": "seq"},
    "decide": {"approval_id": "approval"},
    "trace-event": {"trace_id": "trace", "seq": "trace_seq"},
    "trace-rollback": {"trace_id": "trace"},
    "detail": {"incident_id": "incident", "name": "plugin"},
    "severity": {"incident_id": "incident"},
    "assign": {"incident_id": "incident"},
    "note": {"incident_id": "incident"},
    "transition": {"incident_id": "incident", "verb": "acknowledge"},
    "channel-connection-detail": {"key": "connection"},
    "channel-connection-disconnect": {"key": "connection"},
    "channel-connection-rotate-secret": {"key": "connection"},
    "channel-identity-detail": {"pk": "identity"},
    "channel-link-detail": {"pk": "link"},
    "channel-my-identity-detail": {"pk": "identity"},
    "link-revoke": {"identity_id": "identity"},
    "ledger-event-proof": {"seq": "seq"},
    "trace-receipt": {"trace_id": "trace", "seq": "trace_seq"},
    "learning-outcome-detail": {"pk": "learning_outcome"},
    "learning-outcome-labels": {"pk": "learning_outcome"},
    "learning-finding-detail": {"fingerprint": "learning_finding"},
    "learning-finding-decide": {"fingerprint": "learning_finding"},
    "learning-report-detail": {"content_hash": "learning_report"},
    "learning-proposal-detail": {"pk": "learning_proposal"},
    "finding-decide": {"fingerprint": "learning_finding"},
    "plugin-detail": {"name": "plugin"},
    "plugin-heartbeats": {"name": "plugin"},
    "plugin-quarantine": {"name": "plugin"},
    "plugin-release": {"name": "plugin"},
    "plugin-review-detail": {"pk": "review"},
    "plugin-review-decide": {"pk": "review"},
    "release": {"name": "plugin"},
}
# URLs with parameters that name no tenant's object, and why.
NOT_A_TENANT_OBJECT = {
    "ledger-checkpoint-detail": "checkpoints commit to the global chain head; they hold no tenant's data",
    "policy-profile-detail": "policy profiles are installation-wide (tenants read them)",
    "policy-profile-activate": "installation-wide; refused without platform.policy.manage (tests/policy)",
    "panel": "a dashboard panel name, not an object; each panel scopes its own reads",
    "ledger-checkpoint-consistency": "proofs between two tree heads of the global chain; no tenant's data",
    "ledger-verify-job": "a verification job over the global chain; its answer names no tenant's data",
    "skill-detail": "skills are installation-wide (tenants read them)",
    "skill-disable": "installation-wide; refused without platform.skills.manage (tests/skills)",
    "skill-enable": "installation-wide; refused without platform.skills.manage (tests/skills)",
    "skill-install-request": "an install of an installation-wide skill; its review names no tenant's data",
    "skill-publisher-detail": "the publisher trust store is installation-wide (tenants read it)",
    "skill-publisher-rotate": "installation-wide; refused without platform.skills.manage (tests/skills)",
    "skill-publisher-revoke-key": "installation-wide; refused without platform.skills.manage (tests/skills)",
    "skill-verify-installed": "skills are installation-wide; verifying one writes nothing",
    "install-review": "an install of an installation-wide skill; its review names no tenant's data",
    "toggle": "installation-wide; refused without platform.skills.manage (tests/skills/test_views.py)",
}
# Channel webhooks (controlplane.channels.webhooks.ChannelWebhookView) name a connection, but they are the
# provider's delivery address: no bearer token or session is read there, only the provider's signature
# checked with that connection's secret (unsigned: refused with a code, tests/project/test_deny_by_default
# and tests/channels/test_providers_*.py). Tenant B's token gives nothing there that anyone else lacks.
SIGNED_BY_PROVIDER_REASON = "a provider's webhook: authenticated by its signature, no token or session read"
NOT_A_TENANT_OBJECT.update(
    {
        name: SIGNED_BY_PROVIDER_REASON
        for name in (
            "webhook-github",
            "webhook-meta",
            "webhook-slack-commands",
            "webhook-slack-events",
            "webhook-slack-interactivity",
            "webhook-twilio",
        )
    }
)
ADMIN_PREFIX = "admin/"


def _object_urls() -> list[tuple[str, str]]:
    return [
        (route, entry.name)
        for route, entry in _patterns()
        if _has_parameter(route) and not route.startswith(ADMIN_PREFIX)
    ]


def test_every_object_url_is_classified():
    """A new URL with a parameter must say how to fill it with tenant A's object, or why it names none."""
    unclassified = [
        (route, name)
        for route, name in _object_urls()
        if name not in A_OBJECT and name not in NOT_A_TENANT_OBJECT
    ]
    assert unclassified == []


def _tenant_capabilities() -> list[str]:
    return sorted(c for c in CAPABILITIES if not is_platform_capability(c))


def _code(response) -> str:
    try:
        return json.loads(response.content).get("code", "")
    except ValueError:
        return f"not JSON: {response.content[:80]!r}"


def _refused_api(method: str, response) -> bool:
    """GET: 404 with a NOT_FOUND code, as for an id that does not exist. POST: refused (4xx, a code)."""
    if method == "GET":
        return response.status_code == 404 and _code(response).endswith("NOT_FOUND")
    return 400 <= response.status_code < 500 and bool(_code(response))


def _refused_console(response) -> bool:
    """The console's refusal page (a 4xx with a reason code), or a method refusal."""
    return response.status_code in (400, 403, 404, 405, 409)


def _nonexistent(value: str) -> str:
    """An id of the same shape as `value` that names nothing."""
    value = str(value)
    if value.isdigit():
        return "987654321"
    if re.fullmatch(r"[0-9a-f]{32}", value):
        return "1" * 32
    if re.fullmatch(r"[0-9a-f]{64}", value):
        return "f" * 64
    if re.fullmatch(r"[0-9a-f-]{36}", value):
        return "00000000-0000-4000-8000-000000000007"
    return "nonexistent"


def _ask(client, method: str, path: str, token: str) -> tuple[int, str]:
    """(status, reason code) of a request as tenant B: bearer token for the API, the session otherwise."""
    if path.startswith("/api/"):
        response = client.generic(
            method, path, "{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )
        return response.status_code, _code(response)
    response = client.generic(method, path, "", HTTP_HX_REQUEST="true")
    found = re.search(rb"\b([A-Z][A-Z0-9]+(?:_[A-Z0-9]+)+)\b", response.content)
    return response.status_code, found.group(1).decode() if found else ""


def test_tenant_b_cannot_reach_tenant_a_objects_anywhere(client):
    world = _world()
    globex = TenantFactory(slug="globex")
    intruder = PrincipalFactory(tenant=globex, human=True, capabilities=_tenant_capabilities())
    token = token_for(intruder)
    client.force_login(intruder.user)
    urls = [(route, name) for route, name in _object_urls() if name in A_OBJECT]
    assert len(urls) >= 20
    fake = {key: _nonexistent(value) for key, value in world.items()}
    before = LedgerEvent.objects.count()
    problems: list[Any] = []
    for route, name in urls:
        real = _filled(route, {param: world.get(key, key) for param, key in A_OBJECT[name].items()})
        absent = _filled(route, {param: fake.get(key, key) for param, key in A_OBJECT[name].items()})
        for method in ("GET", "POST"):
            answer, control = _ask(client, method, real, token), _ask(client, method, absent, token)
            # Refused, and exactly as for an object that does not exist: nothing tells B that A's exists.
            if not 400 <= answer[0] < 500 or answer != control:
                problems.append((method, real, answer, control))
    assert problems == []
    assert LedgerEvent.objects.count() == before  # nothing written, not even a refusal


SIGN_IN_AND_OUT = {"/login/", "/logout/"}
PUBLIC = {"/healthz"}


def _every_path() -> list[str]:
    return [p for p in all_paths() if not p.startswith("/" + ADMIN_PREFIX)]


def test_a_principal_with_no_grants_is_refused_everywhere_but_sign_in_and_out(client):
    nobody = PrincipalFactory(human=True)
    token = token_for(nobody)
    client.force_login(nobody.user)
    before = LedgerEvent.objects.count()
    problems = []
    for path in _every_path():
        if path in SIGN_IN_AND_OUT | PUBLIC:
            continue
        for method in ("GET", "POST"):
            if _signed_by_provider(path):  # no grant is read there: refused for want of a signature
                response = client.generic(
                    method, path, "{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
                )
                ok = 400 <= response.status_code < 500 and bool(_code(response))
            elif path.startswith("/api/") or path == "/readyz":
                response = client.generic(
                    method, path, "{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
                )
                ok = response.status_code in (403, 405) and (  # the schema answers in YAML
                    response.status_code == 405 or b"CAPABILITY_MISSING" in response.content
                )
            else:
                response = client.generic(method, path, "")
                ok = response.status_code in (403, 405) and (
                    response.status_code == 405 or b"CAPABILITY_MISSING" in response.content
                )
            if not ok:
                problems.append((method, path, response.status_code, response.content[:150]))
    assert problems == []
    assert LedgerEvent.objects.count() == before


def test_a_staff_user_with_no_principal_is_refused_everywhere(client):
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    before = LedgerEvent.objects.count()
    problems = []
    for path in _every_path():
        if path in SIGN_IN_AND_OUT | PUBLIC:
            continue
        for method in ("GET", "POST"):
            response = client.generic(method, path, "", HTTP_ACCEPT="application/json")
            if _signed_by_provider(path):  # no session is read there: refused for want of a signature
                ok = 400 <= response.status_code < 500 and bool(_code(response))
            elif path.startswith("/api/") or path == "/readyz":
                # The session resolves to no principal: AUTH_NO_PRINCIPAL (a POST without its CSRF token is
                # refused before that, CSRF_FAILED); never served.
                ok = response.status_code in (401, 403, 405)
            else:
                ok = response.status_code in (403, 405) and (
                    response.status_code == 405 or b"AUTH_NO_PRINCIPAL" in response.content
                )
            if not ok:
                problems.append((method, path, response.status_code))
    assert problems == []
    assert LedgerEvent.objects.count() == before


def test_the_sample_walk_and_this_walk_agree():
    """Both walks read the same resolver: every non-admin pattern sampled there is classified here."""
    assert {name for _, name in _object_urls()} <= set(A_OBJECT) | set(NOT_A_TENANT_OBJECT)
    assert _sample  # the deny-by-default walk's sampler is the one this module builds on
