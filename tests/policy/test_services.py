"""Profile services: versions, activation, bootstrap; every refusal writes nothing; the invariant holds
at the service, the model and the database."""

from __future__ import annotations

import copy
import json
import threading

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain
from controlplane.policy import selectors, services, shipped
from controlplane.policy.content import content_hash
from controlplane.policy.evaluation import Context, StepFacts
from controlplane.policy.models import PolicyProfile
from tests.identity.factories import PrincipalFactory
from tests.policy.factories import PolicyProfileFactory, content
from tests.policy.test_properties import AUTONOMOUS_EXTRAS, contents

pytestmark = pytest.mark.django_db


def _events(type_prefix: str = "controlplane.policy.") -> list[LedgerEvent]:
    return list(LedgerEvent.objects.filter(type__startswith=type_prefix).order_by("seq"))


def _nothing_written(before_profiles: int, before_events: int) -> bool:
    return PolicyProfile.objects.count() == before_profiles and LedgerEvent.objects.count() == before_events


def _counts() -> tuple[int, int]:
    return PolicyProfile.objects.count(), LedgerEvent.objects.count()


# --- the shipped profiles ----------------------------------------------------------------------------


def test_the_migration_ships_both_profiles_as_drafts():
    rows = {p.name: p for p in PolicyProfile.objects.filter(name__in=list(shipped.SHIPPED))}
    assert {name: (p.version, p.environment, p.status, p.created_by) for name, p in rows.items()} == {
        "control-plane-strict-v1": (1, "prod", "draft", "migration"),
        "control-plane-dev-v1": (1, "dev", "draft", "migration"),
    }
    assert rows["control-plane-strict-v1"].content == shipped.STRICT_CONTENT
    assert rows["control-plane-strict-v1"].content_hash == content_hash(shipped.STRICT_CONTENT)
    assert not _events()  # the migration writes rows only; activation is the ledgered act


# --- profile_create ----------------------------------------------------------------------------------


def test_create_saves_version_one_as_a_draft_and_ledgers_it():
    actor = PrincipalFactory(name="alice", capabilities=["platform.policy.manage"])
    result = services.profile_create(name="payments", environment="stage", content=content(), actor=actor)
    profile = result.profile
    assert result.created is True
    assert (profile.name, profile.version, profile.environment, profile.status) == (
        "payments",
        1,
        "stage",
        "draft",
    )
    assert profile.content_hash == content_hash(content())
    (event,) = _events()
    assert event.type == "controlplane.policy.profile.created"
    assert event.subject == "policy-profile/payments"
    assert event.actor == actor.ref == profile.created_by
    assert event.data == {
        "name": "payments",
        "version": 1,
        "environment": "stage",
        "content_hash": profile.content_hash,
        "content": content(),
    }


def test_new_content_under_the_same_name_is_the_next_version_and_the_same_content_is_not():
    first = PolicyProfileFactory(name="payments")
    changed = content(tiers={"medium": {"mode": "autonomous"}})
    second = services.profile_create(name="payments", environment="prod", content=changed, actor="test")
    assert (second.created, second.profile.version) == (True, 2)
    events = LedgerEvent.objects.count()
    again = services.profile_create(name="payments", environment="prod", content=changed, actor="test")
    assert (again.created, again.profile.pk) == (False, second.profile.pk)
    assert LedgerEvent.objects.count() == events
    first.refresh_from_db()
    assert first.content == content()  # the old version is untouched


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"environment": "qa"}, "environment"),
        ({"content": content(tiers={"high": {"mode": "autonomous"}})}, "tiers.high.mode"),
        (
            {
                "content": content(
                    tiers={"critical": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 60}}
                )
            },
            "tiers.critical.quorum",
        ),
        ({"content": {"tiers": "none"}}, "$"),
    ],
)
def test_invalid_create_is_refused_and_writes_nothing(kwargs, path):
    before = _counts()
    arguments = {"name": "payments", "environment": "prod", "content": content(), "actor": "test", **kwargs}
    with pytest.raises(ControlPlaneError) as refused:
        services.profile_create(**arguments)
    assert (refused.value.code, refused.value.extra["path"]) == ("POLICY_PROFILE_INVALID", path)
    assert _nothing_written(*before)


