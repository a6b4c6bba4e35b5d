"""The runtime's replay as `manage.py replay` offers it: `--verify [--execution ID | --all]` and the
policy simulation `--against-profile NAME [--version N] [--execution ID]`. Registered from
`RuntimeConfig.ready()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controlplane.kernel.replay import Replayer, ReplayReport
from controlplane.runtime.replay import Simulation, outcome_label, replay_verify, simulate_profile


def runtime_replay_verify(subject_id: str | None) -> ReplayReport:
    """Rebuild one execution (or every one) from the ledger and re-take its decisions."""
    return replay_verify(execution_id=subject_id)


@dataclass(frozen=True)
class SimulationReport:
    """A simulation as the command prints it: `as_dict()` for --json, `lines()` for people."""

    simulation: Simulation

    def as_dict(self) -> dict[str, Any]:
        return self.simulation.as_dict()

    def lines(self) -> list[str]:
        simulation, profile = self.simulation, self.simulation.profile
        out = [
            f"simulating {profile['name']}@v{profile['version']} ({profile['environment']}, "
            f"{profile['content_hash'][:12]}) over {simulation.executions} execution(s), "
            f"{simulation.steps} step(s): {len(simulation.changes)} verdict(s) would change"
        ]
        out += [
            f"CHANGE execution/{change.execution}/step/{change.step} {change.action}: "
            f"{outcome_label(change.recorded)} -> {outcome_label(change.simulated)} "
            f"({', '.join(change.simulated['reason_codes'])})"
            for change in simulation.changes
        ]
        out += [
            f"TRANSITION {transition}\t{count}"
            for transition, count in sorted(simulation.transitions.items())
        ]
        out.append("reason code\trecorded\tsimulated\tin changed verdicts")
        out += [
            f"{code}\t{counts['recorded']}\t{counts['simulated']}\t{counts['in_changed_verdicts']}"
            for code, counts in simulation.by_reason_code().items()
        ]
        if simulation.skipped:
            out.append(f"skipped {len(simulation.skipped)} execution(s) recorded without a policy context")
        return out


def runtime_replay_simulate(*, name: str, version: int | None, subject_id: str | None) -> SimulationReport:
    """The recorded steps judged again under another policy profile (what would change)."""
    return SimulationReport(simulate_profile(name=name, version=version, execution_id=subject_id))


RUNTIME_REPLAYER = Replayer(
    name="runtime",
    verify=runtime_replay_verify,
    subject="execution",
    every="all",
    default=True,
    simulate=runtime_replay_simulate,
)
