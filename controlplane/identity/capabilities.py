"""The capability registry. A grant names a registered capability; a view declares which one it needs.

Deny by default: a view that declares nothing is refused to everyone. Each app declares its capabilities
in its own `capabilities.py` and registers them from its `AppConfig.ready()` with `register_capabilities`;
this module holds only the registry and the identity app's own. The ledger sits below identity, so the
identity app registers the ledger's capabilities for it.
"""

from __future__ import annotations

from collections.abc import Mapping

# The live catalogue: every registered capability and what it allows. Filled at start-up.
CAPABILITIES: dict[str, str] = {}

IDENTITY_CAPABILITIES: dict[str, str] = {
    "identity.manage": "Create principals, grant and revoke capabilities, issue tokens.",
    "system.read": "See readiness details (/readyz) and runtime settings.",
    "admin.access": "Use the Django admin (with a second factor); each change there is ledgered.",
}


def register_capabilities(capabilities: Mapping[str, str]) -> None:
    """Add an app's capabilities. A name registered twice with another description is a bug."""
    for name, description in capabilities.items():
        existing = CAPABILITIES.get(name)
        if existing is not None and existing != description:
            raise ValueError(f"capability {name!r} is already registered: {existing!r}")
        CAPABILITIES[name] = description


def is_known(capability: str) -> bool:
    return capability in CAPABILITIES