def test_a_name_belongs_to_one_environment():
    PolicyProfileFactory(name="payments", environment="prod")
    before = _counts()
    with pytest.raises(ControlPlaneError) as refused:
        services.profile_create(
            name="payments",
            environment="dev",
            content=content(tiers={"medium": {"mode": "autonomous"}}),
            actor="t",
        )
    assert (refused.value.code, refused.value.extra["path"]) == ("POLICY_PROFILE_INVALID", "environment")
    assert _nothing_written(*before)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=contents(), tier=st.sampled_from(["high", "critical"]), extra=AUTONOMOUS_EXTRAS)
def test_no_generated_profile_making_high_or_critical_autonomous_can_be_saved(generated, tier, extra):
    generated["tiers"][tier] = {"mode": "autonomous", **extra}
    before = _counts()
    with pytest.raises(ControlPlaneError) as refused:
        services.profile_create(name="generated", environment="prod", content=generated, actor="test")
    assert refused.value.code == "POLICY_PROFILE_INVALID"
    with pytest.raises(ControlPlaneError):  # nor by the model directly
        PolicyProfile(
            name="generated",
            version=1,
            environment="prod",
            content=generated,
            content_hash=content_hash(generated),
        ).save()
    assert _nothing_written(*before)


# --- the model and the database ----------------------------------------------------------------------


def test_a_saved_profile_cannot_be_changed_or_deleted_through_the_model():
    profile = PolicyProfileFactory()
    profile.content = content(tiers={"medium": {"mode": "autonomous"}})
    with pytest.raises(ControlPlaneError) as refused:
        profile.save()
    assert refused.value.code == "POLICY_PROFILE_IMMUTABLE"
    with pytest.raises(ControlPlaneError) as refused:
        profile.delete()
    assert refused.value.code == "POLICY_PROFILE_IMMUTABLE"


def test_a_new_row_must_carry_the_hash_of_its_content():
    with pytest.raises(ControlPlaneError) as refused:
        PolicyProfile(
            name="x", version=1, environment="prod", content=content(), content_hash="0" * 64
        ).save()
    assert refused.value.code == "POLICY_PROFILE_INVALID"
    assert not PolicyProfile.objects.filter(name="x").exists()


def test_the_database_refuses_changing_content_or_deleting_a_profile():
    profile = PolicyProfileFactory()
    for attempt in (
        lambda: PolicyProfile.objects.filter(pk=profile.pk).update(
            content=content(tiers={"medium": {"mode": "autonomous"}})
        ),
        lambda: PolicyProfile.objects.filter(pk=profile.pk).update(content_hash="0" * 64),
        lambda: PolicyProfile.objects.filter(pk=profile.pk).update(version=9),
        lambda: PolicyProfile.objects.filter(pk=profile.pk).delete(),
    ):
        with pytest.raises(DatabaseError, match="POLICY_PROFILE_IMMUTABLE"), transaction.atomic():
            attempt()
    profile.refresh_from_db()
    assert (profile.version, profile.content) == (1, content())


