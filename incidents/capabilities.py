"""The capabilities of signals, detection, incidents and silences.

Registered from the app's `AppConfig.ready()`.
"""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "signals.ingest": "Send alert signals (generic JSON, Alertmanager, Grafana, signal CloudEvents).",
    "incidents.read": "See signals, detection rules, evidence, incidents, silences and timelines.",
    "incidents.manage": "Acknowledge, mitigate, resolve, close and reopen incidents; raise their severity.",
    "detection.manage": "Create new versions of detection rules.",
    "silences.manage": "Create and expire silences (high and critical ones need approval).",
}
