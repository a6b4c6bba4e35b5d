"""Real local servers and processes for the runtime tests: the reference runner, a Celery worker, a broker.

Nothing here is a mock: the runner is the product's own HTTP server on a free loopback port, the worker
is `celery -A controlplane worker` in its own process group against the test database and this run's
Redis index, and "the broker is down" is a closed port.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.apps import apps as django_apps
from django.conf import settings
from django.db import connection
from kombu import pools as kombu_pools

from controlplane.celery import app as celery_app
from controlplane.kernel.signatures import hmac_secret_generate
from controlplane.runtime.reference_runner import ReferenceRunner
from controlplane.runtime.runners import runner_grant, runner_register


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll until `condition()` is truthy; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class LocalRunner:
    runner: ReferenceRunner
    url: str
    secret: str
    files: Path

    def lines(self, name: str) -> list[str]:
        path = self.files / name
        return path.read_text().splitlines() if path.exists() else []


def runner_shared(*, name: str, url: str, **fields: Any) -> None:
    """Register a shared runner and grant it to every tenant there is (as the migration did for runners
    registered before tenancy): the tests of the webhook itself are not about who may use it."""
    from controlplane.identity.models import Tenant

    runner_register(name=name, url=url, actor="test", **fields)
    for tenant in Tenant.objects.all():
        runner_grant(name=name, tenant=tenant, actor="test")


@contextlib.contextmanager
def local_runner(tmp_path: Path, *, secret: str | None = None, name: str = "ops") -> Iterator[LocalRunner]:
    """The reference runner on a free port in a thread of this process, registered as `name`."""
    secret = secret or hmac_secret_generate()
    runner = ReferenceRunner(
        secret=secret, state=tmp_path / "runner" / "state.sqlite3", workdir=tmp_path / "files"
    )
    httpd = runner.server("127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/steps"
    runner_shared(name=name, url=url, timeout_seconds=5)
    try:
        yield LocalRunner(runner=runner, url=url, secret=secret, files=tmp_path / "files")
    finally:
        httpd.shutdown()
        httpd.server_close()


def core_skill_installed() -> None:
    """Transactional tests end with a flush that empties migration data too; put the core skill back."""
    for module, function in (
        ("skills.migrations.0002_core_skill", "_install"),
        ("skills.migrations.0003_trust_store", "_core_to_v1"),
        ("skills.migrations.0004_install_requests_action_limits", "_limits_from_manifests"),
    ):
        getattr(importlib.import_module(module), function)(django_apps, None)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _reset_producer_pools() -> None:
    """Forget every pooled broker connection, so the next publish connects to the configured URL."""
    kombu_pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextlib.contextmanager
def broker_unreachable() -> Iterator[None]:
    """This process publishes to a closed port until the block ends (workers keep the real broker)."""
    original = celery_app.conf.broker_url
    _reset_producer_pools()
    celery_app.conf.broker_url = f"redis://127.0.0.1:{closed_port()}/0"
    try:
        yield
    finally:
        _reset_producer_pools()
        celery_app.conf.broker_url = original


def database_url() -> str:
    """The URL of the database this test runs against (pytest-django's test_<name>)."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Worker:
    """A real `celery -A controlplane worker` process, in its own process group so it can be killed whole."""

    def __init__(self, log_dir: Path, *, env: dict[str, str]):
        self.name = f"cp-test-{uuid.uuid4().hex[:8]}"
        self.log = log_dir / f"{self.name}.log"
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 90) -> Worker:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "controlplane",
            "worker",
            "--loglevel",
            "INFO",
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "--hostname",
            f"{self.name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._ready, timeout=timeout, what=f"worker {self.name} to be ready", interval=0.2)
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker {self.name} exited:\n{self.output()}")
        return " ready." in self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the worker and its pool children: nothing gets to clean up, as when a machine dies."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def worker_env(*, runner_secret: str = "", **extra: str) -> dict[str, str]:
    """The environment a worker needs to share this test's database, Redis index and ledger keys."""
    env = {
        **os.environ,
        "CONTROLPLANE_ENV": "dev",
        "DATABASE_URL": database_url(),
        "DATABASE_CONN_MAX_AGE": "0",
        "REDIS_URL": settings.REDIS_URL,
        "CONTROLPLANE_KEY_DIR": str(settings.CONTROLPLANE_KEY_DIR),
        "CONTROLPLANE_LEDGER_KEY": "",
        "CONTROLPLANE_LEDGER_AUTOGENERATE_KEY": "false",
        "CONTROLPLANE_RUNNER_SECRET": runner_secret,
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env