@pytest.mark.parametrize(
    "tiers",
    [
        {"high": {"mode": "autonomous"}},
        {"critical": {"mode": "autonomous"}},
        {"critical": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 60}},
        {"critical": {"mode": "assist", "approval_timeout_seconds": 60}},
        {"high": {}},
    ],
)
def test_the_database_check_refuses_the_invariant_even_from_raw_sql(tiers):
    bad = content(tiers=tiers)
    with (
        pytest.raises(IntegrityError, match="policy_profile_high_critical_never_autonomous"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO policy_policyprofile (name, version, environment, content, content_hash, "
            "status, created_by, created_at) VALUES ('raw', 1, 'prod', %s::jsonb, %s, 'draft', 'sql', now())",
            [json.dumps(bad), content_hash(bad)],
        )
    assert not PolicyProfile.objects.filter(name="raw").exists()


def test_as_content_refuses_a_row_whose_content_does_not_match_its_hash():
    profile = PolicyProfile(name="x", version=1, environment="prod", content=content(), content_hash="0" * 64)
    with pytest.raises(ControlPlaneError) as refused:
        profile.as_content()
    assert refused.value.code == "POLICY_PROFILE_HASH_MISMATCH"


# --- profile_activate --------------------------------------------------------------------------------


def test_activate_makes_the_profile_active_and_ledgers_it():
    profile = PolicyProfileFactory(name="payments", environment="stage")
    actor = PrincipalFactory(name="bob", capabilities=["platform.policy.manage"])
    active = services.profile_activate(profile=profile, actor=actor, reason="quarterly review")
    assert (active.status, active.retired_at) == ("active", None)
    assert active.activated_at is not None
    assert selectors.active_profile(environment="stage") == active
    event = _events()[-1]
    assert (event.type, event.subject, event.actor) == (
        "controlplane.policy.profile.activated",
        "policy-profile/payments",
        actor.ref,
    )
    assert event.data == {
        "name": "payments",
        "version": 1,
        "environment": "stage",
        "content_hash": profile.content_hash,
        "previous": None,
        "reason": "quarterly review",
    }


def test_activating_another_version_retires_the_previous_one_in_the_same_transaction():
    first = PolicyProfileFactory(name="payments", active=True)
    second = services.profile_create(
        name="payments",
        environment="prod",
        content=content(tiers={"medium": {"mode": "autonomous"}}),
        actor="t",
    ).profile
    seq = LedgerEvent.objects.order_by("-seq").first().seq
    services.profile_activate(profile=second, actor="cli", reason="loosen medium")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("retired", "active")
    assert first.retired_at == second.activated_at
    retired, activated = LedgerEvent.objects.filter(seq__gt=seq).order_by("seq")
    assert (retired.type, retired.data["version"], retired.data["replaced_by"]) == (
        "controlplane.policy.profile.retired",
        1,
        {"name": "payments", "version": 2},
    )
    assert (activated.type, activated.data["previous"]) == (
        "controlplane.policy.profile.activated",
        {"name": "payments", "version": 1},
    )
    # Rolling back is activating the retired version again.
    services.profile_activate(profile=first, actor="cli", reason="roll back")
    assert selectors.active_profile(environment="prod").version == 1


def test_activating_the_active_profile_writes_nothing():
    profile = PolicyProfileFactory(active=True)
    before = _counts()
    assert services.profile_activate(profile=profile, actor="t", reason="again").status == "active"
    assert _nothing_written(*before)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"reason": "  "}, "VALIDATION_FAILED"),
        ({"expected_hash": "f" * 64}, "POLICY_PROFILE_HASH_MISMATCH"),
    ],
)
def test_refused_activation_writes_nothing(kwargs, code):
    current = PolicyProfileFactory(name="payments", active=True)
    candidate = services.profile_create(
        name="payments",
        environment="prod",
        content=content(tiers={"medium": {"mode": "autonomous"}}),
        actor="t",
    ).profile
    before = _counts()
    with pytest.raises(ControlPlaneError) as refused:
        services.profile_activate(profile=candidate, actor="t", **{"reason": "r", **kwargs})
    assert refused.value.code == code
    assert _nothing_written(*before)
    assert selectors.active_profile(environment="prod") == current


def test_activation_with_the_approved_hash_goes_through():
    profile = PolicyProfileFactory()
    services.profile_activate(
        profile=profile, actor="t", reason="approved", expected_hash=profile.content_hash
    )
    assert selectors.active_profile(environment="prod") == profile


def test_activation_fails_closed_when_the_ledger_cannot_be_written(settings):
    profile = PolicyProfileFactory(environment="stage")
    settings.CONTROLPLANE_KEY_DIR = settings.CONTROLPLANE_KEY_DIR.parent / "no-keys"
    from controlplane.ledger import crypto

    crypto.forget_loaded_keys()
    before = _counts()
    with pytest.raises(ControlPlaneError) as refused:
        services.profile_activate(profile=profile, actor="t", reason="r")
    assert refused.value.code == "LEDGER_KEY_UNAVAILABLE"
    assert _nothing_written(*before)
    profile.refresh_from_db()
    assert profile.status == "draft"


def test_at_most_one_profile_is_active_per_environment_at_the_database():
    PolicyProfileFactory(environment="stage", active=True)
    other = PolicyProfileFactory(environment="stage")
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyProfile.objects.filter(pk=other.pk).update(status="active")


# --- profile_bootstrap -------------------------------------------------------------------------------


@pytest.mark.parametrize(("environment", "name"), [("dev", shipped.DEV), ("prod", shipped.STRICT)])
def test_bootstrap_activates_the_shipped_profile_once(environment, name):
    profile = services.profile_bootstrap(environment=environment, actor="cli")
    assert (profile.name, profile.version, profile.status) == (name, 1, "active")
    (event,) = _events()
    assert (event.type, event.actor, event.data["reason"]) == (
        "controlplane.policy.profile.activated",
        "cli",
        f"bootstrap: shipped default for {environment}",
    )
    assert services.profile_bootstrap(environment=environment, actor="cli") == profile
    assert len(_events()) == 1


