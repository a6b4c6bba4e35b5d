"""Identity linking by one-time code: a person starts a link (API, CLI), the code goes to that chat
identity through the outbox (a local Slack stand-in), typing it back links it; wrong, expired, reused and
misdirected codes are refused with their codes and link nothing; unlinked identities read and decide
nothing; links are ledgered, revocable, and never cross tenants."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from controlplane.channels.models import ChannelIdentity, ChannelLink, LinkStatus
from controlplane.channels.services.links import channel_link_start
from controlplane.channels.services.outbox import channel_outbox_sweep
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from tests.channels.chat import agent, connect, open_request
from tests.channels.test_outbox import card_click
from tests.channels.test_providers_slack import SECRET, click, command, event_body, post_event
from tests.envelope import without_meta
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def slack(settings, stand_in):
    settings.CONTROLPLANE_SLACK_API_URL = stand_in.base + "/api/"
    return connect("slack", {"signing_secret": SECRET, "bot_token": "xoxb-9"})


def person(tenant, name="alice"):
    return PrincipalFactory(
        tenant=tenant,
        name=name,
        human=True,
        capabilities=["channels.link", "approvals.read", "approvals.decide"],
    )


def auth(principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(principal)}"}


def sent_code(stand_in) -> tuple[str, str]:
    """The DM the stand-in received: to whom, and the code in it."""
    body = json.loads(stand_in.seen[-1]["body"])
    return body["channel"], re.search(r"link (\d{8})", body["text"])[1]


def start_by_api(client, connection, principal, external_id="U100", headers=None):
    return client.post(
        "/api/v1/channels/links/",
        {"connection": connection.key, "external_id": external_id},
        content_type="application/json",
        headers=headers or auth(principal),
    )


def test_started_in_the_api_the_code_goes_to_the_identity_and_typing_it_back_links(client, slack, stand_in):
    alice = person(slack.tenant)
    response = start_by_api(client, slack, alice)
    assert response.status_code == 201
    assert set(without_meta(response)) == {
        "id",
        "connection",
        "provider",
        "external_id",
        "status",
        "created_at",
        "expires_at",
    }
    assert response.json()["status"] == "pending"
    channel_outbox_sweep()
    to, code = sent_code(stand_in)
    assert to == "U100" and stand_in.seen[-1]["path"] == "/api/chat.postMessage"
    answer = post_event(client, slack, event_body(f"link {code}", event_id="Ev-link"))
    assert without_meta(answer) == {"ok": True, "action": "link", "linked": "acme/alice"}
    identity = ChannelIdentity.objects.get()
    assert (identity.external_id, identity.principal) == ("U100", alice)
    assert ChannelLink.objects.get().status == LinkStatus.LINKED
    linked = LedgerEvent.objects.get(type="controlplane.channels.identity.linked")
    assert linked.data["principal"] == "acme/alice" and linked.actor == "acme/alice"
    assert LedgerEvent.objects.filter(type="controlplane.channels.identity.link_started").count() == 1
    assert not LedgerEvent.objects.filter(canonical__contains=code).exists()  # never on the chain
    received = LedgerEvent.objects.get(type="controlplane.channels.message.received")
    assert received.data["text"] == "link ********"


def test_a_wrong_code_links_nothing_and_too_many_void_the_link(client, slack, settings):
    settings.CONTROLPLANE_CHANNEL_LINK_MAX_FAILURES = 3
    started = channel_link_start(connection=slack, principal=person(slack.tenant), external_id="U100")
    wrong = "0" * 8 if started.code != "0" * 8 else "1" * 8
    for n in range(3):
        answer = post_event(client, slack, event_body(f"link {wrong}", event_id=f"Ev-w{n}")).json()
        assert answer["code"] == "CHANNEL_LINK_CODE_INVALID"
    assert not ChannelIdentity.objects.exists()
    assert not LedgerEvent.objects.filter(type="controlplane.channels.identity.linked").exists()
    assert ChannelLink.objects.get().status == LinkStatus.VOID
    late = post_event(client, slack, event_body(f"link {started.code}", event_id="Ev-right")).json()
    assert late["code"] == "CHANNEL_LINK_CODE_INVALID" and not ChannelIdentity.objects.exists()


def test_an_expired_code_is_refused(client, slack):
    started = channel_link_start(
        connection=slack,
        principal=person(slack.tenant),
        external_id="U100",
        at=timezone.now() - timedelta(hours=1),
    )
    answer = post_event(client, slack, event_body(f"link {started.code}")).json()
    assert answer["code"] == "CHANNEL_LINK_CODE_EXPIRED" and not ChannelIdentity.objects.exists()


def test_a_code_links_once(client, slack):
    started = channel_link_start(connection=slack, principal=person(slack.tenant), external_id="U100")
    assert post_event(client, slack, event_body(f"link {started.code}", event_id="Ev-1")).json()["ok"]
    again = post_event(client, slack, event_body(f"link {started.code}", event_id="Ev-2")).json()
    assert again["code"] == "CHANNEL_LINK_CODE_USED"
    assert LedgerEvent.objects.filter(type="controlplane.channels.identity.linked").count() == 1


def test_the_code_typed_from_another_identity_links_nothing(client, slack):
    started = channel_link_start(connection=slack, principal=person(slack.tenant), external_id="U100")
    answer = post_event(client, slack, event_body(f"link {started.code}", user="U666")).json()
    assert answer["code"] == "CHANNEL_LINK_CODE_INVALID"
    assert not ChannelIdentity.objects.exists()
    assert ChannelLink.objects.get().status == LinkStatus.PENDING  # U100 can still finish it


def test_a_newer_link_voids_the_older_code(client, slack):
    alice = person(slack.tenant)
    first = channel_link_start(connection=slack, principal=alice, external_id="U100")
    second = channel_link_start(connection=slack, principal=alice, external_id="U100")
    if first.code != second.code:
        old = post_event(client, slack, event_body(f"link {first.code}", event_id="Ev-old")).json()
        assert old["code"] == "CHANNEL_LINK_CODE_INVALID"
    assert post_event(client, slack, event_body(f"link {second.code}", event_id="Ev-new")).json()["ok"]


def test_unlinked_identities_read_nothing_and_decide_nothing(client, slack):
    approval = open_request(agent(slack))
    listing = command(client, slack, "approvals", user="U999").json()
    assert listing["code"] == "CHANNEL_IDENTITY_UNLINKED" and approval.id[:12] not in listing["text"]
    before = LedgerEvent.objects.filter(type__startswith="controlplane.approval").count()
    clicked = click(client, slack, card_click(approval, user="U999", trigger="t-u")).json()
    assert clicked["code"] == "CHANNEL_IDENTITY_UNLINKED"
    assert LedgerEvent.objects.filter(type__startswith="controlplane.approval").count() == before


def test_a_linked_person_without_approvals_read_reads_nothing(client, slack):
    reader = PrincipalFactory(tenant=slack.tenant, name="bob", human=True, capabilities=["channels.link"])
    started = channel_link_start(connection=slack, principal=reader, external_id="U200")
    post_event(client, slack, event_body(f"link {started.code}", user="U200"))
    assert command(client, slack, "approvals", user="U200").json()["code"] == "CAPABILITY_MISSING"


def test_revoking_a_link_is_ledgered_and_the_identity_decides_nothing_again(client, slack):
    alice = person(slack.tenant)
    started = channel_link_start(connection=slack, principal=alice, external_id="U100")
    post_event(client, slack, event_body(f"link {started.code}"))
    (mine,) = client.get("/api/v1/channels/my-identities/", headers=auth(alice)).json()["results"]
    assert (
        client.delete(f"/api/v1/channels/my-identities/{mine['id']}/", headers=auth(alice)).status_code == 204
    )
    revoked = LedgerEvent.objects.get(type="controlplane.channels.identity.revoked")
    assert revoked.data == {"provider": "slack", "external_id": "U100", "principal": "acme/alice"}
    approval = open_request(agent(slack))
    assert click(client, slack, card_click(approval, user="U100", trigger="t-r")).json()["code"] == (
        "CHANNEL_IDENTITY_UNLINKED"
    )


def test_links_never_cross_tenants(client, slack):
    alice = person(slack.tenant)
    channel_link_start(connection=slack, principal=alice, external_id="U100")
    intruder = person(TenantFactory(slug="globex"), name="mallory")
    headers = auth(intruder)
    before = LedgerEvent.objects.count()
    refused = start_by_api(client, slack, intruder, external_id="U666", headers=headers)
    assert refused.status_code == 404 and refused.json()["code"] == "CHANNEL_NOT_FOUND"
    assert LedgerEvent.objects.count() == before and ChannelLink.objects.count() == 1
    assert client.get("/api/v1/channels/links/", headers=headers).json()["results"] == []
    with pytest.raises(ControlPlaneError) as caught:
        channel_link_start(connection=slack, principal=intruder, external_id="U666")
    assert caught.value.code == "NOT_FOUND"


def test_only_people_link_and_github_cannot_carry_a_code(client, slack):
    service = PrincipalFactory(tenant=slack.tenant, name="svc", capabilities=["channels.link"])
    github = connect("github", {"webhook_secret": "w", "token": "t"}, tenant_slug="acme-2")
    carol, headers = person(github.tenant, "carol"), auth(service)
    before = LedgerEvent.objects.count()
    refused = start_by_api(client, slack, service, headers=headers)
    assert refused.json()["code"] == "APPROVAL_APPROVER_NOT_HUMAN"
    with pytest.raises(ControlPlaneError) as caught:
        channel_link_start(connection=github, principal=carol, external_id="octocat")
    assert caught.value.code == "CHANNEL_LINK_UNSUPPORTED"
    assert LedgerEvent.objects.count() == before and not ChannelLink.objects.exists()


def test_the_cli_links_for_the_person_whose_token_it_is(slack, stand_in, monkeypatch, client):
    alice = person(slack.tenant)
    with pytest.raises(CommandError, match="AUTH_REQUIRED"):
        call_command("channels", "link", "slack", "ops", "U100", stdout=StringIO())
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(alice))
    out = StringIO()
    call_command("channels", "link", "slack", "ops", "U100", stdout=out)
    assert out.getvalue().startswith("a code was sent to slack:U100; reply there with `link <code>`")
    channel_outbox_sweep()
    _, code = sent_code(stand_in)
    assert code not in out.getvalue()
    post_event(client, slack, event_body(f"link {code}"))
    out = StringIO()
    call_command("channels", "unlink", "slack", "U100", stdout=out)
    assert out.getvalue() == "revoked slack:U100\n" and not ChannelIdentity.objects.exists()
