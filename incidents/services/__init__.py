"""Every write of the incidents app, by sub-domain; import the functions from here.

- signals:   `signal_ingest`, `signal_ingest_cloudevent`, `silence_matching`, `detection_locks_take`
- rules:     `rule_version_create`, `current_rule_versions`
- labels:    `label_mapping_current`, `label_mapping_set` (which labels name an alert's service)
- promotion: `signal_evaluate` (called by ingest; evidence, confidence, decision, incident)
- lifecycle: `incident_acknowledge | _mitigate | _resolve | _close | _reopen | _raise_severity`,
             `allowed_transitions`
- assignment: `incident_assign`, `incident_note_add` (who is on it, what people wrote)
- silences:  `silence_create`, `silence_expire`, `silence_criticality`, `silence_state`,
             `resolve_silence_approval`
"""

from __future__ import annotations

from incidents.services.assignment import incident_assign, incident_note_add
from incidents.services.cloudevents import (
    SIGNAL_CLOUDEVENT_TYPE,
    signal_cloudevent_normalise,
    signal_ingest_cloudevent,
)
from incidents.services.labels import label_mapping_current, label_mapping_set
from incidents.services.lifecycle import (
    allowed_transitions,
    incident_acknowledge,
    incident_close,
    incident_mitigate,
    incident_raise_severity,
    incident_reopen,
    incident_resolve,
)
from incidents.services.promotion import Outcome, signal_evaluate
from incidents.services.rules import RuleContent, current_rule_versions, rule_version_create
from incidents.services.signals import IngestResult, detection_locks_take, signal_ingest, silence_matching
from incidents.services.silences import (
    APPROVAL_SUBJECT,
    resolve_silence_approval,
    silence_create,
    silence_criticality,
    silence_expire,
    silence_state,
)

__all__ = [
    "APPROVAL_SUBJECT",
    "SIGNAL_CLOUDEVENT_TYPE",
    "IngestResult",
    "Outcome",
    "RuleContent",
    "allowed_transitions",
    "current_rule_versions",
    "detection_locks_take",
    "incident_acknowledge",
    "incident_assign",
    "incident_close",
    "incident_mitigate",
    "incident_note_add",
    "incident_raise_severity",
    "incident_reopen",
    "incident_resolve",
    "label_mapping_current",
    "label_mapping_set",
    "resolve_silence_approval",
    "rule_version_create",
    "signal_cloudevent_normalise",
    "signal_evaluate",
    "signal_ingest",
    "signal_ingest_cloudevent",
    "silence_create",
    "silence_criticality",
    "silence_expire",
    "silence_matching",
    "silence_state",
]
