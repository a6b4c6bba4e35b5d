"""Load shedding on every endpoint (controlplane.middleware.AdmissionMiddleware) and the bounded connection
pool (DATABASE_POOL_*): past what the process admits or the pool holds, a request is answered a coded 503
with Retry-After, having done nothing, never an uncoded 500.

The last test runs the real server (gunicorn's uvicorn worker, as `make bench` serves it) on the test
database with a pool of 2 connections, drives many more concurrent requests than that at it, and finds
only 2xx answers and coded 503s, with never more connections open than the pool holds.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connection

from controlplane.kernel.outages import outage_code
from controlplane.ledger.models import LedgerEvent
from incidents.models import Signal
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.incidents.factories import am_alert, am_payload, at, auth, written
from tests.runtime.support import database_url, wait_for

AM = "/api/v1/signals/alertmanager/"


@pytest.fixture
def sender(db):
    tenant = TenantFactory(slug="acme")
    return PrincipalFactory(tenant=tenant, name="am", capabilities=["signals.ingest", "incidents.read"])


def test_past_the_inflight_limit_every_endpoint_is_shed_with_a_code_and_writes_nothing(
    client, settings, sender
):
    settings.CONTROLPLANE_MAX_INFLIGHT_REQUESTS = 0
    token = token_for(sender)
    before = written()
    body = json.dumps(am_payload(am_alert(fingerprint="a1b2c3d4e5f60718"))).encode()
    webhook = client.post(AM, body, content_type="application/json", **auth(token))
    listing = client.get("/api/v1/signals/", **auth(token))
    page = client.get("/incidents/")
    for response in (webhook, listing):
        assert (response.status_code, response.json()["code"], response["Retry-After"]) == (
            503,
            "SERVER_OVERLOADED",
            "1",
        )
        assert response.json()["request_id"] == response["X-Request-ID"]
    assert (page.status_code, page["Retry-After"]) == (503, "1")
    assert b'data-code="SERVER_OVERLOADED"' in page.content and b"<html" not in page.content
    assert written() == before
    # the liveness probe is never shed
    assert client.get("/healthz").status_code == 200


def test_the_slot_is_given_back_after_each_request(client, settings, sender):
    settings.CONTROLPLANE_MAX_INFLIGHT_REQUESTS = 1
    token = token_for(sender)
    answers = [client.get("/api/v1/signals/", **auth(token)).status_code for _ in range(3)]
    assert answers == [200, 200, 200]


def test_a_pool_that_gives_no_connection_is_database_busy_not_a_500():
    from psycopg_pool import PoolTimeout

    try:
        try:
            raise PoolTimeout("couldn't get a connection after 2.00 sec")
        except PoolTimeout as cause:
            from django.db import OperationalError

            raise OperationalError(str(cause)) from cause
    except OperationalError as wrapped:
        assert outage_code(wrapped) == "DATABASE_BUSY"


def test_postgresql_out_of_connection_slots_is_database_busy():
    from django.db import OperationalError

    refused = OperationalError("connection failed: FATAL:  sorry, too many clients already")
    assert outage_code(refused) == "DATABASE_BUSY"


def test_the_pool_is_configured_from_the_environment_and_bounded():
    pool = settings.DATABASES["default"]["OPTIONS"]["pool"]
    assert pool["max_size"] == settings.DATABASE_POOL_MAX_SIZE > 0
    assert 0 < pool["min_size"] <= pool["max_size"] and pool["timeout"] > 0
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 0  # pooled connections are not kept per thread


# --- the real server ----------------------------------------------------------------------------------

POOL = 2
CLIENTS = 24
REQUESTS_EACH = 6


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(port: int, method: str, path: str, token: str, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, raw
    finally:
        conn.close()


SERVER_NAME = "controlplane-under-test"


def _server_connections() -> list[tuple]:
    """The server's connections (it names itself with application_name)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start, state FROM pg_stat_activity WHERE application_name = %s",
            [SERVER_NAME],
        )
        return cursor.fetchall()


@pytest.mark.django_db(transaction=True)
def test_more_concurrent_requests_than_the_pool_holds_get_only_2xx_or_coded_503s(sender, tmp_path):
    token = token_for(sender)
    port = _free_port()
    env = {
        **os.environ,
        "CONTROLPLANE_ENV": "dev",
        "DATABASE_URL": f"{database_url()}?application_name={SERVER_NAME}",
        "DATABASE_POOL_MAX_SIZE": str(POOL),
        "DATABASE_POOL_MIN_SIZE": "1",
        "DATABASE_POOL_TIMEOUT": "0.5",
        "CONTROLPLANE_MAX_INFLIGHT_REQUESTS": "8",
        "REDIS_URL": settings.REDIS_URL,
        "CONTROLPLANE_KEY_DIR": str(settings.CONTROLPLANE_KEY_DIR),
        "CONTROLPLANE_WITNESS_DIR": str(settings.CONTROLPLANE_WITNESS_DIR),
        "CONTROLPLANE_LEDGER_AUTOGENERATE_KEY": "true",
        "CONTROLPLANE_INPROCESS_PERIODIC": "false",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "uvicorn_worker.UvicornWorker",
        "-w",
        "1",
        "-b",
        f"127.0.0.1:{port}",
        "controlplane.asgi:application",
    ]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    answers: list[tuple[int, dict, bytes]] = []
    lock = threading.Lock()
    peak: list[list[tuple]] = [[]]
    try:

        def up() -> bool:
            if server.poll() is not None:
                raise AssertionError(log.read_text(errors="replace"))
            try:
                return _request(port, "GET", "/healthz", token)[0] == 200
            except OSError:
                return False

        wait_for(up, timeout=60, what="the server under test")
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                seen = _server_connections()
                if len(seen) > len(peak[0]):
                    peak[0] = seen
                time.sleep(0.02)
            connection.close()  # this thread's own connection to the test database

        watcher = threading.Thread(target=watch)
        watcher.start()

        def client(index: int) -> None:
            for n in range(REQUESTS_EACH):
                if n % 2:
                    answer = _request(port, "GET", "/api/v1/signals/?limit=50", token)
                else:
                    alert = am_alert(service=f"svc-{index % 4}", starts=at(index * 10 + n))
                    body = json.dumps(am_payload(alert)).encode()
                    answer = _request(port, "POST", AM, token, body)
                with lock:
                    answers.append(answer)

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(client, range(CLIENTS)))
        done.set()
        watcher.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    statuses = sorted({status for status, _, _ in answers})
    assert len(answers) == CLIENTS * REQUESTS_EACH
    assert set(statuses) <= {200, 503}, (statuses, log.read_text(errors="replace")[-3000:])
    assert any(status == 200 for status in statuses)
    for status, headers, raw in answers:
        if status == 503:
            assert json.loads(raw)["code"] in {"SERVER_OVERLOADED", "DATABASE_BUSY"}, raw
            assert headers["retry-after"] == "1"
    # never more connections than the pool holds (the ingest loop's chain writer, which has a connection
    # of its own, never starts: no /api/v1/events/ request was made)
    assert peak[0], "the server's connections were never seen"
    assert len(peak[0]) <= POOL, peak[0]
    # every accepted alert was stored once, each with its one ledger event
    accepted = [json.loads(raw) for status, _, raw in answers if status == 200 and b'"accepted"' in raw]
    stored = {s["id"] for body in accepted for s in body["signals"]}
    assert Signal.objects.filter(id__in=stored).count() == len(stored) > 0
    assert LedgerEvent.objects.filter(type="controlplane.signal.received").count() == Signal.objects.count()
