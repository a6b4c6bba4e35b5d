"""`manage.py replay`: prove the projections and decisions follow from the ledger (see docs/replay.md).

- `replay --verify [--execution ID | --all] [--json]`: rebuild, compare, re-decide; exit 1 on a difference
- `replay --incident ID | --incidents [--json]`: incidents (`incidents.replay.replay_incidents`)
- `replay --against-profile NAME [--version N] [--execution ID] [--json]`: policy simulation
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.replay import ReplayReport
from controlplane.runtime.replay import Simulation, outcome_label, replay_verify, simulate_profile


def _refusal(code: str, detail: str, returncode: int = 1) -> CommandError:
    return CommandError(f"{code}: {detail}", returncode=returncode)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def incident_replay(incident_id: str | None) -> ReplayReport:
    """Call the incidents app's replay; a build without it is refused with REPLAY_UNAVAILABLE."""
    try:
        from incidents.replay import replay_incidents
    except ModuleNotFoundError as exc:
        if exc.name not in ("incidents", "incidents.replay"):
            raise
        raise ControlPlaneError(
            "REPLAY_UNAVAILABLE", "incident replay (incidents.replay.replay_incidents) is not in this build"
        ) from exc
    return replay_incidents(incident_id=incident_id)


class Command(BaseCommand):
    help = (
        "Replay the ledger: --verify rebuilds executions, steps and approvals and re-runs compilation and "
        "policy with the recorded profile (exit 1 on any difference); --incident(s) replays incidents; "
        "--against-profile simulates another policy profile over the recorded steps."
    )

    def add_base_argument(self, parser: CommandParser, *args: Any, **kwargs: Any) -> None:
        if "--version" not in args:  # --version selects a profile version here, not Django's
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--verify", action="store_true", help="rebuild and compare (the default mode)")
        parser.add_argument("--execution", metavar="ID", help="only this execution")
        parser.add_argument("--all", action="store_true", help="every execution, approval and switch")
        parser.add_argument("--incident", metavar="ID", help="replay one incident")
        parser.add_argument("--incidents", action="store_true", help="replay every incident")
        parser.add_argument("--against-profile", metavar="NAME", help="simulate this policy profile")
        parser.add_argument(
            "--version", dest="profile_version", type=int, help="profile version (default: the newest)"
        )
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        incidents = bool(options["incident"] or options["incidents"])
        simulate = options["against_profile"] is not None
        problems = [
            (options["execution"] and options["all"], "--execution and --all exclude each other"),
            (options["incident"] and options["incidents"], "--incident and --incidents exclude each other"),
            (incidents and (options["execution"] or options["all"]), "--incident(s) replays incidents only"),
            (simulate and (options["verify"] or incidents or options["all"]), "--against-profile is alone"),
            (options["profile_version"] is not None and not simulate, "--version needs --against-profile"),
            (
                not (options["verify"] or options["all"] or options["execution"] or incidents or simulate),
                "choose --verify, --incident(s) or --against-profile",
            ),
        ]
        for wrong, detail in problems:
            if wrong:
                raise _refusal("VALIDATION_FAILED", detail)
        try:
            if simulate:
                self._simulate(options)
                return
            if incidents:
                report = incident_replay(options["incident"])
            else:
                report = replay_verify(execution_id=options["execution"])
        except ControlPlaneError as exc:
            raise _refusal(exc.code, exc.detail) from exc
        self._report(report, as_json=options["json"])

    def _report(self, report: ReplayReport, *, as_json: bool) -> None:
        if as_json:
            body = {
                "domain": report.domain,
                "checked": report.checked,
                "ok": report.ok,
                "differences": [
                    {
                        "subject": d.subject,
                        "field": d.field,
                        "recorded": d.recorded,
                        "rebuilt": d.rebuilt,
                        "seq": d.seq,
                    }
                    for d in report.differences
                ],
            }
            self.stdout.write(json.dumps(_jsonable(body), indent=2))
        else:
            for difference in report.differences:
                self.stdout.write(f"DIFF {difference}")
            self.stdout.write(
                f"{report.domain} replay: {report.checked} checked, {len(report.differences)} difference(s)"
            )
        if not report.ok:
            raise _refusal(
                "REPLAY_DIFFERENCE",
                f"{len(report.differences)} difference(s) between the ledger and what was rebuilt",
            )

    def _simulate(self, options: dict[str, Any]) -> None:
        simulation: Simulation = simulate_profile(
            name=options["against_profile"],
            version=options["profile_version"],
            execution_id=options["execution"],
        )
        if options["json"]:
            self.stdout.write(json.dumps(_jsonable(simulation.as_dict()), indent=2))
            return
        profile = simulation.profile
        self.stdout.write(
            f"simulating {profile['name']}@v{profile['version']} ({profile['environment']}, "
            f"{profile['content_hash'][:12]}) over {simulation.executions} execution(s), "
            f"{simulation.steps} step(s): {len(simulation.changes)} verdict(s) would change"
        )
        for change in simulation.changes:
            self.stdout.write(
                f"CHANGE execution/{change.execution}/step/{change.step} {change.action}: "
                f"{outcome_label(change.recorded)} -> {outcome_label(change.simulated)} "
                f"({', '.join(change.simulated['reason_codes'])})"
            )
        for transition, count in sorted(simulation.transitions.items()):
            self.stdout.write(f"TRANSITION {transition}\t{count}")
        self.stdout.write("reason code\trecorded\tsimulated\tin changed verdicts")
        for code, counts in simulation.by_reason_code().items():
            self.stdout.write(
                f"{code}\t{counts['recorded']}\t{counts['simulated']}\t{counts['in_changed_verdicts']}"
            )
        if simulation.skipped:
            self.stdout.write(
                f"skipped {len(simulation.skipped)} execution(s) recorded without a policy context"
            )
