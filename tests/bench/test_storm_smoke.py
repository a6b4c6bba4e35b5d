"""The alert-storm benchmark part at tiny sizes (no timing is asserted): every delivery is answered 200,
every new signal is counted once, one incident opens per service, the chain verifies, replay agrees, and
the report names each goal."""

from __future__ import annotations

import pytest

from bench import storm
from controlplane.ledger.verify import verify_chain
from incidents.models import Signal
from incidents.replay import replay_incidents


@pytest.mark.django_db
def test_the_storm_part_runs_every_group_size_and_leaves_a_consistent_state():
    lines: list[str] = []
    result = storm.storm_bench(quick=True, log=lines.append)
    assert list(result["groups"]) == ["1", "10", "100", "500"]
    for row in result["groups"].values():
        assert set(row["statuses"]) == {200}
        assert row["signals_per_s"] and row["batched_raw_rows_per_s"]
    assert sum(row["new_signals"] for row in result["groups"].values()) == Signal.objects.count()
    assert result["incidents_open"] == storm.SERVICES
    assert verify_chain().ok
    assert replay_incidents().ok
    section = "\n".join(storm.report({"storm": result}))
    assert "500-alert delivery p95 < 2 s" in section and "--quick" in section
