"""The runtime's capabilities: intents, executions and the kill switch.

Registered from the app's `AppConfig.ready()`.
"""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "intents.submit": "Submit plan drafts (intents) through POST /api/v1/intents/.",
    "executions.read": "See executions, their steps, verdicts, outcomes and traces.",
    "executions.cancel": "Cancel running executions.",
    "killswitch.manage": "Engage and release the kill switch.",
}
