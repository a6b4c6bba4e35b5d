"""Closed-loop calls from several threads (and processes) of the benchmark, each with its own connection.

Threads of one process share its GIL, so their Python work is serial whatever the database does; the
product runs several worker processes (gunicorn's workers, Celery's), so `processes` > 1 forks that many
copies of the benchmark process, each running `threads` threads, to measure what the database and the
chain's lock allow rather than what one interpreter does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bench.loadgen import percentile
from controlplane.kernel.forking import database_close_for_fork


def _ms(ordered: list[float], fraction: float) -> float | None:
    value = percentile(ordered, fraction)
    return None if value is None else round(value * 1000, 2)


def run_threads(
    threads: int, seconds: float, call: Callable[[int, int], None], *, processes: int = 1
) -> dict[str, Any]:
    """Call `call(thread, n)` in a loop on `threads` threads (of each of `processes` processes: thread
    numbers run over all of them) for `seconds`, all starting together; count and time every call. A
    call that raises stops its thread and is reported under `errors`."""
    if processes > 1:
        return _run_processes(processes, threads, seconds, call)
    samples, errors, elapsed = _loops(threads, seconds, call, first=0, barrier=None)
    return _summary(threads, processes, samples, errors, elapsed)


def _run_processes(processes: int, threads: int, seconds: float, call: Callable[[int, int], None]) -> dict:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes + 1)  # each child's main thread, and this one
    results = context.Queue()
    database_close_for_fork()  # each child opens its own

    def child(index: int) -> None:
        try:
            samples, errors, _ = _loops(threads, seconds, call, first=index * threads, barrier=barrier)
            results.put((samples, errors))
        finally:
            database_close_for_fork()

    children = [context.Process(target=child, args=(i,), daemon=True) for i in range(processes)]
    for process in children:
        process.start()
    barrier.wait(timeout=120)
    began = time.monotonic()
    gathered = [results.get(timeout=seconds + 180) for _ in children]
    elapsed = time.monotonic() - began
    for process in children:
        process.join(timeout=30)
    samples = [s for part, _ in gathered for s in part]
    errors = [e for _, part in gathered for e in part]
    return _summary(threads, processes, samples, errors, elapsed)


def _loops(
    threads: int, seconds: float, call: Callable[[int, int], None], *, first: int, barrier: Any
) -> tuple[list[float], list[str], float]:
    from django.db import connection

    samples: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []
    start = threading.Barrier(threads + 1)
    deadline: list[float] = []

    def loop(index: int) -> None:
        try:
            start.wait()
            n = 0
            while time.monotonic() < deadline[0]:  # bounded by the deadline
                began = time.perf_counter()
                call(first + index, n)
                samples[index].append(time.perf_counter() - began)
                n += 1
        except Exception as exc:  # reported: the measurement is then worthless
            errors.append(repr(exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=loop, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    if barrier is not None:
        barrier.wait(timeout=120)  # every process's threads are ready: start together
    deadline.append(time.monotonic() + seconds)
    began = time.monotonic()
    start.wait()
    for worker in workers:
        worker.join(timeout=seconds + 120)
    elapsed = time.monotonic() - began
    return [s for per_thread in samples for s in per_thread], errors, elapsed


def _summary(
    threads: int, processes: int, samples: list[float], errors: list[str], elapsed: float
) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "threads": threads,
        "processes": processes,
        "count": len(ordered),
        "seconds": round(elapsed, 3),
        "per_s": round(len(ordered) / elapsed, 1) if elapsed else None,
        "latency_ms": {
            "p50": _ms(ordered, 0.5),
            "p95": _ms(ordered, 0.95),
            "p99": _ms(ordered, 0.99),
            "max": round(ordered[-1] * 1000, 2) if ordered else None,
        },
        "errors": errors[:5],
    }
