"""Console views through the Django test client: access rules, both render branches, the flows."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.db import connection
from django.urls import URLPattern, URLResolver, reverse
from django.utils.html import escape

from controlplane.channels import services as channels_services
from controlplane.console import urls as console_urls
from controlplane.identity import services as identity_services
from controlplane.ledger import checkpoints as ledger_checkpoints
from controlplane.ledger import keys as ledger_keys
from controlplane.ledger.models import LedgerEvent, VerificationRun
from tests.console.conftest import PASSWORD, append
from tests.identity.factories import PrincipalFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
GUARDED_PAGES = ["/", "/ledger/", "/ledger/1/"]


def _seqs(response) -> list[int]:
    """The seqs of the explorer's result rows, read from the HTML (fragments carry no test context)."""
    return [
        int(seq) for seq in re.findall(r'<td class="num"><a href="/ledger/(\d+)/"', response.content.decode())
    ]


def _pager_href(response, rel: str) -> str:
    found = re.search(rf'rel="{rel}" href="([^"]*)"', response.content.decode())
    return html.unescape(found.group(1)) if found else ""


# --- Access -----------------------------------------------------------------------------------------


def _console_views(patterns, namespace=""):
    """(view name, callback) of every URL the console's URLconf serves, its apps' includes walked too."""
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _console_views(p.url_patterns, p.namespace or namespace)
        elif isinstance(p, URLPattern):
            yield f"{namespace}:{p.name}", p.callback


def test_every_console_view_but_sign_in_and_out_requires_console_view():
    guarded = {
        name: getattr(callback, "required_capabilities", None)
        for name, callback in _console_views(console_urls.urlpatterns)
        if not name.startswith("incidents:")  # tests/incidents/test_console.py lists those
    }
    assert guarded == {
        "console:dashboard": ("console.view",),
        "console:nav": ("console.view",),
        "console:panel": ("console.view",),  # and the panel's own capability (test_dashboard.py)
        "console:verify": ("console.view", "ledger.verify"),
        "console:ledger": ("console.view", "ledger.read"),
        "console:event": ("console.view", "ledger.read"),
        "approvals:queue": ("console.view", "approvals.read"),
        "approvals:bulk-decide": ("console.view", "approvals.decide"),
        "approvals:decide": ("console.view", "approvals.decide"),
        "runtime:executions": ("console.view", "executions.read"),
        "runtime:trace-find": ("console.view", "executions.read"),
        "runtime:trace": ("console.view", "executions.read"),
        "runtime:trace-rollback": ("console.view", "executions.read"),  # POST checks intents.submit
        "runtime:trace-event": ("console.view", "executions.read"),
        "runtime:trace-receipt": ("console.view", "executions.read", "ledger.read"),
        "runtime:killswitch": ("console.view", "killswitch.manage"),
        "runtime:killswitch-change": ("console.view", "killswitch.manage"),
        "runtime:killswitch-held": ("console.view", "killswitch.manage"),
        "skills:registry": ("console.view", "skills.read"),
        "learning:learning": ("console.view", "learning.read"),
        "learning:finding-decide": ("console.view", "learning.read", "learning.review"),
        "governance:page": ("console.view", "governance.read"),
        "channels:links": ("console.view", "channels.link"),
        "channels:link-start": ("console.view", "channels.link"),
        "channels:link-revoke": ("console.view", "channels.link"),
        "channels:connections": ("console.view", "channels.manage"),
        "channels:deliveries": ("console.view", "channels.manage"),
        "skills:publishers": ("console.view", "skills.read"),
        "skills:install-review": ("console.view", "skills.read"),
        "skills:toggle": ("console.view", "skills.read"),  # the service checks platform.skills.manage
        "plugins:health": ("console.view", "plugins.read"),
        "plugins:detail": ("console.view", "plugins.read"),
        "plugins:reviews": ("console.view", "plugins.read"),
        "plugins:reviews-decide": ("console.view", "plugins.review"),
        "plugins:release": ("console.view", "plugins.manage"),
        "console:login": None,
        "console:logout": None,
    }


def test_every_url_the_console_serves_is_guarded_but_sign_in_and_out():
    unguarded = {
        name
        for name, callback in _console_views(console_urls.urlpatterns)
        if not getattr(callback, "required_capabilities", None)
    }
    assert unguarded == {"console:login", "console:logout"}


