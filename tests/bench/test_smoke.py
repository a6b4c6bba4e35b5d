"""The benchmark machinery at tiny sizes, so that `python -m bench` cannot rot unnoticed.

Nothing here asserts a timing: only that requests were sent, answered and counted, that rows were
written and verified, and that the reports were produced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection

from bench import chain, ingest, loadgen, server, verification
from bench.run import maintenance_connection, server_env
from controlplane.channels.models import Delivery
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain

REPO = Path(__file__).resolve().parents[2]


def _database_url(name: str | None = None) -> str:
    """A URL for the database this test runs in (pytest-django's test database), or another one."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name or db['NAME']}"


def test_generator_offers_every_request_and_counts_every_answer():
    with loadgen.sink_server() as port:
        request = loadgen.build_request(
            method="POST", path="/x", host="127.0.0.1", port=port, headers={}, body=b"{}"
        )
        step = loadgen.run_step(host="127.0.0.1", port=port, requests=[request] * 30, rate=100, procs=2)
    assert step.scheduled == 30
    assert step.status_counts == {"201": 30}
    assert step.errors == {}
    assert step.latency_ms["count"] == 30
    assert step.generator_procs == 2
    assert step.as_dict()["response_samples"] == {"201": '{"status": "ok"}'}


def test_generator_counts_a_server_that_is_gone_as_no_response():
    port = server.free_port()  # nothing listens there
    request = loadgen.build_request(method="GET", path="/", host="127.0.0.1", port=port, headers={})
    step = loadgen.run_step(host="127.0.0.1", port=port, requests=[request] * 5, rate=50, timeout=1)
    assert step.status_counts == {}
    assert sum(step.errors.values()) == 5
    assert not ingest.sustained(step)


@pytest.mark.django_db(transaction=True)
def test_signed_ingest_and_noop_through_gunicorn(tmp_path):
    producer = ingest.producer_setup()
    before = LedgerEvent.objects.count()
    env = {
        **server_env(key_dir=Path(django_settings.CONTROLPLANE_KEY_DIR)),
        "DATABASE_URL": _database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
    }
    # A generous queue budget: on a busy machine a cold worker must not shed what this test counts.
    config = server.ServerConfig(workers=1, threads=4, max_inflight=64, queue_budget_ms=5000)
    with server.gunicorn(config=config, env=env, log_path=tmp_path / "gunicorn.log") as srv:
        signed = ingest.signed_requests(producer, count=20, host=srv.host, port=srv.port, tag="smoke")
        step = loadgen.run_step(host=srv.host, port=srv.port, requests=signed, rate=40)
        noop = ingest.noop_requests(producer, count=10, host=srv.host, port=srv.port, tag="smoke-noop")
        noop_step = loadgen.run_step(host=srv.host, port=srv.port, requests=noop, rate=40)
        sweep = ingest.sweep(
            srv,
            name="ingest",
            make_requests=lambda n, tag: ingest.signed_requests(
                producer, count=n, host=srv.host, port=srv.port, tag=tag
            ),
            rates=[10, 20],
            duration=0.5,
            procs=1,
            timeout=5,
            max_connections=8,
            cpu_trees={"gunicorn": srv.pid},
            log=lambda line: None,
        )
    assert step.scheduled == 20
    assert step.status_counts == {"201": 20}, step.samples
    assert noop_step.status_counts == {"201": 10}
    assert [s.scheduled for s in sweep.steps] == [5, 10]
    assert [s.status_counts for s in sweep.steps] == [{"201": 5}, {"201": 10}]
    assert sweep.as_dict()["steps"][0]["cpu"]["cores_by_process"].keys() >= {"gunicorn", "generator", "other"}
    # Every accepted delivery is one ledger event and one Delivery row; the no-op wrote nothing. (The server
    # process attests its governance mode once at start-up: controlplane.governance.mode.attested.)
    attested = LedgerEvent.objects.filter(type="controlplane.governance.mode.attested").count()
    assert LedgerEvent.objects.count() - before - attested == 35
    assert LedgerEvent.objects.filter(type=ingest.EVENT_TYPE).count() == 35
    assert Delivery.objects.count() == 35
    assert verify_chain().ok


@pytest.mark.django_db(transaction=True)
def test_raw_chain_baseline_appends_an_intact_chain_and_drops_its_table():
    result = chain.chain_baseline(dsn=_database_url(), connections=2, duration=0.5, max_rows=40)
    assert result["chain_intact"] is True
    assert 0 < result["rows"] <= 40
    assert result["rows_per_s"] > 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [chain.TABLE])
        assert cursor.fetchone()[0] is None


