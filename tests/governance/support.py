"""Helpers other suites use: every governance and telemetry event, written through the services."""

from __future__ import annotations

from controlplane.policy import shipped
from governance import services
from governance.preflight import preflight_run
from tests.identity.factories import PrincipalFactory, TenantFactory


def write_every_governance_event() -> None:
    """One of each event the governance app writes (for the contract drift test)."""
    admin = PrincipalFactory(human=True, capabilities=["platform.governance.manage"])
    services.enforcement_set(mode="warn", actor=admin, reason="drill")
    services.mode_attest(force=True)
    services.governance_validate(actor="test")
    preflight_run(name=shipped.STRICT, version=None, environment="prod", since="7d", actor=admin)
    agent = PrincipalFactory(tenant=TenantFactory(), agent=True, capabilities=["telemetry.report"])
    services.model_call_report(
        principal=agent,
        payload={
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "genai": {"model": "m", "input_tokens": 1, "output_tokens": 1, "latency_ms": 5},
            "prompt_sha256": "a" * 64,
            "response_sha256": "b" * 64,
        },
    )
