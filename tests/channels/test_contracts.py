"""Every `controlplane.channels.*` event the services write validates against its contract, and every
contract of the family is written (so no schema goes untested)."""

from __future__ import annotations

import pytest

from controlplane.kernel.contracts import EVENT, REGISTRY
from controlplane.ledger.models import LedgerEvent
from tests.channels.every_event import write_every_channel_event

pytestmark = pytest.mark.django_db


def test_every_channels_event_validates_and_every_contract_is_exercised():
    write_every_channel_event()
    events = list(LedgerEvent.objects.filter(type__startswith="controlplane.channels.").order_by("seq"))
    failures = {
        e.seq: (
            e.type,
            REGISTRY.for_ledger_type(e.type).errors(e.data) if REGISTRY.for_ledger_type(e.type) else "none",
        )
        for e in events
        if REGISTRY.for_ledger_type(e.type) is None or REGISTRY.for_ledger_type(e.type).errors(e.data)
    }
    assert failures == {}
    described = {
        c.ledger_type for c in REGISTRY.of_kind(EVENT) if c.ledger_type.startswith("controlplane.channels.")
    }
    assert described == {e.type for e in events}