@pytest.mark.parametrize("url", GUARDED_PAGES)
def test_anonymous_visitor_is_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={url}"


def test_anonymous_htmx_request_redirects_the_browser_not_the_fragment(client):
    response = client.get(
        "/ledger/?before=5", headers={**HTMX, "HX-Current-URL": "http://testserver/ledger/"}
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=/ledger/"


@pytest.mark.parametrize("url", GUARDED_PAGES)
def test_user_without_a_principal_is_refused_with_auth_no_principal(client, url):
    user = UserFactory(username="drifter")
    client.force_login(user)
    before = LedgerEvent.objects.count()

    response = client.get(url)

    assert response.status_code == 403
    assert b'data-code="AUTH_NO_PRINCIPAL"' in response.content
    assert b"user drifter has no active principal" in response.content
    assert LedgerEvent.objects.count() == before


def test_deactivated_principal_is_refused_with_auth_no_principal(client, operator):
    operator.is_active = False
    operator.save(update_fields=["is_active"])
    client.force_login(operator.user)
    response = client.get("/")
    assert response.status_code == 403
    assert b'data-code="AUTH_NO_PRINCIPAL"' in response.content


@pytest.mark.parametrize("url", GUARDED_PAGES)
def test_principal_without_console_view_is_refused_with_capability_missing(client, url):
    principal = PrincipalFactory(human=True, tenant=TenantFactory(slug="acme"), capabilities=["ledger.read"])
    client.force_login(principal.user)

    response = client.get(url)

    assert response.status_code == 403
    assert b'data-code="CAPABILITY_MISSING"' in response.content
    assert f"{principal.ref} lacks &#x27;console.view&#x27;".encode() in response.content


@pytest.mark.parametrize("url", ["/ledger/", "/ledger/1/"])
def test_ledger_pages_need_ledger_read(client, url):
    principal = PrincipalFactory(human=True, capabilities=["console.view"])
    client.force_login(principal.user)

    response = client.get(url)

    assert response.status_code == 403
    assert b'data-code="CAPABILITY_MISSING"' in response.content
    assert b"ledger.read" in response.content


def test_refusal_fragment_goes_to_the_notice_area_and_keeps_the_url(client):
    principal = PrincipalFactory(human=True, capabilities=["console.view"])
    client.force_login(principal.user)

    response = client.get("/ledger/", headers=HTMX)

    assert response.status_code == 403
    assert b"<html" not in response.content
    assert b'data-code="CAPABILITY_MISSING"' in response.content
    assert response["HX-Retarget"] == "#notice"
    assert response["HX-Reswap"] == "innerHTML"
    assert response["HX-Push-Url"] == "false"


def test_refusal_full_page_is_a_whole_document(client):
    principal = PrincipalFactory(human=True, capabilities=["console.view"])
    client.force_login(principal.user)
    response = client.get("/ledger/")
    assert response.content.startswith(b"<!doctype html>")
    assert b"<html" in response.content
    assert "HX-Retarget" not in response


# --- Layout -----------------------------------------------------------------------------------------


def test_layout_shows_principal_environment_navigation_and_csrf_header(operator_client):
    response = operator_client.get("/")
    html = response.content.decode()
    assert '<span class="principal" title="signed-in principal (human)">acme/alice</span>' in html
    assert '<span class="env env-dev" title="CONTROLPLANE_ENV">dev</span>' in html
    assert f'hx-headers=\'{{"X-CSRFToken": "{response.context["csrf_token"]}"}}\'' in html
    assert 'href="/ledger/"' in html
    assert 'href="/admin/"' not in html  # not staff
    assert '<form method="post" action="/logout/" class="signout">' in html
    assert "/static/vendor/htmx-2.0.11.min.js" in html
    assert "/static/console/console.css" in html


def test_production_badge_is_marked_prod(operator_client, settings):
    settings.CONTROLPLANE_ENV = "prod"
    html = operator_client.get("/").content.decode()
    assert '<span class="env env-prod" title="CONTROLPLANE_ENV">prod</span>' in html


def test_staff_see_the_admin_link(operator_client, operator):
    operator.user.is_staff = True
    operator.user.save(update_fields=["is_staff"])
    assert 'href="/admin/">Admin</a>' in operator_client.get("/").content.decode()


# --- Sign-in and sign-out ---------------------------------------------------------------------------


def test_login_page_full_and_fragment(client):
    full = client.get("/login/")
    fragment = client.get("/login/", headers=HTMX)
    assert full.status_code == fragment.status_code == 200
    assert b"<html" in full.content and b'id="signin"' in full.content
    assert b"<html" not in fragment.content and b'id="signin"' in fragment.content
    assert "HX-Request" in full["Vary"]


def test_successful_sign_in_is_ledgered_and_lands_on_the_dashboard(client, operator):
    before = LedgerEvent.objects.order_by("-seq").first().seq

    response = client.post("/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    event = LedgerEvent.objects.get(seq__gt=before)
    assert event.type == "controlplane.identity.signin.succeeded"
    assert event.data == {"username": "alice", "source": "127.0.0.1", "principal": "acme/alice"}
    assert event.tenant == "acme" and event.actor == "acme/alice"
    assert client.get("/").status_code == 200


def test_wrong_password_is_refused_ledgered_and_counted(client, operator):
    before = LedgerEvent.objects.order_by("-seq").first().seq

    response = client.post("/login/", {"username": "alice", "password": "wrong-password-123"})

    assert response.status_code == 401
    assert b'data-code="AUTH_INVALID_CREDENTIALS"' in response.content
    event = LedgerEvent.objects.get(seq__gt=before)
    assert event.type == "controlplane.identity.signin.failed"
    assert event.reason_codes == ["AUTH_INVALID_CREDENTIALS"]
    assert event.data["failures"] == 1
    assert "_auth_user_id" not in client.session


def test_empty_form_is_a_validation_failure(client, operator):
    response = client.post("/login/", {"username": "", "password": ""})
    assert response.status_code == 400
    assert b'data-code="VALIDATION_FAILED"' in response.content


def test_throttled_source_is_refused_before_the_password_is_checked(client, operator, settings):
    settings.CONTROLPLANE_AUTH_FAILURE_LIMIT = 2
    for _ in range(2):
        assert (
            client.post("/login/", {"username": "alice", "password": "wrong-password-123"}).status_code == 401
        )
    before = LedgerEvent.objects.count()

    response = client.post("/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 429
    assert b'data-code="AUTH_THROTTLED"' in response.content
    assert b"<html" in response.content
    assert LedgerEvent.objects.count() == before
    assert "_auth_user_id" not in client.session


def test_sign_out_is_a_ledgered_post(operator_client):
    assert operator_client.get("/logout/").status_code == 405
    before = LedgerEvent.objects.order_by("-seq").first().seq

    response = operator_client.post("/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert LedgerEvent.objects.get(seq__gt=before).type == "controlplane.identity.signout.completed"
    assert operator_client.get("/").status_code == 302


# --- Dashboard --------------------------------------------------------------------------------------


def test_dashboard_full_page_shows_head_checkpoint_verification_and_recent_events(operator_client):
    append("controlplane.test.visible", tenant="acme", subject="thing/acme")
    append("controlplane.test.hidden", tenant="globex", subject="thing/globex")
    checkpoint = ledger_checkpoints.checkpoint_create(actor="test")
    head = LedgerEvent.objects.order_by("-seq").first()

    response = operator_client.get("/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html
    assert f'<a href="/ledger/{head.seq}/">#{head.seq}</a>' in html
    assert head.hash in html
    assert f"#{checkpoint.seq}" in html and checkpoint.head_hash in html
    assert "Never verified." in html
    assert "controlplane.test.visible" in html
    assert "controlplane.test.hidden" not in html
    assert "HX-Request" in response["Vary"]
    recent = response.context["recent"]
    assert len(recent) <= 10
    assert all(e.tenant in ("acme", "") for e in recent)


def test_dashboard_recent_events_are_the_last_ten_visible(operator_client):
    for i in range(12):
        append("controlplane.test.counted", data={"i": i})
    response = operator_client.get("/")
    visible = list(LedgerEvent.objects.filter(tenant__in=["acme", ""]).order_by("-seq")[:10])
    assert [e.seq for e in response.context["recent"]] == [e.seq for e in visible]


def test_dashboard_fragment_is_the_integrity_panel(operator_client):
    response = operator_client.get("/", headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<section id="integrity"')
    assert "hx-swap-oob" not in html
    assert "Recent events" not in html


def test_dashboard_without_ledger_read_hides_ledger_data(client):
    principal = PrincipalFactory(human=True, capabilities=["console.view"])
    client.force_login(principal.user)
    html = client.get("/").content.decode()
    assert "Reading the ledger needs the <code>ledger.read</code> capability." in html
    assert "Recent events" not in html
    assert "Verify now" not in html


def test_dashboard_shows_ingest_refusal_counters(operator_client):
    assert "No ingest refusals." in operator_client.get("/").content.decode()
    channels_services.rejection_record(producer=None, code="SIGNATURE_MISSING")
    channels_services.rejection_record(producer=None, code="SIGNATURE_MISSING")

    html = operator_client.get("/").content.decode()

    assert (
        '<tr><td class="mono">unknown</td><td><code class="code">SIGNATURE_MISSING</code></td>'
        '<td class="num">2</td></tr>'
    ) in html


def test_verify_now_htmx_records_a_run_and_swaps_the_panel_out_of_band(operator_client):
    append("controlplane.test.happened")
    head = LedgerEvent.objects.order_by("-seq").first()

    response = operator_client.post("/verify/", headers=HTMX)

    run = VerificationRun.objects.get()
    assert run.ok is True and run.head_seq == head.seq and run.reason_code == ""
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<section id="integrity" class="panel panel-wide" hx-swap-oob="true"')
    assert f'<span class="badge badge-ok">ok</span> through #{head.seq}' in html


def test_verify_now_without_htmx_redirects_to_the_dashboard(operator_client):
    response = operator_client.post("/verify/")
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert VerificationRun.objects.count() == 1
    assert '<span class="badge badge-ok">ok</span>' in operator_client.get("/").content.decode()


def test_failed_verification_shows_the_code_and_seq(operator_client):
    event = append("controlplane.test.happened")
    _tamper_data(event.seq, {"n": 2})

    operator_client.post("/verify/", headers=HTMX)

    html = operator_client.get("/").content.decode()
    assert f'<span class="badge badge-fail">failed</span> at #{event.seq}' in html
    assert '<code class="code">LEDGER_HASH_MISMATCH</code>' in html


def test_verify_now_needs_ledger_verify_and_records_nothing(client):
    principal = PrincipalFactory(human=True, capabilities=["console.view", "ledger.read"])
    client.force_login(principal.user)

    response = client.post("/verify/", headers=HTMX)

    assert response.status_code == 403
    assert b'data-code="CAPABILITY_MISSING"' in response.content
    assert b"ledger.verify" in response.content
    assert VerificationRun.objects.count() == 0


def test_verify_is_post_only(operator_client):
    assert operator_client.get("/verify/").status_code == 405
    assert VerificationRun.objects.count() == 0


# --- Ledger explorer --------------------------------------------------------------------------------


def test_ledger_full_page_and_results_fragment(operator_client):
    append("controlplane.test.happened")
    full = operator_client.get("/ledger/")
    fragment = operator_client.get("/ledger/", headers=HTMX)
    assert full.status_code == fragment.status_code == 200
    assert b"<html" in full.content and b'<form class="filters"' in full.content
    assert b"<html" not in fragment.content and b'<form class="filters"' not in fragment.content
    assert fragment.content.lstrip().startswith(b'<section id="results"')
    assert _seqs(full) == _seqs(fragment)
    assert "HX-Request" in full["Vary"] and "HX-Request" in fragment["Vary"]


def test_boosted_request_gets_the_whole_page(operator_client):
    response = operator_client.get("/ledger/", headers={**HTMX, "HX-Boosted": "true"})
    assert b"<html" in response.content


def test_ledger_shows_own_tenant_events_and_system_ones_only_to_platform_principals(
    operator_client, operator
):
    mine = append("controlplane.test.mine", tenant="acme")
    system = append("controlplane.test.system", tenant="")
    theirs = append("controlplane.test.theirs", tenant="globex")

    seqs = _seqs(operator_client.get("/ledger/"))
    assert mine.seq in seqs and system.seq not in seqs and theirs.seq not in seqs

    identity_services.grant_add(principal=operator, capability="platform.ledger.read", actor="test")
    seqs = _seqs(operator_client.get("/ledger/"))
    assert mine.seq in seqs and system.seq in seqs
    assert theirs.seq not in seqs
    assert seqs == sorted(seqs, reverse=True)


def test_ledger_filters(operator_client, operator):
    identity_services.grant_add(principal=operator, capability="platform.ledger.read", actor="test")
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    a = append("controlplane.alpha.done", subject="job/1", traceparent=f"00-{trace}-00f067aa0ba902b7-01")
    b = append("controlplane.alpha.failed", subject="job/2")
    c = append("controlplane.beta.done", subject="job/1", tenant="")

    def seqs(**params):
        response = operator_client.get("/ledger/", params, headers=HTMX)
        assert response.status_code == 200
        return _seqs(response)

    assert seqs(type_prefix="controlplane.alpha.") == [b.seq, a.seq]
    assert seqs(subject="job/1") == [c.seq, a.seq]
    assert seqs(trace=trace) == [a.seq]
    assert seqs(tenant="-", type_prefix="controlplane.beta") == [c.seq]
    assert seqs(tenant="acme", subject="job/1") == [a.seq]
    assert seqs(seq_from=a.seq, seq_to=b.seq) == [b.seq, a.seq]


def test_ledger_refuses_another_tenant_as_a_filter(operator_client):
    append("controlplane.test.theirs", tenant="globex")
    response = operator_client.get("/ledger/", {"tenant": "globex"})
    assert response.status_code == 400
    assert b'data-code="VALIDATION_FAILED"' in response.content
    assert b"globex is not one of the available choices" in response.content


def test_invalid_filters_are_refused_with_validation_failed(operator_client):
    response = operator_client.get("/ledger/", {"seq_from": 9, "seq_to": 3}, headers=HTMX)
    assert response.status_code == 400
    assert b"<html" not in response.content
    assert b'data-code="VALIDATION_FAILED"' in response.content
    assert b"Seq from is after seq to." in response.content


def test_ledger_pages_by_seq_cursor(operator_client):
    events = [append("controlplane.test.paged", data={"i": i}) for i in range(30)]
    newest_first = [e.seq for e in reversed(events)]

    first = operator_client.get("/ledger/", {"type_prefix": "controlplane.test.paged"})
    assert _seqs(first) == newest_first[:25]
    assert _pager_href(first, "prev") == ""
    older_href = _pager_href(first, "next")
    assert older_href == f"/ledger/?type_prefix=controlplane.test.paged&before={newest_first[24]}"
    assert f'hx-get="{older_href.replace("&", "&amp;")}"' in first.content.decode()

    second = operator_client.get(older_href, headers=HTMX)
    assert _seqs(second) == newest_first[25:]
    assert _pager_href(second, "next") == ""
    newer_href = _pager_href(second, "prev")
    assert newer_href == f"/ledger/?type_prefix=controlplane.test.paged&after={newest_first[25]}"

    back = operator_client.get(newer_href, headers=HTMX)
    assert _seqs(back) == newest_first[:25]
    assert _pager_href(back, "prev") == ""
    assert _pager_href(back, "next") == older_href


def test_paging_past_the_end_links_back(operator_client):
    event = append("controlplane.test.paged")
    response = operator_client.get("/ledger/", {"before": 1})
    assert _seqs(response) == []
    assert b"No events match." in response.content
    assert _pager_href(response, "prev") == "/ledger/?after=0"
    assert event.seq in _seqs(operator_client.get("/ledger/?after=0"))


def test_ledger_list_query_count_does_not_grow_with_the_chain(operator_client, django_assert_max_num_queries):
    for i in range(60):
        append("controlplane.test.many", data={"i": i})
    # session, user, principal + tenant, grants, page, newer-exists
    with django_assert_max_num_queries(6):
        response = operator_client.get("/ledger/", {"before": 40})
    assert len(_seqs(response)) == 25


# --- One event --------------------------------------------------------------------------------------


def test_event_detail_full_page_and_fragment(operator_client):
    event = append("controlplane.test.detailed", data={"answer": 42, "nested": {"b": 1, "a": 2}})
    full = operator_client.get(f"/ledger/{event.seq}/")
    fragment = operator_client.get(f"/ledger/{event.seq}/", headers=HTMX)
    assert full.status_code == fragment.status_code == 200
    assert b"<html" in full.content
    assert b"<html" not in fragment.content
    assert fragment.content.lstrip().startswith(b'<article id="event"')
    assert "HX-Request" in full["Vary"]


def test_event_detail_shows_envelope_payload_canonical_bytes_and_chain_fields(operator_client):
    event = append("controlplane.test.detailed", data={"answer": 42, "nested": {"b": 1, "a": 2}})
    html = operator_client.get(f"/ledger/{event.seq}/").content.decode()
    assert f"Event #{event.seq}" in html
    assert event.id in html and event.prev_hash in html and event.hash in html
    assert event.key_id in html and event.signature in html
    assert "{\n  &quot;answer&quot;: 42,\n  &quot;nested&quot;: {\n    &quot;a&quot;: 2," in html
    assert f'<pre class="code-block wrap" id="canonical">{escape(event.canonical)}</pre>' in html


def test_event_detail_verifies_the_event(operator_client):
    event = append("controlplane.test.detailed")
    response = operator_client.get(f"/ledger/{event.seq}/")
    verification = response.context["verification"]
    assert verification.ok is True and verification.code == ""
    assert [c.outcome for c in verification.checks] == ["passed"] * 4
    assert verification.key_status == "active"
    assert '<span class="badge badge-ok" id="event-verification">verified</span>' in response.content.decode()


def test_event_detail_reports_a_tampered_payload(operator_client):
    event = append("controlplane.test.detailed", data={"n": 1})
    _tamper_data(event.seq, {"n": 2})

    response = operator_client.get(f"/ledger/{event.seq}/")

    verification = response.context["verification"]
    assert verification.ok is False
    assert verification.code == "LEDGER_HASH_MISMATCH"
    assert verification.detail == "stored column 'data' differs from what was signed"
    assert [c.outcome for c in verification.checks] == ["passed", "failed", "not reached", "not reached"]
    assert b'failed <code class="code">LEDGER_HASH_MISMATCH</code>' in response.content


def test_event_detail_reports_a_revoked_key(operator_client):
    event = append("controlplane.test.detailed")
    ledger_keys.key_revoke(key_id=event.key_id, reason="test compromise", actor="test")

    verification = operator_client.get(f"/ledger/{event.seq}/").context["verification"]

    assert verification.ok is False
    assert verification.code == "LEDGER_KEY_REVOKED"
    assert verification.key_status == "revoked"
    assert [c.outcome for c in verification.checks] == ["passed", "passed", "failed", "not reached"]


def test_event_of_another_tenant_is_not_found(operator_client):
    theirs = append("controlplane.test.theirs", tenant="globex")
    before = LedgerEvent.objects.count()

    response = operator_client.get(f"/ledger/{theirs.seq}/")

    assert response.status_code == 404
    assert b'data-code="NOT_FOUND"' in response.content
    assert b"globex" not in response.content
    assert LedgerEvent.objects.count() == before


def test_missing_event_is_not_found_in_the_notice_area_for_htmx(operator_client):
    response = operator_client.get("/ledger/999999/", headers=HTMX)
    assert response.status_code == 404
    assert b"<html" not in response.content
    assert response["HX-Retarget"] == "#notice"


def test_system_event_detail_is_visible_only_to_platform_principals(operator_client, operator):
    system = append("controlplane.test.system", tenant="")
    assert operator_client.get(reverse("console:event", args=[system.seq])).status_code == 404
    identity_services.grant_add(principal=operator, capability="platform.ledger.read", actor="test")
    assert operator_client.get(reverse("console:event", args=[system.seq])).status_code == 200


# --- helpers ----------------------------------------------------------------------------------------


def _tamper_data(seq: int, data: dict) -> None:
    """Rewrite a stored payload behind the model's back (append-only trigger off, in this transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE ledger_ledgerevent DISABLE TRIGGER ledger_ledgerevent_no_update_delete")
        cursor.execute(
            "UPDATE ledger_ledgerevent SET data = %s::jsonb WHERE seq = %s", [json.dumps(data), seq]
        )
        cursor.execute("ALTER TABLE ledger_ledgerevent ENABLE TRIGGER ledger_ledgerevent_no_update_delete")


def test_csrf_failure_is_a_coded_refusal_and_writes_nothing():
    from django.test import Client

    from controlplane.ledger.models import LedgerEvent

    strict = Client(enforce_csrf_checks=True)
    before = LedgerEvent.objects.count()
    response = strict.post("/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403
    assert b'data-code="CSRF_FAILED"' in response.content
    assert LedgerEvent.objects.count() == before
