"""Runners belong to a tenant or are shared and granted: a tenant's http.webhook step reaches only its own
runners and the shared ones granted to it; registering and granting are platform acts."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps

from controlplane.celery import app as celery_app
from controlplane.kernel import signatures
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from controlplane.runtime import services
from controlplane.runtime.models import Runner, RunnerGrant, StepRun
from controlplane.runtime.reference_runner import ReferenceRunner
from controlplane.runtime.runners import runner_grant, runner_grant_revoke, runner_register
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def tenants():
    policy.profile_bootstrap(environment="dev")
    a = PrincipalFactory(tenant=TenantFactory(slug="tenant-a"), name="bot-a")
    b = PrincipalFactory(tenant=TenantFactory(slug="tenant-b"), name="bot-b")
    return a, b


@pytest.fixture
def reference(tmp_path, settings):
    """The reference runner (it keeps results by execution key) on a free port; not registered yet."""
    import threading

    secret = signatures.hmac_secret_generate()
    settings.CONTROLPLANE_RUNNER_SECRET = secret
    runner = ReferenceRunner(secret=secret, state=tmp_path / "state.sqlite3", workdir=tmp_path / "files")
    httpd = runner.server("127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/steps", tmp_path / "files"
    httpd.shutdown()
    httpd.server_close()


def _append(runner_name: str, line: str = "deploy") -> dict:
    inputs = {"runner": runner_name, "operation": "append", "payload": {"file": "effects.log", "line": line}}
    return {"goal": "append", "steps": [{"key": "a", "action": "http.webhook", "inputs": inputs}]}


def _run(principal, draft, capture, key="k-1") -> StepRun:
    with capture(execute=True):
        intent = services.intent_submit(principal=principal, draft=draft, idempotency_key=key)
    return StepRun.objects.select_related("step", "execution").get(execution__intent=intent, step__key="a")


def _lines(files) -> list[str]:
    path = files / "effects.log"
    return path.read_text().splitlines() if path.exists() else []


def test_a_tenant_cannot_target_another_tenants_runner(
    tenants, reference, django_capture_on_commit_callbacks
):
    """Before, runners were global: tenant B's step could drive tenant A's runner by naming it."""
    a, b = tenants
    url, files = reference
    runner_register(name="a-ops", url=url, tenant=a.tenant, actor="test")
    run = _run(b, _append("a-ops"), django_capture_on_commit_callbacks)
    assert run.status == "failed" and run.reason_codes[0] == "RUNNER_NOT_GRANTED"
    assert _lines(files) == []  # nothing was sent
    run = _run(a, _append("a-ops"), django_capture_on_commit_callbacks)
    assert run.status == "completed" and _lines(files) == ["deploy"]


def test_a_shared_runner_serves_only_the_tenants_it_is_granted_to(
    tenants, reference, django_capture_on_commit_callbacks
):
    a, _ = tenants
    url, files = reference
    runner_register(name="shared", url=url, actor="test")
    refused = _run(a, _append("shared"), django_capture_on_commit_callbacks, key="k-1")
    assert refused.reason_codes[0] == "RUNNER_NOT_GRANTED" and _lines(files) == []
    runner_grant(name="shared", tenant=a.tenant, actor="test")
    granted = LedgerEvent.objects.get(type="controlplane.runner.granted")
    assert (granted.tenant, granted.data) == ("tenant-a", {"name": "shared", "tenant": "tenant-a"})
    ok = _run(a, _append("shared", "second"), django_capture_on_commit_callbacks, key="k-2")
    assert ok.status == "completed" and _lines(files) == ["second"]
    runner_grant_revoke(name="shared", tenant=a.tenant, actor="test", reason="moved")
    again = _run(a, _append("shared", "third"), django_capture_on_commit_callbacks, key="k-3")
    assert again.reason_codes[0] == "RUNNER_NOT_GRANTED" and _lines(files) == ["second"]


def test_two_tenants_identical_drafts_both_take_effect_on_a_shared_runner(
    tenants, reference, django_capture_on_commit_callbacks
):
    """Before, A's and B's identical drafts shared one plan and one execution key: the runner's
    idempotency store answered B with A's result and B's effect never happened."""
    a, b = tenants
    url, files = reference
    runner_register(name="shared", url=url, actor="test")
    for principal in (a, b):
        runner_grant(name="shared", tenant=principal.tenant, actor="test")
    run_a = _run(a, _append("shared"), django_capture_on_commit_callbacks)
    run_b = _run(b, _append("shared"), django_capture_on_commit_callbacks)
    assert run_a.execution.plan_id != run_b.execution.plan_id
    assert run_a.step.execution_key != run_b.step.execution_key
    assert run_a.status == run_b.status == "completed"
    assert _lines(files) == ["deploy", "deploy"]


@pytest.mark.parametrize(
    "act",
    [
        lambda p, t: runner_register(name="mine", url="http://127.0.0.1:9/", tenant=p.tenant, actor=p),
        lambda p, t: runner_grant(name="shared", tenant=p.tenant, actor=p),
        lambda p, t: runner_grant_revoke(name="shared", tenant=t, actor=p, reason="x"),
    ],
    ids=["register", "grant", "revoke"],
)
def test_runners_are_platform_acts(act):
    other = TenantFactory()
    runner_register(name="shared", url="http://127.0.0.1:9/", actor="test")
    runner_grant(name="shared", tenant=other, actor="test")
    tenant_admin = PrincipalFactory(human=True, capabilities=["killswitch.manage"])
    before = (LedgerEvent.objects.count(), Runner.objects.count(), RunnerGrant.objects.count())
    with pytest.raises(ControlPlaneError) as refused:
        act(tenant_admin, other)
    assert refused.value.code == "PLATFORM_SCOPE_REQUIRED"
    assert (LedgerEvent.objects.count(), Runner.objects.count(), RunnerGrant.objects.count()) == before
    operator = PrincipalFactory(human=True, capabilities=["platform.runners.manage"])
    act(operator, other)  # the same act by a platform principal goes through


def test_the_migration_shares_existing_runners_with_every_tenant():
    first, second = TenantFactory(), TenantFactory()
    runner = Runner.objects.create(
        name="legacy", url="http://127.0.0.1:9/", changed_by="x", changed_at="2026-01-01T00:00Z"
    )
    module = importlib.import_module("controlplane.runtime.migrations.0003_runner_tenancy")
    module.share_existing_runners(django_apps, None)
    module.share_existing_runners(django_apps, None)  # safe to run twice
    granted = set(RunnerGrant.objects.filter(runner=runner).values_list("tenant__slug", flat=True))
    assert {first.slug, second.slug} <= granted and runner.tenant is None


def test_replay_rebuilds_runner_owners_and_grants_and_finds_a_forged_grant():
    from controlplane.runtime.replay.verify import replay_verify

    owner, other = TenantFactory(), TenantFactory()
    runner_register(name="mine", url="http://127.0.0.1:9/", tenant=owner, actor="test")
    runner_register(name="shared", url="http://127.0.0.1:9/", actor="test")
    runner_grant(name="shared", tenant=owner, actor="test")
    assert replay_verify().differences == []
    RunnerGrant.objects.create(
        runner=Runner.objects.get(name="shared"), tenant=other, granted_by="x", granted_at="2026-01-01T00:00Z"
    )
    found = {(d.subject, d.field) for d in replay_verify().differences}
    assert found == {("runner/shared", "grants")}