def test_bootstrap_keeps_an_existing_active_profile():
    mine = PolicyProfileFactory(environment="dev", active=True)
    assert services.profile_bootstrap(environment="dev") == mine


def test_stage_ships_no_profile_and_stays_fail_closed():
    before = _counts()
    with pytest.raises(ControlPlaneError) as refused:
        services.profile_bootstrap(environment="stage")
    assert refused.value.code == "POLICY_MISSING"
    assert _nothing_written(*before)


def test_bootstrap_creates_the_shipped_row_through_the_service_when_it_is_missing(monkeypatch):
    # As after a flush of the table: the row is made (and ledgered) before it is activated.
    monkeypatch.setitem(shipped.SHIPPED, "stage-default-v1", ("stage", copy.deepcopy(content())))
    monkeypatch.setitem(shipped.DEFAULT_FOR_ENVIRONMENT, "stage", "stage-default-v1")
    profile = services.profile_bootstrap(environment="stage", actor="cli")
    assert (profile.name, profile.version, profile.status) == ("stage-default-v1", 1, "active")
    assert [e.type for e in _events()] == [
        "controlplane.policy.profile.created",
        "controlplane.policy.profile.activated",
    ]


# --- selectors ---------------------------------------------------------------------------------------

STEP = StepFacts(action="http.webhook", tier="medium", inputs={})


def test_explain_uses_the_active_profile_of_the_environment_or_fails_closed():
    assert selectors.explain(step=STEP, context=Context(environment="prod")).reason_codes == (
        "POLICY_MISSING",
    )
    services.profile_bootstrap(environment="prod")
    decision = selectors.explain(step=STEP, context=Context(environment="prod"))
    assert (decision.effective_verdict, decision.tier, decision.profile.name) == (
        "require_approval",
        "high",
        shipped.STRICT,
    )


def test_explain_under_a_given_profile_such_as_a_draft():
    draft = PolicyProfileFactory(content=content(tiers={"medium": {"mode": "autonomous"}}))
    decision = selectors.explain(step=STEP, context=Context(environment="prod"), profile=draft)
    assert (decision.effective_verdict, decision.profile.name, decision.profile.version) == (
        "allow",
        draft.name,
        1,
    )


def test_profile_get_finds_the_newest_or_a_version_or_refuses():
    assert selectors.profile_get(name=shipped.STRICT).version == 1
    with pytest.raises(ControlPlaneError) as refused:
        selectors.profile_get(name=shipped.STRICT, version=7)
    assert refused.value.code == "POLICY_PROFILE_NOT_FOUND"


def test_the_start_up_banner_names_the_active_profile_and_its_hash(settings):
    from controlplane.startup import banner

    settings.CONTROLPLANE_ENV = "prod"
    assert banner().endswith(
        "policy=none (POLICY_MISSING: every step is denied; run `manage.py policy bootstrap`)"
    )
    profile = services.profile_bootstrap(environment="prod")
    assert banner().endswith(f"policy=control-plane-strict-v1@v1 policy_hash={profile.content_hash}")


# --- concurrency -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_activations_in_one_environment_leave_exactly_one_active():
    first = PolicyProfileFactory(name="race-a", environment="stage")
    second = PolicyProfileFactory(name="race-b", environment="stage")
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def activate(profile: PolicyProfile) -> None:
        try:
            barrier.wait()
            services.profile_activate(profile=profile, actor="race", reason="race")
            outcomes[profile.name] = "ok"
        except ControlPlaneError as exc:
            outcomes[profile.name] = exc.code
        finally:
            connection.close()

    threads = [threading.Thread(target=activate, args=(p,)) for p in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == {"race-a": "ok", "race-b": "ok"}  # serialised by the row locks, not refused
    (active,) = PolicyProfile.objects.filter(environment="stage", status="active")
    (retired,) = PolicyProfile.objects.filter(environment="stage", status="retired")
    activated = _events("controlplane.policy.profile.activated")
    assert [e.data["name"] for e in activated] == [retired.name, active.name]
    assert activated[1].data["previous"] == {"name": retired.name, "version": 1}
    assert [e.data["name"] for e in _events("controlplane.policy.profile.retired")] == [retired.name]
    assert verify_chain().ok
