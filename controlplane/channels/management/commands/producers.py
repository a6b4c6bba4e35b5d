"""`manage.py producers create | rotate-key | revoke-key | list`: event producers and their signing keys."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from controlplane.channels import selectors, services
from controlplane.identity.selectors import tenant_get
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.shell import cli_actor


class Command(BaseCommand):
    help = "Register event producers and manage their Standard Webhooks signing keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="register a producer; prints its token and secret once")
        create.add_argument("name")
        create.add_argument("--tenant", required=True, help="tenant slug (created if new)")
        create.add_argument(
            "--ed25519-public-key", help="sign with Ed25519: base64 of the 32-byte public key (no secret)"
        )
        rotate = sub.add_parser("rotate-key", help="add a new key; the old ones stay valid for the overlap")
        rotate.add_argument("name")
        rotate.add_argument("--tenant", required=True)
        rotate.add_argument("--ed25519-public-key", help="the new key is this Ed25519 public key")
        rotate.add_argument(
            "--overlap-seconds",
            type=int,
            default=services.DEFAULT_OVERLAP_SECONDS,
            help="how long the old keys keep verifying (default 86400)",
        )
        revoke = sub.add_parser("revoke-key", help="revoke a key now (compromise)")
        revoke.add_argument("key_id")
        revoke.add_argument("--reason", default="")
        listing = sub.add_parser("list", help="producers with their keys")
        listing.add_argument("--tenant")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["action"].replace("-", "_"))(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _create(self, options: dict[str, Any]) -> None:
        created = services.producer_create(
            tenant=options["tenant"],
            name=options["name"],
            ed25519_public_key=options["ed25519_public_key"],
            actor=cli_actor(),
        )
        producer = created.producer
        self.stdout.write(f"created producer {producer.ref} (principal {producer.principal.ref})")
        self.stdout.write(f"key {created.key_id} ({'hmac' if created.hmac_secret else 'ed25519'})")
        self.stdout.write("API token (shown once):")
        self.stdout.write(created.token_secret)
        if created.hmac_secret:
            self.stdout.write("signing secret (shown once):")
            self.stdout.write(created.hmac_secret)

    def _rotate_key(self, options: dict[str, Any]) -> None:
        producer = services.producer_get(tenant=options["tenant"], name=options["name"])
        rotated = services.producer_key_rotate(
            producer=producer,
            ed25519_public_key=options["ed25519_public_key"],
            overlap_seconds=options["overlap_seconds"],
            actor=cli_actor(),
        )
        self.stdout.write(f"new key {rotated.key.key_id} ({rotated.key.kind}) for {producer.ref}")
        for key in rotated.retired:
            self.stdout.write(f"key {key.key_id} valid until {key.valid_until.isoformat()}")
        if rotated.hmac_secret:
            self.stdout.write("signing secret (shown once):")
            self.stdout.write(rotated.hmac_secret)

    def _revoke_key(self, options: dict[str, Any]) -> None:
        key = services.producer_key_revoke(
            key_id=options["key_id"], reason=options["reason"], actor=cli_actor()
        )
        self.stdout.write(f"revoked key {key.key_id} of {key.producer.ref} at {key.revoked_at.isoformat()}")

    def _list(self, options: dict[str, Any]) -> None:
        tenant = tenant_get(slug=options["tenant"]) if options["tenant"] else None
        now = timezone.now()
        for producer in selectors.producer_list(tenant=tenant):
            keys = " ".join(f"{k.key_id}:{k.kind}:{k.status_at(now)}" for k in producer.keys.all()) or "-"
            self.stdout.write(f"{producer.ref}\t{producer.principal.ref}\t{keys}")
