"""gunicorn configuration for benchmark runs (`gunicorn -c python:bench.gunicorn_conf ...`).

`bench.server` sets the BENCH_* variables; the defaults are the configuration the numbers in
docs/benchmarks.md were measured with. Why `controlplane.serving.QueueTimeWorker` (gunicorn's `gthread`
plus the time each request waited for a thread), 2 workers x 16 threads on a 2-core machine:

- one process per core: more processes only add context switches and memory, as the GIL is held for
  only part of each request;
- threads, because a request spends much of its life waiting on PostgreSQL (the chain lock and the WAL
  flush at commit) with the GIL released, because `gthread` keeps connections alive (the `sync` worker
  closes every connection after one response), and because ingest's group commit appends together the
  deliveries that wait at the same time: more threads, larger batches;
- the queue time lets the product refuse a request that waited past its budget with 503 before doing
  any work (CONTROLPLANE_INGEST_QUEUE_BUDGET_MS), which is what keeps latency bounded past saturation.

With BENCH_PROFILE_DIR set, every request carrying an `X-Bench-Profile` header runs under cProfile
(one profiler per worker thread; warm-up requests go without the header) and each worker writes
`<pid>.prof` there when it exits.
"""

from __future__ import annotations

import os

bind = os.environ.get("BENCH_BIND", "127.0.0.1:8000")
worker_class = os.environ.get("BENCH_WORKER_CLASS", "controlplane.serving.QueueTimeWorker")
workers = int(os.environ.get("BENCH_WORKERS", "2"))
threads = int(os.environ.get("BENCH_THREADS", "16"))
backlog = int(os.environ.get("BENCH_BACKLOG", "2048"))
# Above the generator's idle-reuse limit (bench.loadgen), so a reused connection is never one that the
# server is just closing.
keepalive = 5
timeout = 60
graceful_timeout = 10
accesslog = None
errorlog = "-"
loglevel = "warning"
proc_name = "controlplane-bench"

_PROFILE_DIR = os.environ.get("BENCH_PROFILE_DIR", "")


def post_worker_init(worker) -> None:
    if _PROFILE_DIR:
        _profile_requests(worker)


def _profile_requests(worker) -> None:
    import cProfile
    import threading

    local = threading.local()
    profilers: list[cProfile.Profile] = []
    lock = threading.Lock()
    application = worker.wsgi

    def profiled(environ, start_response):
        if "HTTP_X_BENCH_PROFILE" not in environ:
            return application(environ, start_response)
        profiler = getattr(local, "profiler", None)
        if profiler is None:
            profiler = local.profiler = cProfile.Profile()
            with lock:
                profilers.append(profiler)
        profiler.enable()
        try:
            return application(environ, start_response)
        finally:
            profiler.disable()

    worker.wsgi = profiled
    worker.bench_profilers = profilers


def worker_exit(server, worker) -> None:
    profilers = getattr(worker, "bench_profilers", None)
    if not profilers:
        return
    import pstats

    stats = pstats.Stats(profilers[0])
    for profiler in profilers[1:]:
        stats.add(profiler)
    stats.dump_stats(os.path.join(_PROFILE_DIR, f"{worker.pid}.prof"))
