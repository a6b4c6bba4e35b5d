"""The policy app's capabilities. Registered from the app's `AppConfig.ready()`."""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "policy.read": "Read policy profiles and explain verdicts.",
    # Writing profiles is a platform act: `platform.policy.manage` (controlplane/identity/scope.py).
}
