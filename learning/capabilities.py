"""The capabilities of the learning loop. Registered from the app's `AppConfig.ready()`."""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "learning.read": "See outcomes, rewards, findings, calibration reports and proposals.",
    "learning.review": "Label outcomes and decide anti-gaming findings (people only; never your own action).",
    "learning.claim": "Report how one of your own executions went (agents); the anti-gaming checks judge it.",
}
