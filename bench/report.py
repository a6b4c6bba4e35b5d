"""The run's results as JSON (latest plus a timestamped copy) and as a Markdown report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.server import is_asgi_worker


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _cores(step: dict[str, Any]) -> str:
    cpu = step.get("cpu", {}).get("cores_by_process", {})
    if not cpu:
        return "–"
    order = ("generator", "gunicorn", "postgres", "other")
    return " / ".join(f"{cpu.get(name, 0):.2f}" for name in order)


def _server_text(config: dict[str, Any]) -> str:
    """How the server under test ran, as in bench.server.ServerConfig.describe."""
    served = f"`{config.get('worker_class')}` serving `{config.get('application')}`"
    workers, threads = config.get("workers"), config.get("threads")
    if is_asgi_worker(str(config.get("worker_class", ""))):
        return f"{served}, {workers} worker(s), one event loop each"
    return f"{served}, {workers} workers x {threads} threads"


def _step_table(steps: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| offered /s | achieved 2xx/s | p50 ms | p95 ms | p99 ms | max ms | 2xx | 429 | 503 | other status |"
        " no response | sustained | CPU cores: gen / gunicorn / pg / other |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|:-:|---|",
    ]
    for step in steps:
        statuses = step["status_counts"]
        other = {k: v for k, v in statuses.items() if not k.startswith("2") and k not in ("429", "503")}
        latency = step["latency_ms"]
        lines.append(
            f"| {step['offered_rate']:,.0f} | {step['achieved_rate']:,.0f} | {_ms(latency['p50'])} "
            f"| {_ms(latency['p95'])} | {_ms(latency['p99'])} | {_ms(latency['max'])} | {step['ok']:,} "
            f"| {statuses.get('429', 0):,} | {statuses.get('503', 0):,} "
            f"| {', '.join(f'{k}: {v}' for k, v in other.items()) or '–'} "
            f"| {', '.join(f'{k}: {v}' for k, v in step['errors'].items()) or '–'} "
            f"| {'yes' if step.get('sustained') else 'no'} | {_cores(step)} |"
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    """A human-readable report of one run (bench/results/latest.md)."""
    out = [
        "# Benchmark results",
        "",
        f"Run at {results['started_at']} on commit `{results['machine'].get('git_commit', '?')}`; "
        f"took {results.get('elapsed_s', 0):.0f} s. How to read this: docs/benchmarks.md.",
        "",
    ]
    if results.get("notes"):
        out += [f"> {note}" for note in results["notes"]] + [""]
    goals = results.get("goals", [])
    if goals:
        out += ["## Goals", "", "| goal | target | measured | met |", "|---|---|---|:-:|"]
        for goal in goals:
            met = {True: "**yes**", False: "**no**", None: "not measured"}[goal["met"]]
            out.append(f"| {goal['goal']} | {goal['target']} | {goal['measured']} | {met} |")
        out.append("")
    ingest = results.get("ingest")
    if ingest:
        config = results.get("server", {})
        out += [
            "## Signed-event ingest (`POST /api/v1/events/`)",
            "",
            f"gunicorn {_server_text(config)}, backlog {config.get('backlog')}, "
            f"CONTROLPLANE_INGEST_MAX_INFLIGHT={config.get('max_inflight')}, "
            f"CONTROLPLANE_INGEST_QUEUE_BUDGET_MS={config.get('queue_budget_ms')}, "
            f"nice {config.get('nice', 0)}; "
            "signing mode "
            f"`{results.get('signing_mode')}`. Open loop; latency from each request's scheduled send time.",
            "",
            *_step_table(ingest["steps"]),
            "",
            f"Maximum sustained rate: **{_rate(ingest.get('max_sustained_rate'))} /s**"
            + (
                "." if ingest.get("saturated") else " (the highest rate offered: saturation was not reached)."
            ),
            "",
        ]
        at80 = results.get("ingest_at_80pct")
        if at80:
            latency = at80["latency_ms"]
            out += [
                f"At 80 % of it ({at80['offered_rate']:,.0f} /s, {at80['duration_s']:g} s): "
                f"p50 {_ms(latency['p50'])} ms, p95 **{_ms(latency['p95'])} ms**, "
                f"p99 **{_ms(latency['p99'])} ms**, "
                f"{at80['ok']:,} of {at80['scheduled']:,} accepted.",
                "",
            ]
    noop = results.get("noop")
    if noop:
        served = _server_text(noop["server"]) if noop.get("server") else "the same gunicorn"
        out += [
            "## Ceiling 1: a no-op DRF view (`POST /bench/noop/`)",
            "",
            f"Served by gunicorn {served}: DRF views are WSGI views (under an ASGI worker Django runs every"
            " sync view on one thread per process, so the ingest server is not where they are served).",
            "",
            *_step_table(noop["steps"]),
            "",
            f"Maximum sustained rate: **{_rate(noop.get('max_sustained_rate'))} /s**"
            + ("." if noop.get("saturated") else " (the highest rate offered: saturation was not reached)."),
            "",
        ]
    chain = results.get("chain_baseline")
    if chain:
        out += [
            "## Ceiling 2: the chain with psycopg alone",
            "",
            "One transaction per row: advisory lock, read head, RFC 8785 bytes, SHA-256 link, Ed25519 "
            "signature, INSERT, COMMIT. Scratch table with the ledger table's shape and indexes.",
            "",
            "| connections | synchronous_commit | rows | rows/s | append p50 ms | append p99 ms "
            "| chain intact |",
            "|---:|---|---:|---:|---:|---:|:-:|",
        ]
        for run in chain["runs"]:
            latency = run["append_latency_ms"]
            out.append(
                f"| {run['connections']} | {run.get('synchronous_commit', 'on')} | {run['rows']:,} "
                f"| {_rate(run['rows_per_s'])} | {_ms(latency['p50'])} | {_ms(latency['p99'])} "
                f"| {'yes' if run['chain_intact'] else '**no**'} |"
            )
        out.append("")
    ratios = results.get("ratios")
    if ratios:
        out += ["## Ratios", "", "| ours / ceiling | ratio |", "|---|---:|"]
        out += [
            f"| {name} | {value if value is None else f'{value:.2f}'} |" for name, value in ratios.items()
        ]
        out.append("")
    shedding = results.get("shedding")
    if shedding:
        out += [
            "## Past saturation: which set-up refuses instead of queueing?",
            "",
            "The same overload offered to several server set-ups: gunicorn's `sync` worker, `gthread` (no "
            "queue time, so only the in-flight limit sheds), the threaded `QueueTimeWorker` with the "
            "product's queue budget, two uvicorn processes (two appenders) and the benchmark's "
            "configuration (docs/benchmarks.md).",
            "",
            "| set-up | offered /s | achieved 2xx/s | p50 ms | p95 ms | p99 ms | 2xx | 503 | 429 "
            "| other status | no response |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for setup in shedding["setups"]:
            for step in setup["steps"]:
                statuses = step["status_counts"]
                other = {
                    k: v for k, v in statuses.items() if not k.startswith("2") and k not in ("429", "503")
                }
                latency = step["latency_ms"]
                out.append(
                    f"| {setup['setup']} | {step['offered_rate']:,.0f} | {step['achieved_rate']:,.0f} "
                    f"| {_ms(latency['p50'])} | {_ms(latency['p95'])} | {_ms(latency['p99'])} "
                    f"| {step['ok']:,} | {statuses.get('503', 0):,} | {statuses.get('429', 0):,} "
                    f"| {', '.join(f'{k}: {v}' for k, v in other.items()) or '–'} "
                    f"| {', '.join(f'{k}: {v}' for k, v in step['errors'].items()) or '–'} |"
                )
        out.append("")
    sink = results.get("generator_ceiling")
    if sink:
        out += [
            "## The load generator's own ceiling (against a trivial asyncio HTTP server)",
            "",
            *_step_table(sink["steps"]),
            "",
        ]
    verification = results.get("verification")
    if verification:
        out += [
            "## Ledger verification",
            "",
            f"`verify_chain` over {verification['events']:,} events ({verification['populated']:,} "
            f"populated with `{verification['populate_method']}` in {verification['populate_s']:.1f} s, "
            f"{verification['already_present']:,} already on the chain).",
            "",
            "| workers | run | events | seconds | events/s | ok |",
            "|---:|---:|---:|---:|---:|:-:|",
        ]
        for run in verification["runs"]:
            out.append(
                f"| {run['workers']} | {run['attempt']} | {run['events_checked']:,} | {run['seconds']:.2f} "
                f"| {_rate(run['events_per_s'])} | {'yes' if run['ok'] else '**no**'} |"
            )
        out.append("")
        bare = verification.get("ed25519_bare") or {}
        if bare:
            checks = (
                f"with a witnessed checkpoint at seq {verification['checkpoint_seq']} (truncation, fork, "
                "Merkle root, key-event and witness checks on)"
                if verification.get("checks")
                else "without checkpoints"
            )
            out += [
                f"Beside it, {checks}: the bare Ed25519 rate of the same events (signature checks only, "
                "same number of processes) and the share of it `verify_chain` keeps.",
                "",
                "| processes | bare Ed25519/s | verify_chain / bare |",
                "|---:|---:|---:|",
                *(
                    f"| {w} | {_rate(row['per_s'])} | {row['verify_ratio']} |"
                    for w, row in sorted(bare.items(), key=lambda item: int(item[0]))
                ),
                "",
            ]
        walk_only = verification.get("walk_only_runs") or []
        if walk_only:
            ratios = verification.get("checks_vs_walk_only") or {}
            out += [
                "What the checks beside the chain cost: the same walk timed first with no checkpoint and no "
                "witness log (nothing beside the chain to check), then with them.",
                "",
                "| workers | walk only, events/s (best) | every check on, events/s (best) | on / walk only |",
                "|---:|---:|---:|---:|",
            ]
            for w, ratio in sorted(ratios.items(), key=lambda item: int(item[0])):
                walk = max(r["events_per_s"] or 0 for r in walk_only if str(r["workers"]) == w)
                on = verification["best_events_per_s"].get(w)
                out.append(f"| {w} | {_rate(walk)} | {_rate(on)} | {ratio} |")
            out.append("")
    profile = results.get("profile")
    if profile and "by_area_ms_per_request" in profile:
        out += [
            "## Where an ingest request's time goes (cProfile; how to read it: bench/profiling.py)",
            "",
            f"{profile['requests_profiled']:,} requests at {profile.get('rate', '?')} /s; "
            f"{profile['profiled_ms_per_request']:.2f} ms profiled per request (profiler overhead included).",
            "",
            "| step of the ingest path | calls/request | cumulative ms/request |",
            "|---|---:|---:|",
            *(
                f"| {label} | {row['calls_per_request']} | {row['cumulative_ms_per_request']:.3f} |"
                for label, row in profile.get("key_functions_ms_per_request", {}).items()
            ),
            "",
            "| area | ms per request |",
            "|---|---:|",
        ]
        out += [f"| {area} | {ms:.3f} |" for area, ms in profile["by_area_ms_per_request"].items()]
        out += [
            "",
            "| function (top by own time) | calls/request | own ms/request | cumulative ms |",
            "|---|---:|---:|---:|",
        ]
        for row in profile["top_own_time"][:15]:
            out.append(
                f"| `{row['function']}` | {row['calls_per_request']} | {row['own_ms_per_request']:.3f} "
                f"| {row['cumulative_ms_per_request']:.3f} |"
            )
        out.append("")
    from bench import (  # these parts write their own sections
        console,
        flow,
        plugins,
        policy,
        proofs,
        signals,
        storm,
    )

    for part in (proofs, policy, flow, console, signals, plugins, storm):
        out += part.report(results)
    machine = results["machine"]
    pg = machine.get("postgresql", {})
    out += [
        "## Machine",
        "",
        f"- CPU: {machine.get('cpu_model')} x {machine.get('cpus')}, {machine.get('memory_gb')} GB RAM, "
        f"Linux {machine.get('kernel')}, Python {machine.get('python')}",
        f"- PostgreSQL {pg.get('server_version')}: fsync={pg.get('fsync')}, "
        f"synchronous_commit={pg.get('synchronous_commit')}, full_page_writes={pg.get('full_page_writes')}, "
        f"wal_sync_method={pg.get('wal_sync_method')}, shared_buffers={pg.get('shared_buffers')}, "
        f"server process nice {pg.get('nice')}",
        f"- Load average at start: {machine.get('load_average_at_start')}; "
        f"at end: {machine.get('load_average_at_end')}",
        "",
    ]
    return "\n".join(out)


def write(results: dict[str, Any], output_dir: Path) -> dict[str, Path]:
    """Write latest.json, <timestamp>.json and latest.md; return their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["started_at"].replace(":", "").replace("-", "")
    text = json.dumps(results, indent=2, sort_keys=False, default=str) + "\n"
    paths = {
        "json": output_dir / "latest.json",
        "stamped": output_dir / f"{stamp}.json",
        "markdown": output_dir / "latest.md",
    }
    paths["json"].write_text(text)
    paths["stamped"].write_text(text)
    paths["markdown"].write_text(markdown(results) + "\n")
    return paths
