"""The kill switch holds, it does not destroy work: what it held waits until the person releasing it (or,
one by one, someone allowed to turn that tenant's switch) chooses to resume or cancel it, with a reason."""

from __future__ import annotations

import pytest

from controlplane.celery import app as celery_app
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain
from controlplane.policy import services as policy
from controlplane.runtime import executors, gates, selectors, services
from controlplane.runtime.models import Execution
from controlplane.runtime.replay import replay_verify
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def acme():
    policy.profile_bootstrap(environment="dev")
    return TenantFactory(slug="acme")


@pytest.fixture
def agent(acme):
    return PrincipalFactory(tenant=acme, name="deploy-agent", agent=True)


@pytest.fixture
def olga(acme):
    """A tenant operator: turns acme's switch, decides on acme's held work."""
    return PrincipalFactory(tenant=acme, name="olga", human=True, capabilities=["killswitch.manage"])


@pytest.fixture
def root():
    """A platform operator: every switch, every tenant's held work."""
    return PrincipalFactory(
        tenant=TenantFactory(slug="ops"),
        name="root",
        human=True,
        capabilities=["killswitch.manage", "platform.killswitch.manage"],
    )


@pytest.fixture
def submit(django_capture_on_commit_callbacks):
    def submit_(principal, key, *, message="hi", steps=None):
        with django_capture_on_commit_callbacks(execute=True):
            intent = services.intent_submit(
                principal=principal,
                draft={
                    "goal": f"echo {key}",
                    "steps": steps or [{"key": "a", "action": "noop.echo", "inputs": {"message": message}}],
                },
                idempotency_key=key,
            )
        return Execution.objects.get(intent=intent)

    return submit_


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    def commit_(fn, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(**kwargs)

    return commit_


def state(execution):
    execution.refresh_from_db()
    return execution.status, {r.step.key: r.status for r in execution.step_runs.select_related("step")}


def started(execution) -> int:
    return LedgerEvent.objects.filter(
        type="controlplane.execution.step.started", subject=f"execution/{execution.pk}"
    ).count()


def test_the_kill_switch_is_the_first_dispatch_gate():
    assert gates.dispatch_gates()[0].name == "killswitch"
    assert gates.dispatch_gate("killswitch").auto_resume is False


def test_engaged_holds_new_work_and_a_plain_release_runs_none_of_it(agent, root, submit, commit):
    services.killswitch_set(scope="global", engaged=True, reason="db failover", actor=root)
    execution = submit(agent, "k-1")
    assert state(execution) == ("running", {"a": "held"})
    held = LedgerEvent.objects.get(type="controlplane.execution.step.held")
    assert held.reason_codes == ["KILL_SWITCH_ENGAGED"]
    assert held.data["gate"] == "killswitch" and held.data["hold"] == {"scope": "global", "target": ""}

    switch = commit(
        services.killswitch_set, scope="global", engaged=False, reason="failover done", actor=root
    )
    assert switch.held_result == {"resumed": 0, "cancelled": 0, "still_held": 1}
    released = LedgerEvent.objects.get(type="controlplane.killswitch.released")
    assert released.data == {"scope": "global", "target": "", "reason": "failover done", "held": "decide"}
    # Nobody chose to run it: the sweeper, run as often as it likes, does not either.
    with_sweep = services.step_runs_sweep()
    assert with_sweep["resumed"] == 0
    assert state(execution) == ("running", {"a": "held"}) and started(execution) == 0
    assert replay_verify().differences == []


def test_release_with_resume_runs_what_the_switch_held_as_the_persons_act(agent, root, submit, commit):
    services.killswitch_set(scope="global", engaged=True, reason="db failover", actor=root)
    first, second = submit(agent, "k-1"), submit(agent, "k-2")
    switch = commit(
        services.killswitch_set,
        scope="global",
        engaged=False,
        reason="failover done, run them",
        actor=root,
        held="resume",
    )
    assert switch.held_result == {"resumed": 2, "cancelled": 0, "still_held": 0}
    assert state(first) == ("completed", {"a": "completed"}) and state(second)[0] == "completed"
    resumed = list(LedgerEvent.objects.filter(type="controlplane.execution.step.resumed"))
    assert [(e.actor, e.data["reason"], e.data["gate"]) for e in resumed] == [
        ("ops/root", "failover done, run them", "killswitch")
    ] * 2
    released = LedgerEvent.objects.get(type="controlplane.killswitch.released")
    assert released.data["held"] == "resume" and released.seq < min(e.seq for e in resumed)
    assert verify_chain().ok
    assert replay_verify().differences == []


def test_release_with_cancel_cancels_the_held_executions(agent, root, submit, commit):
    services.killswitch_set(scope="action", target="noop.echo", engaged=True, reason="bad echo", actor=root)
    execution = submit(agent, "k-1")
    switch = commit(
        services.killswitch_set,
        scope="action",
        target="noop.echo",
        engaged=False,
        reason="not wanted any more",
        actor=root,
        held="cancel",
    )
    assert switch.held_result == {"resumed": 0, "cancelled": 1, "still_held": 0}
    assert state(execution) == ("cancelled", {"a": "cancelled"}) and started(execution) == 0
    cancelled = LedgerEvent.objects.get(type="controlplane.execution.cancelled")
    assert (cancelled.actor, cancelled.data["reason"]) == ("ops/root", "not wanted any more")
    assert replay_verify().differences == []


def test_resume_leaves_held_what_another_engaged_switch_still_covers(agent, root, submit, commit):
    services.killswitch_set(scope="global", engaged=True, reason="all stop", actor=root)
    services.killswitch_set(scope="tenant", target="acme", engaged=True, reason="acme stop", actor=root)
    execution = submit(agent, "k-1")
    switch = commit(
        services.killswitch_set, scope="global", engaged=False, reason="global ok", actor=root, held="resume"
    )
    assert switch.held_result == {"resumed": 0, "cancelled": 0, "still_held": 1}
    run = execution.step_runs.get()
    assert run.status == "held"
    assert not LedgerEvent.objects.filter(type="controlplane.execution.step.resumed").exists()
    # The switch that still holds it reads right on the page (the detail names the first engaged switch).
    [entry] = selectors.killswitch_held_executions(principal=root)
    assert [(s.scope, s.target) for s in entry.engaged] == [("tenant", "acme")]


def test_a_release_covers_only_its_scope(agent, root, submit, commit):
    globex = PrincipalFactory(tenant=TenantFactory(slug="globex"), name="bot", agent=True)
    services.killswitch_set(scope="tenant", target="acme", engaged=True, reason="acme", actor=root)
    services.killswitch_set(scope="tenant", target="globex", engaged=True, reason="globex", actor=root)
    ours, theirs = submit(agent, "k-1"), submit(globex, "k-2")
    commit(
        services.killswitch_set,
        scope="tenant",
        target="acme",
        engaged=False,
        reason="ok",
        actor=root,
        held="resume",
    )
    assert state(ours)[0] == "completed"
    assert state(theirs) == ("running", {"a": "held"})


def test_decide_one_by_one_resume_and_cancel(agent, olga, submit, commit):
    services.killswitch_set(scope="tenant", target="acme", engaged=True, reason="drill", actor=olga)
    keep, drop = submit(agent, "k-1"), submit(agent, "k-2")
    # While the switch is engaged nobody resumes (the code says why) and nothing is written.
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as refused:
        services.killswitch_held_decide(execution=keep, decision="resume", reason="go", actor=olga)
    assert refused.value.code == "KILL_SWITCH_ENGAGED"
    assert LedgerEvent.objects.count() == before and state(keep) == ("running", {"a": "held"})

    services.killswitch_set(scope="tenant", target="acme", engaged=False, reason="drill over", actor=olga)
    assert len(selectors.killswitch_held_executions(principal=olga)) == 2
    assert commit(
        services.killswitch_held_decide, execution=keep, decision="resume", reason="needed", actor=olga
    ) == {"resumed": 1, "cancelled": 0, "still_held": 0}
    assert commit(
        services.killswitch_held_decide, execution=drop, decision="cancel", reason="stale", actor=olga
    ) == {"resumed": 0, "cancelled": 1, "still_held": 0}
    assert state(keep)[0] == "completed" and state(drop)[0] == "cancelled"
    assert selectors.killswitch_held_executions(principal=olga) == []
    # Deciding again: nothing is held any more.
    with pytest.raises(ControlPlaneError) as again:
        services.killswitch_held_decide(execution=keep, decision="cancel", reason="x", actor=olga)
    assert again.value.code == "KILL_SWITCH_NOTHING_HELD"
    assert replay_verify().differences == []


@pytest.mark.parametrize(
    ("decision", "reason", "code"),
    [("resume", " ", "KILL_SWITCH_REASON_REQUIRED"), ("run", "go", "KILL_SWITCH_HELD_CHOICE_INVALID")],
)
def test_a_decision_needs_a_reason_and_a_known_choice(agent, olga, submit, decision, reason, code):
    services.killswitch_set(scope="tenant", target="acme", engaged=True, reason="drill", actor=olga)
    execution = submit(agent, "k-1")
    services.killswitch_set(scope="tenant", target="acme", engaged=False, reason="over", actor=olga)
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as refused:
        services.killswitch_held_decide(execution=execution, decision=decision, reason=reason, actor=olga)
    assert refused.value.code == code
    assert LedgerEvent.objects.count() == before and state(execution) == ("running", {"a": "held"})


def test_a_release_with_an_unknown_choice_writes_nothing(root):
    services.killswitch_set(scope="global", engaged=True, reason="x", actor=root)
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as refused:
        services.killswitch_set(scope="global", engaged=False, reason="y", actor=root, held="run-all")
    assert refused.value.code == "KILL_SWITCH_HELD_CHOICE_INVALID"
    assert LedgerEvent.objects.count() == before


def test_another_tenant_cannot_see_or_decide_on_held_work(agent, olga, root, submit):
    services.killswitch_set(scope="global", engaged=True, reason="all stop", actor=root)
    execution = submit(agent, "k-1")
    services.killswitch_set(scope="global", engaged=False, reason="over", actor=root)
    mallory = PrincipalFactory(
        tenant=TenantFactory(slug="globex"), name="mallory", human=True, capabilities=["killswitch.manage"]
    )
    assert selectors.killswitch_held_executions(principal=mallory) == []
    assert [e.execution.pk for e in selectors.killswitch_held_executions(principal=olga)] == [execution.pk]
    assert [e.execution.pk for e in selectors.killswitch_held_executions(principal=root)] == [execution.pk]
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as refused:
        services.killswitch_held_decide(
            execution=execution, decision="cancel", reason="mine now", actor=mallory
        )
    assert refused.value.code == "PLATFORM_SCOPE_REQUIRED"
    assert LedgerEvent.objects.count() == before and state(execution) == ("running", {"a": "held"})


def test_the_kill_switch_wins_over_a_plugin_hold_and_a_resume_hands_the_step_to_it(
    agent, root, submit, commit, monkeypatch
):
    """A step the switch held, resumed while its plugin is down, is then held by the plugin's gate (which
    resumes by itself once the plugin is healthy); nothing is lost between the two holds."""
    plugin = {"down": True}

    def check(run):
        return gates.Hold(code="PLUGIN_UNHEALTHY", detail="waiting for plugin eu") if plugin["down"] else None

    monkeypatch.setitem(gates._GATES, "test-plugin", gates.DispatchGate(name="test-plugin", check=check))
    services.killswitch_set(scope="global", engaged=True, reason="all stop", actor=root)
    execution = submit(agent, "k-1")
    run = execution.step_runs.get()
    assert (run.held_gate, run.held_code) == ("killswitch", "KILL_SWITCH_ENGAGED")
    commit(services.killswitch_set, scope="global", engaged=False, reason="go", actor=root, held="resume")
    run.refresh_from_db()
    assert (run.status, run.held_gate, run.held_detail) == ("held", "test-plugin", "waiting for plugin eu")
    plugin["down"] = False
    assert commit(services.step_runs_sweep)["resumed"] == 1
    assert state(execution)[0] == "completed"
    assert replay_verify().differences == []


def test_a_step_running_when_the_switch_engages_finishes_and_the_next_one_is_held(
    agent, root, submit, monkeypatch
):
    """Engaged while step a runs (inside its executor): a finishes and is recorded; b is held."""
    echo = executors.executor_for("noop.echo")

    def engaging(call):
        if call.step == "a":
            services.killswitch_set(scope="global", engaged=True, reason="mid-run", actor=root)
        return echo(call)

    monkeypatch.setitem(executors._EXECUTORS, "noop.echo", engaging)
    execution = submit(
        agent,
        "k-1",
        steps=[
            {"key": "a", "action": "noop.echo", "inputs": {"message": "one"}},
            {"key": "b", "action": "noop.echo", "inputs": {"message": "two"}, "depends_on": ["a"]},
        ],
    )
    assert state(execution) == ("running", {"a": "completed", "b": "held"})
    assert started(execution) == 1
    assert replay_verify().differences == []
