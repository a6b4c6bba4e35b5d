"""The channels console pages: identity links (start, revoke), connections with the outbox, deliveries and
refusals with diagnostics; both branches of every page, capabilities, no secret shown, tenants apart."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from django.core.cache import cache
from django.test import Client

from controlplane.channels.models import ChannelIdentity, ChannelLink, ChannelMessage
from controlplane.channels.services.connections import channel_identity_map
from controlplane.ledger.models import LedgerEvent
from tests.channels.chat import connect, url
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
PAGES = ["/channels/", "/channels/connections/", "/channels/deliveries/"]


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def slack():
    return connect("slack", {"signing_secret": "very-secret-signing", "bot_token": "xoxb-very-secret"})


def signed_in(tenant, name, *capabilities) -> tuple[Client, object]:
    principal = PrincipalFactory(
        tenant=tenant,
        name=name,
        human=True,
        user__username=f"{tenant.slug}-{name}",
        capabilities=["console.view", *capabilities],
    )
    client = Client()
    client.force_login(principal.user)
    return client, principal


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_serves_the_page_and_its_fragment(slack, page):
    admin, _ = signed_in(slack.tenant, "ada", "channels.link", "channels.manage")
    full = admin.get(page)
    assert full.status_code == 200 and "<html" in full.content.decode()
    fragment = admin.get(page, headers=HTMX)
    assert fragment.status_code == 200 and "<html" not in fragment.content.decode()
    assert "HX-Request" in full["Vary"]


def test_admin_pages_need_channels_manage(slack):
    person, _ = signed_in(slack.tenant, "bob", "channels.link")
    assert person.get("/channels/").status_code == 200
    for page in PAGES[1:]:
        refused = person.get(page)
        assert refused.status_code == 403 and "CAPABILITY_MISSING" in refused.content.decode()
    nobody, _ = signed_in(slack.tenant, "carl")
    assert nobody.get("/channels/").status_code == 403


def test_starting_a_link_in_the_console_sends_the_code_and_never_shows_it(slack):
    person, principal = signed_in(slack.tenant, "bob", "channels.link")
    response = person.post(
        "/channels/links/start/", {"connection": slack.key, "external_id": "U100"}, headers=HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200 and "A code was sent to U100 on acme/slack/ops" in html
    link = ChannelLink.objects.get()
    assert (link.principal, link.external_id, link.status) == (principal, "U100", "pending")
    (message,) = ChannelMessage.objects.filter(kind="identity.code")
    code = message.payload["text"].split("link ")[1].split()[0]
    assert code not in html and code not in person.get("/channels/").content.decode()
    without_htmx = person.post("/channels/links/start/", {"connection": slack.key, "external_id": "U100"})
    assert without_htmx.status_code == 302 and without_htmx["Location"] == "/channels/"


def test_a_link_to_another_tenants_connection_is_refused_and_writes_nothing(slack):
    intruder, _ = signed_in(TenantFactory(slug="globex"), "mallory", "channels.link")
    before = LedgerEvent.objects.count()
    response = intruder.post("/channels/links/start/", {"connection": slack.key, "external_id": "U1"})
    assert response.status_code == 400 and "VALIDATION_FAILED" in response.content.decode()
    assert LedgerEvent.objects.count() == before and not ChannelLink.objects.exists()


def test_a_person_revokes_their_own_link_but_not_someone_elses(slack):
    person, bob = signed_in(slack.tenant, "bob", "channels.link")
    _, carol = signed_in(slack.tenant, "carol", "channels.link")
    mine = channel_identity_map(
        tenant=slack.tenant, provider="slack", external_id="U1", principal=bob, actor="t"
    )
    theirs = channel_identity_map(
        tenant=slack.tenant, provider="slack", external_id="U2", principal=carol, actor="t"
    )
    page = person.get("/channels/").content.decode()
    assert 'data-identity="slack:U1"' in page and 'data-identity="slack:U2"' not in page
    before = LedgerEvent.objects.count()
    refused = person.post(f"/channels/links/{theirs.pk}/revoke/", headers=HTMX)
    assert refused.status_code == 404 and LedgerEvent.objects.count() == before
    done = person.post(f"/channels/links/{mine.pk}/revoke/", headers=HTMX)
    assert done.status_code == 200 and "Revoked slack:U1." in done.content.decode()
    assert list(ChannelIdentity.objects.values_list("external_id", flat=True)) == ["U2"]
    assert LedgerEvent.objects.filter(type="controlplane.channels.identity.revoked").count() == 1


def test_an_admin_sees_and_revokes_everyones_links(slack):
    admin, _ = signed_in(slack.tenant, "ada", "channels.link", "channels.manage")
    _, carol = signed_in(slack.tenant, "carol", "channels.link")
    theirs = channel_identity_map(
        tenant=slack.tenant, provider="slack", external_id="U2", principal=carol, actor="t"
    )
    assert 'data-identity="slack:U2"' in admin.get("/channels/").content.decode()
    assert admin.post(f"/channels/links/{theirs.pk}/revoke/", headers=HTMX).status_code == 200
    assert not ChannelIdentity.objects.exists()


def test_the_connections_page_shows_names_of_secrets_never_their_values_and_only_the_tenants(slack):
    other = connect("github", {"webhook_secret": "globex-secret"}, tenant_slug="globex")
    admin, _ = signed_in(slack.tenant, "ada", "channels.manage")
    html = admin.get("/channels/connections/").content.decode()
    assert 'data-connection="acme/slack/ops"' in html and "<code>bot_token</code>" in html
    assert "very-secret" not in html and other.ref not in html and other.key not in html
    assert f"/api/v1/channels/slack/{slack.key}/events/" in html


def test_the_deliveries_page_shows_refusals_with_diagnostics_to_admins(client, slack):
    github = connect("github", {"webhook_secret": "gh"}, tenant_slug="acme2")
    body, signed = b'{"a": 1}', b'{"a":1}'
    client.post(
        url("github", github),
        data=body,
        content_type="application/json",
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": "sha256=" + hmac.new(b"gh", signed, hashlib.sha256).hexdigest(),
        },
    )
    admin, _ = signed_in(github.tenant, "ada", "channels.manage")
    html = admin.get("/channels/deliveries/").content.decode()
    assert 'data-code="CHANNEL_SIGNATURE_INVALID"' in html
    assert "would verify over the JSON re-serialised" in html
    elsewhere, _ = signed_in(slack.tenant, "ada", "channels.manage")
    assert "CHANNEL_SIGNATURE_INVALID" not in elsewhere.get("/channels/deliveries/").content.decode()
