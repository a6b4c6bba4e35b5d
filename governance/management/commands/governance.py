"""`manage.py governance validate [--json] [--offline] | preflight | enforcement | modes`.

`validate` runs every registered check (docs/governance.md) and exits 0 with a summary or 1 with every
finding, its reason code, the object and the JSON pointer; the run is ledgered
(`controlplane.governance.validation.completed`) unless `--offline` (code and settings only, no database:
what `make test` runs before any database is migrated). `enforcement warn|enforce|clear` changes the
rollback toggle for the person whose API token is in `CONTROLPLANE_TOKEN` (or `--token-file`), with
`platform.governance.manage`. `preflight` replays recorded traffic under a candidate profile.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity.cli import add_token_argument, cli_principal
from controlplane.kernel import governance as kernel
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.shell import cli_actor
from governance import services
from governance.capabilities import PLATFORM_GOVERNANCE


class Command(BaseCommand):
    help = "Validate governance (schemas, fallbacks, modes, skills, contracts), preflight, the toggle."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        validate = sub.add_parser("validate", help="run every registered check; exit 1 on any finding")
        validate.add_argument("--json", action="store_true", help="print the result as JSON")
        validate.add_argument(
            "--offline", action="store_true", help="only the checks that need no database; nothing ledgered"
        )
        validate.add_argument(
            "--check", action="append", dest="only", help="run only this check (repeatable)"
        )

        sub.add_parser("modes", help="the mode matrix, the active profile and the toggle")

        enforcement = sub.add_parser("enforcement", help="set the rollback toggle (no redeploy)")
        enforcement.add_argument("mode", choices=("warn", "enforce", "clear"))
        enforcement.add_argument("--reason", required=True)
        add_token_argument(enforcement)

        preflight = sub.add_parser("preflight", help="replay recorded traffic under a candidate profile")
        preflight.add_argument("--profile", required=True)
        preflight.add_argument("--version", type=int)
        preflight.add_argument("--environment", default="prod")
        preflight.add_argument("--since", default="7d", help="how far back: 7d, 24h, 30m")
        preflight.add_argument("--json", action="store_true")
        add_token_argument(preflight)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _validate(self, options: dict[str, Any]) -> None:
        if options["offline"]:
            result = kernel.validate(only=options["only"], offline=True)
        else:
            result = services.governance_validate(actor=cli_actor(), only=options["only"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2, sort_keys=True))
        else:
            for finding in result.findings:
                self.stdout.write(
                    f"{finding.code} {finding.object} {finding.pointer or '/'}: {finding.detail}"
                )
            summary = f"governance validate: {len(result.checks)} check(s) ({', '.join(result.checks)})"
            if result.ok:
                self.stdout.write(f"{summary}: ok, no findings")
            else:
                counts = ", ".join(f"{code} x{count}" for code, count in result.by_code().items())
                self.stdout.write(f"{summary}: {len(result.findings)} finding(s): {counts}")
        if not result.ok:
            sys.exit(1)

    def _modes(self, options: dict[str, Any]) -> None:
        data = services.attestation_data()
        self.stdout.write(json.dumps({**data, "matrix": kernel.mode_matrix()}, indent=2, sort_keys=True))

    def _enforcement(self, options: dict[str, Any]) -> None:
        actor = cli_principal(options, capability=PLATFORM_GOVERNANCE)
        toggle = services.enforcement_set(mode=options["mode"], actor=actor, reason=options["reason"])
        self.stdout.write(f"enforcement toggle: {toggle.mode or 'unset (CONTROLPLANE_ENFORCEMENT decides)'}")

    def _preflight(self, options: dict[str, Any]) -> None:
        from governance.preflight import preflight_run

        actor = cli_principal(options, capability="governance.preflight")
        report = preflight_run(
            name=options["profile"],
            version=options["version"],
            environment=options["environment"],
            since=options["since"],
            actor=actor,
        )
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
        else:
            for line in _preflight_lines(report):
                self.stdout.write(line)
        if not report["ready"]:
            sys.exit(1)


def _preflight_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        f"preflight {report['profile']} ({report['environment']}, since {report['since']}): "
        f"{'READY' if report['ready'] else 'NOT READY'}",
        f"  rejection ratio {report['rejection_ratio_bp'] / 100:.2f}% "
        f"({report['rejections']}/{report['decisions']}; "
        f"at most {report['max_rejection_ratio_bp'] / 100:.2f}%)",
    ]
    lines += [f"  {code}: {count}" for code, count in report["by_code"].items()]
    lines += [f"  tenant {tenant or '(platform)'}: {count}" for tenant, count in report["by_tenant"].items()]
    lines.append(
        f"  governance validate: {'ok' if report['validation_ok'] else ', '.join(report['validation_codes'])}"
    )
    lines.append(f"  rollback toggle exercised: {'yes' if report['rollback_exercised'] else 'no'}")
    lines += [f"  - {reason}" for reason in report["reasons"]]
    return lines
