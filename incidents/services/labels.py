"""The label mapping: which labels of an Alertmanager or Grafana alert name its service, per tenant.

Versioned like detection rules: every change is a new immutable `LabelMapping` row and a
`controlplane.signal.label_mapping.versioned` event; version 0 (no row) is the default,
`service | app | job`. Each attributed signal records the version that attributed it and the label that
did (`attribution` in its event), so replay re-derives the service from the recorded labels. An alert
that no mapped label names is stored unattributed (SIGNAL_UNATTRIBUTED), never refused: Alertmanager
drops a delivery answered 4xx, and with it every alert of the group.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from controlplane.identity.models import Principal, Tenant
from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append
from incidents.models import LabelMapping
from incidents.normalise import LabelMap
from incidents.services.common import actor_ref

LABEL_MAPPING_EVENT = "controlplane.signal.label_mapping.versioned"
MAX_LABELS = 10
# Prometheus' label name syntax (Grafana's is the same).
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,99}$")


def _refuse(detail: str) -> ControlPlaneError:
    return ControlPlaneError(
        "LABEL_MAPPING_INVALID", f"service_labels: {detail}", extra={"field": "service_labels"}
    )


def label_mapping_current(*, tenant: Tenant | int) -> LabelMap:
    """The tenant's current mapping (the default, version 0, until someone sets one)."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    row = LabelMapping.objects.filter(tenant_id=tenant_id).order_by("-version").first()
    if row is None:
        return LabelMap()
    return LabelMap(version=row.version, service_labels=tuple(row.service_labels))


def label_mapping_id(*, tenant: str, version: int, service_labels: list[str]) -> str:
    body = {"tenant": tenant, "version": version, "service_labels": service_labels}
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


def _labels_or_refuse(service_labels: object) -> list[str]:
    if not isinstance(service_labels, list | tuple) or not service_labels:
        raise _refuse("a non-empty list of label names, tried in order")
    labels = [label.strip() if isinstance(label, str) else label for label in service_labels]
    if len(labels) > MAX_LABELS:
        raise _refuse(f"at most {MAX_LABELS} labels")
    for label in labels:
        if not isinstance(label, str) or not LABEL_NAME.match(label):
            raise _refuse(f"{label!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
    if len(set(labels)) != len(labels):
        raise _refuse("a label is named twice")
    return labels


@transaction.atomic
def label_mapping_set(
    *,
    tenant: Tenant,
    service_labels: list[str],
    actor: Principal | str,
    reason: str = "",
    at: datetime | None = None,
) -> LabelMapping | None:
    """Make `service_labels` the tenant's mapping (a new version, ledgered). The same labels as the
    current mapping write nothing and return the current row (None while it is the default)."""
    labels = _labels_or_refuse(service_labels)
    at = at or timezone.now()
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()  # one version number at a time
    current = LabelMapping.objects.filter(tenant=tenant).order_by("-version").first()
    if list(label_mapping_current(tenant=tenant).service_labels) == labels:
        return current
    version = (current.version if current else 0) + 1
    row = LabelMapping(
        id=label_mapping_id(tenant=tenant.slug, version=version, service_labels=labels),
        tenant=tenant,
        version=version,
        service_labels=labels,
        created_by=actor_ref(actor),
        created_at=at,
        reason=reason,
    )
    row.save()
    ledger_append(
        type=LABEL_MAPPING_EVENT,
        subject=f"label-mapping/{tenant.slug}",
        data={"mapping": row.id, "version": version, "service_labels": labels, "reason": reason},
        tenant=tenant.slug,
        actor=actor_ref(actor),
        time=at,
    )
    return row
