"""`manage.py replay` runs the replays the apps registered (controlplane.kernel.replay)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from controlplane.kernel import replay
from controlplane.kernel.replay import Difference, Replayer, ReplayReport, register_replayer, replayers

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("replay", *args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> tuple[CommandError, str]:
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("replay", *args, stdout=out)
    return caught.value, out.getvalue()


def test_the_apps_register_the_runtime_and_incident_replays():
    registered = {r.name: (r.subject, r.every, r.default, r.simulate is not None) for r in replayers()}
    assert registered == {
        "incidents": ("incident", "incidents", False, False),
        "learning": ("learning-report", "learning", False, False),
        "plugins": ("plugin", "plugins", False, False),
        "runtime": ("execution", "all", True, True),
        "skills": ("skill", "skills", False, False),
    }


def test_a_build_without_a_default_replay_refuses_a_bare_verify_with_its_code(monkeypatch):
    monkeypatch.delitem(replay._REPLAYERS, "runtime")  # as if the runtime were not installed
    error, out = refused("--verify")
    assert str(error) == "REPLAY_UNAVAILABLE: no default replay is registered in this build"
    assert out == ""


def test_a_registered_replay_gets_its_flags_and_reports_as_the_runtime_does(monkeypatch):
    calls = []

    def verify(subject_id):
        calls.append(subject_id)
        report = ReplayReport(domain="incidents", checked=2)
        if subject_id:
            report.differences.append(Difference(f"incident/{subject_id}", "status", "open", "resolved", 7))
        return report

    monkeypatch.setitem(
        replay._REPLAYERS, "incidents", Replayer("incidents", verify, subject="incident", every="incidents")
    )
    assert run("--incidents") == "incidents replay: 2 checked, 0 difference(s)\n"
    error, out = refused("--verify", "--incident", "abc")
    assert calls == [None, "abc"] and error.returncode == 1
    assert out.splitlines()[0] == "DIFF incident/abc status: recorded 'open', rebuilt 'resolved' (seq 7)"


def test_a_new_domain_is_offered_by_registering_it(monkeypatch):
    monkeypatch.setattr(replay, "_REPLAYERS", dict(replay._REPLAYERS))
    register_replayer(
        Replayer("widgets", lambda subject_id: ReplayReport("widgets", checked=1), "widget", "widgets")
    )
    assert run("--widgets") == "widgets replay: 1 checked, 0 difference(s)\n"
    error, _ = refused("--widget", "p", "--widgets")
    assert str(error) == "VALIDATION_FAILED: --widget and --widgets exclude each other"
    error, _ = refused("--widgets", "--incidents")
    assert str(error) == "VALIDATION_FAILED: one replay at a time: incidents, widgets"


def test_registering_a_name_twice_differently_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_replayer(Replayer("runtime", lambda subject_id: ReplayReport("x"), "execution", "all"))