@pytest.mark.django_db(transaction=True)
def test_both_populate_methods_write_rows_that_verify():
    assert verification.populate_copy(count=250, batch=100) == 250
    assert verification.populate_append(count=20, batch=10) == 20
    assert verification.populate_copy(count=30) == 30
    result = verify_chain()
    assert result.ok, result.failure
    assert result.count == 1 + 250 + 20 + 30  # the key activation, then the populated events
    report = verification.verification_bench(events=320, workers=[1, 2], log=lambda line: None)
    assert report["populated"] == 19 and report["already_present"] == 301
    assert [(r["workers"], r["ok"], r["events_checked"]) for r in report["runs"]] == [
        (1, True, 320),
        (2, True, 320),
    ]
    # Every check on: a witnessed checkpoint at the last event, and the bare Ed25519 rate beside it.
    assert report["checks"] is True and report["checkpoint_seq"] == 320
    assert {w: (b["signatures"], b["valid"]) for w, b in report["ed25519_bare"].items()} == {
        "1": (320, 320),
        "2": (320, 320),
    }
    assert all(b["verify_ratio"] > 0 for b in report["ed25519_bare"].values())


def test_python_m_bench_quick_writes_both_reports(tmp_path):
    base = os.environ["DATABASE_URL"]
    scratch = f"{base.rsplit('/', 1)[-1] or 'controlplane'}_bench_smoke"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output-dir", str(tmp_path), "--scratch-db", scratch],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": base, "REDIS_URL": django_settings.REDIS_URL},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    stamped = [p for p in tmp_path.glob("*.json") if p.name != "latest.json"]
    assert len(stamped) == 1 and json.loads(stamped[0].read_text()) == results
    assert results["quick"] is True
    assert results["machine"]["postgresql"]["fsync"] in {"on", "off"}
    for step in results["ingest"]["steps"] + results["noop"]["steps"]:
        assert step["status_counts"] == {"201": step["scheduled"]}
    assert results["generator_ceiling"]["steps"][0]["ok"] == 50
    assert results["ingest_at_80pct"]["ok"] == results["ingest_at_80pct"]["scheduled"]
    assert results["profile"]["requests_profiled"] > 0 and results["profile"]["by_area_ms_per_request"]
    setups = results["shedding"]["setups"]
    assert [len(s["steps"]) for s in setups] == [2] * 5
    assert setups[-1]["setup"].endswith("(the benchmark's configuration)")
    assert all(run["chain_intact"] for run in results["chain_baseline"]["runs"])
    assert {(r["workers"], r["ok"], r["events_checked"]) for r in results["verification"]["runs"]} >= {
        (1, True, 300)
    }
    assert {goal["goal"] for goal in results["goals"]} >= {
        "signed ingest throughput (max sustained offered rate)"
    }
    assert len(results["policy"]["variants"]) == 4
    assert results["flow"]["statuses"] == {"completed": 3}
    assert results["approval_queue"]["pending"] == 60 and results["approval_queue"]["page_lists_total"]
    markdown = (tmp_path / "latest.md").read_text()
    for heading in (
        "## Goals",
        "## Signed-event ingest",
        "## Ceiling 1",
        "## Ceiling 2",
        "## Ledger verification",
        "## Policy decisions per second",
        "## Intent to completed",
        "## Approval queue page with 60 pending requests",
    ):
        assert heading in markdown
    # The scratch database is dropped at the end.
    with maintenance_connection(base) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [scratch]).fetchone() is None


# --- the action flow's parts (issue 3) ---------------------------------------------------------------------


