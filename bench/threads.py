"""Closed-loop calls from several threads of the benchmark process, each with its own connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bench.loadgen import percentile


def _ms(ordered: list[float], fraction: float) -> float | None:
    value = percentile(ordered, fraction)
    return None if value is None else round(value * 1000, 2)


def run_threads(threads: int, seconds: float, call: Callable[[int, int], None]) -> dict[str, Any]:
    """Call `call(thread, n)` in a loop on `threads` threads for `seconds`, all starting together; count
    and time every call. A call that raises stops its thread and is reported under `errors`."""
    from django.db import connection

    samples: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []
    start = threading.Barrier(threads + 1)
    deadline: list[float] = []

    def loop(thread: int) -> None:
        try:
            start.wait()
            n = 0
            while time.monotonic() < deadline[0]:  # bounded by the deadline
                began = time.perf_counter()
                call(thread, n)
                samples[thread].append(time.perf_counter() - began)
                n += 1
        except Exception as exc:  # reported: the measurement is then worthless
            errors.append(repr(exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=loop, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    deadline.append(time.monotonic() + seconds)
    began = time.monotonic()
    start.wait()
    for worker in workers:
        worker.join(timeout=seconds + 120)
    elapsed = time.monotonic() - began
    ordered = sorted(s for per_thread in samples for s in per_thread)
    return {
        "threads": threads,
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
