"""Start and stop the gunicorn under test, on 127.0.0.1, with the benchmark's settings."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServerConfig:
    """How gunicorn runs (see bench/gunicorn_conf.py for why these defaults)."""

    worker_class: str = "uvicorn_worker.UvicornWorker"
    workers: int = 1
    threads: int = 16  # gthread workers only
    backlog: int = 2048
    max_inflight: int = 256  # CONTROLPLANE_INGEST_MAX_INFLIGHT, per process (the product's default)
    queue_budget_ms: int = 50  # CONTROLPLANE_INGEST_QUEUE_BUDGET_MS (the product's default)
    nice: int = 0  # scheduling priority of gunicorn (negative needs root); 0 leaves it alone

    @property
    def asgi(self) -> bool:
        return is_asgi_worker(self.worker_class)

    def describe(self) -> str:
        """`uvicorn_worker.UvicornWorker` x 1 / `gthread` 2 x 16 threads, as the report names set-ups."""
        if self.asgi:
            return f"{self.worker_class} x {self.workers} (one event loop each)"
        return f"{self.worker_class}, {self.workers} workers x {self.threads} threads"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "application": application_for(self.worker_class)}


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    pid: int
    config: ServerConfig
    log_path: Path


def is_asgi_worker(worker_class: str) -> bool:
    """uvicorn's workers serve ASGI; gunicorn's own (and controlplane.serving's) serve WSGI."""
    return "uvicorn" in worker_class.lower()


def application_for(worker_class: str) -> str:
    """The ASGI application for an ASGI worker, the WSGI one for the others."""
    return (
        "controlplane.asgi:application" if is_asgi_worker(worker_class) else "controlplane.wsgi:application"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def children(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
    return found


def _log_tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


@contextlib.contextmanager
def gunicorn(
    *,
    config: ServerConfig,
    env: dict[str, str],
    log_path: Path,
    profile_dir: Path | None = None,
    start_timeout: float = 60.0,
) -> Iterator[Server]:
    """Run `controlplane.wsgi` under gunicorn until the block ends; wait until every worker answers."""
    port = free_port()
    full_env = {
        **os.environ,
        **env,
        "BENCH_BIND": f"127.0.0.1:{port}",
        "BENCH_WORKER_CLASS": config.worker_class,
        "BENCH_WORKERS": str(config.workers),
        "BENCH_THREADS": str(config.threads),
        "BENCH_BACKLOG": str(config.backlog),
        "CONTROLPLANE_INGEST_MAX_INFLIGHT": str(config.max_inflight),
        "CONTROLPLANE_INGEST_QUEUE_BUDGET_MS": str(config.queue_budget_ms),
        "BENCH_PROFILE_DIR": str(profile_dir) if profile_dir else "",
    }
    command = [
        *(["nice", "-n", str(config.nice)] if config.nice else []),
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:bench.gunicorn_conf",
        application_for(config.worker_class),
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + start_timeout
        while True:  # bounded by the deadline
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{_log_tail(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within {start_timeout}s:\n{_log_tail(log_path)}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if len(children(process.pid)) >= config.workers and _get(port, "/healthz") == 200:
                    break
            time.sleep(0.1)
        yield Server(host="127.0.0.1", port=port, pid=process.pid, config=config, log_path=log_path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def settle(server: Server, *, quiet_ms: float = 100.0, timeout: float = 20.0) -> float:
    """Wait until the server answers /healthz quickly twice in a row (the last step's queues drained).

    Returns the seconds waited; never longer than `timeout`.
    """
    started = time.monotonic()
    quick = 0
    while time.monotonic() - started < timeout and quick < 2:
        before = time.monotonic()
        answered = False
        with contextlib.suppress(OSError, http.client.HTTPException):
            answered = _get(server.port, "/healthz", timeout=5) == 200
        quick = quick + 1 if answered and (time.monotonic() - before) * 1000 < quiet_ms else 0
        time.sleep(0.2)
    return time.monotonic() - started
