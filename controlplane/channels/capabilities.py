"""The capabilities of signed event ingest and its producers.

Registered from the app's `AppConfig.ready()`.
"""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "events.ingest": "Submit CloudEvents through POST /api/v1/events/.",
    "producers.manage": "Register event producers and their signing keys.",
    "channels.manage": "Connect chat channels (Slack, GitHub, Meta, Twilio) and map chat users.",
    "channels.link": "Link your own chat identities (Slack user, WhatsApp number) by a one-time code.",
}
