"""The shape every replay shares: what was checked and each difference between record and rebuild.

`manage.py replay` rebuilds state from the ledger alone (runtime executions, incidents) and compares it
with what the projection tables say and with what the recorded rules decide when run again. Each domain
returns a `ReplayReport`; the command prints the differences and exits 1 when there is any.
"""

from __future__ import annotations

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
