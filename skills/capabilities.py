"""The capabilities of the skills registry. Registered from the app's `AppConfig.ready()`.

Skills and the publisher trust store are installation-wide, so changing them is a platform act
(`platform.skills.manage`, controlplane/identity/scope.py): asking to install, disabling, enabling, and every
trust-store change. Reading them is an ordinary capability.
"""

from __future__ import annotations

READ = "skills.read"
MANAGE = "platform.skills.manage"

CAPABILITIES: dict[str, str] = {
    READ: "See installed skills, their actions, verification, install reviews and the publisher trust store.",
    MANAGE: "Ask to install skills, disable and enable them; change the publisher trust store.",
}
