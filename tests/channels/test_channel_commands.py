"""`manage.py channels ...`: secrets from stdin, encrypted at rest and never printed or ledgered; URLs
printed; rotation, disconnection, user mapping; and outbound approval notifications through the
providers' own clients against a local stand-in server."""

from __future__ import annotations

import json
from io import StringIO
from urllib.parse import parse_qs

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from controlplane.channels.models import ChannelConnection, ChannelIdentity
from controlplane.channels.services.connections import connection_secrets
from controlplane.ledger.models import LedgerEvent
from tests.channels.chat import agent, open_request, written
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db

SIGNING_SECRET = "s3cr3t-signing-value"


def run(*args: str, stdin: str = "") -> list[str]:
    out = StringIO()
    call_command("channels", *args, stdout=out, stdin=StringIO(stdin))
    return out.getvalue().splitlines()


@pytest.fixture
def tenant():
    return TenantFactory(slug="acme")


def test_connect_stores_secrets_encrypted_prints_urls_and_never_the_secret(tenant, settings):
    settings.CONTROLPLANE_PUBLIC_URL = "https://cp.example.com"
    lines = run(
        "connect",
        "slack",
        "ops",
        "--tenant",
        "acme",
        stdin=f"signing_secret={SIGNING_SECRET}\nbot_token=xoxb-1\n",
    )
    connection = ChannelConnection.objects.get()
    assert lines == [
        "connected acme/slack/ops (secrets: bot_token, signing_secret)",
        f"  slack-commands: https://cp.example.com/api/v1/channels/slack/{connection.key}/commands/",
        f"  slack-events: https://cp.example.com/api/v1/channels/slack/{connection.key}/events/",
        f"  slack-interactivity: https://cp.example.com/api/v1/channels/slack/{connection.key}/interactivity/",
    ]
    assert SIGNING_SECRET not in connection.secrets
    assert connection_secrets(connection=connection)["signing_secret"] == SIGNING_SECRET
    assert not LedgerEvent.objects.filter(canonical__contains=SIGNING_SECRET).exists()
    event = LedgerEvent.objects.get(type="controlplane.channels.connection.connected")
    assert event.data["secrets"] == ["bot_token", "signing_secret"]


