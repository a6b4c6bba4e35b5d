"""`manage.py ledger verify | checkpoint | export | trusted-keys | receipt | verify-receipt`: prove the chain
has not been rewritten, to the operator and to an auditor who pinned its keys."""

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
from controlplane.ledger.models import Checkpoint
from controlplane.ledger.receipts import receipt_verify
from controlplane.ledger.selectors import event_receipt
from controlplane.ledger.trust import (
    bundle_extends,
    bundle_verify_pinned,
    trusted_keys_export,
    trusted_keys_load,
)
from controlplane.ledger.verify import VerifyResult, verification_record

INTERNAL_ONLY = (
    "only internal consistency was checked: the bundle carries its own public keys, so anyone could have "
    "re-signed it; pass --trusted-keys KEYS.json to verify against keys you pinned"
)


class Command(BaseCommand):
    help = "Verify the ledger chain, make a signed checkpoint, or export a self-verifying bundle."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser(
            "verify", help="check every link, hash and signature (exit 1 on the first break)"
        )
        verify.add_argument("--bundle", help="verify an exported bundle file offline instead of the database")
        verify.add_argument(
            "--trusted-keys",
            help="with --bundle: verify only against these pinned keys (ledger trusted-keys)",
        )
        verify.add_argument("--extends", help="with --bundle: prove the bundle extends this older bundle")
        verify.add_argument(
            "--min-witnesses",
            type=int,
            default=None,
            help="pinned witness cosignatures required on the tree head",
        )
        verify.add_argument(
            "--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)"
        )
        verify.add_argument("--json", action="store_true", help="print the result as JSON")
        sub.add_parser("checkpoint", help="sign the chain head now")
        export = sub.add_parser("export", help="write events, a checkpoint and public keys to one file")
        export.add_argument("--from", dest="first", type=int, default=1)
        export.add_argument("--to", dest="last", type=int, default=None)
        export.add_argument("--output", "-o", required=True, help="file to write ('-' for stdout)")
        keys = sub.add_parser(
            "trusted-keys", help="export the ledger and witness public keys an auditor pins"
        )
        keys.add_argument("--output", "-o", required=True, help="file to write ('-' for stdout)")
        receipt = sub.add_parser("receipt", help="write a self-contained receipt of one event")
        receipt.add_argument("seq", type=int)
        receipt.add_argument(
            "--checkpoint", type=int, default=None, help="the tree head's seq (default: newest)"
        )
        receipt.add_argument("--output", "-o", required=True, help="file to write ('-' for stdout)")
        check = sub.add_parser("verify-receipt", help="check a receipt against pinned keys, with no database")
        check.add_argument("file")
        check.add_argument("--trusted-keys", required=True, help="the pinned keys (ledger trusted-keys)")
        check.add_argument("--min-witnesses", type=int, default=None)
        check.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["action"].replace("-", "_"))(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _verify(self, options: dict[str, Any]) -> None:
        if not options["bundle"]:
            if options["trusted_keys"] or options["extends"]:
                raise CommandError("--trusted-keys and --extends go with --bundle")
            result, _ = verification_record(workers=options["workers"])
            self._report(result, as_json=options["json"])
            return
        bundle = _read_json(options["bundle"], "LEDGER_BUNDLE_MALFORMED")
        trusted = trusted_keys_load(options["trusted_keys"]) if options["trusted_keys"] else None
        if options["extends"]:
            old = _read_json(options["extends"], "LEDGER_BUNDLE_MALFORMED")
            extends = bundle_extends(old, bundle, trusted=trusted)
            if not trusted:
                self.stderr.write(f"note: {INTERNAL_ONLY}")
            if options["json"]:
                self.stdout.write(json.dumps({**extends.as_dict(), "pinned": trusted is not None}))
            elif extends.ok:
                self.stdout.write(
                    f"OK the bundle extends the older one through seq {extends.through_seq} "
                    f"({extends.method})"
                )
            else:
                failure = extends.failure
                self.stderr.write(f"FAILED at seq {failure.seq}: {failure.code}: {failure.detail}")
            if not extends.ok:
                sys.exit(1)
            return
        if trusted:
            min_witnesses = options["min_witnesses"]
            if min_witnesses is None:
                min_witnesses = 1 if trusted.witness_keys and "tree_head" in bundle else 0
            result = bundle_verify_pinned(bundle, trusted, min_witnesses=min_witnesses)
        else:
            result = bundle_verify(bundle=bundle)
            result.notes.append(INTERNAL_ONLY)
        self._report(result, as_json=options["json"])

    def _report(self, result: VerifyResult, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(result.as_dict()))
        elif result.ok:
            self.stdout.write(
                f"OK {result.count} events verified, {result.checkpoints_checked} checkpoints; "
                f"head seq {result.head_seq} hash {result.head_hash}"
            )
            for note in result.notes:
                self.stdout.write(f"note: {note}")
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

    def _trusted_keys(self, options: dict[str, Any]) -> None:
        from controlplane.ledger.witness import witness_default

        document = trusted_keys_export(witness_keys=[witness_default().public_key])
        _write(self, options["output"], document)
        if options["output"] != "-":
            self.stdout.write(
                f"{len(document['ledger_keys'])} ledger keys and {len(document['witness_keys'])} witness key "
                f"written to {options['output']}: pin this file; update it only from a signed key event"
            )

    def _receipt(self, options: dict[str, Any]) -> None:
        if (
            options["checkpoint"] is None
            and not Checkpoint.objects.filter(seq__gte=options["seq"]).exclude(root="").exists()
        ):
            checkpoint_create(actor="cli")  # the witness cosigns it as the command's transaction commits
        receipt = event_receipt(seq=options["seq"], checkpoint_seq=options["checkpoint"])
        _write(self, options["output"], receipt)
        if options["output"] != "-":
            head = receipt["tree_head"]
            self.stdout.write(
                f"receipt of seq {receipt['seq']} in the tree of size {head['tree_size']} "
                f"({len(receipt['inclusion_proof'])} proof nodes, "
                f"{len(head['witnesses'])} witness cosignatures) "
                f"written to {options['output']}"
            )

    def _verify_receipt(self, options: dict[str, Any]) -> None:
        receipt = _read_json(options["file"], "RECEIPT_INVALID")
        trusted = trusted_keys_load(options["trusted_keys"])
        result = receipt_verify(receipt, trusted, min_witnesses=options["min_witnesses"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
        elif result.ok:
            self.stdout.write(f"OK receipt of seq {result.seq} verifies against the pinned keys")
            for note in result.notes:
                self.stdout.write(f"note: {note}")
        else:
            failure = result.failure
            self.stderr.write(f"FAILED at seq {failure.seq}: {failure.code}: {failure.detail}")
        if not result.ok:
            sys.exit(1)


def _read_json(path: str, code: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ControlPlaneError(code, str(exc)) from exc


def _write(command: BaseCommand, output: str, document: Any) -> None:
    text = json.dumps(document, indent=1, sort_keys=True)
    if output == "-":
        command.stdout.write(text)
    else:
        Path(output).write_text(text)
