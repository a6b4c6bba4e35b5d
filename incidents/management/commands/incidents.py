"""`manage.py incidents list | show ID | ack | mitigate | resolve | close | reopen | severity ID`, and
`incidents assign ID (--to NAME | --me | --nobody)` and `incidents note ID --text T`.

Transitions, assignments and notes act for the person whose API token is in `CONTROLPLANE_TOKEN` (or
`--token-file`), with the capability the API requires (`incidents.manage`) and through the same services
(people only, a reason on every transition); refusals exit non-zero with
`CommandError: <REASON_CODE>: <detail>`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.identity.cli import add_token_argument, cli_principal
from controlplane.identity.selectors import tenant_get
from controlplane.kernel.errors import ControlPlaneError
from incidents import selectors, services
from incidents.api import MANAGE
from incidents.models import Incident, IncidentStatus, Severity

_VERBS = {
    "ack": services.incident_acknowledge,
    "mitigate": services.incident_mitigate,
    "resolve": services.incident_resolve,
    "close": services.incident_close,
    "reopen": services.incident_reopen,
    "severity": services.incident_raise_severity,
}


class Command(BaseCommand):
    help = "List and show incidents; acknowledge, mitigate, resolve, close or reopen one as a person."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="incidents, newest first")
        listing.add_argument("--tenant", help="tenant slug (default: every tenant)")
        listing.add_argument("--status", choices=IncidentStatus.values)
        listing.add_argument("--service")
        show = sub.add_parser("show", help="one incident: evidence, confidence, decision, timeline")
        show.add_argument("id")
        show.add_argument("--json", action="store_true")
        assign = sub.add_parser("assign", help="give the incident to a person of your tenant, or to nobody")
        assign.add_argument("id")
        who = assign.add_mutually_exclusive_group(required=True)
        who.add_argument("--to", dest="assignee", help="the person's principal name in your tenant")
        who.add_argument("--me", action="store_true", help="assign it to yourself")
        who.add_argument("--nobody", action="store_true", help="take the assignment away")
        assign.add_argument("--reason", default="")
        add_token_argument(assign)
        note = sub.add_parser("note", help="add a note to the incident's timeline")
        note.add_argument("id")
        note.add_argument("--text", required=True)
        add_token_argument(note)
        for verb in _VERBS:
            cmd = sub.add_parser(verb)
            cmd.add_argument("id")
            cmd.add_argument("--reason", required=True)
            add_token_argument(cmd)
            if verb == "severity":
                cmd.add_argument("--to", dest="severity", required=True, choices=Severity.values)
            if verb == "mitigate":
                group = cmd.add_mutually_exclusive_group(required=True)
                group.add_argument("--intent", help="link an intent submitted before")
                group.add_argument(
                    "--draft", type=Path, help="a plan draft (JSON file) to submit as the remediation"
                )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            action = options["action"]
            if action == "list":
                self._list(options)
            elif action == "show":
                self._show(options)
            elif action == "assign":
                self._assign(options)
            elif action == "note":
                self._note(options)
            else:
                self._transition(action, options)
        except ControlPlaneError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _list(self, options: dict[str, Any]) -> None:
        incidents = Incident.objects.select_related("rule", "tenant").order_by("-opened_at")
        if options["tenant"]:
            incidents = incidents.filter(tenant=tenant_get(slug=options["tenant"]))
        if options["status"]:
            incidents = incidents.filter(status=options["status"])
        if options["service"]:
            incidents = incidents.filter(service=options["service"])
        for incident in incidents:
            self.stdout.write(
                f"{incident.pk}\t{incident.status}\t{incident.severity}\t{incident.tenant.slug}\t"
                f"{incident.service}\t{incident.rule.name}\t{incident.opened_at:%Y-%m-%dT%H:%M:%SZ}"
            )

    def _incident(self, incident_id: str) -> Incident:
        incident = Incident.objects.select_related("tenant", "rule").filter(pk=incident_id).first()
        if incident is None:
            raise ControlPlaneError("INCIDENT_NOT_FOUND", f"no incident {incident_id!r}")
        return incident

    def _show(self, options: dict[str, Any]) -> None:
        found = self._incident(options["id"])
        incident = selectors.incident_get(tenant=found.tenant, incident_id=found.pk)
        timeline = [selectors.timeline_entry(e) for e in selectors.incident_timeline(incident=incident)]
        if options["json"]:
            body = {
                "id": incident.pk,
                "title": incident.title,
                "status": incident.status,
                "severity": incident.severity,
                "service": incident.service,
                "rule": incident.rule.name,
                "opened_at": incident.opened_at.isoformat(),
                "assignee": incident.assignee.ref if incident.assignee else None,
                "acknowledged_by": selectors.acknowledged_by(incident=incident),
                "notes": [
                    {"seq": n.seq, "author": n.author.ref, "text": n.text, "at": n.created_at.isoformat()}
                    for n in selectors.incident_notes(incident=incident)
                ],
                "allowed_transitions": services.allowed_transitions(incident),
                "evidence": [
                    {
                        "id": e.id,
                        "rule_version": e.rule_version.version,
                        "signals": e.signal_ids,
                        "score_bp": e.assessment.score_bp,
                        "factors": e.assessment.factors,
                        "decision": e.decision.decision,
                        "reason_codes": e.decision.reason_codes,
                    }
                    for e in incident.evidence.all()
                ],
                "timeline": [{**t, "time": t["time"].isoformat()} for t in timeline],
            }
            self.stdout.write(json.dumps(body, indent=2))
            return
        out = self.stdout.write
        out(f"{incident.pk}\n  {incident.title}")
        out(
            f"  status {incident.status}, severity {incident.severity}, "
            f"opened {incident.opened_at:%Y-%m-%dT%H:%M:%SZ}"
        )
        out(f"  assigned to {incident.assignee.ref if incident.assignee else 'nobody'}")
        out(f"  allowed: {', '.join(services.allowed_transitions(incident)) or '(none)'}")
        for evidence in incident.evidence.all():
            out(
                f"  evidence {evidence.id[:16]} rule {incident.rule.name} v{evidence.rule_version.version}: "
                f"{len(evidence.signal_ids)} signals, confidence {evidence.assessment.score_bp} bp "
                f"-> {evidence.decision.decision} {' '.join(evidence.decision.reason_codes)}"
            )
            for factor in evidence.assessment.factors:
                out(
                    f"    {factor['name']}: {factor['value_bp']} x {factor['weight_bp']} bp "
                    f"= {factor['contribution_bp']}"
                )
        for note in selectors.incident_notes(incident=incident):
            out(f"  note {note.seq} {note.created_at:%Y-%m-%dT%H:%M:%SZ} {note.author.ref}: {note.text}")
        out("  timeline:")
        for entry in timeline:
            codes = f" [{' '.join(entry['reason_codes'])}]" if entry["reason_codes"] else ""
            out(
                f"    {entry['seq']}\t{entry['time']:%Y-%m-%dT%H:%M:%SZ}\t{entry['type']}\t"
                f"{entry['actor']}{codes}"
            )

    def _acting(self, options: dict[str, Any]) -> tuple[Any, Incident]:
        """The person the token names, and the incident (of their tenant only)."""
        actor = cli_principal(options, capability=MANAGE)
        incident = self._incident(options["id"])
        if incident.tenant_id != actor.tenant_id:
            raise ControlPlaneError("INCIDENT_NOT_FOUND", f"no incident {options['id']!r}")
        return actor, incident

    def _assign(self, options: dict[str, Any]) -> None:
        actor, incident = self._acting(options)
        if options["me"]:
            assignee = actor
        elif options["nobody"]:
            assignee = None
        else:
            assignee = selectors.incident_assignee_get(tenant=incident.tenant, name=options["assignee"])
        changed = services.incident_assign(
            incident=incident, actor=actor, assignee=assignee, reason=options["reason"]
        )
        self.stdout.write(
            f"{changed.pk} assigned to {changed.assignee.ref if changed.assignee else 'nobody'}"
        )

    def _note(self, options: dict[str, Any]) -> None:
        actor, incident = self._acting(options)
        note = services.incident_note_add(incident=incident, actor=actor, text=options["text"])
        self.stdout.write(f"{incident.pk} note {note.seq} by {actor.ref}")

    def _transition(self, verb: str, options: dict[str, Any]) -> None:
        actor, incident = self._acting(options)
        service = _VERBS[verb]
        kwargs: dict[str, Any] = {"incident": incident, "actor": actor, "reason": options["reason"]}
        if verb == "severity":
            kwargs["severity"] = options["severity"]
        elif verb == "mitigate":
            if options["draft"] is not None:
                try:
                    kwargs["remediation"] = json.loads(options["draft"].read_text())
                except (OSError, ValueError) as exc:
                    raise ControlPlaneError("PLAN_INVALID", f"--draft: {exc}") from exc
            else:
                kwargs["intent_id"] = options["intent"]
        changed = service(**kwargs)
        self.stdout.write(f"{changed.pk} {changed.status}")
