"""The reference runner (`manage.py runner`) as a real HTTP server: signatures, idempotency, operations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from controlplane.kernel.signatures import hmac_secret_generate
from controlplane.runtime.executors import StepCall, webhook_request
from controlplane.runtime.reference_runner import ReferenceRunner
from tests.runtime.support import closed_port, wait_for

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def call(operation: str, payload: dict | None = None, *, key: str = "k" * 32, attempt: int = 1) -> StepCall:
    return StepCall(
        execution_key=key,
        execution="e" * 64,
        step="a",
        action="http.webhook",
        action_version="1.0.0",
        inputs={"runner": "ops", "operation": operation, "payload": payload or {}},
        traceparent=TRACEPARENT,
        tenant="acme",
        attempt=attempt,
    )


@pytest.fixture
def served(tmp_path):
    """The runner on a free loopback port; yields (runner, url, secret)."""
    secret = hmac_secret_generate()
    runner = ReferenceRunner(secret=secret, state=tmp_path / "state.sqlite3", workdir=tmp_path / "files")
    httpd = runner.server("127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield runner, f"http://127.0.0.1:{httpd.server_address[1]}/", secret
    httpd.shutdown()
    httpd.server_close()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def send(served, step: StepCall, *, secret: str | None = None, timestamp: int | None = None):
    _, url, good_secret = served
    body, headers = webhook_request(step, secret=secret or good_secret, timestamp=timestamp)
    return post(url, body, headers)


def test_a_signed_step_is_performed_and_its_reply_names_the_key(served):
    status, reply, headers = send(served, call("echo", {"hello": "world"}))
    assert status == 200
    assert reply == {"execution_key": "k" * 32, "operation": "echo", "result": {"hello": "world"}}
    assert headers["Idempotent-Replayed"] == "false"


def test_a_repeated_execution_key_returns_the_first_result_and_does_nothing_twice(served):
    runner, _, _ = served
    first = send(served, call("append", {"file": "effects.log", "line": "restart"}))
    again = send(served, call("append", {"file": "effects.log", "line": "restart"}, attempt=2))
    assert first[0] == again[0] == 200
    assert again[1] == first[1] and first[1]["result"]["lines"] == 1
    assert again[2]["Idempotent-Replayed"] == "true"
    assert (runner.workdir / "effects.log").read_text() == "restart\n"
    other = send(served, call("append", {"file": "effects.log", "line": "restart"}, key="x" * 32))
    assert other[1]["result"]["lines"] == 2


def test_results_survive_a_restart_of_the_runner(tmp_path):
    secret = hmac_secret_generate()
    state, files = tmp_path / "state.sqlite3", tmp_path / "files"
    step = call("append", {"file": "once.log", "line": "x"})
    body, headers = webhook_request(step, secret=secret)
    first = ReferenceRunner(secret=secret, state=state, workdir=files).handle(headers, body)
    restarted = ReferenceRunner(secret=secret, state=state, workdir=files).handle(headers, body)
    assert restarted[:2] == first[:2] and restarted[2] == {"Idempotent-Replayed": "true"}
    assert (files / "once.log").read_text() == "x\n"


def test_concurrent_requests_with_one_key_perform_the_effect_once(served):
    runner, _, _ = served
    step = call("append", {"file": "race.log", "line": "once", "delay_ms": 300})
    replies = []
    threads = [threading.Thread(target=lambda: replies.append(send(served, step))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r[2]["Idempotent-Replayed"] for r in replies) == ["false", "true", "true"]
    assert len({json.dumps(r[1], sort_keys=True) for r in replies}) == 1
    assert (runner.workdir / "race.log").read_text() == "once\n"


def test_a_wrong_signature_is_refused_and_nothing_happens(served):
    runner, _, _ = served
    status, reply, _ = send(
        served, call("append", {"file": "no.log", "line": "x"}), secret=hmac_secret_generate()
    )
    assert status == 401 and reply["error"]["code"] == "RUNNER_SIGNATURE_INVALID"
    assert not (runner.workdir / "no.log").exists() and runner.store.get("k" * 32) is None


def test_a_tampered_body_is_refused(served):
    _, url, secret = served
    body, headers = webhook_request(call("echo", {"n": 1}), secret=secret)
    status, reply, _ = post(url, body.replace(b'"n":1', b'"n":2'), headers)
    assert status == 401 and reply["error"]["code"] == "RUNNER_SIGNATURE_INVALID"


def test_a_stale_timestamp_is_refused(served):
    status, reply, _ = send(served, call("echo"), timestamp=int(time.time()) - 301)
    assert status == 401 and reply["error"]["code"] == "STALE_TIMESTAMP"


def test_missing_signature_headers_are_refused(served):
    _, url, secret = served
    body, headers = webhook_request(call("echo"), secret=secret)
    del headers["webhook-signature"]
    status, reply, _ = post(url, body, headers)
    assert status == 401 and reply["error"]["code"] == "RUNNER_SIGNATURE_INVALID"


def test_the_same_key_with_other_inputs_is_a_conflict(served):
    send(served, call("echo", {"v": 1}))
    status, reply, _ = send(served, call("echo", {"v": 2}))
    assert status == 409 and reply["error"]["code"] == "IDEMPOTENCY_KEY_CONFLICT"


def test_failures_say_whether_to_retry_and_only_final_ones_are_stored(served):
    runner, _, _ = served
    retryable = send(served, call("fail", {"retryable": True}, key="r" * 32))
    assert retryable[0] == 503 and runner.store.get("r" * 32) is None
    final = send(served, call("fail", {"retryable": False}, key="f" * 32))
    assert final[0] == 422 and final[1]["error"]["code"] == "DEMO_FAILURE"
    assert runner.store.get("f" * 32)[1] == 422
    unknown = send(served, call("format-disk", key="u" * 32))
    assert unknown[0] == 422 and unknown[1]["error"]["code"] == "OPERATION_UNKNOWN"


def test_flaky_fails_the_first_attempts_of_a_key_then_succeeds(served):
    codes = [send(served, call("flaky", {"failures": 2}, attempt=n))[0] for n in (1, 2, 3, 4)]
    assert codes == [503, 503, 200, 200]


def test_append_only_writes_plain_file_names_in_its_work_directory(served, tmp_path):
    status, reply, _ = send(served, call("append", {"file": "../escape.log", "line": "x"}))
    assert status == 422 and reply["error"]["code"] == "PAYLOAD_INVALID"
    assert not (tmp_path / "escape.log").exists()


# --- the command ---------------------------------------------------------------------------------------


def test_runner_command_generates_a_secret():
    out = StringIO()
    call_command("runner", "--generate-secret", stdout=out)
    assert out.getvalue().startswith("whsec_") and len(out.getvalue().strip()) > 40


def test_runner_command_refuses_to_start_without_a_secret(settings, monkeypatch):
    settings.CONTROLPLANE_RUNNER_SECRET = ""
    monkeypatch.delenv("CONTROLPLANE_RUNNER_SECRET", raising=False)
    with pytest.raises(CommandError, match="RUNNER_SECRET_MISSING"):
        call_command("runner", "--port", "0")


def test_runner_command_serves_signed_steps(tmp_path):
    """`manage.py runner --port N` as a process: the real server a deployment (or a demo) would run."""
    secret = hmac_secret_generate()
    port = closed_port()
    env = {**os.environ, "CONTROLPLANE_RUNNER_SECRET": secret, "CONTROLPLANE_ENV": "dev"}
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runner",
            "--port",
            str(port),
            "--state",
            str(tmp_path / "s.sqlite3"),
            "--workdir",
            str(tmp_path / "files"),
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        assert banner.startswith(f"runner listening on http://127.0.0.1:{port}/")

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(up, timeout=30, what="the runner to answer")
        body, headers = webhook_request(call("append", {"file": "cmd.log", "line": "hi"}), secret=secret)
        assert post(f"http://127.0.0.1:{port}/", body, headers)[0] == 200
        assert post(f"http://127.0.0.1:{port}/", body, headers)[2]["Idempotent-Replayed"] == "true"
        assert (tmp_path / "files" / "cmd.log").read_text() == "hi\n"
    finally:
        process.terminate()
        process.wait(timeout=20)
