"""Every `controlplane.channels.*` event, written through the services and the webhook view (for the
contract drift test in tests/project/test_contracts.py, and tests/channels/test_contracts.py)."""

from __future__ import annotations

import hashlib
import hmac

import orjson
from django.test import Client, override_settings
from django.urls import reverse

from approvals.models import ApprovalRequest
from approvals.services import approval_decide
from controlplane.channels import services as producers
from controlplane.channels.models import ChannelMessage
from controlplane.channels.services.changes import change_signal_record, deployment_review_open
from controlplane.channels.services.connections import (
    channel_connect,
    channel_disconnect,
    channel_identity_map,
    channel_identity_unmap,
    channel_secrets_rotate,
)
from controlplane.channels.services.links import channel_link_revoke, channel_link_start
from controlplane.channels.services.messages import channel_message_receive
from controlplane.channels.services.outbox import (
    channel_message_enqueue,
    channel_message_send,
    channel_outbox_sweep,
)
from controlplane.channels.services.refusals import channel_refusal_note, channel_refusals_digest
from tests.channels.stand_in import serving
from tests.identity.factories import PrincipalFactory, TenantFactory


def write_every_channel_event() -> None:
    tenant = TenantFactory(slug="chat-co")
    created = producers.producer_create(tenant=tenant, name="alerts", actor="test")
    producers.producer_key_rotate(producer=producers.producer_get(tenant=tenant, name="alerts"), actor="test")
    producers.producer_key_revoke(key_id=created.key_id, reason="leaked", actor="test")
    with (
        serving() as stand_in,
        override_settings(
            CONTROLPLANE_SLACK_API_URL=stand_in.base + "/api/", CONTROLPLANE_GITHUB_API_URL=stand_in.base
        ),
    ):
        slack = channel_connect(
            tenant=tenant,
            provider="slack",
            name="ops",
            secret_values={"signing_secret": "s"},
            actor="test",
            channel="C1",
        )
        slack = channel_secrets_rotate(connection=slack, secret_values={"bot_token": "xoxb-1"}, actor="test")
        github = channel_connect(
            tenant=tenant,
            provider="github",
            name="repo",
            secret_values={"webhook_secret": "w", "token": "t"},
            actor="test",
        )
        alice = PrincipalFactory(
            tenant=tenant, name="alice", human=True, capabilities=["approvals.decide", "channels.link"]
        )
        channel_identity_map(
            tenant=tenant, provider="github", external_id="octocat", principal=alice, actor="t"
        )
        channel_identity_unmap(tenant=tenant, provider="github", external_id="octocat", actor="t")
        started = channel_link_start(connection=slack, principal=alice, external_id="U1")
        channel_message_receive(connection=slack, sender="U1", text=f"link {started.code}", delivery_id="m-1")
        repository = {"full_name": "chat-co/checkout"}
        change_signal_record(
            connection=github,
            event="push",
            payload={
                "ref": "refs/heads/main",
                "after": "abc",
                "repository": repository,
                "sender": {"login": "o"},
            },
            delivery_id="d-push",
        )
        callback = "https://api.github.com/repos/chat-co/checkout/actions/runs/7/deployment_protection_rule"
        opened = deployment_review_open(
            connection=github,
            payload={"environment": "prod", "deployment_callback_url": callback, "repository": repository},
            delivery_id="d-dpr",
        )
        approval = ApprovalRequest.objects.get(pk=opened["approval"])
        approval_decide(
            approval=approval,
            actor=alice,
            decision="approve",
            reason="ok",
            content_hash=approval.content_hash,
        )
        channel_outbox_sweep()  # the link code, the approval card, its update, GitHub's review: sent
        body = orjson.dumps({"type": "event_callback", "event_id": "Ev-all", "event": {"type": "message"}})
        client = Client()
        client.post(
            reverse("webhook-slack-events", kwargs={"connection": slack.key}),
            data=body,
            content_type="application/json",
            headers=_slack_signed(body),
        )
        channel_refusal_note(connection=slack, adapter="slack-events", code="CHANNEL_SIGNATURE_INVALID")
        channel_refusals_digest()
        (identity,) = alice.channel_identities.all()
        channel_link_revoke(identity=identity, actor=alice)
        doomed = channel_message_enqueue(
            connection=slack, key="every-event:doomed", kind="test", to="C1", payload={"text": "x"}
        )
        channel_disconnect(connection=slack, actor="test")
        channel_message_send(message_id=doomed.pk)  # CHANNEL_NOT_CONFIGURED: given up
        assert ChannelMessage.objects.filter(status="sent").exists()


def _slack_signed(body: bytes) -> dict[str, str]:
    import time

    timestamp = str(int(time.time()))
    digest = hmac.new(b"s", b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}
