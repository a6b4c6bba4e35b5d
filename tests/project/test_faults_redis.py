"""Redis stopped mid-flow, on a throwaway redis-server of this test's own (never the shared one): the API
and the console keep serving (the auth throttle counts per process), signed ingest keeps accepting, new
work waits in the outbox and is dispatched when Redis returns, and every execution completes exactly once.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from controlplane.celery import app as celery_app
from controlplane.channels import services as channels
from controlplane.identity import throttle
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain
from controlplane.policy import services as policy
from controlplane.runtime import services as runtime
from controlplane.runtime.models import Execution, StepRun
from tests.channels.support import cloudevent, make_deliver
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.runtime.support import (
    Worker,
    _reset_producer_pools,
    closed_port,
    core_skill_installed,
    local_runner,
    wait_for,
    worker_env,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary"),
]


class OwnRedis:
    """A redis-server on a free loopback port, in a temporary directory, that the test stops and starts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = closed_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
        ]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_for(self._answers, timeout=20, what="the test's redis-server to answer")

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture
def own_redis(tmp_path, settings) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    original_broker = celery_app.conf.broker_url
    settings.REDIS_URL = server.url
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": server.url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    _reset_producer_pools()
    celery_app.conf.broker_url = server.url
    throttle._local.clear()
    try:
        yield server
    finally:
        _reset_producer_pools()
        celery_app.conf.broker_url = original_broker
        throttle._local.clear()
        server.stop()


@contextlib.contextmanager
def worker_on(tmp_path: Path, runner_secret: str) -> Iterator[Worker]:
    worker = Worker(tmp_path, env=worker_env(runner_secret=runner_secret)).start()
    try:
        yield worker
    finally:
        worker.kill()


def _append_step(line: str) -> dict:
    inputs = {"runner": "ops", "operation": "append", "payload": {"file": "effects.log", "line": line}}
    return {"key": "a", "action": "http.webhook", "inputs": inputs}


def _finished(execution: Execution) -> bool:
    execution.refresh_from_db()
    return execution.status != "running"


def test_redis_stopped_and_started_again_loses_nothing_and_runs_everything_once(
    tmp_path, settings, own_redis, client
):
    core_skill_installed()
    policy.profile_bootstrap(environment="dev")  # also makes this test's ledger key, which the worker loads
    tenant = TenantFactory(slug="acme")
    operator = PrincipalFactory(tenant=tenant, name="ops-bot")
    reader = token_for(PrincipalFactory(tenant=tenant, name="reader", capabilities=["ledger.read"]))
    user = get_user_model().objects.create_user("carol", password="a-long-password-1")
    PrincipalFactory(tenant=tenant, user=user, name="carol", human=True, capabilities=["console.view"])
    producer = channels.producer_create(tenant=tenant, name="alerts", actor="test")
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = "require-valid-signature"
    deliver = make_deliver(client)

    with local_runner(tmp_path) as runner, worker_on(tmp_path, runner.secret):
        settings.CONTROLPLANE_RUNNER_SECRET = runner.secret
        before = runtime.intent_submit(
            principal=operator,
            draft={"goal": "before", "steps": [_append_step("before")]},
            idempotency_key="k-1",
        )
        first = Execution.objects.get(intent=before)
        wait_for(lambda: _finished(first), timeout=60, what="the first execution")

        own_redis.stop()  # --- Redis is down -------------------------------------------------------

        # the API serves, and a bad token is still a coded refusal (the throttle counts in this process)
        assert client.get("/api/v1/ledger/events/", HTTP_AUTHORIZATION=f"Bearer {reader}").status_code == 200
        refused = client.get("/api/v1/ledger/events/", HTTP_AUTHORIZATION="Bearer cp_bad")
        assert (refused.status_code, refused.json()["code"]) == (401, "AUTH_INVALID_TOKEN")
        # the console signs in and serves
        assert (
            client.post("/login/", {"username": "carol", "password": "a-long-password-1"}).status_code == 302
        )
        assert client.get("/").status_code == 200
        client.logout()
        # signed ingest keeps accepting
        accepted = deliver(producer, cloudevent(id="during-outage"), webhook_id="msg-outage")
        assert accepted.status_code == 201, accepted.content
        # new work is accepted and held in the outbox
        during = runtime.intent_submit(
            principal=operator,
            draft={"goal": "during", "steps": [_append_step("during")]},
            idempotency_key="k-2",
        )
        second = Execution.objects.get(intent=during)
        held = StepRun.objects.get(execution=second)
        assert (held.status, held.enqueued_at) == ("ready", None)
        later = timezone.now() + timedelta(seconds=runtime.OUTBOX_GRACE_SECONDS + 1)
        assert runtime.step_runs_sweep(now=later)["deferred"] == 1  # still down: it stays in the outbox
        assert runner.lines("effects.log") == ["before"]

        own_redis.start()  # --- Redis is back (empty: nothing survived in it) ------------------------

        later = timezone.now() + timedelta(seconds=runtime.OUTBOX_GRACE_SECONDS + 1)
        assert runtime.step_runs_sweep(now=later)["published"] == 1
        wait_for(lambda: _finished(second), timeout=90, what="the execution held in the outbox")

    assert first.status == second.status == "completed"
    assert runner.lines("effects.log") == ["before", "during"]  # each effect exactly once
    completed = LedgerEvent.objects.filter(type="controlplane.execution.step.completed")
    assert sorted(e.subject for e in completed) == sorted([f"execution/{first.id}", f"execution/{second.id}"])
    assert LedgerEvent.objects.filter(id=accepted.json()["id"]).count() == 1
    assert verify_chain().ok
