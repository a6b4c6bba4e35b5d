"""The checkpoint task and its beat schedule."""

from __future__ import annotations

import pytest

from controlplane.celery import app
from controlplane.ledger.models import Checkpoint, LedgerEvent
from controlplane.ledger.tasks import ledger_checkpoint_task
from tests.ledger.helpers import append_events

pytestmark = pytest.mark.django_db


def test_checkpoint_task_signs_the_head_and_is_safe_to_run_twice():
    events = append_events(3)
    seq = ledger_checkpoint_task.apply().get()
    assert seq == events[-1].seq
    checkpoint = Checkpoint.objects.get(seq=seq)
    assert checkpoint.head_hash == events[-1].hash
    recorded = LedgerEvent.objects.get(type="controlplane.ledger.checkpoint.created")
    assert recorded.actor == "system/beat" and recorded.data["seq"] == seq
    # A second run checkpoints the new head (the record of the first), never duplicates a seq.
    second = ledger_checkpoint_task.apply().get()
    assert second == recorded.seq and Checkpoint.objects.count() == 2


def test_beat_schedules_checkpoints(settings):
    app.loader.import_default_modules()
    app.finalize()
    entry = app.conf.beat_schedule["ledger-checkpoint"]
    assert entry["task"] == "controlplane.ledger.tasks.ledger_checkpoint_task"
    assert entry["schedule"] == float(settings.CONTROLPLANE_CHECKPOINT_INTERVAL_SECONDS)
