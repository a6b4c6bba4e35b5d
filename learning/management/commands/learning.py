"""`manage.py learning calibrate | report | findings | proposals | feedback | decide`.

`calibrate` is the offline run the nightly beat does (an installation act, ledgered as the shell user);
`--dry-run` computes and prints the report's hash and writes nothing. `feedback` and `decide` act for a
person: they authenticate with an API token (`CONTROLPLANE_TOKEN` or `--token-file`), as the API does.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity.cli import add_token_argument, cli_actor, cli_principal
from controlplane.identity.models import Tenant
from controlplane.kernel.errors import ControlPlaneError
from learning import services
from learning.models import CalibrationReport, Finding, Proposal


class Command(BaseCommand):
    help = "The learning loop: calibrate, read its reports, findings and proposals, label outcomes."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        calibrate = sub.add_parser("calibrate", help="compute (and, unless --dry-run, record) the report")
        calibrate.add_argument("--tenant", required=True)
        calibrate.add_argument("--dry-run", action="store_true")
        report = sub.add_parser("report", help="print the tenant's latest recorded report as JSON")
        report.add_argument("--tenant", required=True)
        findings = sub.add_parser("findings", help="list the tenant's anti-gaming findings")
        findings.add_argument("--tenant", required=True)
        findings.add_argument("--status", choices=("open", "confirmed", "dismissed"))
        proposals = sub.add_parser("proposals", help="list the tenant's proposals")
        proposals.add_argument("--tenant", required=True)
        feedback = sub.add_parser("feedback", help="label an outcome (as the person whose token this is)")
        feedback.add_argument("outcome")
        feedback.add_argument("label")
        feedback.add_argument("--reason", required=True)
        add_token_argument(feedback)
        decide = sub.add_parser("decide", help="confirm or dismiss a finding (as the token's person)")
        decide.add_argument("fingerprint")
        decide.add_argument("status", choices=("confirmed", "dismissed"))
        decide.add_argument("--reason", required=True)
        add_token_argument(decide)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _tenant(self, options: dict[str, Any]) -> Tenant:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise ControlPlaneError("TENANT_NOT_FOUND", f"no tenant {options['tenant']!r}")
        return tenant

    def _calibrate(self, options: dict[str, Any]) -> None:
        content, digest = services.learning_calibrate(
            tenant=self._tenant(options), actor=cli_actor(), dry_run=options["dry_run"]
        )
        overall = content["incident_model"]["overall"]
        eligible = sum(c["eligible"] for c in content["autonomy"])
        verb = "would record" if options["dry_run"] else "recorded"
        self.stdout.write(
            f"{verb} report {digest} until seq {content['until_seq']}: {overall['labelled']} labelled "
            f"incidents (brier {overall['brier']}, ece {overall['ece']}), {len(content['agents'])} agent "
            f"pairs, {eligible} eligible for autonomy"
        )

    def _report(self, options: dict[str, Any]) -> None:
        report = CalibrationReport.objects.filter(tenant=self._tenant(options)).first()
        if report is None:
            raise ControlPlaneError("NOT_FOUND", "no report recorded yet: run `learning calibrate`")
        self.stdout.write(json.dumps({"content_hash": report.content_hash, **report.content}, indent=2))

    def _findings(self, options: dict[str, Any]) -> None:
        rows = Finding.objects.filter(tenant=self._tenant(options))
        if options["status"]:
            rows = rows.filter(status=options["status"])
        for f in rows:
            self.stdout.write(
                f"{f.fingerprint[:16]} {f.code:<36} {f.severity:<6} {f.status:<9} {f.principal}"
            )

    def _proposals(self, options: dict[str, Any]) -> None:
        for p in Proposal.objects.filter(tenant=self._tenant(options)):
            self.stdout.write(f"{p.pk} {p.kind} {p.key} ({p.content['tier']}) {p.status}")

    def _feedback(self, options: dict[str, Any]) -> None:
        reviewer = cli_principal(options, capability=services.REVIEW_CAPABILITY)
        services.label_record(
            reviewer=reviewer, outcome=options["outcome"], label=options["label"], reason=options["reason"]
        )
        self.stdout.write(f"labelled {options['outcome'][:16]} {options['label']} as {reviewer.ref}")

    def _decide(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability=services.REVIEW_CAPABILITY)
        finding = Finding.objects.filter(fingerprint__startswith=options["fingerprint"], tenant=actor.tenant)
        if finding.count() != 1:
            raise ControlPlaneError("NOT_FOUND", "no single finding in your tenant starts with that")
        decided = services.finding_decide(
            actor=actor,
            fingerprint=finding.get().fingerprint,
            status=options["status"],
            reason=options["reason"],
        )
        self.stdout.write(f"{decided.code} {decided.fingerprint[:16]} {decided.status} by {actor.ref}")
