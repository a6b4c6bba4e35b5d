"""The platform scope: what is installation-wide rather than one tenant's.

Every principal belongs to a tenant. A grant of an ordinary capability works inside that tenant only.
A grant of a *platform* capability (a name under `platform.`) is installation-wide: it lets its holder act
on the global kill switch, action-wide switches and any tenant's switch, create and activate policy
profiles, register runners and grant shared ones, and read the ledger's tenant-less events. A principal
holding at least one platform grant is a *platform principal*. Only administrators grant platform
capabilities (the Django admin, `manage.py principals grant`), and only to humans and services: an agent
or a tool never holds installation-wide power (PLATFORM_GRANT_REFUSED).

Services check the scope themselves (`platform_authorize`), so the API, the console and the CLI get the
same answer. A caller that passes a plain string as the actor (`"system"`, `"cli"`, `"approval/12"`) is
the installation itself (a shell user, a migration, a granted approval) and is not checked here.
"""

from __future__ import annotations

from controlplane.identity.models import Principal, PrincipalKind
from controlplane.kernel.errors import ControlPlaneError

PLATFORM_PREFIX = "platform."
# Installation-wide by nature whatever the name: the Django admin shows every tenant's objects.
PLATFORM_SCOPED = frozenset({"admin.access"})
PLATFORM_KINDS = frozenset({PrincipalKind.HUMAN, PrincipalKind.SERVICE})

CAPABILITIES: dict[str, str] = {
    "platform.killswitch.manage": "Engage and release the global, action-wide and any tenant's kill switch.",
    "platform.policy.manage": "Create and activate installation-wide policy profiles.",
    "platform.runners.manage": "Register and disable runners; grant shared runners to tenants.",
    "platform.ledger.read": "Read ledger events with no tenant (sign-in failures, platform acts).",
}


def is_platform_capability(capability: str) -> bool:
    """A capability of the platform scope (installation-wide): a name under `platform.`, or `admin.access`
    (the Django admin is one installation-wide tool, so an agent or a tool is never let into it)."""
    return capability.startswith(PLATFORM_PREFIX) or capability in PLATFORM_SCOPED


def is_platform_principal(principal: Principal | None) -> bool:
    """An active principal holding at least one platform grant."""
    if principal is None or not principal.is_active:
        return False
    return any(is_platform_capability(c) for c in principal.capabilities())


def platform_holds(actor: Principal | str | None, capability: str) -> bool:
    """Does the actor hold this platform capability? A string actor is the installation itself: yes."""
    if not isinstance(actor, Principal):
        return True
    return actor.has_capability(capability)


def platform_authorize(*, actor: Principal | str | None, capability: str, detail: str) -> None:
    """Refuse (PLATFORM_SCOPE_REQUIRED) unless the actor holds the platform capability."""
    if not platform_holds(actor, capability):
        raise ControlPlaneError(
            "PLATFORM_SCOPE_REQUIRED",
            f"{detail}: {actor.ref} lacks {capability!r}",  # type: ignore[union-attr]
        )
