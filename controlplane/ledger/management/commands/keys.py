"""`manage.py keys generate | rotate | revoke | list`: the ledger's Ed25519 signing keys."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.shell import cli_actor
from controlplane.ledger.keys import key_generate, key_revoke, key_rotate
from controlplane.ledger.models import SigningKey


class Command(BaseCommand):
    help = "Manage ledger signing keys (private keys stay in CONTROLPLANE_KEY_DIR or the environment)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("generate", help="new key: active if none is, otherwise standby")
        rotate = sub.add_parser("rotate", help="retire the active key and sign with a new (or standby) key")
        rotate.add_argument("--to", dest="to_key_id", help="activate this standby key instead of a new one")
        rotate.add_argument("--reason", default="scheduled rotation")
        revoke = sub.add_parser("revoke", help="mark a key compromised; its events fail verification")
        revoke.add_argument("key_id")
        revoke.add_argument("--reason", required=True)
        sub.add_parser("list", help="the trust store")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            action = options["action"]
            if action == "generate":
                key = key_generate(actor=cli_actor())
                self.stdout.write(f"{key.key_id} {key.status} public_key={key.public_key}")
            elif action == "rotate":
                key = key_rotate(actor=cli_actor(), to_key_id=options["to_key_id"], reason=options["reason"])
                self.stdout.write(f"{key.key_id} active from seq {key.valid_from_seq}")
            elif action == "revoke":
                key = key_revoke(key_id=options["key_id"], reason=options["reason"], actor=cli_actor())
                self.stdout.write(f"{key.key_id} revoked: {options['reason']}")
            else:
                for key in SigningKey.objects.all():
                    until = key.valid_until_seq if key.valid_until_seq is not None else "-"
                    start = key.valid_from_seq if key.valid_from_seq is not None else "-"
                    self.stdout.write(f"{key.key_id}\t{key.status}\tseq {start}..{until}\t{key.public_key}")
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