@pytest.mark.django_db
def test_policy_bench_makes_every_decision_and_restores_the_active_profiles():
    from bench import policy as policy_bench
    from controlplane.policy import services as policy_services
    from controlplane.policy.models import PolicyProfile

    dev = policy_services.profile_bootstrap(environment="dev")
    report = policy_bench.policy_bench(decisions=480, explain_decisions=24, log=lambda line: None)
    assert {label: row["decisions"] for label, row in report["variants"].items()} == {
        "raw dict lookup": 480,
        "evaluate": 480,
        "evaluate + decision hash": 480,
        "explain (DB: active profile, parse, evaluate)": 24,
    }
    assert all(row["latency_us"]["count"] == row["decisions"] for row in report["variants"].values())
    assert report["verdicts_seen"] == ["allow", "deny", "require_approval"]
    assert PolicyProfile.objects.get(environment="dev", status="active") == dev
    assert "## Policy decisions per second" in "\n".join(policy_bench.report({"policy": report}))


@pytest.mark.django_db(transaction=True)
def test_flow_bench_runs_plans_to_completion_on_a_real_worker(tmp_path):
    from bench import flow
    from controlplane.runtime.models import Execution
    from tests.runtime.support import core_skill_installed

    core_skill_installed()  # a transactional test before this one may have flushed migration data
    env = {
        **server_env(key_dir=Path(django_settings.CONTROLPLANE_KEY_DIR)),
        "DATABASE_URL": _database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
    }
    report = flow.flow_bench(
        intents=2,
        hops=2,
        env=env,
        work=tmp_path,
        concurrency=1,
        submit_threads=2,
        submit_processes=1,
        submit_seconds=0.5,
        log=lambda line: None,
    )
    assert report["statuses"] == {"completed": 2}
    assert report["intent_to_completed_ms"]["count"] == 2 and report["client_submit_to_seen_ms"]["count"] == 2
    assert report["baseline_three_celery_hops_ms"]["count"] == 2
    # Warm-up and measured intents alike ran every step on the worker.
    assert Execution.objects.filter(status="completed").count() == 2 + report["warmup"]
    assert LedgerEvent.objects.filter(type="controlplane.execution.step.completed").count() == 3 * 4
    concurrent = report["submit_concurrency"]
    for part in ("raw_ledger_append", "intent_submit"):
        assert concurrent[part]["errors"] == [] and concurrent[part]["count"] > 0, concurrent[part]
    # each concurrent submit started its execution; its steps went to a queue no worker reads
    assert Execution.objects.filter(status="running").count() == concurrent["intent_submit"]["count"]
    assert "Concurrent submits: 1 processes x 2 threads" in "\n".join(flow.report({"flow": report}))
    assert verify_chain().ok


@pytest.mark.django_db
def test_approval_queue_bench_fills_the_queue_and_renders_it():
    from approvals.models import ApprovalRequest
    from bench import console
    from controlplane.policy import services as policy_services
    from controlplane.policy.models import PolicyProfile
    from tests.runtime.support import core_skill_installed

    core_skill_installed()  # a transactional test before this one may have flushed migration data
    dev = policy_services.profile_bootstrap(environment="dev")
    report = console.approval_queue_bench(pending=45, steps_per_plan=20, renders=2, log=lambda line: None)
    assert report["pending"] == 45 and report["page_lists_total"] is True
    assert ApprovalRequest.objects.filter(status="pending", subject_kind="runtime.step").count() == 45
    for key in ("full_page_ms", "fragment_ms", "baseline_empty_queue_page_ms", "baseline_raw_queries_ms"):
        assert report[key]["count"] == 2, key
    assert report["fragment_bytes"] < report["page_bytes"]
    assert PolicyProfile.objects.get(environment="dev", status="active") == dev


def test_run_threads_counts_every_call_of_every_thread_of_every_process():
    import time as clock

    from bench.threads import run_threads

    seen = []

    def call(thread: int, n: int) -> None:
        seen.append(thread)  # only this process's list: the children report through the summary
        clock.sleep(0.002)

    forked = run_threads(2, 0.3, call, processes=2)
    assert (forked["processes"], forked["threads"], forked["errors"]) == (2, 2, [])
    assert forked["count"] > 4 and forked["per_s"] > 0 and forked["latency_ms"]["p50"] >= 2
    assert seen == []  # every call ran in a child
    local = run_threads(3, 0.2, call)
    assert local["processes"] == 1 and local["count"] == len(seen) and set(seen) == {0, 1, 2}
