"""gunicorn configuration for benchmark runs (`gunicorn -c python:bench.gunicorn_conf ...`).

`bench.server` sets the BENCH_* variables; the defaults are the configuration the numbers in
docs/benchmarks.md were measured with: gunicorn with uvicorn's worker (`uvicorn_worker.UvicornWorker`)
serving `controlplane.asgi:application`, one worker process, on a 2-core machine:

- an event loop rather than a thread pool: an ingest request is a coroutine on the loop's one thread
  (httptools parses HTTP in C), so no thread waits for the GIL while the appender holds the chain's
  lock, and a request costs about a quarter of the CPU gunicorn's `gthread` worker spends on it;
- one process: the ledger is one chain with one lock, so ingest scales by batching (every delivery
  that arrives while a batch is being appended goes into the next one), not by processes. The process
  that appends alone knows the head it left and appends each batch in one round trip; a second process
  moves that head, and both then append the careful way (two round trips, the lock held between them,
  controlplane/ledger/writer.py). The other core serves PostgreSQL. The shedding experiment also runs
  two processes, and the `gthread`-based `controlplane.serving.QueueTimeWorker`, for comparison;
- refusing past saturation comes from the product: a loop running later than
  CONTROLPLANE_INGEST_QUEUE_BUDGET_MS, or a batch waiting longer than that, is answered 503 before any
  other work (controlplane.channels.ingest.event_loop).

With BENCH_PROFILE_DIR set, the worker runs under cProfile once the first request carrying an
`X-Bench-Profile` header arrives (WSGI workers: one profiler per thread, around those requests only;
the ASGI worker: its loop's thread, everything from then on), and writes `<pid>.prof` there on exit.
"""

from __future__ import annotations

import os

bind = os.environ.get("BENCH_BIND", "127.0.0.1:8000")
worker_class = os.environ.get("BENCH_WORKER_CLASS", "uvicorn_worker.UvicornWorker")
workers = int(os.environ.get("BENCH_WORKERS", "1"))
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
        from bench.server import is_asgi_worker

        if is_asgi_worker(worker_class):
            _profile_loop(worker)
        else:
            _profile_requests(worker)


def _profile_loop(worker) -> None:
    """ASGI: one profiler on the loop's thread, enabled by the first profiled request, never disabled
    (requests interleave on the loop, so the whole thread is what can be measured). Written at the
    lifespan's shutdown: uvicorn ends its worker by re-raising the signal, so `worker_exit` never runs."""
    import cProfile

    profiler = cProfile.Profile()
    application = worker.wsgi
    enabled = []

    async def profiled(scope, receive, send):
        if scope["type"] == "lifespan":

            async def receive_watched():
                message = await receive()
                if message["type"] == "lifespan.shutdown" and enabled:
                    _dump([profiler], worker.pid)
                return message

            return await application(scope, receive_watched, send)
        if (
            not enabled
            and scope["type"] == "http"
            and any(k == b"x-bench-profile" for k, _ in scope["headers"])
        ):
            enabled.append(True)
            profiler.enable()
        return await application(scope, receive, send)

    worker.wsgi = profiled


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
    if profilers:
        _dump(profilers, worker.pid)


def _dump(profilers, pid: int) -> None:
    import pstats

    stats = pstats.Stats(profilers[0])
    for profiler in profilers[1:]:
        stats.add(profiler)
    stats.dump_stats(os.path.join(_PROFILE_DIR, f"{pid}.prof"))
