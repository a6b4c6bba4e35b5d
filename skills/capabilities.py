"""The capabilities of the skills registry. Registered from the app's `AppConfig.ready()`."""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "skills.read": "See installed skills, their actions, verification and the publisher trust store.",
    "skills.manage": "Install, verify and disable skills; change the publisher trust store.",
}
