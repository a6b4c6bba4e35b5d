"""Test helpers for the ledger: append a few events, and tamper with stored rows behind the model's back."""

from __future__ import annotations

from django.db import connection

from controlplane.ledger.services import ledger_append


def append_events(n: int, **kwargs) -> list:
    return [
        ledger_append(type="controlplane.test.happened", subject=f"test/{i}", data={"i": i}, **kwargs)
        for i in range(n)
    ]


def tamper(sql: str, params: list) -> None:
    """Run raw SQL against the ledger with the append-only trigger off (inside the test's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE ledger_ledgerevent DISABLE TRIGGER ledger_ledgerevent_no_update_delete")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE ledger_ledgerevent ENABLE TRIGGER ledger_ledgerevent_no_update_delete")
