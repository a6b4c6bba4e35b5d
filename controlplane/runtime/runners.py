"""The runner registry (services): where `http.webhook` steps are sent. Secrets stay in the environment."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from controlplane.runtime.executors import SECRET_ENV
from controlplane.runtime.models import Runner

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
    actor: str,
    secret_env: str = "",
    timeout_seconds: int | None = None,
    at: datetime | None = None,
) -> Runner:
    """Register (or change, or re-enable) a runner; ledgered. The secret is named, never stored."""
    runner_validate(name=name, url=url, secret_env=secret_env, timeout_seconds=timeout_seconds)
    at = at or timezone.now()
    runner, _ = Runner.objects.select_for_update().update_or_create(
        name=name,
        defaults={
            "url": url,
            "secret_env": secret_env,
            "timeout_seconds": timeout_seconds,
            "enabled": True,
            "changed_by": actor,
            "changed_at": at,
        },
    )
    ledger_append(
        type="controlplane.runner.registered",
        subject=f"runner/{name}",
        data={"name": name, "url": url, "secret_env": secret_env, "timeout_seconds": timeout_seconds},
        actor=actor,
        time=at,
    )
    return runner


@transaction.atomic
def runner_disable(*, name: str, actor: str, reason: str, at: datetime | None = None) -> Runner:
    """Stop sending steps to a runner (they fail with RUNNER_UNKNOWN); ledgered with the reason."""
    runner = Runner.objects.select_for_update().filter(name=name, enabled=True).first()
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
        actor=actor,
        time=at,
    )
    return runner