def test_secrets_decrypt_with_an_older_key_after_rotation_and_re_encrypt_under_the_new(tenant, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CONTROLPLANE_SECRETS_KEY = old
    run("connect", "github", "repo", "--tenant", "acme", stdin="webhook_secret=first\n")
    settings.CONTROLPLANE_SECRETS_KEY = f"{new},{old}"
    assert run("rotate-secret", "github", "repo", "--tenant", "acme", stdin="token=ghp_x\n") == [
        "rotated acme/github/repo (secrets: token, webhook_secret)"
    ]
    settings.CONTROLPLANE_SECRETS_KEY = new  # the old key retired: the rotated secrets still open
    connection = ChannelConnection.objects.get()
    assert connection_secrets(connection=connection) == {"webhook_secret": "first", "token": "ghp_x"}


def test_without_a_secrets_key_outside_dev_connecting_fails_closed(tenant, settings):
    settings.CONTROLPLANE_SECRETS_KEY = ""
    settings.CONTROLPLANE_LEDGER_AUTOGENERATE_KEY = False
    before = written()
    with pytest.raises(CommandError, match="CHANNEL_SECRETS_KEY_UNAVAILABLE"):
        run("connect", "slack", "ops", "--tenant", "acme", stdin="signing_secret=x\n")
    assert written() == before and not ChannelConnection.objects.exists()


@pytest.mark.parametrize(
    ("stdin", "message"),
    [("password=x\n", "CHANNEL_SECRETS_INVALID"), ("signing_secret\n", "CHANNEL_SECRETS_INVALID")],
)
def test_connect_refuses_secrets_not_the_providers(tenant, stdin, message):
    before = written()
    with pytest.raises(CommandError, match=message):
        run("connect", "slack", "ops", "--tenant", "acme", stdin=stdin)
    assert written() == before


def test_list_disconnect_and_connect_twice(tenant):
    run("connect", "twilio", "wa", "--tenant", "acme", stdin="auth_token=t\n")
    with pytest.raises(CommandError, match="CHANNEL_EXISTS"):
        run("connect", "twilio", "wa", "--tenant", "acme")
    assert run("disconnect", "twilio", "wa", "--tenant", "acme") == ["disconnected acme/twilio/wa"]
    connection = ChannelConnection.objects.get()
    assert connection.secrets == "" and connection.disconnected_at is not None
    assert run("list", "--tenant", "acme")[0] == f"acme/twilio/wa disconnected key={connection.key} secrets=-"


def test_map_user_maps_people_only(tenant):
    PrincipalFactory(tenant=tenant, name="alice", human=True)
    PrincipalFactory(tenant=tenant, name="bot", agent=True)
    assert run("map-user", "slack", "U100", "alice", "--tenant", "acme") == [
        "mapped acme/slack:U100 -> acme/alice"
    ]
    before = written()
    with pytest.raises(CommandError, match="APPROVAL_APPROVER_NOT_HUMAN"):
        run("map-user", "slack", "U200", "bot", "--tenant", "acme")
    with pytest.raises(CommandError, match="PRINCIPAL_NOT_FOUND"):
        run("map-user", "slack", "U300", "nobody", "--tenant", "acme")
    assert written() == before
    assert run("unmap-user", "slack", "U100", "--tenant", "acme") == ["unmapped slack:U100"]
    assert not ChannelIdentity.objects.exists()


def test_notify_posts_the_approval_card_to_slack_through_slack_sdk(tenant, settings, stand_in):
    settings.CONTROLPLANE_SLACK_API_URL = stand_in.base + "/api/"
    run(
        "connect",
        "slack",
        "ops",
        "--tenant",
        "acme",
        "--channel",
        "C1",
        stdin="signing_secret=s\nbot_token=xoxb-9\n",
    )
    connection = ChannelConnection.objects.get()
    approval = open_request(agent(connection))
    assert run("notify", "slack", "ops", approval.id, "--tenant", "acme") == [
        f"posted approval {approval.id[:12]} to acme/slack/ops (message 1700000000.000100)"
    ]
    (seen,) = stand_in.seen
    assert seen["path"] == "/api/chat.postMessage"
    assert seen["headers"]["Authorization"] == "Bearer xoxb-9"
    sent = json.loads(seen["body"]) if seen["body"].startswith(b"{") else parse_qs(seen["body"].decode())
    blocks = sent["blocks"] if isinstance(sent["blocks"], list) else json.loads(sent["blocks"][0])
    buttons = blocks[2]["elements"]
    assert [b["value"] for b in buttons] == [f"{approval.id}:{approval.content_hash}"] * 2
    event = LedgerEvent.objects.get(type="controlplane.channels.notification.sent")
    assert event.data["message_id"] == "1700000000.000100" and event.data["approval"] == approval.id


def test_notify_sends_a_whatsapp_message_through_twilio(tenant, settings, stand_in):
    settings.CONTROLPLANE_TWILIO_API_URL = stand_in.base
    run(
        "connect",
        "twilio",
        "wa",
        "--tenant",
        "acme",
        stdin="account_sid=AC123\nauth_token=tok\nfrom=whatsapp:+1415\n",
    )
    connection = ChannelConnection.objects.get()
    approval = open_request(agent(connection))
    lines = run("notify", "twilio", "wa", approval.id, "--tenant", "acme", "--to", "whatsapp:+1999")
    assert lines == [
        f"posted approval {approval.id[:12]} to acme/twilio/wa (message SM0000000000000000000000000000001)"
    ]
    (seen,) = stand_in.seen
    assert seen["path"] == "/2010-04-01/Accounts/AC123/Messages.json"
    form = parse_qs(seen["body"].decode())
    assert form["To"] == ["whatsapp:+1999"] and form["From"] == ["whatsapp:+1415"]
    assert f"approve {approval.id[:12]} {approval.content_hash[:12]}" in form["Body"][0]


def test_notify_sends_a_whatsapp_message_through_meta(tenant, settings, stand_in):
    settings.CONTROLPLANE_META_API_URL = stand_in.base + "/v21.0"
    run(
        "connect",
        "meta",
        "wa",
        "--tenant",
        "acme",
        stdin="app_secret=a\nverify_token=v\naccess_token=EAA1\nphone_number_id=555\n",
    )
    connection = ChannelConnection.objects.get()
    approval = open_request(agent(connection))
    run("notify", "meta", "wa", approval.id, "--tenant", "acme", "--to", "16505551234")
    (seen,) = stand_in.seen
    assert seen["path"] == "/v21.0/555/messages" and seen["headers"]["Authorization"] == "Bearer EAA1"
    assert json.loads(seen["body"])["to"] == "16505551234"


def test_notify_without_a_bot_token_is_not_configured_and_writes_nothing(tenant, stand_in, settings):
    settings.CONTROLPLANE_SLACK_API_URL = stand_in.base + "/api/"
    run("connect", "slack", "ops", "--tenant", "acme", "--channel", "C1", stdin="signing_secret=s\n")
    approval = open_request(agent(ChannelConnection.objects.get()))
    before = written()
    with pytest.raises(CommandError, match="CHANNEL_NOT_CONFIGURED"):
        run("notify", "slack", "ops", approval.id, "--tenant", "acme")
    assert written() == before and stand_in.seen == []


def test_a_provider_refusing_is_outbound_failed(tenant, stand_in, settings):
    settings.CONTROLPLANE_SLACK_API_URL = stand_in.base + "/nowhere/"
    stand_in.answer = lambda path: (200, {"ok": False, "error": "channel_not_found"})
    run(
        "connect",
        "slack",
        "ops",
        "--tenant",
        "acme",
        "--channel",
        "C1",
        stdin="signing_secret=s\nbot_token=x\n",
    )
    approval = open_request(agent(ChannelConnection.objects.get()))
    before = written()
    with pytest.raises(CommandError, match="CHANNEL_OUTBOUND_FAILED"):
        run("notify", "slack", "ops", approval.id, "--tenant", "acme")
    assert written() == before


def test_in_dev_a_secrets_key_is_generated_once_0600_as_the_ledger_key_is(tenant, settings):
    settings.CONTROLPLANE_SECRETS_KEY = ""
    run("connect", "github", "repo", "--tenant", "acme", stdin="webhook_secret=w\n")
    key_file = settings.CONTROLPLANE_KEY_DIR / "channel-secrets.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    first = key_file.read_text()
    run("connect", "github", "other", "--tenant", "acme", stdin="webhook_secret=v\n")
    assert key_file.read_text() == first
    settings.CONTROLPLANE_SECRETS_KEY = first.strip()  # the generated key is an ordinary Fernet key
    assert [connection_secrets(connection=c) for c in ChannelConnection.objects.order_by("name")] == [
        {"webhook_secret": "v"},
        {"webhook_secret": "w"},
    ]


def test_list_prints_each_connection_and_its_urls(tenant, settings):
    settings.CONTROLPLANE_PUBLIC_URL = "https://cp.example.com/"
    run("connect", "meta", "wa", "--tenant", "acme", stdin="app_secret=a\nverify_token=v\n")
    connection = ChannelConnection.objects.get()
    assert run("list") == [
        f"acme/meta/wa connected key={connection.key} secrets=app_secret,verify_token",
        f"  meta: https://cp.example.com/api/v1/channels/meta/{connection.key}/",
    ]
