"""`http.webhook` against the reference runner (a real local server): outcome, signing, retries, failures.

Tasks run in-process at commit here; the tests with a real Celery worker are in test_worker.py.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from controlplane.celery import app as celery_app
from controlplane.kernel import signatures
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Execution, Runner, StepRun
from controlplane.runtime.runners import runner_disable, runner_register
from skills.models import ActionContract
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.runtime.support import closed_port, local_runner, runner_shared
from tests.skills.support import unsigned_skill

pytestmark = pytest.mark.django_db

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(autouse=True)
def _eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def operator():
    policy.profile_bootstrap(environment="dev")
    return PrincipalFactory(tenant=TenantFactory(slug="acme"), name="ops-bot")  # a service: medium runs alone


@pytest.fixture
def runner(tmp_path, settings):
    with local_runner(tmp_path) as served:
        settings.CONTROLPLANE_RUNNER_SECRET = served.secret
        yield served


def webhook_step(operation, payload=None, *, key="a", runner_name="ops", **extra):
    inputs = {"runner": runner_name, "operation": operation, "payload": payload or {}}
    return {"key": key, "action": "http.webhook", "inputs": inputs, **extra}


def submit(principal, capture, *steps, key="k-1"):
    with capture(execute=True):
        intent = services.intent_submit(
            principal=principal,
            draft={"goal": "webhook test", "steps": list(steps)},
            idempotency_key=key,
            traceparent=TRACEPARENT,
        )
    return Execution.objects.get(intent=intent)


def step_of(execution_, key="a"):
    return StepRun.objects.select_related("step").get(execution=execution_, step__key=key)


def events(execution_, type_):
    return list(LedgerEvent.objects.filter(subject=f"execution/{execution_.id}", type=type_).order_by("seq"))


def sweep_due(capture):
    """Run the sweeper as beat would once the backoff has passed (retries wait in the outbox in-process)."""
    with capture(execute=True):
        return services.step_runs_sweep(now=timezone.now() + timedelta(seconds=120))


# --- success -------------------------------------------------------------------------------------------


def test_the_runners_reply_is_the_outcome_and_the_effect_happens_once(
    operator, runner, django_capture_on_commit_callbacks
):
    run_a = submit(
        operator,
        django_capture_on_commit_callbacks,
        webhook_step("append", {"file": "effects.log", "line": "deploy"}),
        {"key": "b", "action": "noop.echo", "inputs": {}, "depends_on": ["a"]},
    )
    assert run_a.status == "completed"
    step = step_of(run_a)
    assert step.outcome == {
        "execution_key": step.step.execution_key,
        "operation": "append",
        "result": {"file": "effects.log", "line": "deploy", "lines": 1},
    }
    assert [(e["attempt"], e["result"]) for e in step.attempt_log] == [(1, "completed")]
    completed = events(run_a, "controlplane.execution.step.completed")[0]
    assert completed.data["outcome"] == step.outcome and completed.trace_id == TRACEPARENT[3:35]
    assert runner.lines("effects.log") == ["deploy"]


def test_the_same_plan_run_again_shares_execution_keys_so_the_runner_does_not_repeat_the_effect(
    operator, runner, django_capture_on_commit_callbacks
):
    step = webhook_step("append", {"file": "effects.log", "line": "deploy"})
    first = submit(operator, django_capture_on_commit_callbacks, step, key="k-1")
    second = submit(operator, django_capture_on_commit_callbacks, step, key="k-2")
    assert first.plan_id == second.plan_id and second.status == "completed"
    assert step_of(second).outcome == step_of(first).outcome
    assert runner.lines("effects.log") == ["deploy"]


class _Recorder(BaseHTTPRequestHandler):
    """Records what arrives and answers with a canned reply (for what the executor sends and receives)."""

    received: list = []
    reply: tuple[int, bytes] = (200, b'{"ok": true}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers, body))  # case-insensitive, as HTTP is
        status, payload = type(self).reply
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder(settings):
    settings.CONTROLPLANE_RUNNER_SECRET = signatures.hmac_secret_generate()
    handler = type("Recorder", (_Recorder,), {"received": [], "reply": (200, b'{"ok": true}')})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    runner_shared(name="rec", url=f"http://127.0.0.1:{httpd.server_address[1]}/hook")
    yield handler
    httpd.shutdown()
    httpd.server_close()


def test_the_request_is_signed_and_carries_the_key_inputs_and_trace_context(
    operator, recorder, settings, django_capture_on_commit_callbacks
):
    run_ = submit(
        operator, django_capture_on_commit_callbacks, webhook_step("echo", {"n": 1}, runner_name="rec")
    )
    assert run_.status == "completed" and step_of(run_).outcome == {"ok": True}
    [(headers, body)] = recorder.received
    step = step_of(run_)
    sent = json.loads(body)
    assert sent == {
        "execution_key": step.step.execution_key,
        "execution": run_.id,
        "step": "a",
        "action": "http.webhook",
        "action_version": "1.0.0",
        "attempt": 1,
        "tenant": "acme",
        "inputs": {"runner": "rec", "operation": "echo", "payload": {"n": 1}},
        "traceparent": headers["traceparent"],
    }
    # the same trace, a new span for the attempt
    assert headers["traceparent"][:36] == TRACEPARENT[:36] and headers["traceparent"] != TRACEPARENT
    assert headers["webhook-id"] == headers["Idempotency-Key"] == step.step.execution_key
    content = signatures.signed_content(headers["webhook-id"], headers["webhook-timestamp"], body)
    candidates = [s.raw for s in signatures.parse_signatures(headers["webhook-signature"])]
    assert signatures.hmac_matches(settings.CONTROLPLANE_RUNNER_SECRET, content, candidates)
    assert settings.CONTROLPLANE_RUNNER_SECRET not in json.dumps(
        list(LedgerEvent.objects.values_list("data"))
    )


def test_a_reply_that_is_not_a_json_object_fails_the_step(
    operator, recorder, django_capture_on_commit_callbacks
):
    recorder.reply = (200, b"[1, 2]")
    run_ = submit(operator, django_capture_on_commit_callbacks, webhook_step("echo", runner_name="rec"))
    assert run_.status == "failed" and step_of(run_).reason_codes == ["EXECUTOR_OUTPUT_INVALID"]


def test_an_outcome_that_breaks_the_output_schema_fails_the_step(
    operator, runner, django_capture_on_commit_callbacks
):
    skill = unsigned_skill(name="strict")
    ActionContract.objects.create(
        skill=skill,
        name="strict.webhook",
        version="1.0.0",
        input_schema={"type": "object"},
        output_schema={
            "type": "object",
            "required": ["result"],
            "properties": {"result": {"type": "object", "required": ["status"]}},
        },
        risk_tier="low",
        executor="http.webhook",
    )
    step = {"key": "a", "action": "strict.webhook", "inputs": {"runner": "ops", "operation": "echo"}}
    run_ = submit(operator, django_capture_on_commit_callbacks, step)
    failed = step_of(run_)
    assert run_.status == "failed" and failed.reason_codes == ["EXECUTOR_OUTPUT_INVALID"]
    assert "result" in failed.outcome["error"]["detail"] and "status" in failed.outcome["error"]["detail"]


# --- retries -------------------------------------------------------------------------------------------


def test_retryable_failures_retry_with_backoff_and_every_attempt_is_recorded(
    operator, runner, settings, django_capture_on_commit_callbacks
):
    settings.CONTROLPLANE_STEP_RETRY_BACKOFF_SECONDS = 0.25
    run_ = submit(operator, django_capture_on_commit_callbacks, webhook_step("flaky", {"failures": 2}))
    step = step_of(run_)
    assert (step.status, step.attempts) == ("ready", 1)
    assert (step.not_before - step.dispatched_at) == timedelta(seconds=0.25)
    assert sweep_due(django_capture_on_commit_callbacks)["published"] == 1
    step.refresh_from_db()
    assert (step.status, step.attempts) == ("ready", 2)
    assert (step.not_before - step.dispatched_at) == timedelta(seconds=0.5)  # doubled
    sweep_due(django_capture_on_commit_callbacks)
    step.refresh_from_db()
    run_.refresh_from_db()
    assert (run_.status, step.status, step.attempts) == ("completed", "completed", 3)
    assert step.outcome["result"] == {"attempts": 3}
    assert [(e["attempt"], e["result"], e.get("code")) for e in step.attempt_log] == [
        (1, "retry", "RUNNER_ERROR"),
        (2, "retry", "RUNNER_ERROR"),
        (3, "completed", None),
    ]
    retries = events(run_, "controlplane.execution.step.retry_scheduled")
    assert [(e.data["attempt"], e.reason_codes) for e in retries] == [
        (1, ["RUNNER_ERROR"]),
        (2, ["RUNNER_ERROR"]),
    ]
    assert [e.data["attempt"] for e in events(run_, "controlplane.execution.step.started")] == [1, 2, 3]


def test_attempts_are_bounded_then_the_step_fails_with_retry_exhausted(
    operator, runner, settings, django_capture_on_commit_callbacks
):
    settings.CONTROLPLANE_STEP_RETRY_BACKOFF_SECONDS = 0.1
    run_ = submit(
        operator,
        django_capture_on_commit_callbacks,
        webhook_step("fail", {"retryable": True}),
        {"key": "b", "action": "noop.echo", "inputs": {}, "depends_on": ["a"]},
    )
    sweep_due(django_capture_on_commit_callbacks)
    sweep_due(django_capture_on_commit_callbacks)
    run_.refresh_from_db()
    step = step_of(run_)
    assert (step.status, step.attempts) == ("failed", 3)
    assert step.reason_codes == ["RUNNER_ERROR", "STEP_RETRY_EXHAUSTED"]
    assert step.outcome["error"]["runner_code"] == "DEMO_RETRYABLE_FAILURE"
    assert run_.status == "failed" and run_.reason_codes == ["RUNNER_ERROR", "STEP_RETRY_EXHAUSTED"]
    assert step_of(run_, "b").status == "cancelled"
    assert sweep_due(django_capture_on_commit_callbacks) == {
        "requeued": 0,
        "failed": 0,
        "published": 0,
        "deferred": 0,
        "resumed": 0,
        "held_failed": 0,
    }


def test_a_non_retryable_refusal_fails_at_once_with_the_runners_code(
    operator, runner, django_capture_on_commit_callbacks
):
    run_ = submit(
        operator, django_capture_on_commit_callbacks, webhook_step("fail", {"message": "no such service"})
    )
    step = step_of(run_)
    assert (run_.status, step.status, step.attempts) == ("failed", "failed", 1)
    assert step.reason_codes == ["RUNNER_REJECTED"]
    assert step.outcome["error"] == {
        "code": "RUNNER_REJECTED",
        "detail": "runner ops refused the step (HTTP 422)",
        "retryable": False,
        "status": 422,
        "runner_code": "DEMO_FAILURE",
        "runner_detail": "no such service",
    }
    failed = events(run_, "controlplane.execution.step.failed")[0]
    assert failed.reason_codes == ["RUNNER_REJECTED"] and failed.data["attempt"] == 1


def test_a_timeout_is_retryable(operator, tmp_path, settings, django_capture_on_commit_callbacks):
    settings.CONTROLPLANE_STEP_MAX_ATTEMPTS = 1
    with local_runner(tmp_path) as served:
        settings.CONTROLPLANE_RUNNER_SECRET = served.secret
        runner_shared(name="ops", url=served.url, timeout_seconds=1)
        run_ = submit(operator, django_capture_on_commit_callbacks, webhook_step("sleep", {"ms": 2500}))
    step = step_of(run_)
    assert step.reason_codes == ["EXECUTOR_TIMEOUT", "STEP_RETRY_EXHAUSTED"]
    assert step.attempt_log[0]["retryable"] is True


def test_an_unreachable_runner_is_retryable(operator, settings, django_capture_on_commit_callbacks):
    settings.CONTROLPLANE_RUNNER_SECRET = signatures.hmac_secret_generate()
    settings.CONTROLPLANE_STEP_MAX_ATTEMPTS = 2
    runner_shared(name="gone", url=f"http://127.0.0.1:{closed_port()}/")
    run_ = submit(operator, django_capture_on_commit_callbacks, webhook_step("echo", runner_name="gone"))
    step = step_of(run_)
    assert (step.status, step.attempt_log[0]["code"]) == ("ready", "RUNNER_UNREACHABLE")


# --- refusals before anything is sent -------------------------------------------------------------------


def test_an_unknown_or_disabled_runner_fails_the_step(operator, runner, django_capture_on_commit_callbacks):
    runner_disable(name="ops", actor="test", reason="decommissioned")
    run_ = submit(
        operator, django_capture_on_commit_callbacks, webhook_step("append", {"file": "x", "line": "x"})
    )
    assert step_of(run_).reason_codes == ["RUNNER_UNKNOWN"] and runner.runner.verified == 0
    assert runner.lines("x") == []


def test_without_the_secret_nothing_is_sent(operator, runner, settings, django_capture_on_commit_callbacks):
    settings.CONTROLPLANE_RUNNER_SECRET = ""
    run_ = submit(operator, django_capture_on_commit_callbacks, webhook_step("echo"))
    assert step_of(run_).reason_codes == ["RUNNER_SECRET_MISSING"] and runner.runner.verified == 0


def test_a_wrong_secret_is_refused_by_the_runner_and_not_retried(
    operator, runner, settings, django_capture_on_commit_callbacks
):
    settings.CONTROLPLANE_RUNNER_SECRET = signatures.hmac_secret_generate()
    run_ = submit(
        operator, django_capture_on_commit_callbacks, webhook_step("append", {"file": "x", "line": "x"})
    )
    step = step_of(run_)
    assert (step.status, step.attempts, step.reason_codes) == ("failed", 1, ["RUNNER_SIGNATURE_INVALID"])
    assert step.outcome["error"]["runner_code"] == "RUNNER_SIGNATURE_INVALID" and runner.lines("x") == []


def test_a_runner_may_name_its_own_secret_variable(
    operator, tmp_path, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.CONTROLPLANE_RUNNER_SECRET = ""
    with local_runner(tmp_path) as served:
        monkeypatch.setenv("CONTROLPLANE_RUNNER_SECRET_OPS", served.secret)
        runner_shared(name="ops", url=served.url, secret_env="CONTROLPLANE_RUNNER_SECRET_OPS")
        run_ = submit(operator, django_capture_on_commit_callbacks, webhook_step("echo", {"v": 1}))
    assert run_.status == "completed" and step_of(run_).outcome["result"] == {"v": 1}


# --- the registry --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"name": "Bad Name", "url": "http://127.0.0.1:1/"}, "runner name"),
        ({"name": "ops", "url": "ftp://example.com/"}, "http(s)"),
        ({"name": "ops", "url": "http://user:pw@127.0.0.1/"}, "credentials"),
        ({"name": "ops", "url": "http://127.0.0.1/", "secret_env": "DATABASE_URL"}, "secret variable"),
        ({"name": "ops", "url": "http://127.0.0.1/", "timeout_seconds": 0}, "timeout"),
    ],
)
def test_an_invalid_runner_is_refused_and_nothing_is_written(fields, fragment):
    with pytest.raises(ControlPlaneError) as caught:
        runner_register(actor="test", **fields)
    assert caught.value.code == "RUNNER_INVALID" and fragment in caught.value.detail
    assert not Runner.objects.exists() and not LedgerEvent.objects.exists()


def test_outside_dev_a_remote_runner_needs_https(settings):
    settings.CONTROLPLANE_ENV = "prod"
    with pytest.raises(ControlPlaneError, match="https"):
        runner_register(name="ops", url="http://runner.example.com/", actor="test")
    assert runner_register(name="ops", url="https://runner.example.com/", actor="test").enabled


def test_registering_is_ledgered_without_any_secret(monkeypatch):
    monkeypatch.setenv("CONTROLPLANE_RUNNER_SECRET_OPS", "whsec_c2VjcmV0LXZhbHVl")
    runner_register(
        name="ops", url="http://127.0.0.1:9/", secret_env="CONTROLPLANE_RUNNER_SECRET_OPS", actor="cli"
    )
    event = LedgerEvent.objects.get(type="controlplane.runner.registered")
    assert event.data == {
        "name": "ops",
        "url": "http://127.0.0.1:9/",
        "secret_env": "CONTROLPLANE_RUNNER_SECRET_OPS",
        "timeout_seconds": None,
        "tenant": "",
    }


def test_runners_command_registers_lists_and_disables(monkeypatch, settings):
    settings.CONTROLPLANE_RUNNER_SECRET = ""

    def run(*args):
        out = StringIO()
        call_command("runners", *args, stdout=out)
        return out.getvalue()

    assert run("register", "ops", "--url", "http://127.0.0.1:8765/", "--timeout", "5") == (
        "registered ops http://127.0.0.1:8765/\n"
    )
    assert (
        run("list")
        == "ops\tenabled\thttp://127.0.0.1:8765/\tCONTROLPLANE_RUNNER_SECRET=MISSING\ttimeout=5\tshared:\n"
    )
    settings.CONTROLPLANE_RUNNER_SECRET = signatures.hmac_secret_generate()
    assert "CONTROLPLANE_RUNNER_SECRET=set" in run("list")
    assert run("disable", "ops", "--reason", "moved") == "disabled ops\n"
    with pytest.raises(CommandError, match="RUNNER_UNKNOWN"):
        run("disable", "ops", "--reason", "again")
    with pytest.raises(CommandError, match="RUNNER_INVALID"):
        run("register", "ops", "--url", "not a url")
