"""`python -m bench`: every benchmark in one run, reported as JSON and Markdown in bench/results/.

It needs DATABASE_URL (PostgreSQL; the role must be allowed to create databases) and REDIS_URL, as
`make bench` exports them. It works in a scratch database of its own (`<name>_bench`, created afresh
and dropped at the end), so the database named by DATABASE_URL is only used to create it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.server import REPO, ServerConfig

DEFAULT_RATES = "200,400,600,800,1000,1200,1600"
GOAL_RATE = 1000.0  # signed events/s the issue asks for
GOAL_P95_MS = 10.0
GOAL_P99_MS = 25.0
GOAL_VERIFY_RATE = 14_000.0
# Ledger verify on two workers, with every check on, keeps at least this share of bare Ed25519 (issue 10).
GOAL_VERIFY_RATIO = 0.9
# Past saturation, a p99 above this means requests were queued rather than refused.
SHED_MAX_P99_MS = 1000.0


def _rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add = parser.add_argument
    add("--quick", action="store_true", help="tiny sizes everywhere: checks the machinery, measures nothing")
    add(
        "--only",
        default="sink,noop,ingest,profile,shedding,chain,verify,proofs,policy,flow,console,signals,plugins,storm",
        help="comma-separated parts to run",
    )
    add("--rates", default=DEFAULT_RATES, help="ingest offered rates, events/s")
    add("--duration", type=float, default=10.0, help="seconds per ingest step")
    add("--refine", type=int, default=2, help="extra bisection steps around the saturation point")
    add("--probe-down", type=int, default=4, help="if no rate is sustained, halve the lowest this often")
    add("--noop-rates", default="500,1000,1500,2000,3000,4000")
    add("--noop-duration", type=float, default=5.0)
    add("--sink-rates", default="2000,4000,8000")
    add("--sink-duration", type=float, default=3.0)
    add("--procs", type=int, default=1, help="load generator processes")
    add("--timeout", type=float, default=5.0, help="seconds before a request counts as lost")
    add("--max-connections", type=int, default=1024, help="per generator process")
    add("--worker-class", default=ServerConfig.worker_class)
    add("--workers", type=int, default=ServerConfig.workers)
    add("--threads", type=int, default=ServerConfig.threads)
    add("--backlog", type=int, default=ServerConfig.backlog)
    add(
        "--max-inflight", type=int, default=ServerConfig.max_inflight, help="CONTROLPLANE_INGEST_MAX_INFLIGHT"
    )
    add("--server-nice", type=int, default=0, help="run gunicorn at this nice value (negative: root only)")
    add("--note", action="append", default=[], help="a line for the report's notes (repeatable)")
    add(
        "--queue-budget-ms",
        type=int,
        default=ServerConfig.queue_budget_ms,
        help="CONTROLPLANE_INGEST_QUEUE_BUDGET_MS (--quick: 5000, so a busy machine sheds nothing)",
    )
    add("--profile-duration", type=float, default=5.0)
    add("--shed-duration", type=float, default=5.0)
    add("--chain-connections", default="1,2,4")
    add("--chain-duration", type=float, default=5.0)
    add("--verify-events", type=int, default=100_000)
    add("--verify-workers", default="", help="default: 1 and every core")
    add("--verify-repeats", type=int, default=2)
    add("--populate", choices=("copy", "append"), default="copy")
    add("--proof-leaves", type=int, default=1_000_000, help="events in the Merkle tree of the proofs part")
    add("--proof-count", type=int, default=20_000, help="inclusion proofs made and verified per tree size")
    add("--proof-checkpoints", type=int, default=50, help="checkpoints the witness cosigns")
    add("--policy-decisions", type=int, default=200_000, help="pure evaluations per variant")
    add("--explain-decisions", type=int, default=2_000, help="explain() calls (database) per run")
    add("--flow-intents", type=int, default=50, help="three-step plans submitted one after another")
    add("--flow-hops", type=int, default=50, help="raw three-hop Celery chains (the flow's baseline)")
    add("--flow-concurrency", type=int, default=2, help="the flow's Celery worker processes")
    add("--flow-submit-threads", type=int, default=4, help="threads per process submitting intents (0: skip)")
    add("--flow-submit-seconds", type=float, default=10.0, help="seconds of concurrent submits, each way")
    add("--queue-pending", type=int, default=10_000, help="pending approval requests in the queue")
    add("--queue-steps", type=int, default=20, help="steps (requests) per submitted plan when filling it")
    add("--queue-renders", type=int, default=30, help="timed GETs of each page")
    add("--signal-rates", default="25,50,100,150,200", help="Alertmanager webhooks/s (one alert each)")
    add("--signal-duration", type=float, default=10.0, help="seconds per signals step")
    add("--signal-count", type=int, default=2_000, help="signals for the in-process path and its baseline")
    add("--signal-threads", type=int, default=4, help="threads per process, concurrent signals (0: skip)")
    add("--concurrent-processes", type=int, default=2, help="processes of the concurrent in-process paths")
    add("--signal-concurrent-seconds", type=float, default=10.0, help="seconds of each concurrent path")
    add("--plugin-heartbeats", type=int, default=5_000, help="signed heartbeats (and no-op requests)")
    add("--plugin-fleet", type=int, default=10_000, help="plugins in the supervision pass")
    add("--output-dir", type=Path, default=None, help="default: bench/results (--quick: var/bench-quick)")
    add("--scratch-db", default="", help="default: <DATABASE_URL's name>_bench")
    add("--keep-db", action="store_true", help="leave the scratch database for inspection")
    args = parser.parse_args(argv)
    if args.output_dir is None:  # a --quick run must never overwrite the committed results
        args.output_dir = REPO / ("var/bench-quick" if args.quick else "bench/results")
    if args.quick:
        args.rates, args.duration, args.refine, args.probe_down = "20,40", 0.5, 0, 0
        args.noop_rates, args.noop_duration = "20,40", 0.5
        args.sink_rates, args.sink_duration = "100", 0.5
        args.profile_duration, args.chain_connections, args.chain_duration = 0.5, "1,2", 0.5
        args.shed_duration, args.queue_budget_ms = 0.5, 5000
        args.verify_events, args.verify_repeats = 300, 1
        args.proof_leaves, args.proof_count, args.proof_checkpoints = 1000, 50, 5
        args.policy_decisions, args.explain_decisions = 2_000, 50
        args.flow_intents, args.flow_hops = 3, 3
        args.flow_submit_threads, args.flow_submit_seconds = 1, 0.5
        args.queue_pending, args.queue_steps, args.queue_renders = 60, 20, 3
        args.signal_rates, args.signal_duration, args.signal_count = "10,20", 0.5, 20
        args.signal_threads, args.signal_concurrent_seconds = 1, 0.5
        args.plugin_heartbeats, args.plugin_fleet = 50, 200
    return args


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def maintenance_connection(base_url: str) -> Any:
    """An autocommit connection for CREATE/DROP DATABASE: to DATABASE_URL's database, or to `postgres`
    when that one does not exist (yet)."""
    import psycopg

    try:
        return psycopg.connect(base_url, autocommit=True)
    except psycopg.OperationalError:
        return psycopg.connect(_with_database(base_url, "postgres"), autocommit=True)


def _create_scratch(base_url: str, name: str) -> None:
    from psycopg import sql

    with maintenance_connection(base_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _drop_scratch(base_url: str, name: str) -> None:
    from psycopg import sql

    with maintenance_connection(base_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _log(message: str) -> None:
    print(message, flush=True)


def server_env(*, key_dir: Path) -> dict[str, str]:
    """What the benchmark's own process and its gunicorn share (DATABASE_URL/REDIS_URL come along)."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "CONTROLPLANE_ENV": "dev",
        "DEBUG": "False",
        "CONTROLPLANE_KEY_DIR": str(key_dir),
        "CONTROLPLANE_LEDGER_KEY": "",
        "CONTROLPLANE_LEDGER_AUTOGENERATE_KEY": "True",
        # Measure the strictest (production) path: every signature is verified.
        "CONTROLPLANE_EVENT_SIGNING_MODE": "require-valid-signature",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")) or not redis_url:
        print(
            "python -m bench needs DATABASE_URL (PostgreSQL) and REDIS_URL: use `make bench`", file=sys.stderr
        )
        return 2
    scratch = args.scratch_db or (urlsplit(base_url).path.lstrip("/") or "controlplane") + "_bench"
    work = Path(tempfile.mkdtemp(prefix="cp-bench-"))
    (work / "keys").mkdir()
    _create_scratch(base_url, scratch)
    os.environ.update(
        {**server_env(key_dir=work / "keys"), "DATABASE_URL": _with_database(base_url, scratch)}
    )
    try:
        results = run(args, work=work)
    finally:
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            _drop_scratch(base_url, scratch)
    paths = __import__("bench.report", fromlist=["write"]).write(results, args.output_dir)
    _log(f"\nresults: {paths['json']} ({paths['stamped'].name}), {paths['markdown']}; work files in {work}")
    return 0


