"""`manage.py policy`: every subcommand, and its refusals (CommandError with the reason code)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from controlplane.ledger.models import LedgerEvent
from controlplane.policy import shipped
from controlplane.policy.content import content_hash
from controlplane.policy.models import PolicyProfile
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.policy.factories import content

pytestmark = pytest.mark.django_db

STRICT_HASH = content_hash(shipped.STRICT_CONTENT)
DEV_HASH = content_hash(shipped.DEV_CONTENT)


def run(*args: str) -> str:
    out = StringIO()
    call_command("policy", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def operator(monkeypatch):
    """A person holding platform.policy.manage, whose API token the commands read from CONTROLPLANE_TOKEN."""
    principal = PrincipalFactory(
        tenant=TenantFactory(slug="acme"), name="pat", human=True, capabilities=["platform.policy.manage"]
    )
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(principal))
    return principal


def _file(tmp_path, value, name="profile.json") -> str:
    path = tmp_path / name
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return str(path)


def test_list():
    assert run("list") == (
        f"control-plane-dev-v1\tv1\tdev\tdraft\t{DEV_HASH}\ncontrol-plane-strict-v1\tv1\tprod\tdraft\t{STRICT_HASH}\n"
    )
    assert (
        run("list", "--environment", "prod") == f"control-plane-strict-v1\tv1\tprod\tdraft\t{STRICT_HASH}\n"
    )


def test_show_and_show_json():
    lines = run("show", shipped.STRICT, "--version", "1").splitlines()
    assert lines[:2] == [
        "profile control-plane-strict-v1@v1 environment=prod status=draft",
        f"content_hash {STRICT_HASH}",
    ]
    assert json.loads(run("show", shipped.STRICT, "--json")) == shipped.STRICT_CONTENT


def test_show_an_unknown_version_is_refused():
    with pytest.raises(
        CommandError, match="POLICY_PROFILE_NOT_FOUND: no policy profile control-plane-strict-v1 version 3"
    ):
        run("show", shipped.STRICT, "--version", "3")


def test_explain_prints_the_verdict_and_the_trail():
    run("bootstrap", "--environment", "prod")
    out = run(
        "explain",
        "--action",
        "http.webhook",
        "--tier",
        "medium",
        "--input",
        '{"target": {"environment": "prod"}}',
        "--principal-kind",
        "agent",
        "--environment",
        "prod",
    )
    lines = out.splitlines()
    assert lines[:5] == [
        "verdict require_approval -> require_approval (enforced)",
        "tier medium -> high",
        "quorum 1 timeout 1800s escalation 600s:L1 1200s:L2",
        "reasons POLICY_TIER_RAISED_PROD_TARGET POLICY_TIER_RAISED_PROD_ENVIRONMENT "
        "POLICY_TIER_RAISED_AGENT_PRINCIPAL POLICY_REQUIRES_APPROVAL",
        f"profile control-plane-strict-v1@v1 {STRICT_HASH}",
    ]
    assert "  raise       prod-target              matched  raise_to:high" in lines
    assert "  deny        danger-actions           -        none" in lines
    assert lines[-1].startswith("decision_hash ")


def test_explain_json_under_a_named_profile_shows_the_dev_warning():
    body = json.loads(
        run(
            "explain",
            "--action",
            "danger.wipe",
            "--tier",
            "low",
            "--environment",
            "dev",
            "--profile",
            shipped.DEV,
            "--json",
        )
    )
    assert (body["verdict"], body["enforced"], body["effective_verdict"], body["reason_codes"]) == (
        "deny",
        False,
        "allow",
        ["POLICY_DENY_DANGEROUS_ACTION", "POLICY_DEV_WARN_ONLY"],
    )
    assert len(body["decision_hash"]) == 64


def test_explain_with_no_active_profile_fails_closed():
    assert "reasons POLICY_MISSING" in run(
        "explain", "--action", "noop.echo", "--tier", "low", "--environment", "stage"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "{nope"], "VALIDATION_FAILED: --input is not JSON"),
        (["--input", "[1]"], "VALIDATION_FAILED: --input must be a JSON object"),
        (["--label", "novalue"], "VALIDATION_FAILED: --label 'novalue' is not NAME=VALUE"),
    ],
)
def test_explain_refuses_bad_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        run("explain", "--action", "noop.echo", "--tier", "low", *args)


def test_validate_a_good_file(tmp_path):
    assert run("validate", _file(tmp_path, shipped.STRICT_CONTENT)) == f"valid content_hash {STRICT_HASH}\n"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            content(tiers={"high": {"mode": "autonomous"}}),
            "POLICY_PROFILE_INVALID: tiers.high.mode: high steps",
        ),
        ("{not json", "POLICY_PROFILE_INVALID: \\$: .* is not JSON"),
    ],
)
def test_validate_refuses_a_bad_file(tmp_path, value, message):
    with pytest.raises(CommandError, match=message):
        run("validate", _file(tmp_path, value))


def test_validate_a_missing_file():
    with pytest.raises(CommandError, match=r"VALIDATION_FAILED: cannot read /nonexistent\.json"):
        run("validate", "/nonexistent.json")


def test_create_then_activate_a_version(tmp_path, operator):
    path = _file(tmp_path, content())
    digest = content_hash(content())
    create = ("create", "payments", "--environment", "stage", "--file", path, "--reason", "stage rules")
    assert run(*create) == f"created payments@v1 (stage, draft) {digest}\n"
    assert run(*create) == (f"unchanged, latest is payments@v1 (stage, draft) {digest}\n")
    out = run(
        "activate", "payments", "--version", "1", "--reason", "first stage profile", "--expected-hash", digest
    )
    assert out == f"active in stage: payments@v1 {digest}\n"
    event = LedgerEvent.objects.filter(type="controlplane.policy.profile.activated").get()
    assert (event.actor, event.data["reason"]) == ("acme/pat", "first stage profile")
    created = LedgerEvent.objects.filter(type="controlplane.policy.profile.created").get()
    assert (created.actor, created.data["reason"]) == ("acme/pat", "stage rules")


def test_refused_create_and_activate_write_nothing(tmp_path, operator):
    events = LedgerEvent.objects.count()
    with pytest.raises(CommandError, match=r"POLICY_PROFILE_INVALID: tiers\.critical\.quorum"):
        bad = content(tiers={"critical": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 600}})
        run("create", "payments", "--environment", "prod", "--file", _file(tmp_path, bad), "--reason", "r")
    with pytest.raises(CommandError, match="POLICY_PROFILE_HASH_MISMATCH"):
        run("activate", shipped.STRICT, "--version", "1", "--reason", "r", "--expected-hash", "0" * 64)
    with pytest.raises(CommandError, match="POLICY_PROFILE_NOT_FOUND"):
        run("activate", "nothing", "--version", "1", "--reason", "r")
    assert LedgerEvent.objects.count() == events
    assert not PolicyProfile.objects.filter(status="active").exists()


def test_create_and_activate_refuse_without_a_valid_token_or_capability(tmp_path, monkeypatch):
    """No token, a wrong token, or a token without platform.policy.manage: refused with the code, nothing
    written."""
    weak = PrincipalFactory(
        tenant=TenantFactory(slug="acme"), name="ro", human=True, capabilities=["policy.read"]
    )
    weak_token = token_for(weak)
    path = _file(tmp_path, content())
    events = LedgerEvent.objects.count()
    create = ("create", "payments", "--environment", "stage", "--file", path, "--reason", "r")
    activate = ("activate", shipped.STRICT, "--version", "1", "--reason", "r")
    monkeypatch.delenv("CONTROLPLANE_TOKEN", raising=False)
    for args in (create, activate):
        with pytest.raises(CommandError, match=r"^AUTH_REQUIRED: "):
            run(*args)
    monkeypatch.setenv("CONTROLPLANE_TOKEN", "cp_00000000_not-a-token")
    for args in (create, activate):
        with pytest.raises(CommandError, match=r"^AUTH_INVALID_TOKEN"):
            run(*args)
    monkeypatch.setenv("CONTROLPLANE_TOKEN", weak_token)
    for args in (create, activate):
        with pytest.raises(
            CommandError, match=r"^CAPABILITY_MISSING: acme/ro lacks 'platform.policy.manage'"
        ):
            run(*args)
    assert LedgerEvent.objects.count() == events
    assert not PolicyProfile.objects.filter(name="payments").exists()
    assert not PolicyProfile.objects.filter(status="active").exists()


def test_bootstrap_is_ledgered_as_the_shell_user(settings):
    settings.CONTROLPLANE_ENV = "dev"
    run("bootstrap")
    event = LedgerEvent.objects.filter(type="controlplane.policy.profile.activated").get()
    assert event.actor.startswith("cli:") and "@" in event.actor


def test_bootstrap(settings):
    settings.CONTROLPLANE_ENV = "dev"
    assert run("bootstrap") == f"active in dev: control-plane-dev-v1@v1 {DEV_HASH}\n"
    assert run("bootstrap") == f"active in dev: control-plane-dev-v1@v1 {DEV_HASH}\n"
    assert LedgerEvent.objects.filter(type="controlplane.policy.profile.activated").count() == 1
    with pytest.raises(CommandError, match="POLICY_MISSING: no shipped profile for stage"):
        run("bootstrap", "--environment", "stage")
