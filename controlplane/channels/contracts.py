"""The channels app's contracts: every `controlplane.channels.*` event (producers of signed ingest,
channel connections, chat identities and their links, chat messages, webhook receipts, outbound
messages, change signals and the refusal digest). Registered from `ChannelsConfig.ready()`."""

from __future__ import annotations

from typing import Any

from controlplane.kernel.contracts import COUNT, PRINCIPAL_REF, TEXT, Contract, event_contract, obj

OWNER = "controlplane.channels"
COVERS = ("controlplane.channels.",)

STRING = {"type": "string"}
PROVIDER = {"enum": ["slack", "github", "meta", "twilio"]}
CONNECTION_REF = {"type": "string", "pattern": "^[^/]+/(slack|github|meta|twilio)/[^/]+$"}
CONNECTION_KEY = {"type": "string", "pattern": "^ch[0-9a-f]{20}$"}
NAMES = {"type": "array", "items": STRING}
PRODUCER_REF = {"type": "string", "pattern": "^[^/]+/[^/]+$"}
KEY_DATA = obj(
    {"key_id": TEXT, "kind": {"enum": ["hmac", "ed25519"]}, "valid_from": TEXT}, {"public_key": TEXT}
)
CONNECTION = {"connection": CONNECTION_REF, "provider": PROVIDER, "key": CONNECTION_KEY}
IDENTITY = {"provider": PROVIDER, "external_id": TEXT}
NOTIFICATION = {
    "provider": PROVIDER,
    "connection": CONNECTION_REF,
    "kind": TEXT,
    "method": {"enum": ["post", "update", "ephemeral", "review"]},
    "to": STRING,
    "approval": STRING,
    "attempts": COUNT,
    "outbox": TEXT,
}

_SERVICES = "controlplane.channels.services"
_EVENTS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "producer.created",
        "An event producer was registered with its first key (an HMAC secret is never on the ledger).",
        obj({"producer": PRODUCER_REF, "principal": PRINCIPAL_REF, "token_prefix": TEXT, "key": KEY_DATA}),
        "producers.producer_create",
    ),
    (
        "producer.key.rotated",
        "A producer's new key; the older ones retire after the overlap.",
        obj(
            {
                "producer": PRODUCER_REF,
                "key": KEY_DATA,
                "overlap_seconds": COUNT,
                "retired": {"type": "array", "items": obj({"key_id": TEXT, "valid_until": TEXT})},
            }
        ),
        "producers.producer_key_rotate",
    ),
    (
        "producer.key.revoked",
        "A producer key revoked at once (compromise): KEY_REVOKED in every signing mode.",
        obj({"producer": PRODUCER_REF, "key_id": TEXT, "kind": TEXT, "reason": STRING}),
        "producers.producer_key_revoke",
    ),
    (
        "connection.connected",
        "A channel connection made: which secrets are set (never their values), where notifications go.",
        obj({**CONNECTION, "secrets": NAMES, "channel": STRING}),
        "connections.channel_connect",
    ),
    (
        "connection.secrets_rotated",
        "Secrets replaced (`changed`) and all re-encrypted under the newest key.",
        obj({**CONNECTION, "secrets": NAMES, "changed": NAMES}),
        "connections.channel_secrets_rotate",
    ),
    (
        "connection.disconnected",
        "Secrets forgotten: every delivery is CHANNEL_NOT_CONFIGURED from now on.",
        obj(CONNECTION),
        "connections.channel_disconnect",
    ),
    (
        "identity.mapped",
        "An administrator mapped a chat identity to a person.",
        obj({**IDENTITY, "principal": PRINCIPAL_REF}),
        "connections.channel_identity_map",
    ),
    (
        "identity.unmapped",
        "An administrator removed a mapping.",
        obj(IDENTITY),
        "connections.channel_identity_unmap",
    ),
    (
        "identity.link_started",
        "A person asked to link a chat identity; a one-time code went to it (the code is never ledgered).",
        obj(
            {
                "connection": CONNECTION_REF,
                **IDENTITY,
                "principal": PRINCIPAL_REF,
                "link": COUNT,
                "expires_at": TEXT,
            }
        ),
        "links.channel_link_start",
    ),
    (
        "identity.linked",
        "The code came back from that identity in time: it acts as the person from now on.",
        obj({"connection": CONNECTION_REF, **IDENTITY, "principal": PRINCIPAL_REF, "link": COUNT}),
        "links.channel_link_confirm",
    ),
    (
        "identity.revoked",
        "A link revoked by its person or an administrator: the identity reads and decides nothing.",
        obj({**IDENTITY, "principal": PRINCIPAL_REF}),
        "links.channel_link_revoke",
    ),
    (
        "message.received",
        "A verified chat delivery, normalised; `outcome` says what it did (an approval decided, a link, "
        "a command) or its refusal code (also in reason_codes). A link code is never recorded.",
        obj(
            {
                "provider": PROVIDER,
                "connection": CONNECTION_REF,
                "sender": STRING,
                "text": STRING,
                "truncated": {"type": "boolean"},
                "kind": TEXT,
                "delivery_id": TEXT,
                "outcome": {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}},
            }
        ),
        "messages.channel_message_receive",
    ),
    (
        "webhook.received",
        "The receipt of a webhook delivery accepted once per delivery id (its idempotency key).",
        obj({"adapter": TEXT, "delivery_id": TEXT}),
        "webhooks.webhook_delivery_accept",
    ),
    (
        "notification.sent",
        "An outbox message the provider accepted, with its id for the message (Slack ts, wamid, SM...).",
        obj({**NOTIFICATION, "message_id": STRING}),
        "outbox.channel_message_send",
    ),
    (
        "notification.failed",
        "An outbox message given up (attempts exhausted, or not configured): `code` says why.",
        obj({**NOTIFICATION, "code": TEXT}),
        "outbox.channel_message_send",
    ),
    (
        "change.recorded",
        "A change to a service reported by GitHub (deployment, status, workflow run, push, merged pull "
        "request): read-only context for incidents.",
        obj(
            {
                "connection": CONNECTION_REF,
                "kind": {"enum": ["deployment", "deployment_status", "workflow_run", "push", "pull_request"]},
                "service": TEXT,
                "repository": TEXT,
                "environment": STRING,
                "ref": STRING,
                "sha": STRING,
                "actor": STRING,
                "status": STRING,
                "delivery_id": TEXT,
            }
        ),
        "changes.change_signal_record",
    ),
    (
        "refusals.digested",
        "How many deliveries a connection refused since the last digest, by adapter and code (one "
        "event per period, not one per refusal: refusals are unauthenticated).",
        obj(
            {
                "connection": CONNECTION_REF,
                "total": COUNT,
                "counts": {
                    "type": "object",
                    "additionalProperties": {"type": "object", "additionalProperties": COUNT},
                },
            }
        ),
        "refusals.channel_refusals_digest",
    ),
]

CONTRACTS: list[Contract] = [
    event_contract(f"channels.{name}", OWNER, description, body, f"{_SERVICES}.{service}")
    for name, description, body, service in _EVENTS
]
