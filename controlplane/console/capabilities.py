"""The console's capability: signing in to it at all. Registered from the app's `AppConfig.ready()`."""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "console.view": "Sign in to the operator console and see its pages.",
}
