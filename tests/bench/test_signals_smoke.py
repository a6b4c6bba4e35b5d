"""The signals benchmark at tiny sizes (no timing is asserted): every part runs, every request is
answered 200, promotions happen, and what it leaves behind is consistent (one open incident per service,
an intact chain)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings

from bench import signals
from bench.report import markdown
from bench.run import server_env
from bench.server import ServerConfig
from controlplane.ledger.verify import verify_chain
from incidents.models import Incident, PromotionDecision, Signal
from tests.bench.test_smoke import _database_url


@pytest.mark.django_db(transaction=True)
def test_signals_bench_runs_every_part_and_leaves_a_consistent_state(tmp_path):
    env = {
        **server_env(key_dir=Path(django_settings.CONTROLPLANE_KEY_DIR)),
        "DATABASE_URL": _database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
    }
    lines: list[str] = []
    result = signals.signals_bench(
        env=env,
        work=tmp_path,
        config=ServerConfig(workers=1, threads=4, max_inflight=4),
        rates=[10, 20],
        duration=0.5,
        count=48,  # three signals for each of the 16 services: the third of each is promoted
        common={"procs": 1, "timeout": 5, "max_connections": 8},
        postmaster=None,
        threads=2,
        processes=1,
        concurrent_seconds=0.5,
        log=lines.append,
    )
    assert result["raw_ledger_append"]["count"] == 48 and result["raw_ledger_append"]["per_s"] > 0
    assert result["service_path"]["promoted"] == signals.SERVICES
    steps = result["http"]["steps"]
    assert [s["scheduled"] for s in steps] == [5, 10]
    assert [s["status_counts"] for s in steps] == [{"200": 5}, {"200": 10}]
    concurrent = result["concurrent"]
    for part in ("raw_ledger_append", "service_path"):
        assert concurrent[part]["errors"] == [] and concurrent[part]["count"] > 0, concurrent[part]
    warmup = 20  # max(20, workers x threads x 2)
    stored = 48 + concurrent["service_path"]["count"] + warmup + 15
    assert Signal.objects.count() == result["checks"]["signals"] == stored
    assert result["checks"]["one_open_incident_per_service"] is True
    assert Incident.objects.filter(status="open").count() == signals.SERVICES
    assert PromotionDecision.objects.filter(decision="PROMOTE").count() >= signals.SERVICES
    assert verify_chain().ok
    text = markdown(
        {
            "started_at": "now",
            "machine": {"git_commit": "x"},
            "signals": result,
        }
    )
    assert "## Signals: ingest through promotion" in text and "signal_ingest: store, detect" in text
    assert "The same from 1 processes x 2 threads at once" in text