def run(args: argparse.Namespace, *, work: Path) -> dict[str, Any]:
    """Every selected part, in order; returns the results document."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench import chain, ingest, loadgen, machine, server, verification

    only = set(args.only.split(","))
    started = time.monotonic()
    _log("migrating the scratch database ...")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        facts = machine.facts(cursor)
        postmaster = machine.postmaster_pid(cursor)
    facts["postgresql"]["nice"] = machine.nice_of(postmaster) if postmaster else None
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": args.quick,
        "machine": facts,
        "signing_mode": os.environ["CONTROLPLANE_EVENT_SIGNING_MODE"],
        "method": {
            "open_loop": True,
            "latency_from": "scheduled send time",
            "generator_procs": args.procs,
            "generator_nice": loadgen.GENERATOR_NICE,
            "request_timeout_s": args.timeout,
            "max_connections_per_proc": args.max_connections,
            "sustained_if": {
                "ok_fraction_at_least": ingest.SUSTAIN_MIN_OK_FRACTION,
                "achieved_fraction_of_offered_at_least": ingest.SUSTAIN_MIN_ACHIEVED_FRACTION,
                "p99_ms_at_most": ingest.SUSTAIN_MAX_P99_MS,
            },
        },
        "notes": list(args.note),
    }
    if args.quick:
        results["notes"].append(
            "--quick run: tiny sizes that check the machinery; these are not measurements."
        )
    config = ServerConfig(
        worker_class=args.worker_class,
        workers=args.workers,
        threads=args.threads,
        backlog=args.backlog,
        max_inflight=args.max_inflight,
        queue_budget_ms=args.queue_budget_ms,
        nice=args.server_nice,
    )
    results["server"] = config.as_dict()
    common = {"procs": args.procs, "timeout": args.timeout, "max_connections": args.max_connections}
    env = {k: os.environ[k] for k in server_env(key_dir=Path()).keys() | {"DATABASE_URL", "REDIS_URL"}}

    if "sink" in only:
        _log("generator ceiling (trivial asyncio server) ...")
        with loadgen.sink_server() as port:
            fake = server.Server("127.0.0.1", port, 0, config, work / "none.log")
            steps = loadgen_sweep_sink(fake, _rates(args.sink_rates), args.sink_duration, common)
        results["generator_ceiling"] = {
            "steps": [{**s.as_dict(), "sustained": ingest.sustained(s)} for s in steps]
        }

    producer = ingest.producer_setup()
    results["producer"] = producer.ref
    parts = _Parts(args=args, env=env, work=work, producer=producer, postmaster=postmaster, common=common)
    if only & {"noop", "ingest"}:
        parts.noop_and_ingest(config, only, results)
    max_sustained = (results.get("ingest") or {}).get("max_sustained_rate")
    if "profile" in only:
        parts.profile(
            config, rate=round(0.8 * max_sustained, -1) if max_sustained else 100.0, results=results
        )
    if "shedding" in only:
        parts.shedding(config, max_sustained=max_sustained, results=results)

    if "chain" in only:
        _log("raw chain ceiling (psycopg alone) ...")
        dsn = os.environ["DATABASE_URL"]
        runs = []
        for count in _ints(args.chain_connections):
            run_result = chain.chain_baseline(dsn=dsn, connections=count, duration=args.chain_duration)
            runs.append(run_result)
            _log(f"  {count} connection(s): {run_result['rows_per_s']}/s intact={run_result['chain_intact']}")
        diagnostic = chain.chain_baseline(
            dsn=dsn, connections=1, duration=args.chain_duration, synchronous_commit="off"
        )
        runs.append(diagnostic)
        _log(f"  1 connection, synchronous_commit=off (diagnostic): {diagnostic['rows_per_s']}/s")
        durable = [
            r["rows_per_s"] for r in runs if r.get("synchronous_commit", "on") == "on" and r["rows_per_s"]
        ]
        results["chain_baseline"] = {
            "runs": runs,
            "best_durable_rows_per_s": max(durable) if durable else None,
        }

    if "verify" in only:
        workers = _ints(args.verify_workers) or sorted({1, os.cpu_count() or 1})
        _log(f"ledger verification over {args.verify_events} events ...")
        results["verification"] = verification.verification_bench(
            events=args.verify_events,
            workers=workers,
            repeats=args.verify_repeats,
            populate=args.populate,
            log=_log,
        )

    if "proofs" in only:
        from bench import proofs

        _log(f"Merkle proofs and witness cosigning over {args.proof_leaves:,} events ...")
        results["proofs"] = proofs.proofs_bench(
            leaves=args.proof_leaves, proofs=args.proof_count, checkpoints=args.proof_checkpoints, log=_log
        )

    if "policy" in only:
        from bench import policy

        _log("policy decisions per second ...")
        results["policy"] = policy.policy_bench(
            decisions=args.policy_decisions, explain_decisions=args.explain_decisions, log=_log
        )
    if "flow" in only:
        from bench import flow

        _log("intent -> completed, three-step autonomous plan, real Celery worker ...")
        results["flow"] = flow.flow_bench(
            intents=args.flow_intents,
            hops=args.flow_hops,
            env=env,
            work=work,
            concurrency=args.flow_concurrency,
            submit_threads=args.flow_submit_threads,
            submit_processes=args.concurrent_processes,
            submit_seconds=args.flow_submit_seconds,
            log=_log,
        )
    if "console" in only:
        from bench import console

        _log(f"approval queue page with {args.queue_pending:,} pending requests ...")
        results["approval_queue"] = console.approval_queue_bench(
            pending=args.queue_pending, steps_per_plan=args.queue_steps, renders=args.queue_renders, log=_log
        )
    if "storm" in only:
        from bench import storm

        _log("alert storm: grouped Alertmanager deliveries of 1, 10, 100 and 500 alerts ...")
        results["storm"] = storm.storm_bench(quick=args.quick, log=_log)
    if "signals" in only:
        from bench import signals

        _log("signals: ingest through promotion ...")
        results["signals"] = signals.signals_bench(
            env=env,
            work=work,
            config=config,
            rates=_rates(args.signal_rates),
            duration=args.signal_duration,
            count=args.signal_count,
            common=common,
            postmaster=postmaster,
            refine=args.refine,
            probe_down=args.probe_down,
            threads=args.signal_threads,
            processes=args.concurrent_processes,
            concurrent_seconds=args.signal_concurrent_seconds,
            log=_log,
        )
    if "plugins" in only:
        from bench import plugins

        _log("plugins: signed heartbeats and supervision passes ...")
        results["plugins"] = plugins.plugins_bench(
            heartbeats=args.plugin_heartbeats, plugins=args.plugin_fleet, log=_log
        )

    results["ratios"] = _ratios(results)
    results["goals"] = _goals(results)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    return results


class _Parts:
    """The parts that run a gunicorn: sweeps, the profile and the shedding experiment."""

    def __init__(
        self,
        *,
        args: argparse.Namespace,
        env: dict[str, str],
        work: Path,
        producer: Any,
        postmaster: int | None,
        common: dict[str, Any],
    ) -> None:
        self.args, self.env, self.work, self.producer = args, env, work, producer
        self.postmaster, self.common = postmaster, common
        self.servers = 0

    def _server(self, config: ServerConfig, profile_dir: Path | None = None) -> Any:
        from bench import server

        self.servers += 1
        log_path = self.work / f"gunicorn-{self.servers}.log"
        return server.gunicorn(config=config, env=self.env, log_path=log_path, profile_dir=profile_dir)

    def _makers(self, srv: Any, extra_headers: dict[str, str] | None = None) -> tuple[Any, Any]:
        from bench import ingest

        def signed(n: int, tag: str) -> list[bytes]:
            return ingest.signed_requests(
                self.producer, count=n, host=srv.host, port=srv.port, tag=tag, extra_headers=extra_headers
            )

        def noop(n: int, tag: str) -> list[bytes]:
            return ingest.noop_requests(self.producer, count=n, host=srv.host, port=srv.port, tag=tag)

        return signed, noop

    def _warm_up(self, srv: Any) -> None:
        """Every worker thread imports, connects and fills its caches before anything is measured."""
        from bench import loadgen, server

        signed, noop = self._makers(srv)
        count = max(64, srv.config.workers * (1 if srv.config.asgi else srv.config.threads) * 4)
        for make in (noop, signed):
            warm = make(count, f"warmup-{self.servers}")
            loadgen.run_step(host=srv.host, port=srv.port, requests=warm, rate=100, **self.common)
        server.settle(srv)

    def noop_and_ingest(self, config: ServerConfig, only: set[str], results: dict[str, Any]) -> None:
        from bench import ingest

        args = self.args
        if "noop" in only:
            # A DRF view is a WSGI view: under an ASGI worker Django runs every sync view on one thread
            # per process, so its ceiling is measured where DRF views are served, the threaded worker.
            threaded = replace(
                config, worker_class="controlplane.serving.QueueTimeWorker", workers=2, threads=16
            )
            noop_config = threaded if config.asgi else config
            with self._server(noop_config) as srv:
                self._warm_up(srv)
                _, noop = self._makers(srv)
                _log(f"no-op DRF view ceiling ({noop_config.describe()}) ...")
                results["noop"] = {
                    **ingest.sweep(
                        srv,
                        name="noop",
                        make_requests=noop,
                        rates=_rates(args.noop_rates),
                        duration=args.noop_duration,
                        cpu_trees={"gunicorn": srv.pid, "postgres": self.postmaster or 0},
                        log=_log,
                        **self.common,
                    ).as_dict(),
                    "server": noop_config.as_dict(),
                }
        with self._server(config) as srv:
            trees = {"gunicorn": srv.pid, "postgres": self.postmaster or 0}
            self._warm_up(srv)
            signed, _ = self._makers(srv)
            if "ingest" not in only:
                return
            _log("signed-event ingest ...")
            sweep = ingest.sweep(
                srv,
                name="ingest",
                make_requests=signed,
                rates=_rates(args.rates),
                duration=args.duration,
                cpu_trees=trees,
                refine=args.refine,
                probe_down=args.probe_down,
                log=_log,
                **self.common,
            )
            results["ingest"] = sweep.as_dict()
            if not sweep.max_sustained:
                return
            rate = round(0.8 * sweep.max_sustained, -1) or 0.8 * sweep.max_sustained
            _log(f"ingest at 80% of the maximum sustained rate ({rate:g}/s) ...")
            step = ingest.run_rate(
                srv,
                make_requests=signed,
                rate=rate,
                duration=args.duration,
                label="ingest-80pct",
                cpu_trees=trees,
                **self.common,
            )
            _log(ingest._line("ingest", step))
            results["ingest_at_80pct"] = {**step.as_dict(), "sustained": ingest.sustained(step)}

    def profile(self, config: ServerConfig, *, rate: float, results: dict[str, Any]) -> None:
        from bench import ingest, profiling

        _log(f"profiling ingest at {rate:g}/s ...")
        profile_dir = self.work / "profile"
        profile_dir.mkdir(exist_ok=True)
        with self._server(config, profile_dir=profile_dir) as srv:
            self._warm_up(srv)
            signed, _ = self._makers(srv, extra_headers={"X-Bench-Profile": "1"})
            step = ingest.run_rate(
                srv,
                make_requests=signed,
                rate=rate,
                duration=self.args.profile_duration,
                label="profile",
                cpu_trees={},
                **self.common,
            )
        results["profile"] = {
            **profiling.summarise(profile_dir, requests=step.scheduled),
            "rate": rate,
            "status_counts": step.status_counts,
            "latency_ms": step.latency_ms,
        }

    def shedding(self, config: ServerConfig, *, max_sustained: float | None, results: dict[str, Any]) -> None:
        """The same overload offered to several server set-ups: which of them refuses instead of queueing?"""
        from bench import ingest

        base = max_sustained or 100.0
        rates = sorted({round(1.5 * base, -1) or 1.5 * base, round(3 * base, -1) or 3 * base})
        budget = f"queue budget {config.queue_budget_ms} ms"
        threaded = replace(config, worker_class="controlplane.serving.QueueTimeWorker", workers=2, threads=16)
        setups = [
            ("sync, 5 workers (2 x cores + 1)", replace(config, worker_class="sync", workers=5, threads=1)),
            (
                f"gthread 2 x 16, in-flight limit {config.max_inflight}, no queue time",
                replace(threaded, worker_class="gthread"),
            ),
            (f"QueueTimeWorker 2 x 16 (WSGI), {budget}", threaded),
            (
                f"UvicornWorker x 2 (ASGI, two appending processes), {budget}",
                replace(config, worker_class="uvicorn_worker.UvicornWorker", workers=2),
            ),
        ]
        setups = [(name, setup) for name, setup in setups if setup != config]
        setups.append((f"{config.describe()}, {budget} (the benchmark's configuration)", config))
        _log(f"shedding experiment at {', '.join(f'{r:g}' for r in rates)}/s ...")
        experiment = []
        for name, setup in setups:
            with self._server(setup) as srv:
                trees = {"gunicorn": srv.pid, "postgres": self.postmaster or 0}
                self._warm_up(srv)
                signed, _ = self._makers(srv)
                steps = []
                for rate in rates:
                    step = ingest.run_rate(
                        srv,
                        make_requests=signed,
                        rate=rate,
                        duration=self.args.shed_duration,
                        label=f"shed-{rate:g}",
                        cpu_trees=trees,
                        **self.common,
                    )
                    _log(ingest._line("shed", step) + f"  [{name}]")
                    steps.append({**step.as_dict(), "sustained": ingest.sustained(step)})
            experiment.append({"setup": name, "server": setup.as_dict(), "steps": steps})
        results["shedding"] = {"rates": rates, "setups": experiment}


def loadgen_sweep_sink(srv: Any, rates: list[float], duration: float, common: dict[str, Any]) -> list[Any]:
    from bench import loadgen

    request = loadgen.build_request(
        method="POST",
        path="/sink",
        host=srv.host,
        port=srv.port,
        headers={"Content-Type": "application/cloudevents+json"},
        body=b"x" * 600,
    )
    steps = []
    for rate in rates:
        step = loadgen.run_step(
            host=srv.host,
            port=srv.port,
            requests=[request] * max(1, round(rate * duration)),
            rate=rate,
            label=f"sink-{rate:g}",
            **common,
        )
        _log(
            f"  sink    offered {rate:>6g}/s  ok {step.achieved_rate:>7.1f}/s  latency {step.latency_ms}  "
            f"generator {1e6 * step.generator_cpu_s / step.scheduled:.0f} us CPU/request"
        )
        steps.append(step)
    return steps


def _ratios(results: dict[str, Any]) -> dict[str, float | None]:
    ingest = (results.get("ingest") or {}).get("max_sustained_rate")
    noop = (results.get("noop") or {}).get("max_sustained_rate")
    raw = (results.get("chain_baseline") or {}).get("best_durable_rows_per_s")

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    return {
        "ingest max sustained / no-op view max sustained": ratio(ingest, noop),
        "ingest max sustained / raw psycopg chain (best durable)": ratio(ingest, raw),
    }


def _step_at(results: dict[str, Any], rate: float) -> dict[str, Any] | None:
    for step in (results.get("ingest") or {}).get("steps", []):
        if step["offered_rate"] == rate:
            return step
    return None


def _goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    goals: list[dict[str, Any]] = []
    ingest = results.get("ingest")
    if ingest:
        best = ingest.get("max_sustained_rate")
        goals.append(
            {
                "goal": "signed ingest throughput (max sustained offered rate)",
                "target": f">= {GOAL_RATE:,.0f} /s",
                "measured": (f"{best:,.0f} /s" if best else "none sustained")
                + ("" if ingest.get("saturated") else " (saturation not reached)"),
                "met": bool(best and best >= GOAL_RATE),
            }
        )
        at_goal = _step_at(results, 0.8 * GOAL_RATE)
        for name, limit in (("p95", GOAL_P95_MS), ("p99", GOAL_P99_MS)):
            value = at_goal["latency_ms"][name] if at_goal else None
            goals.append(
                {
                    "goal": f"ingest {name} at {0.8 * GOAL_RATE:,.0f} /s (80 % of the goal rate)",
                    "target": f"<= {limit:g} ms",
                    "measured": f"{value:,.1f} ms" + ("" if at_goal["sustained"] else " (rate not sustained)")
                    if value is not None
                    else "not offered",
                    "met": None if value is None else bool(at_goal["sustained"] and value <= limit),
                }
            )
        at80 = results.get("ingest_at_80pct")
        if at80:
            goals.append(
                {
                    "goal": "ingest p95 / p99 at 80 % of the measured maximum "
                    f"({at80['offered_rate']:,.0f} /s)",
                    "target": f"<= {GOAL_P95_MS:g} / {GOAL_P99_MS:g} ms",
                    "measured": f"{at80['latency_ms']['p95']} / {at80['latency_ms']['p99']} ms",
                    "met": bool(
                        at80["sustained"]
                        and at80["latency_ms"]["p95"] is not None
                        and at80["latency_ms"]["p95"] <= GOAL_P95_MS
                        and at80["latency_ms"]["p99"] <= GOAL_P99_MS
                    ),
                }
            )
        over = [s for s in ingest["steps"] if best and s["offered_rate"] > best] if best else ingest["steps"]
        over = [s for s in over if not s["sustained"]]
        if over:
            sheds = all(s["shed"] > 0 for s in over)
            bounded = all((s["latency_ms"]["p99"] or 0) <= SHED_MAX_P99_MS and not s["errors"] for s in over)
            goals.append(
                {
                    "goal": "past saturation: sheds load (429/503) instead of queueing seconds",
                    "target": f"each overloaded step: shed > 0, p99 <= {SHED_MAX_P99_MS:,.0f} ms, no loss",
                    "measured": "; ".join(
                        f"{s['offered_rate']:,.0f}/s: shed {s['shed']:,}, p99 {s['latency_ms']['p99']} ms, "
                        f"no response {s['no_response']:,}"
                        for s in over
                    ),
                    "met": sheds and bounded,
                }
            )
    verification = results.get("verification")
    if verification:
        cores = str(
            max(int(w) for w in verification["best_events_per_s"]) if verification["best_events_per_s"] else 0
        )
        value = verification["best_events_per_s"].get(cores)
        goals.append(
            {
                "goal": f"ledger verification on all cores ({cores} workers)",
                "target": f">= {GOAL_VERIFY_RATE:,.0f} events/s",
                "measured": f"{value:,.0f} events/s" if value else "failed",
                "met": bool(value and value >= GOAL_VERIFY_RATE),
            }
        )
        bare = (verification.get("ed25519_bare") or {}).get("2")
        if bare:
            ratio = bare.get("verify_ratio")
            goals.append(
                {
                    "goal": "ledger verify on 2 workers, every check on, against bare Ed25519 on 2 processes",
                    "target": f">= {GOAL_VERIFY_RATIO} of the bare rate",
                    "measured": f"{ratio}" if ratio is not None else "failed",
                    "met": bool(ratio is not None and ratio >= GOAL_VERIFY_RATIO),
                }
            )
        checks_ratio = (verification.get("checks_vs_walk_only") or {}).get("2")
        if checks_ratio is not None:
            goals.append(
                {
                    "goal": "ledger verify on 2 workers: the checks beside the chain (truncation, fork, "
                    "Merkle root, key events, witness) against the same walk without them",
                    "target": f">= {GOAL_VERIFY_RATIO} of the walk alone",
                    "measured": f"{checks_ratio}",
                    "met": checks_ratio >= GOAL_VERIFY_RATIO,
                }
            )
    from bench import plugins

    goals += plugins.goals(results)
    return goals
