"""`manage.py channels connect | list | rotate-secret | disconnect | map-user | unmap-user | notify | link |
unlink`.

`link` and `unlink` act for a person: the one whose API token is in CONTROLPLANE_TOKEN (or --token-file),
holding `channels.link`, through the same services as the console and the API.

Secrets are read as KEY=VALUE lines on standard input (never as arguments: those land in shell history
and process listings), stored encrypted, and never printed.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from approvals.models import ApprovalRequest
from controlplane.channels.models import ChannelConnection, ChannelIdentity, ChannelProvider
from controlplane.channels.services.connections import (
    channel_connect,
    channel_connection_get,
    channel_disconnect,
    channel_identity_map,
    channel_identity_unmap,
    channel_secrets_rotate,
    connection_webhook_urls,
    secrets_parse,
)
from controlplane.channels.services.links import channel_link_revoke, channel_link_start
from controlplane.channels.services.notifications import channel_approval_notify
from controlplane.identity.cli import add_token_argument, cli_principal
from controlplane.identity.selectors import principal_get, tenant_get
from controlplane.kernel.errors import ControlPlaneError

ACTOR = "cli"
PROVIDERS = ChannelProvider.values


class Command(BaseCommand):
    help = "Connect chat channels (Slack, GitHub, Meta, Twilio), map chat users to principals."
    stealth_options = ("stdin",)  # tests hand the secrets in as a stream

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        connect = sub.add_parser("connect", help="connect; secrets as KEY=VALUE lines on stdin")
        connect.add_argument("provider", choices=PROVIDERS)
        connect.add_argument("name")
        connect.add_argument("--tenant", required=True)
        connect.add_argument("--channel", default="", help="where notifications go (Slack channel, number)")
        listing = sub.add_parser("list", help="connections, their secrets' names and URLs")
        listing.add_argument("--tenant")
        rotate = sub.add_parser("rotate-secret", help="replace secrets (KEY=VALUE on stdin); re-encrypt")
        rotate.add_argument("provider", choices=PROVIDERS)
        rotate.add_argument("name")
        rotate.add_argument("--tenant", required=True)
        disconnect = sub.add_parser("disconnect", help="forget the secrets; refuse every delivery")
        disconnect.add_argument("provider", choices=PROVIDERS)
        disconnect.add_argument("name")
        disconnect.add_argument("--tenant", required=True)
        mapping = sub.add_parser("map-user", help="map a provider user id to a human principal")
        mapping.add_argument("provider", choices=PROVIDERS)
        mapping.add_argument("user_id")
        mapping.add_argument("principal", help="the principal's name in the tenant")
        mapping.add_argument("--tenant", required=True)
        unmap = sub.add_parser("unmap-user", help="remove a mapping")
        unmap.add_argument("provider", choices=PROVIDERS)
        unmap.add_argument("user_id")
        unmap.add_argument("--tenant", required=True)
        notify = sub.add_parser("notify", help="post an approval request to the connection's channel")
        notify.add_argument("provider", choices=PROVIDERS)
        notify.add_argument("name")
        notify.add_argument("approval", help="the approval request's id")
        notify.add_argument("--tenant", required=True)
        notify.add_argument("--to", default="", help="instead of the connection's channel")
        link = sub.add_parser("link", help="link your chat identity: a code is sent to it, type it back")
        link.add_argument("provider", choices=PROVIDERS)
        link.add_argument("name", help="the connection's name")
        link.add_argument("user_id", help="your Slack user id or WhatsApp number")
        add_token_argument(link)
        unlink = sub.add_parser("unlink", help="revoke a linked chat identity (yours, or any as an admin)")
        unlink.add_argument("provider", choices=PROVIDERS)
        unlink.add_argument("user_id")
        add_token_argument(unlink)

    def handle(self, *args: Any, **options: Any) -> None:
        self._stdin = options.get("stdin") or sys.stdin
        try:
            getattr(self, "_" + options["action"].replace("-", "_"))(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _read_secrets(self) -> dict[str, str]:
        stream = self._stdin
        return {} if stream is None or stream.isatty() else secrets_parse(stream.read())

    def _connection(self, options: dict[str, Any]) -> ChannelConnection:
        tenant = tenant_get(slug=options["tenant"])
        return channel_connection_get(tenant=tenant, provider=options["provider"], name=options["name"])

    def _print_urls(self, connection: ChannelConnection) -> None:
        for webhook in connection_webhook_urls(connection=connection):
            self.stdout.write(f"  {webhook.adapter}: {webhook.url}")

    def _connect(self, options: dict[str, Any]) -> None:
        connection = channel_connect(
            tenant=tenant_get(slug=options["tenant"]),
            provider=options["provider"],
            name=options["name"],
            secret_values=self._read_secrets(),
            actor=ACTOR,
            channel=options["channel"],
        )
        names = ", ".join(connection.secret_names) or "none: every delivery is refused until set"
        self.stdout.write(f"connected {connection.ref} (secrets: {names})")
        self._print_urls(connection)

    def _list(self, options: dict[str, Any]) -> None:
        connections = ChannelConnection.objects.select_related("tenant").order_by("tenant__slug", "provider")
        if options["tenant"]:
            connections = connections.filter(tenant__slug=options["tenant"])
        for connection in connections:
            state = "disconnected" if connection.disconnected_at else "connected"
            secrets = ",".join(connection.secret_names) or "-"
            self.stdout.write(f"{connection.ref} {state} key={connection.key} secrets={secrets}")
            self._print_urls(connection)

    def _rotate_secret(self, options: dict[str, Any]) -> None:
        connection = channel_secrets_rotate(
            connection=self._connection(options), secret_values=self._read_secrets(), actor=ACTOR
        )
        self.stdout.write(f"rotated {connection.ref} (secrets: {', '.join(connection.secret_names)})")

    def _disconnect(self, options: dict[str, Any]) -> None:
        connection = channel_disconnect(connection=self._connection(options), actor=ACTOR)
        self.stdout.write(f"disconnected {connection.ref}")

    def _map_user(self, options: dict[str, Any]) -> None:
        tenant = tenant_get(slug=options["tenant"])
        identity: ChannelIdentity = channel_identity_map(
            tenant=tenant,
            provider=options["provider"],
            external_id=options["user_id"],
            principal=principal_get(tenant=tenant, name=options["principal"]),
            actor=ACTOR,
        )
        self.stdout.write(f"mapped {identity}")

    def _unmap_user(self, options: dict[str, Any]) -> None:
        tenant = tenant_get(slug=options["tenant"])
        channel_identity_unmap(
            tenant=tenant, provider=options["provider"], external_id=options["user_id"], actor=ACTOR
        )
        self.stdout.write(f"unmapped {options['provider']}:{options['user_id']}")

    def _notify(self, options: dict[str, Any]) -> None:
        connection = self._connection(options)
        approval = ApprovalRequest.objects.filter(tenant=connection.tenant, pk=options["approval"]).first()
        if approval is None:
            raise ControlPlaneError("APPROVAL_NOT_FOUND", f"no approval {options['approval']}")
        message_id = channel_approval_notify(
            connection=connection, approval=approval, to=options["to"]
        ).provider_message_id
        self.stdout.write(f"posted approval {approval.id[:12]} to {connection.ref} (message {message_id})")

    def _link(self, options: dict[str, Any]) -> None:
        person = cli_principal(options, capability="channels.link")
        connection = channel_connection_get(
            tenant=person.tenant, provider=options["provider"], name=options["name"]
        )
        started = channel_link_start(connection=connection, principal=person, external_id=options["user_id"])
        self.stdout.write(
            f"a code was sent to {options['provider']}:{started.link.external_id}; reply there with "
            f"`link <code>` before {started.link.expires_at:%H:%M} UTC"
        )

    def _unlink(self, options: dict[str, Any]) -> None:
        person = cli_principal(options, capability="channels.link")
        identity = ChannelIdentity.objects.filter(
            tenant=person.tenant, provider=options["provider"], external_id=options["user_id"]
        ).first()
        if identity is None:
            raise ControlPlaneError("NOT_FOUND", "no such linked identity of yours")
        channel_link_revoke(identity=identity, actor=person)
        self.stdout.write(f"revoked {options['provider']}:{options['user_id']}")
