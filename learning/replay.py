"""Replay of the learning loop: every recorded calibration report is recomputed from the chain up to the
seq it was computed at, and its hash compared (`manage.py replay --learning-report HASH | --learning`)."""

from __future__ import annotations

from controlplane.identity.models import Tenant
from controlplane.kernel.replay import Replayer, ReplayReport
from controlplane.ledger.models import LedgerEvent


def replay_reports(*, content_hash: str | None = None) -> ReplayReport:
    from learning.services import learning_fold, report_content, report_hash

    report = ReplayReport(domain="learning")
    events = LedgerEvent.objects.filter(type="controlplane.learning.report.recorded").order_by("seq")
    if content_hash:
        events = events.filter(subject=f"learning-report/{content_hash}")
    tenants = {t.slug: t for t in Tenant.objects.all()}
    for event in events:
        report.checked += 1
        subject = event.subject
        tenant = tenants.get(event.data["tenant"])
        if tenant is None:
            report.differ(subject, "tenant", event.data["tenant"], None, event.seq)
            continue
        content = report_content(learning_fold(tenant=tenant, until_seq=event.data["until_seq"]))
        report.differ(subject, "content_hash", event.data["content_hash"], report_hash(content), event.seq)
    return report


LEARNING_REPLAYER = Replayer(
    name="learning",
    verify=lambda subject_id: replay_reports(content_hash=subject_id),
    subject="learning-report",
    every="learning",
)
