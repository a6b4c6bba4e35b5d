"""The learning console page: the report with its reliability diagram, findings decided by people (htmx),
refusals with their code and nothing written."""

from __future__ import annotations

import pytest

from controlplane.celery import app as celery_app
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services as runtime
from learning import services
from learning.models import Finding
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db

PAGE = "/learning/"


@pytest.fixture
def acme(django_capture_on_commit_callbacks):
    celery_app.conf.task_always_eager = True
    try:
        tenant = TenantFactory(slug="acme")
        policy.profile_bootstrap(environment="dev")
        agent = PrincipalFactory(tenant=tenant, name="bot", agent=True)
        with django_capture_on_commit_callbacks(execute=True):
            intent = runtime.intent_submit(
                principal=agent,
                draft={
                    "goal": "g",
                    "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": "m"}}],
                },
                idempotency_key="k",
            )
        services.claim_record(principal=agent, execution=intent.execution.id, result="success")
        services.learning_calibrate(tenant=tenant, actor="test")
        yield tenant
    finally:
        celery_app.conf.task_always_eager = False


def person(tenant, *capabilities):
    return PrincipalFactory(tenant=tenant, human=True, capabilities=["console.view", *capabilities])


def signed_in(client, tenant, *capabilities):
    someone = person(tenant, *capabilities)
    client.force_login(someone.user)
    return someone


def test_the_page_shows_the_report_with_its_diagram_and_the_findings(client, acme):
    signed_in(client, acme, "learning.read")
    page = client.get(PAGE).content.decode()
    assert "<svg" in page and "reliability of the promotion model" in page
    assert 'data-agent="acme/bot"' in page and "LEARNING_ABUSE_SELF_CONFIRMED" in page
    assert "Confirm</button>" not in page  # a reader sees findings, does not decide them


def test_a_reviewer_decides_a_finding_and_the_fragment_comes_back(client, acme):
    signed_in(client, acme, "learning.read", "learning.review")
    finding = Finding.objects.get()
    assert "Confirm</button>" in client.get(PAGE).content.decode()
    answer = client.post(
        f"/learning/findings/{finding.fingerprint}/decide/",
        {"status": "dismissed", "reason": "a drill"},
        HTTP_HX_REQUEST="true",
    )
    assert answer.status_code == 200 and 'id="findings"' in answer.content.decode()
    assert "<html" not in answer.content.decode()
    finding.refresh_from_db()
    assert finding.status == "dismissed"


def test_deciding_without_a_reason_or_the_capability_is_refused_and_writes_nothing(client, acme):
    finding = Finding.objects.get()
    url = f"/learning/findings/{finding.fingerprint}/decide/"
    reviewer, reader = person(acme, "learning.read", "learning.review"), person(acme, "learning.read")
    outsider = person(TenantFactory(slug="other"), "learning.read", "learning.review")
    learning_events = LedgerEvent.objects.filter(type__startswith="controlplane.learning.")
    before = learning_events.count()  # signing in is ledgered too: count what a decision would write
    client.force_login(reviewer.user)
    blank = client.post(url, {"status": "confirmed", "reason": ""})
    assert blank.status_code == 400 and b"VALIDATION_FAILED" in blank.content
    client.force_login(reader.user)
    weak = client.post(url, {"status": "confirmed", "reason": "r"})
    assert weak.status_code == 403 and b"CAPABILITY_MISSING" in weak.content
    client.force_login(outsider.user)
    foreign = client.post(url, {"status": "confirmed", "reason": "r"})
    assert b"NOT_FOUND" in foreign.content
    finding.refresh_from_db()
    assert finding.status == "open" and learning_events.count() == before
