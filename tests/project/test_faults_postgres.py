"""PostgreSQL restarted under signed-ingest load, on a throwaway cluster of this test's own (initdb in a
temporary directory, its own port; never the shared server): every delivery answered 2xx is on the chain
once, the chain verifies, the ingest chain writer reconnects by itself, and deliveries during the outage
were answered 503 with a code, never left hanging past the client's timeout.

The server under test is a real process, twice: `manage.py runserver` (WSGI: ingest POSTs take the lean
path and its group commit, controlplane.channels.ingest.lean, on the process's own chain writer
connection) and gunicorn with a uvicorn worker (ASGI: the event-loop ingest path and its chain writer).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from controlplane.kernel import signatures
from tests.runtime.support import closed_port, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CLIENT_TIMEOUT = 15.0

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists(), reason="needs the PostgreSQL 15 binaries in /usr/lib/postgresql/15/bin"
)


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root: as scripts/services.sh does, run it as `postgres` or `cpbuild`."""
    if os.getuid() != 0:
        return None
    for name in ("postgres", "cpbuild"):
        if subprocess.run(["id", name], capture_output=True, check=False).returncode == 0:
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "cpbuild"], check=True
    )
    return "cpbuild"


class OwnPostgres:
    """A PostgreSQL 15 cluster in `directory`, on a free loopback port, with trust authentication."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = closed_port()
        self.user = _pg_user()

    def _as_pg(self, *command: str | Path, check: bool = True) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return subprocess.run([*prefix, *map(str, command)], capture_output=True, text=True, check=check)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/controlplane"

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(self.directory, self.user)
        os.chmod(self.directory, 0o700)
        self._as_pg(
            PG_BIN / "initdb", f"--pgdata={self.data}", "--username=postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        self.start()
        self._as_pg(
            PG_BIN / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "controlplane"
        )

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='{self.directory}'"
        )
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._as_pg(
            PG_BIN / "pg_ctl", f"--pgdata={self.data}", f"--log={self.directory / 'postgres.log'}", "--wait",
            "--timeout=60", "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._as_pg(PG_BIN / "pg_ctl", f"--pgdata={self.data}", "--mode=fast", "--wait", "stop", check=False)


def _env(database_url: str, key_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CONTROLPLANE_ENV": "dev",
        "DATABASE_URL": database_url,
        "DATABASE_CONN_MAX_AGE": "0",
        "REDIS_URL": "",
        "CONTROLPLANE_KEY_DIR": str(key_dir),
        # this cluster's witness log, not the checkout's (var/witness holds other databases' chains)
        "CONTROLPLANE_WITNESS_DIR": str(key_dir.parent / "witness"),
        "CONTROLPLANE_WITNESS_KEY": "",
        "CONTROLPLANE_LEDGER_KEY": "",
        "CONTROLPLANE_LEDGER_AUTOGENERATE_KEY": "true",
        "CONTROLPLANE_EVENT_SIGNING_MODE": "require-valid-signature",
        "CONTROLPLANE_INGEST_QUEUE_BUDGET_MS": "0",
        "PYTHONUNBUFFERED": "1",
    }


SETUP = """
import json
from controlplane.channels import services
from controlplane.identity.services import tenant_create
tenant = tenant_create(slug="acme", actor="test")
created = services.producer_create(tenant=tenant, name="alerts", actor="test")
print(json.dumps({"token": created.token_secret, "secret": created.hmac_secret}))
"""

CHAIN = """
import json
from controlplane.ledger.models import LedgerEvent
rows = list(LedgerEvent.objects.values_list("id", "seq"))
print(json.dumps(rows))
"""


def _manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _post(port: int, producer: dict[str, str], index: int) -> tuple[int, dict, float]:
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": f"evt-{index}",
            "source": "urn:example:load",
            "type": "com.example.alert.fired",
            "subject": "service/checkout",
            "time": "2026-01-02T03:04:05Z",
            "datacontenttype": "application/json",
            "data": {"n": index},
        }
    ).encode()
    webhook_id, timestamp = f"msg-{index}", int(time.time())
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/events/",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/cloudevents+json",
            "Authorization": f"Bearer {producer['token']}",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signatures.sign_hmac(producer["secret"], webhook_id, timestamp, body),
        },
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT) as answer:  # noqa: S310 (loopback)
            return answer.status, json.loads(answer.read()), time.monotonic() - started
    except urllib.error.HTTPError as refused:
        text = refused.read()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = {"raw": text[:200].decode(errors="replace")}
        return refused.code, parsed, time.monotonic() - started
    except (urllib.error.URLError, OSError) as exc:  # connection refused or timed out: no answer at all
        return 0, {"error": repr(exc)}, time.monotonic() - started


def _server_command(kind: str, port: int) -> list[str]:
    """The server under test: Django's threaded WSGI server, or gunicorn with one uvicorn (ASGI) worker, as
    production serves it (ingest then takes the event-loop path and its own chain writer)."""
    if kind == "wsgi":
        return [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    return [
        sys.executable, "-m", "gunicorn", "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "1",
        "--bind", f"127.0.0.1:{port}", "controlplane.asgi:application",
    ]  # fmt: skip


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_a_postgresql_restart_under_ingest_load_loses_nothing_and_answers_503_with_a_code(tmp_path, kind):
    # its own directory under /tmp: pytest's tmp_path lies under root's private directory, which the
    # server's user could not enter
    pg = OwnPostgres(Path(tempfile.mkdtemp(prefix="cp-faults-pg-")))
    pg.init()
    server = None
    try:
        env = _env(pg.url, tmp_path / "keys")
        _manage(env, "migrate", "--no-input")
        producer = json.loads(_manage(env, "shell", "-c", SETUP).strip().splitlines()[-1])
        port = closed_port()
        log = (tmp_path / "server.log").open("wb")
        server = subprocess.Popen(
            _server_command(kind, port),
            cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return True
            except OSError:
                return False

        wait_for(up, timeout=60, what="the server under test")
        results: list[tuple[int, int, dict, float, str]] = []
        phase = ["before"]
        stop = threading.Event()
        counter = iter(range(1_000_000))
        lock = threading.Lock()

        def load() -> None:
            while not stop.is_set():
                with lock:
                    index = next(counter)
                status, body, elapsed = _post(port, producer, index)
                with lock:
                    results.append((index, status, body, elapsed, phase[0]))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        wait_for(lambda: sum(1 for r in results if r[1] == 201) >= 20, timeout=60, what="load before")
        phase[0] = "outage"
        pg.stop()
        time.sleep(2)
        pg.start()
        phase[0] = "after"
        wait_for(
            lambda: sum(1 for r in results if r[4] == "after" and r[1] == 201) >= 20,
            timeout=60,
            what="deliveries accepted after the restart (the chain writer reconnecting)",
        )
        stop.set()
        for thread in threads:
            thread.join(timeout=CLIENT_TIMEOUT + 5)
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(timeout=20)
    try:
        accepted = {r[2]["id"]: r[2]["seq"] for r in results if r[1] == 201}
        chain = dict(json.loads(_manage(env, "shell", "-c", CHAIN).strip().splitlines()[-1]))
        # every delivery answered 2xx is on the chain, at the seq it was told
        assert all(chain.get(event_id) == seq for event_id, seq in accepted.items())
        # nothing duplicated: each accepted event once (ids are unique), each delivery accepted at most once
        assert len(accepted) == sum(1 for r in results if r[1] == 201)
        _manage(env, "ledger", "verify")
        # nothing hung past the client's timeout; every refusal is a coded 503
        assert all(r[3] < CLIENT_TIMEOUT for r in results), max(r[3] for r in results)
        refused = [r for r in results if r[1] != 201]
        during = [r for r in results if r[4] == "outage"]
        assert any(r[1] == 503 for r in during), f"no delivery met the outage: {during[:5]}"
        assert {(r[1], r[2].get("code")) for r in refused} <= {
            (503, "DATABASE_UNAVAILABLE"),
            (503, "LEDGER_WRITE_FAILED"),
        }, refused[:5]
    finally:
        pg.stop()
        shutil.rmtree(pg.directory, ignore_errors=True)


RUN_STEP = """
import json, os
from controlplane.identity.models import Tenant
from controlplane.identity.services import principal_ensure
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Execution
from controlplane.runtime.runners import runner_register
policy.profile_bootstrap(environment="dev")
tenant = Tenant.objects.get(slug="acme")
agent = principal_ensure(tenant=tenant, name="ops-bot", kind="service", capabilities=[])
url = os.environ["TEST_RUNNER_URL"]
runner_register(name="ops", url=url, actor="test", tenant=tenant, timeout_seconds=30)
payload = {"file": "effects.log", "line": "restart checkout", "delay_ms": 3000}
inputs = {"runner": "ops", "operation": "append", "payload": payload}
draft = {"goal": "across a restart", "steps": [{"key": "a", "action": "http.webhook", "inputs": inputs}]}
intent = services.intent_submit(principal=agent, draft=draft, idempotency_key="k-run")
execution = Execution.objects.get(intent=intent)
print(json.dumps({"execution": execution.id, "status": execution.status}))
"""


def test_a_step_running_across_a_postgresql_restart_is_recorded_once(tmp_path):
    """Tasks run in-process here (no broker): the step's executor is waiting on the runner when the
    server stops; the worker side reconnects and records the outcome once the server is back."""
    from controlplane.kernel.signatures import hmac_secret_generate
    from controlplane.runtime.reference_runner import ReferenceRunner

    pg = OwnPostgres(Path(tempfile.mkdtemp(prefix="cp-faults-pg-")))
    pg.init()
    secret = hmac_secret_generate()
    runner = ReferenceRunner(secret=secret, state=tmp_path / "runner.sqlite3", workdir=tmp_path / "files")
    httpd = runner.server("127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        env = {
            **_env(pg.url, tmp_path / "keys"),
            "CONTROLPLANE_RUNNER_SECRET": secret,
            "TEST_RUNNER_URL": f"http://127.0.0.1:{httpd.server_address[1]}/steps",
        }
        _manage(env, "migrate", "--no-input")
        _manage(env, "shell", "-c", SETUP)
        submitting = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", RUN_STEP],
            cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for(lambda: runner.verified >= 1, timeout=120, what="the runner to receive the step")
        pg.stop()  # the step's effect is under way; the worker side's connection dies with the server
        time.sleep(2)
        pg.start()
        out, err = submitting.communicate(timeout=120)
        assert submitting.returncode == 0, err[-3000:]
        answer = json.loads(out.strip().splitlines()[-1])
        assert answer["status"] == "completed", err[-3000:]
        assert "DATABASE_UNAVAILABLE recording step run" in err  # it did lose the connection, and reconnected
        assert (tmp_path / "files" / "effects.log").read_text().splitlines() == ["restart checkout"]
        _manage(env, "ledger", "verify")
    finally:
        httpd.shutdown()
        httpd.server_close()
        pg.stop()
        shutil.rmtree(pg.directory, ignore_errors=True)


STEP_STATE = """
import json
from controlplane.runtime.models import Execution
execution = Execution.objects.get()
print(json.dumps({"status": execution.status, "steps": [r.status for r in execution.step_runs.all()]}))
"""


def test_a_step_run_by_a_celery_worker_across_a_postgresql_restart_is_recorded_once(tmp_path):
    """The step runs in a real `celery worker` process (the broker is this run's Redis, on an index of its
    own); the server stops while the runner holds the step, the worker's database connection dies with it;
    once the server is back the worker records the outcome once, the effect happened once, the chain
    verifies."""
    from urllib.parse import urlsplit, urlunsplit

    from controlplane.kernel.signatures import hmac_secret_generate
    from controlplane.runtime.reference_runner import ReferenceRunner
    from tests.runtime.support import Worker

    redis = urlsplit(settings.REDIS_URL)
    index = (int(redis.path.strip("/") or 0) + 1) % 16  # not the suite's own queue
    broker = urlunsplit(redis._replace(path=f"/{index}"))
    subprocess.run(
        [sys.executable, "-c", f"import redis; redis.Redis.from_url({broker!r}).flushdb()"], check=True
    )
    pg = OwnPostgres(Path(tempfile.mkdtemp(prefix="cp-faults-pg-")))
    pg.init()
    secret = hmac_secret_generate()
    runner = ReferenceRunner(secret=secret, state=tmp_path / "runner.sqlite3", workdir=tmp_path / "files")
    httpd = runner.server("127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    worker = None
    try:
        env = {
            **_env(pg.url, tmp_path / "keys"),
            "REDIS_URL": broker,
            "CONTROLPLANE_RUNNER_SECRET": secret,
            "TEST_RUNNER_URL": f"http://127.0.0.1:{httpd.server_address[1]}/steps",
        }
        _manage(env, "migrate", "--no-input")
        _manage(env, "shell", "-c", SETUP)
        worker = Worker(tmp_path, env=env).start()
        submitted = json.loads(_manage(env, "shell", "-c", RUN_STEP).strip().splitlines()[-1])
        assert submitted["status"] == "running"  # handed to the worker, not run in this process
        wait_for(lambda: runner.verified >= 1, timeout=120, what="the runner to receive the step")
        pg.stop()  # the step's effect is under way; the worker's connection dies with the server
        time.sleep(2)
        pg.start()

        def finished() -> dict | None:
            state = json.loads(_manage(env, "shell", "-c", STEP_STATE).strip().splitlines()[-1])
            return state if state["status"] != "running" else None

        state = wait_for(finished, timeout=120, what="the worker to record the step's outcome", interval=1)
        assert state == {"status": "completed", "steps": ["completed"]}, worker.output()[-3000:]
        assert "DATABASE_UNAVAILABLE" in worker.output()  # it did lose the connection, and reconnected
        assert (tmp_path / "files" / "effects.log").read_text().splitlines() == ["restart checkout"]
        _manage(env, "ledger", "verify")
    finally:
        if worker is not None:
            worker.stop()
        httpd.shutdown()
        httpd.server_close()
        pg.stop()
        shutil.rmtree(pg.directory, ignore_errors=True)
