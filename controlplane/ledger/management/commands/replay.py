"""`manage.py replay`: prove the projections and decisions follow from the ledger (see docs/replay.md).

The replays come from the registry (`controlplane.kernel.replay.register_replayer`), filled by each
domain app. With the apps of this build:

- `replay --verify [--execution ID | --all] [--json]`: the runtime; exit 1 on a difference
- `replay --incident ID | --incidents [--json]`: incidents
- `replay --against-profile NAME [--version N] [--execution ID] [--json]`: policy simulation
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.replay import Replayer, ReplayReport, replayers


def _refusal(code: str, detail: str, returncode: int = 1) -> CommandError:
    return CommandError(f"{code}: {detail}", returncode=returncode)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _dest(flag: str) -> str:
    return flag.replace("-", "_")


def _domains() -> dict[str, tuple[str, str]]:
    """Each registered replay's (subject flag, every flag): `runtime` -> ("execution", "all")."""
    return {r.name: (r.subject, r.every) for r in replayers()}


class Command(BaseCommand):
    help = (
        "Replay the ledger through the replays the apps registered: --verify rebuilds the default domain "
        "(the runtime's executions, steps and approvals) and re-runs its decisions with the recorded rules "
        "(exit 1 on any difference); --<subject> ID or --<every> picks another domain (--incident(s)); "
        "--against-profile simulates another policy profile over the recorded steps."
    )

    def add_base_argument(self, parser: CommandParser, *args: Any, **kwargs: Any) -> None:
        if "--version" not in args:  # --version selects a profile version here, not Django's
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--verify", action="store_true", help="rebuild and compare (the default mode)")
        for name, (subject, every) in sorted(_domains().items()):
            parser.add_argument(f"--{subject}", metavar="ID", help=f"{name}: only this {subject}")
            parser.add_argument(f"--{every}", action="store_true", help=f"{name}: every subject")
        parser.add_argument("--against-profile", metavar="NAME", help="simulate this policy profile")
        parser.add_argument(
            "--version", dest="profile_version", type=int, help="profile version (default: the newest)"
        )
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        domains = _domains()
        chosen = [
            name
            for name, (subject, every) in sorted(domains.items())
            if options[_dest(subject)] or options[_dest(every)]
        ]
        simulate = options["against_profile"] is not None
        self._refuse_bad_combinations(options, domains, chosen, simulate)
        replayer = self._replayer(chosen[0] if chosen else None, simulate=simulate)
        subject_id = options[_dest(replayer.subject)]
        try:
            if simulate:
                self._simulate(replayer, options, subject_id)
                return
            report = replayer.verify(subject_id)
        except ControlPlaneError as exc:
            raise _refusal(exc.code, exc.detail) from exc
        self._report(report, as_json=options["json"])

    def _refuse_bad_combinations(
        self, options: dict[str, Any], domains: dict[str, tuple[str, str]], chosen: list[str], simulate: bool
    ) -> None:
        problems = [
            (
                options[_dest(subject)] and options[_dest(every)],
                f"--{subject} and --{every} exclude each other",
            )
            for subject, every in domains.values()
        ]
        problems += [
            (len(chosen) > 1, f"one replay at a time: {', '.join(chosen)}"),
            (
                simulate
                and (options["verify"] or any(options[_dest(every)] for _, every in domains.values())),
                "--against-profile is alone",
            ),
            (options["profile_version"] is not None and not simulate, "--version needs --against-profile"),
            (
                not (options["verify"] or chosen or simulate),
                "choose --verify, "
                + ", ".join(f"--{subject}" for subject, _ in domains.values())
                + " or --against-profile",
            ),
        ]
        for wrong, detail in problems:
            if wrong:
                raise _refusal("VALIDATION_FAILED", detail)

    def _replayer(self, name: str | None, *, simulate: bool) -> Replayer:
        """The replay asked for by its flags, or the default one (a bare --verify)."""
        found = next((r for r in replayers() if r.name == name or (name is None and r.default)), None)
        if found is None:
            raise _refusal("REPLAY_UNAVAILABLE", "no default replay is registered in this build")
        if simulate and found.simulate is None:
            raise _refusal("VALIDATION_FAILED", f"{name} replay has no --against-profile simulation")
        return found

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

    def _simulate(self, replayer: Replayer, options: dict[str, Any], subject_id: str | None) -> None:
        simulation = replayer.simulate(
            name=options["against_profile"], version=options["profile_version"], subject_id=subject_id
        )
        if options["json"]:
            self.stdout.write(json.dumps(_jsonable(simulation.as_dict()), indent=2))
            return
        for line in simulation.lines():
            self.stdout.write(line)
