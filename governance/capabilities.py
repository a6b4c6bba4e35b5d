"""The governance app's capabilities. Registered from the app's `AppConfig.ready()`."""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "governance.read": "See the mode matrix, validation and preflight results and enforcement counters.",
    "governance.preflight": "Run a governance preflight: a replay under a candidate profile.",
    "telemetry.report": "Report model-call telemetry for the principal's own traces (agents).",
    # Changing the rollback toggle is a platform act: `platform.governance.manage`.
}
PLATFORM_GOVERNANCE = "platform.governance.manage"
