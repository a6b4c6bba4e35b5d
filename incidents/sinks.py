"""The incidents app's signal sink (controlplane.kernel.sinks): signals raised by apps that may not import
incidents -- a crash-looping plugin -- enter the same pipeline as an alert: stored once (deduplicated by
tenant, source, fingerprint, status and start), silences applied, detection run."""

from __future__ import annotations

from django.db import transaction

from controlplane.identity.models import Tenant
from controlplane.kernel.sinks import RaisedSignal
from incidents.normalise import NormalisedSignal
from incidents.services.signals import signal_ingest


def raised_signal_ingest(raised: RaisedSignal) -> None:
    tenant = Tenant.objects.filter(slug=raised.tenant).first()
    if tenant is None:
        return
    signal = NormalisedSignal(
        source=raised.source,
        source_kind="generic",
        service=raised.service,
        name=raised.name,
        severity=raised.severity,
        severity_raw=raised.severity,
        fingerprint=raised.fingerprint,
        labels=dict(raised.labels),
        annotations={"summary": raised.summary},
        status="firing",
        starts_at=raised.at,
        ends_at=None,
    )
    with transaction.atomic():
        signal_ingest(tenant=tenant, signals=[signal], actor=f"system:{raised.source}")
