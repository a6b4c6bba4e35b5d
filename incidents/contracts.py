"""The incidents app's contracts: who is on an incident (assignment) and what people wrote on it (notes).

Only these two families are covered here (`controlplane.incident.assigned`, `controlplane.incident.note.`):
the rest of the incident flow's events are described in docs/incidents.md.
"""

from __future__ import annotations

from controlplane.kernel.contracts import (
    COMMAND,
    DATE_TIME,
    HEX64,
    PRINCIPAL_REF,
    TEXT,
    Contract,
    event_contract,
    obj,
    schema,
)

OWNER = "incidents"
COVERS = ("controlplane.incident.assigned", "controlplane.incident.note.")
_SERVICES = "incidents.services"
_NULLABLE_REF = {"anyOf": [PRINCIPAL_REF, {"type": "null"}]}
_CLI_AUTH = "(token: CONTROLPLANE_TOKEN)"

CONTRACTS = [
    Contract(
        "incident.assign",
        COMMAND,
        OWNER,
        "Give an incident to a person of its tenant who may manage incidents (`assignee`: their principal "
        "name; your own to take it), or to nobody (null). A person acts; assigning to whoever holds it "
        "already is INCIDENT_ASSIGNEE_UNCHANGED, someone else's or nobody's name INCIDENT_ASSIGNEE_INVALID.",
        schema(
            obj(
                {"incident": HEX64, "assignee": {"anyOf": [TEXT, {"type": "null"}]}},
                {"reason": {"type": "string"}},
            )
        ),
        api=("POST /api/v1/incidents/{id}/assign/",),
        service=f"{_SERVICES}.incident_assign",
        cli=(f"manage.py incidents assign ID (--to NAME | --me | --nobody) [--reason R] {_CLI_AUTH}",),
        capability="incidents.manage",
    ),
    Contract(
        "incident.note.add",
        COMMAND,
        OWNER,
        "Add a person's note to an incident's timeline (1 to 10,000 characters; any state, closed included).",
        schema(obj({"incident": HEX64, "text": TEXT})),
        api=("POST /api/v1/incidents/{id}/notes/",),
        service=f"{_SERVICES}.incident_note_add",
        cli=(f"manage.py incidents note ID --text T {_CLI_AUTH}",),
        capability="incidents.manage",
    ),
    event_contract(
        "incident.assigned",
        OWNER,
        "The incident was given to `assignee` (null: to nobody); `previous` held it before. Subject "
        "`incident/<id>`; the actor is the person who assigned it.",
        obj(
            {
                "incident": HEX64,
                "assignee": _NULLABLE_REF,
                "previous": _NULLABLE_REF,
                "reason": {"type": "string"},
                "at": DATE_TIME,
            }
        ),
        f"{_SERVICES}.incident_assign",
    ),
    event_contract(
        "incident.note.added",
        OWNER,
        "A person wrote a note on the incident (its `IncidentNote` keeps this event's seq). Subject "
        "`incident/<id>`.",
        obj({"incident": HEX64, "author": PRINCIPAL_REF, "text": TEXT, "at": DATE_TIME}),
        f"{_SERVICES}.incident_note_add",
    ),
]
