"""`manage.py ledger verify | checkpoint | export`: prove the chain has not been rewritten."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.shell import cli_actor
from controlplane.ledger.bundle import bundle_export, bundle_verify
from controlplane.ledger.checkpoints import checkpoint_create
from controlplane.ledger.verify import VerifyResult, verification_record


class Command(BaseCommand):
    help = "Verify the ledger chain, make a signed checkpoint, or export a self-verifying bundle."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser(
            "verify", help="check every link, hash and signature (exit 1 on the first break)"
        )
        verify.add_argument("--bundle", help="verify an exported bundle file offline instead of the database")
        verify.add_argument(
            "--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)"
        )
        verify.add_argument("--json", action="store_true", help="print the result as JSON")
        sub.add_parser("checkpoint", help="sign the chain head now")
        export = sub.add_parser("export", help="write events, a checkpoint and public keys to one file")
        export.add_argument("--from", dest="first", type=int, default=1)
        export.add_argument("--to", dest="last", type=int, default=None)
        export.add_argument("--output", "-o", required=True, help="file to write ('-' for stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _verify(self, options: dict[str, Any]) -> None:
        if options["bundle"]:
            try:
                bundle = json.loads(Path(options["bundle"]).read_text())
            except (OSError, ValueError) as exc:
                raise ControlPlaneError("LEDGER_BUNDLE_MALFORMED", str(exc)) from exc
            result = bundle_verify(bundle=bundle)
        else:
            result, _ = verification_record(workers=options["workers"])
        self._report(result, as_json=options["json"])

    def _report(self, result: VerifyResult, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(result.as_dict()))
        elif result.ok:
            self.stdout.write(
                f"OK {result.count} events verified, {result.checkpoints_checked} checkpoints; "
                f"head seq {result.head_seq} hash {result.head_hash}"
            )
        else:
            failure = result.failure
            self.stderr.write(f"FAILED at seq {failure.seq}: {failure.code}: {failure.detail}")
            self.stderr.write(f"{result.count} events verified before it")
        if not result.ok:
            sys.exit(1)

    def _checkpoint(self, options: dict[str, Any]) -> None:
        checkpoint = checkpoint_create(actor=cli_actor())
        self.stdout.write(
            f"checkpoint seq {checkpoint.seq} hash {checkpoint.head_hash} key {checkpoint.key_id}"
        )

    def _export(self, options: dict[str, Any]) -> None:
        bundle = bundle_export(first=options["first"], last=options["last"], actor=cli_actor())
        text = json.dumps(bundle, indent=1, sort_keys=True)
        if options["output"] == "-":
            self.stdout.write(text)
            return
        Path(options["output"]).write_text(text)
        self.stdout.write(
            f"exported seq {bundle['range']['from']}..{bundle['range']['to']} "
            f"({len(bundle['events'])} events) to {options['output']}"
        )
