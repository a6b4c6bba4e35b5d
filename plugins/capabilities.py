"""The capabilities of the plugins app. Registered from the app's `AppConfig.ready()`."""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "plugins.read": "See plugins, their supervised state, evidence, dependencies and the review queue.",
    "plugins.manage": "Register the tenant's plugins, quarantine one, and ask for a release (an approval).",
    "plugins.review": "Decide quarantine review items: quarantine the plugin or dismiss, with a reason.",
    "plugins.heartbeat": "Send a plugin's signed heartbeats (the plugin's own service principal).",
    "platform.plugins.manage": "Register, quarantine and release shared (installation-wide) plugins.",
}
