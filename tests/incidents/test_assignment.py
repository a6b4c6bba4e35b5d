"""Assign and note: an incident's assignee and the notes people write, through every surface (services,
API, console, CLI), each a ledgered act of a person with its contract; refusals carry their reason code
and write nothing; tenant B neither sees nor changes tenant A's assignee or notes; replay rebuilds both."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from controlplane.kernel.contracts import REGISTRY
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from incidents import services
from incidents.models import Incident, IncidentNote
from incidents.replay import replay_incidents
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.incidents.factories import auth

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
CONSOLE = ["console.view", "incidents.read", "incidents.manage", "ledger.read"]


@pytest.fixture
def bob(tenant):
    """A second person on call, to whom an incident can be given."""
    return PrincipalFactory(tenant=tenant, name="bob", human=True, user__username="bob", capabilities=CONSOLE)


def written(incident: Incident) -> tuple:
    row = Incident.objects.get(pk=incident.pk)
    return LedgerEvent.objects.count(), IncidentNote.objects.count(), row.assignee_id, row.updated_at


def contract_errors(event: LedgerEvent) -> list[str]:
    contract = REGISTRY.for_ledger_type(event.type)
    assert contract is not None, event.type
    return contract.errors(event.data)


# --- Services -------------------------------------------------------------------------------------------


def test_assign_to_someone_then_to_nobody_each_a_ledgered_act_with_its_contract(incident, oncall, bob):
    changed = services.incident_assign(incident=incident, actor=oncall, assignee=bob, reason="you know it")
    assert (changed.assignee, changed.assigned_at is not None) == (bob, True)
    event = LedgerEvent.objects.order_by("-seq").first()
    assert (event.type, event.subject, event.actor) == (
        "controlplane.incident.assigned",
        f"incident/{incident.pk}",
        oncall.ref,
    )
    assert (event.data["assignee"], event.data["previous"], event.data["reason"]) == (
        bob.ref,
        None,
        "you know it",
    )
    assert contract_errors(event) == []
    changed = services.incident_assign(incident=incident, actor=oncall, assignee=None)
    assert (changed.assignee, changed.assigned_at) == (None, None)
    event = LedgerEvent.objects.order_by("-seq").first()
    assert (event.data["assignee"], event.data["previous"]) == (None, bob.ref)
    assert contract_errors(event) == []


def test_a_note_is_a_ledgered_timeline_entry_of_a_person(incident, oncall):
    note = services.incident_note_add(incident=incident, actor=oncall, text="  restarted pod 3, no change  ")
    event = LedgerEvent.objects.get(seq=note.seq)
    assert (note.text, note.author, note.tenant_id) == (
        "restarted pod 3, no change",
        oncall,
        incident.tenant_id,
    )
    assert (event.type, event.actor, event.data["text"], event.data["author"]) == (
        "controlplane.incident.note.added",
        oncall.ref,
        "restarted pod 3, no change",
        oncall.ref,
    )
    assert contract_errors(event) == []


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("stranger", "INCIDENT_ASSIGNEE_INVALID"),  # another tenant's person
        ("agent", "INCIDENT_ASSIGNEE_INVALID"),  # not a person
        ("reader", "INCIDENT_ASSIGNEE_INVALID"),  # may not manage incidents
        ("nobody", "INCIDENT_ASSIGNEE_UNCHANGED"),  # nobody holds it already
    ],
)
def test_assignment_refusals_carry_their_code_and_write_nothing(tenant, incident, oncall, who, code):
    assignees = {
        "stranger": PrincipalFactory(
            tenant=TenantFactory(slug="globex"), human=True, capabilities=["incidents.manage"]
        ),
        "agent": PrincipalFactory(tenant=tenant, agent=True, capabilities=["incidents.manage"]),
        "reader": PrincipalFactory(tenant=tenant, human=True, capabilities=["incidents.read"]),
        "nobody": None,
    }
    before = written(incident)
    with pytest.raises(ControlPlaneError) as refused:
        services.incident_assign(incident=incident, actor=oncall, assignee=assignees[who])
    assert refused.value.code == code
    assert written(incident) == before


def test_assigning_twice_to_the_same_person_writes_one_event(incident, oncall, bob):
    services.incident_assign(incident=incident, actor=oncall, assignee=bob)
    before = written(incident)
    with pytest.raises(ControlPlaneError) as refused:
        services.incident_assign(incident=incident, actor=oncall, assignee=bob)
    assert refused.value.code == "INCIDENT_ASSIGNEE_UNCHANGED"
    assert written(incident) == before


@pytest.mark.parametrize(
    ("text", "code"), [("   ", "INCIDENT_NOTE_EMPTY"), ("x" * 10_001, "INCIDENT_NOTE_TOO_LONG")]
)
def test_note_refusals_carry_their_code_and_write_nothing(incident, oncall, text, code):
    before = written(incident)
    with pytest.raises(ControlPlaneError) as refused:
        services.incident_note_add(incident=incident, actor=oncall, text=text)
    assert refused.value.code == code
    assert written(incident) == before


def test_only_people_assign_and_write_notes(tenant, incident, bob):
    agent = PrincipalFactory(tenant=tenant, agent=True, capabilities=["incidents.manage"])
    before = written(incident)
    for act in (
        lambda: services.incident_assign(incident=incident, actor=agent, assignee=bob),
        lambda: services.incident_note_add(incident=incident, actor=agent, text="hi"),
    ):
        with pytest.raises(ControlPlaneError) as refused:
            act()
        assert refused.value.code == "INCIDENT_ACTOR_NOT_HUMAN"
    assert written(incident) == before


def test_a_closed_incident_keeps_its_assignee_but_takes_notes(incident, oncall, bob):
    for verb, reason in (("resolve", "fixed"), ("close", "")):
        getattr(services, f"incident_{verb}")(incident=incident, actor=oncall, reason=reason)
    before = written(incident)
    with pytest.raises(ControlPlaneError) as refused:
        services.incident_assign(incident=incident, actor=oncall, assignee=bob)
    assert refused.value.code == "INCIDENT_TRANSITION_NOT_ALLOWED"
    assert written(incident) == before
    services.incident_note_add(incident=incident, actor=oncall, text="post-incident review: done")
    assert IncidentNote.objects.count() == 1


def test_replay_rebuilds_the_assignee_and_notes_and_finds_a_row_changed_behind_the_services_back(
    incident, oncall, bob
):
    services.incident_assign(incident=incident, actor=oncall, assignee=bob)
    note = services.incident_note_add(incident=incident, actor=oncall, text="looking")
    report = replay_incidents(incident.pk)
    assert report.ok, [str(d) for d in report.differences]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE incidents_incident SET assignee_id = %s WHERE id = %s", [oncall.pk, incident.pk]
        )
        cursor.execute("DELETE FROM incidents_incidentnote WHERE seq = %s", [note.seq])
    found = {(d.field, str(d.recorded), str(d.rebuilt)) for d in replay_incidents(incident.pk).differences}
    assert found == {("assignee", oncall.ref, bob.ref), ("notes", "[]", f"[{note.seq}]")}


# --- API ------------------------------------------------------------------------------------------------


def api_post(client, token, incident, path, **body):
    return client.post(
        f"/api/v1/incidents/{incident.pk}/{path}/", body, content_type="application/json", **auth(token)
    )


def test_api_assign_to_me_and_notes(client, incident, oncall, oncall_token):
    response = api_post(client, oncall_token, incident, "assign", assignee=oncall.name)
    assert response.status_code == 200, response.content
    assert response.json()["assignee"] == oncall.ref and response.json()["assigned_at"]
    response = api_post(client, oncall_token, incident, "notes", text="checking the deploy")
    assert response.status_code == 201, response.content
    assert (response.json()["author"], response.json()["text"]) == (oncall.ref, "checking the deploy")
    listed = client.get(f"/api/v1/incidents/{incident.pk}/notes/", **auth(oncall_token)).json()["results"]
    assert [n["text"] for n in listed] == ["checking the deploy"]
    assert (
        client.get(f"/api/v1/incidents/{incident.pk}/", **auth(oncall_token)).json()["assignee"] == oncall.ref
    )
    response = api_post(client, oncall_token, incident, "assign", assignee=None)
    assert response.status_code == 200 and response.json()["assignee"] is None


def test_api_refusals_carry_their_code_and_write_nothing(client, tenant, incident, oncall_token):
    reader = PrincipalFactory(tenant=tenant, human=True, capabilities=["incidents.read"])
    reader_token = token_for(reader)  # minting a token is ledgered: before counting
    before = written(incident)
    cases = [
        (oncall_token, "assign", {"assignee": "nobody-here"}, 400, "INCIDENT_ASSIGNEE_INVALID"),
        (oncall_token, "assign", {"assignee": None}, 409, "INCIDENT_ASSIGNEE_UNCHANGED"),
        (oncall_token, "notes", {"text": "  "}, 400, "INCIDENT_NOTE_EMPTY"),
        (reader_token, "notes", {"text": "hi"}, 403, "CAPABILITY_MISSING"),
        (reader_token, "assign", {"assignee": None}, 403, "CAPABILITY_MISSING"),
    ]
    for token, path, body, status, code in cases:
        response = api_post(client, token, incident, path, **body)
        assert (response.status_code, response.json()["code"]) == (status, code), (path, body)
    assert written(incident) == before


def test_tenant_b_neither_sees_nor_changes_tenant_as_assignee_and_notes(client, tenant, incident, oncall):
    services.incident_note_add(incident=incident, actor=oncall, text="acme only")
    globex = TenantFactory(slug="globex")
    eve = PrincipalFactory(
        tenant=globex, name="eve", human=True, capabilities=["incidents.read", "incidents.manage"]
    )
    token = token_for(eve)
    eve_console = PrincipalFactory(
        tenant=globex, name="eve2", human=True, user__username="eve2", capabilities=CONSOLE
    )
    console = Client()
    console.force_login(eve_console.user)  # signing in is ledgered: before counting
    before = written(incident)
    assert client.get(f"/api/v1/incidents/{incident.pk}/notes/", **auth(token)).status_code == 404
    for path, body in (("assign", {"assignee": "eve"}), ("notes", {"text": "mine now"})):
        response = api_post(client, token, incident, path, **body)
        assert (response.status_code, response.json()["code"]) == (404, "INCIDENT_NOT_FOUND")
    # Nor in the console, nor by naming one of its own people as the assignee of acme's incident.
    for path, data in (("assign", {"me": "on"}), ("note", {"text": "x"})):
        response = console.post(f"/incidents/{incident.pk}/{path}/", data, headers=HTMX)
        assert response.status_code == 404 and b'data-code="INCIDENT_NOT_FOUND"' in response.content
    assert b"acme only" not in console.get(f"/incidents/{incident.pk}/").content
    with pytest.raises(ControlPlaneError) as refused:
        services.incident_assign(incident=incident, actor=oncall, assignee=eve)
    assert refused.value.code == "INCIDENT_ASSIGNEE_INVALID"
    assert written(incident) == before


# --- Console --------------------------------------------------------------------------------------------


@pytest.fixture
def console(client, tenant) -> tuple[Client, object]:
    olivia = PrincipalFactory(
        tenant=tenant, name="olivia", human=True, user__username="olivia", capabilities=CONSOLE
    )
    client.force_login(olivia.user)
    return client, olivia


def test_console_assign_to_me_then_to_someone_then_a_note(console, incident, bob):
    client, olivia = console
    page = client.get(f"/incidents/{incident.pk}/").content.decode()
    assert 'id="assign-me"' in page and '<option value="bob">acme/bob</option>' in page
    assert "assigned to nobody" in page
    response = client.post(f"/incidents/{incident.pk}/assign/", {"me": "on"}, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert 'id="changed">Incident assigned to acme/olivia.' in html
    assert 'assigned to <strong class="mono">acme/olivia</strong>' in html and 'id="assign-me"' not in html
    response = client.post(f"/incidents/{incident.pk}/assign/", {"assignee": "bob"}, headers=HTMX)
    assert "Incident assigned to acme/bob." in response.content.decode()
    for board in (client.get("/incidents/"), client.get("/incidents/", headers=HTMX)):
        assert '→ <span class="mono">acme/bob</span>' in board.content.decode()  # the board says who is on it
    response = client.post(f"/incidents/{incident.pk}/note/", {"text": "bob <b>owns</b> it"}, headers=HTMX)
    html = response.content.decode()
    note = IncidentNote.objects.get()
    assert f"Note added (ledger seq {note.seq})." in html
    assert "bob &lt;b&gt;owns&lt;/b&gt; it" in html and "<b>owns</b>" not in html
    assert re.search(rf'data-seq="{note.seq}".*?<span class="badge tl-kind">incident</span> note', html, re.S)
    # Without htmx: post/redirect/get.
    response = client.post(f"/incidents/{incident.pk}/note/", {"text": "second"})
    assert (response.status_code, response["Location"]) == (302, f"/incidents/{incident.pk}/")
    assert [n.author for n in IncidentNote.objects.all()] == [olivia, olivia]


def test_console_refusals_show_their_code_and_write_nothing(console, incident):
    client, _ = console
    before = written(incident)
    for path, data, status, code in (
        ("assign", {"assignee": ""}, 409, "INCIDENT_ASSIGNEE_UNCHANGED"),
        ("assign", {"assignee": "ghost"}, 400, "INCIDENT_ASSIGNEE_INVALID"),
        ("note", {"text": "  "}, 400, "INCIDENT_NOTE_EMPTY"),
    ):
        response = client.post(f"/incidents/{incident.pk}/{path}/", data, headers=HTMX)
        assert response.status_code == status and f'data-code="{code}"'.encode() in response.content
        assert response["HX-Retarget"] == "#notice"
    assert written(incident) == before


def test_a_reader_sees_notes_and_the_assignee_but_no_forms(tenant, incident, oncall, bob):
    services.incident_assign(incident=incident, actor=oncall, assignee=bob)
    services.incident_note_add(incident=incident, actor=oncall, text="rolled back")
    reader = PrincipalFactory(
        tenant=tenant, human=True, user__username="rita", capabilities=["console.view", "incidents.read"]
    )
    client = Client()
    client.force_login(reader.user)
    for response in (
        client.get(f"/incidents/{incident.pk}/"),
        client.get(f"/incidents/{incident.pk}/", headers=HTMX),
    ):
        html = response.content.decode()
        assert "rolled back" in html and "acme/bob" in html
        assert 'id="assign"' not in html and 'id="note-form"' not in html
    response = client.post(f"/incidents/{incident.pk}/note/", {"text": "x"}, headers=HTMX)
    assert response.status_code == 403 and b'data-code="CAPABILITY_MISSING"' in response.content


# --- CLI ------------------------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("incidents", *args, stdout=out)
    return out.getvalue()


def test_cli_assign_and_note_act_for_the_tokens_person(
    tenant, incident, oncall, oncall_token, bob, monkeypatch
):
    monkeypatch.setenv("CONTROLPLANE_TOKEN", oncall_token)
    assert run("assign", incident.pk, "--me").strip() == f"{incident.pk} assigned to {oncall.ref}"
    assert run("assign", incident.pk, "--to", "bob", "--reason", "handover").strip().endswith("acme/bob")
    out = run("note", incident.pk, "--text", "handed over to bob")
    note = IncidentNote.objects.get()
    assert out.strip() == f"{incident.pk} note {note.seq} by {oncall.ref}"
    shown = run("show", incident.pk)
    assert "assigned to acme/bob" in shown and "handed over to bob" in shown
    body = json.loads(run("show", incident.pk, "--json"))
    assert body["assignee"] == "acme/bob" and body["notes"][0]["text"] == "handed over to bob"
    assert run("assign", incident.pk, "--nobody").strip().endswith("assigned to nobody")


def test_cli_refusals_carry_the_reason_code_and_write_nothing(tenant, incident, monkeypatch):
    reader = PrincipalFactory(tenant=tenant, name="ro", human=True, capabilities=["incidents.read"])
    stranger = PrincipalFactory(
        tenant=TenantFactory(slug="other"), human=True, capabilities=["incidents.manage"]
    )
    manager = PrincipalFactory(tenant=tenant, name="mo", human=True, capabilities=["incidents.manage"])
    tokens = {
        who: token_for(p) for who, p in (("reader", reader), ("stranger", stranger), ("manager", manager))
    }
    before = written(incident)
    monkeypatch.delenv("CONTROLPLANE_TOKEN", raising=False)
    with pytest.raises(CommandError, match=r"^AUTH_REQUIRED: "):
        run("note", incident.pk, "--text", "x")
    monkeypatch.setenv("CONTROLPLANE_TOKEN", tokens["reader"])
    with pytest.raises(CommandError, match=r"^CAPABILITY_MISSING: "):
        run("assign", incident.pk, "--me")
    monkeypatch.setenv("CONTROLPLANE_TOKEN", tokens["stranger"])
    with pytest.raises(CommandError, match=r"^INCIDENT_NOT_FOUND: "):
        run("note", incident.pk, "--text", "x")
    monkeypatch.setenv("CONTROLPLANE_TOKEN", tokens["manager"])
    with pytest.raises(CommandError, match=r"^INCIDENT_ASSIGNEE_INVALID: "):
        run("assign", incident.pk, "--to", "ghost")
    with pytest.raises(CommandError, match=r"^INCIDENT_NOTE_EMPTY: "):
        run("note", incident.pk, "--text", " ")
    assert written(incident) == before
