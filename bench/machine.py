"""Facts about the machine and where the CPU went during a step (Linux /proc)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from bench.server import REPO, children

_TICK = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str:
    with contextlib.suppress(OSError), open(path) as handle:
        return handle.read()
    return ""


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its descendants, living or reaped.

    A reaped child's time is in its parent's cutime/cstime (PostgreSQL's backends come and go)."""
    total = 0.0
    pending, seen = [pid], set()
    while pending and len(seen) < 10_000:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        stat = _read(f"/proc/{current}/stat")
        if stat:
            fields = stat.rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11:15]) / _TICK  # utime, stime, cutime, cstime
        pending += children(current)
    return total


def system_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in _read("/proc/stat").splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / _TICK, total / _TICK


@dataclass
class CpuSnapshot:
    at: float
    busy: float
    total: float
    trees: dict[str, float]


class CpuMeter:
    """Where the machine's CPU went between `start()` and `stop()`: per named process tree, and the
    rest ("other": other processes on the machine, including anything not started by the benchmark)."""

    def __init__(self, trees: dict[str, int]) -> None:
        self.trees = {name: pid for name, pid in trees.items() if pid}
        self.first: CpuSnapshot | None = None

    def _snapshot(self) -> CpuSnapshot:
        busy, total = system_cpu()
        return CpuSnapshot(
            time.monotonic(), busy, total, {n: process_tree_cpu(p) for n, p in self.trees.items()}
        )

    def start(self) -> None:
        self.first = self._snapshot()

    def stop(self, extra: dict[str, float] | None = None) -> dict[str, Any]:
        """CPU seconds per tree plus `extra` (e.g. the generator's own), the machine's busy seconds,
        and utilisation in cores."""
        last = self._snapshot()
        first = self.first or last
        elapsed = max(last.at - first.at, 1e-9)
        used = {name: last.trees[name] - first.trees.get(name, 0.0) for name in last.trees}
        used.update(extra or {})
        busy = last.busy - first.busy
        used["other"] = max(0.0, busy - sum(used.values()))
        return {
            "elapsed_s": round(elapsed, 2),
            "cores_busy": round(busy / elapsed, 2),
            "cores_by_process": {name: round(seconds / elapsed, 2) for name, seconds in used.items()},
        }


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git_commit() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return result.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    return "unknown"


def facts(cursor: Any) -> dict[str, Any]:
    """Machine, software and PostgreSQL durability settings, for the report."""
    settings = {}
    for name in (
        "server_version",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "wal_sync_method",
        "shared_buffers",
        "max_connections",
    ):
        cursor.execute(f"SHOW {name}")
        settings[name] = cursor.fetchone()[0]
    memory_kb = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": settings,
        "git_commit": _git_commit(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def postmaster_pid(cursor: Any) -> int | None:
    """The PostgreSQL server's pid when it runs on this machine (parent of our backend), else None."""
    cursor.execute("SELECT pg_backend_pid()")
    backend = cursor.fetchone()[0]
    stat = _read(f"/proc/{backend}/stat")
    if not stat or "postgres" not in _read(f"/proc/{backend}/cmdline") + stat:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def nice_of(pid: int) -> int | None:
    """A process's nice value (Linux /proc), or None when it cannot be read."""
    stat = _read(f"/proc/{pid}/stat")
    return int(stat.rsplit(")", 1)[1].split()[16]) if stat else None
