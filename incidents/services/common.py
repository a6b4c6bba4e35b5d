"""What every incidents service shares: actor checks, the clock-free time format, and the
seq of projection rows written before their (deferred) event is on the chain."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db import connection, models

from controlplane.identity.models import Principal, PrincipalKind
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.batch import DeferredEvent
from controlplane.ledger.models import LedgerEvent
from incidents.normalise import format_time

__all__ = [
    "actor_ref",
    "format_time",
    "require_human",
    "require_reason",
    "seq_of",
    "seqs_settle",
]


def actor_ref(actor: Principal | str | None) -> str:
    if actor is None:
        return "system"
    return actor if isinstance(actor, str) else actor.ref


def seq_of(event: LedgerEvent | DeferredEvent) -> int:
    """The event's seq; for an event still deferred (inside `ledger_deferred()`), a provisional stand-in.

    The stand-in is negative (never a real seq) and derived from the event's random id, so rows of
    concurrent transactions never meet on a unique index; `seqs_settle` replaces it before the commit.
    """
    if isinstance(event, DeferredEvent) and not event.appended:
        return -int(event.id[:15], 16) - 1
    return event.seq


def is_provisional(seq: int) -> bool:
    return seq < 0


def seqs_settle(rows: Iterable[tuple[models.Model, LedgerEvent | DeferredEvent]]) -> None:
    """After the `ledger_deferred()` block: give each row written with a provisional seq its event's seq.

    The chain's lock is held from the block's end to the commit, so on PostgreSQL this is one statement
    whatever the number of rows and models (an UPDATE per model, joined in one WITH); elsewhere (SQLite,
    the quickstart) one UPDATE per row.
    """
    changed: dict[type[models.Model], list[models.Model]] = defaultdict(list)
    for row, event in rows:
        if row.seq != event.seq:
            row.seq = event.seq
            changed[type(row)].append(row)
    if not changed:
        return
    if connection.vendor != "postgresql":
        for model, instances in changed.items():
            for row in instances:
                model.objects.filter(pk=row.pk).update(seq=row.seq)
        return
    updates, params = [], []
    for model, instances in changed.items():
        table, pk = connection.ops.quote_name(model._meta.db_table), model._meta.pk.column
        values = ", ".join(["(%s, %s::bigint)"] * len(instances))
        updates.append(
            f"UPDATE {table} AS t SET seq = v.seq FROM (VALUES {values}) AS v(pk, seq) "  # noqa: S608
            f"WHERE t.{connection.ops.quote_name(pk)} = v.pk"
        )
        params.extend(value for row in instances for value in (row.pk, row.seq))
    *first, last = updates
    sql = ("WITH " + ", ".join(f"u{i} AS ({u})" for i, u in enumerate(first)) + " " if first else "") + last
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def require_human(actor: Principal, *, tenant_id: int, what: str) -> None:
    """People act on incidents and silences; agents, services and tools only send signals."""
    if actor.tenant_id != tenant_id:
        raise ControlPlaneError("NOT_FOUND", f"no such {what} in your tenant")
    if actor.kind != PrincipalKind.HUMAN:
        raise ControlPlaneError(
            "INCIDENT_ACTOR_NOT_HUMAN", f"{actor.ref} is a {actor.kind}; only people {what}"
        )


def require_reason(reason: str | None, what: str) -> str:
    if not reason or not reason.strip():
        raise ControlPlaneError("INCIDENT_REASON_REQUIRED", f"{what} needs a reason")
    return reason.strip()
