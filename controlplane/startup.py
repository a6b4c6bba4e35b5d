"""The start-up banner: the environment and the settings that decide what is accepted."""

from __future__ import annotations

import logging

from django.conf import settings

logger = logging.getLogger("controlplane")


def banner() -> str:
    from controlplane.policy.selectors import active_profile_banner  # needs the app registry
    from governance.services import governance_banner

    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = "redis" if settings.REDIS_URL else "in-process"
    return (
        f"Control Plane env={settings.CONTROLPLANE_ENV} database={database} tasks={broker} "
        f"event_signing_mode={settings.CONTROLPLANE_EVENT_SIGNING_MODE} "
        f"timestamp_tolerance={settings.CONTROLPLANE_EVENT_TOLERANCE_SECONDS}s "
        f"replay_seed={settings.CONTROLPLANE_REPLAY_SEED} "
        f"{governance_banner()} "
        f"{active_profile_banner(environment=settings.CONTROLPLANE_ENV)}"
    )


def log_banner() -> None:
    """The start-up line, then the process's mode attestation on the ledger (once per process)."""
    from governance.services import mode_attest

    logger.info(banner())
    try:
        mode_attest()
    except Exception as exc:  # no database yet (a first migrate), no key: say so, never fail start-up
        logger.warning("governance mode attestation not ledgered: %s: %s", type(exc).__name__, exc)
