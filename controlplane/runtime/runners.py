"""The runner registry (services): where `http.webhook` steps are sent. Secrets stay in the environment.

Runners are a platform act: registering, disabling and granting need `platform.runners.manage`
(PLATFORM_SCOPE_REQUIRED), checked here for every surface; a string actor is the installation (the shell).
A runner belongs to a tenant, or is shared (no tenant) and used by the tenants it is granted to.
`runner_for_tenant` is what the `http.webhook` executor asks before it sends anything.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.identity.models import Principal, Tenant
from controlplane.identity.scope import platform_authorize
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from controlplane.runtime.executors import SECRET_ENV
from controlplane.runtime.models import Runner, RunnerGrant

PLATFORM_RUNNERS = "platform.runners.manage"
MIGRATION_GRANT = "migration:"  # `granted_by` of the grants a migration made (not on the ledger)

RUNNER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")  # as the http.webhook input schema has it
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def runner_validate(*, name: str, url: str, secret_env: str, timeout_seconds: int | None) -> None:
    """RUNNER_INVALID unless the fields make a usable registration (no database access)."""
    if not RUNNER_NAME.match(name):
        raise ControlPlaneError("RUNNER_INVALID", "a runner name is 1-63 of a-z, 0-9 and -, starting alnum")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise ControlPlaneError(
            "RUNNER_INVALID", "the URL is http(s)://host[:port]/path, without credentials"
        )
    if parts.scheme == "http" and settings.CONTROLPLANE_ENV != "dev" and parts.hostname not in LOOPBACK:
        raise ControlPlaneError("RUNNER_INVALID", "outside dev a runner that is not on loopback needs https")
    if secret_env and not SECRET_ENV.match(secret_env):
        raise ControlPlaneError(
            "RUNNER_INVALID",
            "the secret variable is CONTROLPLANE_RUNNER_SECRET or CONTROLPLANE_RUNNER_SECRET_<NAME>",
        )
    if timeout_seconds is not None and not 1 <= timeout_seconds <= 300:
        raise ControlPlaneError("RUNNER_INVALID", "the timeout is 1 to 300 seconds")


@transaction.atomic
def runner_register(
    *,
    name: str,
    url: str,
    actor: Principal | str,
    tenant: Tenant | None = None,
    secret_env: str = "",
    timeout_seconds: int | None = None,
    at: datetime | None = None,
) -> Runner:
    """Register (or change, or re-enable) a runner; ledgered. The secret is named, never stored.

    `tenant` is the owning tenant; None registers a shared runner, which no tenant may use until it is
    granted (`runner_grant`). Needs `platform.runners.manage`.
    """
    platform_authorize(
        actor=actor, capability=PLATFORM_RUNNERS, detail="runners are registered by the platform"
    )
    runner_validate(name=name, url=url, secret_env=secret_env, timeout_seconds=timeout_seconds)
    actor = _actor_ref(actor)
    at = at or timezone.now()
    runner, _ = Runner.objects.select_for_update().update_or_create(
        name=name,
        defaults={
            "url": url,
            "secret_env": secret_env,
            "timeout_seconds": timeout_seconds,
            "tenant": tenant,
            "enabled": True,
            "changed_by": actor,
            "changed_at": at,
        },
    )
    ledger_append(
        type="controlplane.runner.registered",
        subject=f"runner/{name}",
        data={
            "name": name,
            "url": url,
            "secret_env": secret_env,
            "timeout_seconds": timeout_seconds,
            "tenant": tenant.slug if tenant else "",
        },
        tenant=tenant.slug if tenant else "",
        actor=actor,
        time=at,
    )
    return runner


@transaction.atomic
def runner_disable(*, name: str, actor: Principal | str, reason: str, at: datetime | None = None) -> Runner:
    """Stop sending steps to a runner (they fail with RUNNER_UNKNOWN); ledgered with the reason.

    Needs `platform.runners.manage`."""
    platform_authorize(actor=actor, capability=PLATFORM_RUNNERS, detail="runners are managed by the platform")
    actor = _actor_ref(actor)
    runner = (
        Runner.objects.select_for_update(of=("self",))
        .select_related("tenant")
        .filter(name=name, enabled=True)
        .first()
    )
    if runner is None:
        raise ControlPlaneError("RUNNER_UNKNOWN", f"no enabled runner named {name!r}")
    if not reason.strip():
        raise ControlPlaneError("VALIDATION_FAILED", "disabling a runner needs a reason")
    at = at or timezone.now()
    runner.enabled = False
    runner.changed_by = actor
    runner.changed_at = at
    runner.save(update_fields=["enabled", "changed_by", "changed_at"])
    ledger_append(
        type="controlplane.runner.disabled",
        subject=f"runner/{name}",
        data={"name": name, "reason": reason.strip()},
        tenant=runner.tenant.slug if runner.tenant else "",
        actor=actor,
        time=at,
    )
    return runner


def _actor_ref(actor: Principal | str) -> str:
    return actor.ref if isinstance(actor, Principal) else actor


def _shared_runner(name: str) -> Runner:
    runner = Runner.objects.select_for_update().filter(name=name).first()
    if runner is None:
        raise ControlPlaneError("RUNNER_UNKNOWN", f"no runner named {name!r}")
    if runner.tenant_id is not None:
        raise ControlPlaneError(
            "RUNNER_INVALID", f"runner {name} belongs to a tenant; only shared ones are granted"
        )
    return runner


@transaction.atomic
def runner_grant(
    *, name: str, tenant: Tenant, actor: Principal | str, at: datetime | None = None
) -> RunnerGrant:
    """Let a tenant's http.webhook steps target a shared runner; ledgered. Granting it again writes nothing.

    Needs `platform.runners.manage`; a runner owned by a tenant cannot be granted (RUNNER_INVALID)."""
    platform_authorize(
        actor=actor, capability=PLATFORM_RUNNERS, detail="shared runners are granted by the platform"
    )
    runner = _shared_runner(name)
    existing = RunnerGrant.objects.filter(runner=runner, tenant=tenant).first()
    if existing is not None:
        return existing
    at = at or timezone.now()
    grant = RunnerGrant.objects.create(
        runner=runner, tenant=tenant, granted_by=_actor_ref(actor), granted_at=at
    )
    ledger_append(
        type="controlplane.runner.granted",
        subject=f"runner/{name}",
        data={"name": name, "tenant": tenant.slug},
        tenant=tenant.slug,
        actor=_actor_ref(actor),
        time=at,
    )
    return grant


@transaction.atomic
def runner_grant_revoke(
    *, name: str, tenant: Tenant, actor: Principal | str, reason: str, at: datetime | None = None
) -> None:
    """Take a shared runner away from a tenant (its steps then fail with RUNNER_NOT_GRANTED); ledgered.

    Needs `platform.runners.manage` and a reason; RUNNER_NOT_GRANTED (nothing written) without a grant."""
    platform_authorize(
        actor=actor, capability=PLATFORM_RUNNERS, detail="shared runners are granted by the platform"
    )
    if not reason.strip():
        raise ControlPlaneError("VALIDATION_FAILED", "revoking a runner grant needs a reason")
    runner = _shared_runner(name)
    grant = RunnerGrant.objects.select_for_update().filter(runner=runner, tenant=tenant).first()
    if grant is None:
        raise ControlPlaneError("RUNNER_NOT_GRANTED", f"runner {name} is not granted to {tenant.slug}")
    grant.delete()
    ledger_append(
        type="controlplane.runner.grant_revoked",
        subject=f"runner/{name}",
        data={"name": name, "tenant": tenant.slug, "reason": reason.strip()},
        tenant=tenant.slug,
        actor=_actor_ref(actor),
        time=at or timezone.now(),
    )


def runner_for_tenant(*, name: str, tenant: str) -> Runner:
    """The enabled runner a step of `tenant` (a slug) may send to under this name.

    RUNNER_UNKNOWN when no enabled runner has the name; RUNNER_NOT_GRANTED when it belongs to another
    tenant, or is shared and not granted to this one (the step is refused before anything is sent).
    """
    runner = Runner.objects.select_related("tenant").filter(name=name, enabled=True).first()
    if runner is None:
        raise ControlPlaneError("RUNNER_UNKNOWN", f"no enabled runner named {name!r} is registered")
    if runner.tenant is not None:
        if runner.tenant.slug == tenant:
            return runner
    elif RunnerGrant.objects.filter(runner=runner, tenant__slug=tenant).exists():
        return runner
    raise ControlPlaneError(
        "RUNNER_NOT_GRANTED",
        f"runner {name} is neither tenant {tenant}'s own nor a shared runner granted to it",
    )
