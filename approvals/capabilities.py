"""The capabilities of approval requests. Registered from the app's `AppConfig.ready()`."""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "approvals.read": "See approval requests and their decisions.",
    "approvals.decide": "Approve or reject approval requests.",
}
