"""The shape every replay shares, and the registry of replays.

`manage.py replay` rebuilds state from the ledger alone (runtime executions, incidents, ...) and compares
it with what the projection tables say and with what the recorded rules decide when run again. Each domain
registers a `Replayer` from its `AppConfig.ready()` and returns a `ReplayReport`; the command prints the
differences and exits 1 when there is any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Difference:
    """One disagreement: `subject` (e.g. `execution/<id>`), the field, the recorded and the rebuilt value."""

    subject: str
    field: str
    recorded: Any
    rebuilt: Any
    seq: int | None = None  # the ledger event the rebuilt value comes from, when there is one

    def __str__(self) -> str:
        where = f" (seq {self.seq})" if self.seq is not None else ""
        return f"{self.subject} {self.field}: recorded {self.recorded!r}, rebuilt {self.rebuilt!r}{where}"


@dataclass
class ReplayReport:
    """What one replay checked (`checked` counts subjects, e.g. executions) and what differed."""

    domain: str
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def differ(
        self, subject: str, field_name: str, recorded: Any, rebuilt: Any, seq: int | None = None
    ) -> None:
        if recorded != rebuilt:
            self.differences.append(Difference(subject, field_name, recorded, rebuilt, seq))


# --- the registry of replayers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Replayer:
    """One domain's replay, as `manage.py replay` offers it.

    `verify(subject_id)` rebuilds the domain from the ledger and returns its report (`subject_id` None:
    every subject). It is chosen by `--<subject> ID` (one subject) or `--<every>` (all of them); the
    `default` replayer also answers a bare `--verify`. `simulate(name=, version=, subject_id=)`, when
    given, is the what-if under another policy profile (`--against-profile NAME [--version N]`); it
    returns an object with `as_dict()` and `lines()`.
    """

    name: str
    verify: Callable[[str | None], ReplayReport]
    subject: str
    every: str
    default: bool = False
    simulate: Callable[..., Any] | None = None


_REPLAYERS: dict[str, Replayer] = {}


def register_replayer(replayer: Replayer) -> None:
    """Offer a domain's replay to `manage.py replay`. Registering a name twice differently is a bug."""
    existing = _REPLAYERS.get(replayer.name)
    if existing is not None and existing != replayer:
        raise ValueError(f"replayer {replayer.name!r} is already registered")
    _REPLAYERS[replayer.name] = replayer


def unregister_replayer(name: str) -> Replayer | None:
    """Take a replayer out (tests, and builds that drop a domain)."""
    return _REPLAYERS.pop(name, None)


def replayers() -> list[Replayer]:
    return [_REPLAYERS[name] for name in sorted(_REPLAYERS)]
