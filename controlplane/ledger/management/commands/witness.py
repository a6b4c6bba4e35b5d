"""`manage.py witness verify | sync | show`: the witness log outside the database, checked alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.checkpoints import witness_sync
from controlplane.ledger.treehead import LEDGER_NAME
from controlplane.ledger.trust import trusted_keys_load
from controlplane.ledger.witness import witness_default, witness_dir, witness_log_verify


class Command(BaseCommand):
    help = "Check the witness log alone, or have the witness cosign the newest checkpoint now."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser(
            "verify", help="check every record's cosignature, order and consistency proof (exit 1 on a break)"
        )
        verify.add_argument(
            "--log", help="the log file (default: CONTROLPLANE_WITNESS_DIR/controlplane.jsonl)"
        )
        verify.add_argument(
            "--trusted-keys",
            help="pinned keys: the witness key from this file, and every ledger signature checked against it",
        )
        verify.add_argument("--json", action="store_true", help="print the result as JSON")
        sub.add_parser(
            "sync", help="have the witness cosign the newest checkpoint (normally after each commit)"
        )
        sub.add_parser("show", help="the witness's key id and public key, and its last record")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _verify(self, options: dict[str, Any]) -> None:
        path = Path(options["log"]) if options["log"] else witness_dir() / f"{LEDGER_NAME}.jsonl"
        ledger_keys = None
        if options["trusted_keys"]:
            trusted = trusted_keys_load(options["trusted_keys"])
            if len(trusted.witness_keys) != 1:
                raise ControlPlaneError(
                    "LEDGER_KEY_UNTRUSTED", "the trusted-keys file must pin one witness key"
                )
            public_key = next(iter(trusted.witness_keys.values()))
            ledger_keys = {k.key_id: k.public_key for k in trusted.ledger_keys.values()}
        else:
            public_key = witness_default().public_key
        result = witness_log_verify(path, public_key, ledger_keys=ledger_keys)
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
        elif result.ok:
            last = result.last
            self.stdout.write(
                f"OK {result.records} witness records in {path}; last seq "
                f"{last['seq'] if last else None} hash {last['head_hash'] if last else None}"
            )
        else:
            failure = result.failure
            self.stderr.write(f"FAILED at seq {failure.seq}: {failure.code}: {failure.detail}")
        if not result.ok:
            sys.exit(1)

    def _sync(self, options: dict[str, Any]) -> None:
        record = witness_sync()
        if record is None:
            self.stdout.write("no checkpoint with a Merkle root yet: nothing to cosign")
        else:
            self.stdout.write(
                f"witness holds seq {record['seq']} root {record['root']} (record {record['index']})"
            )

    def _show(self, options: dict[str, Any]) -> None:
        witness = witness_default()
        last = witness.last(LEDGER_NAME)
        self.stdout.write(f"witness {witness.key_id} public_key={witness.public_key}")
        self.stdout.write(f"log {witness.log_path(LEDGER_NAME)}: last seq {last['seq'] if last else None}")
