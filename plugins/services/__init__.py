"""Every write of the plugins app (docs/plugins.md).

- `registry`: register a manifest (per tenant, or shared by a platform principal);
- `heartbeats`: signed heartbeat ingest (evidence only: no state change, no ledger event per heartbeat);
- `supervision`: the supervision pass (probes, the pure supervisor over every plugin, transitions with
  their evidence, review items, restart requests, the heartbeat digest);
- `quarantine`: the review queue's decisions, manual quarantine, release through an approval.
"""

from __future__ import annotations

from plugins.services.heartbeats import heartbeat_ingest
from plugins.services.quarantine import (
    RELEASE_SUBJECT,
    plugin_quarantine,
    plugin_release_request,
    plugin_release_resolve,
    review_decide,
    review_decide_bulk,
)
from plugins.services.registry import plugin_register
from plugins.services.supervision import plugins_supervise, restart_request_send

__all__ = [
    "RELEASE_SUBJECT",
    "heartbeat_ingest",
    "plugin_quarantine",
    "plugin_register",
    "plugin_release_request",
    "plugin_release_resolve",
    "plugins_supervise",
    "restart_request_send",
    "review_decide",
    "review_decide_bulk",
]
