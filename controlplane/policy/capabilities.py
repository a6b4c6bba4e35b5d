"""The policy app's capabilities. Registered from the app's `AppConfig.ready()`."""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "policy.read": "Read policy profiles and explain verdicts.",
    "policy.manage": "Edit and activate policy profiles.",
}
