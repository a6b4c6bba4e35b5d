"""The ledger's capabilities. Registered from the app's `AppConfig.ready()`."""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "ledger.read": "Read ledger events, checkpoints and verification results.",
    "ledger.verify": "Run verification of the chain.",
    "ledger.manage": "Make checkpoints, export bundles, manage ledger signing keys.",
}
