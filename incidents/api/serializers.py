"""The incidents API's serializers: the resources' shapes, the transitions' inputs, and the answer of every
signal ingest (the generic endpoint and the webhook adapters of incidents.webhooks)."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from incidents import services
from incidents.models import (
    ConfidenceAssessment,
    DetectionRule,
    DetectionRuleVersion,
    EvidenceBundle,
    Incident,
    IncidentNote,
    PromotionDecision,
    Severity,
    Signal,
    Silence,
)
from incidents.services.rules import MAX_THRESHOLD, MAX_WINDOW_SECONDS

INGESTED = inline_serializer(
    "SignalsIngested",
    {
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "unattributed": serializers.IntegerField(help_text="signals no label named the service of"),
        "no_rule_matched": serializers.IntegerField(help_text="signals no current detection rule matches"),
        "signals": serializers.ListField(child=serializers.DictField()),
        "evidence": serializers.ListField(child=serializers.CharField()),
        "decisions": serializers.ListField(child=serializers.DictField()),
        "incidents": serializers.ListField(child=serializers.CharField()),
    },
)
REFUSED = inline_serializer(
    "SignalRefused",
    {
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "field": serializers.CharField(required=False),
        "request_id": serializers.CharField(),
    },
)


class SignalSerializer(serializers.ModelSerializer):
    suppressed_by = serializers.CharField(source="suppressed_by_id", allow_null=True)

    class Meta:
        model = Signal
        fields = [
            "id",
            "seq",
            "source",
            "source_kind",
            "service",
            "name",
            "severity",
            "severity_raw",
            "fingerprint",
            "labels",
            "annotations",
            "status",
            "observed_at",
            "starts_at",
            "ends_at",
            "generator_url",
            "received_at",
            "suppressed_by",
            "reason_codes",
        ]


class RuleVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = DetectionRuleVersion
        fields = [
            "id",
            "version",
            "enabled",
            "match_service",
            "match_name",
            "match_labels",
            "min_severity",
            "threshold",
            "window_seconds",
            "severity",
            "precision_bp",
            "content_hash",
            "created_by",
            "created_at",
            "reason",
        ]


class RuleSerializer(serializers.ModelSerializer):
    versions = RuleVersionSerializer(many=True, read_only=True)

    class Meta:
        model = DetectionRule
        fields = ["id", "name", "current_version", "created_at", "versions"]


class RuleWriteSerializer(serializers.Serializer):
    """A new version of rule `name` (the rule is created at version 1)."""

    name = serializers.CharField(max_length=100)
    enabled = serializers.BooleanField(default=True)
    match_service = serializers.CharField(required=False, allow_blank=True, default="")
    match_name = serializers.CharField(required=False, allow_blank=True, default="")
    match_labels = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    min_severity = serializers.ChoiceField(choices=Severity.choices, default="info")
    threshold = serializers.IntegerField(min_value=1, max_value=MAX_THRESHOLD)
    window_seconds = serializers.IntegerField(min_value=1, max_value=MAX_WINDOW_SECONDS)
    severity = serializers.ChoiceField(choices=Severity.choices)
    precision_bp = serializers.IntegerField(default=8000, min_value=0, max_value=10_000)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ConfidenceAssessmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConfidenceAssessment
        fields = ["model_version", "factors", "score_bp"]


class PromotionDecisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PromotionDecision
        fields = ["decision", "score_bp", "threshold_bp", "reason_codes", "decided_at"]


class EvidenceSerializer(serializers.ModelSerializer):
    rule = serializers.CharField(source="rule_version.rule.name")
    rule_version_number = serializers.IntegerField(source="rule_version.version")
    assessment = ConfidenceAssessmentSerializer(read_only=True)
    decision = PromotionDecisionSerializer(read_only=True)
    incident = serializers.CharField(source="incident_id", allow_null=True)
    trigger_signal = serializers.CharField(source="trigger_signal_id")

    class Meta:
        model = EvidenceBundle
        fields = [
            "id",
            "rule",
            "rule_version",
            "rule_version_number",
            "service",
            "window_start",
            "window_end",
            "signal_ids",
            "trigger_signal",
            "severity",
            "incident",
            "seq",
            "assessment",
            "decision",
        ]


class IncidentSerializer(serializers.ModelSerializer):
    rule = serializers.CharField(source="rule.name")
    remediation_intent = serializers.CharField(source="remediation_intent_id", allow_null=True)
    evidence_count = serializers.IntegerField(read_only=True)
    allowed_transitions = serializers.SerializerMethodField()
    assignee = serializers.CharField(
        source="assignee.ref",
        allow_null=True,
        default=None,
        help_text="`<tenant>/<name>` of the person on it.",
    )

    class Meta:
        model = Incident
        fields = [
            "id",
            "title",
            "service",
            "rule",
            "status",
            "severity",
            "severity_raised_to",
            "opened_at",
            "acknowledged_at",
            "mitigating_at",
            "resolved_at",
            "closed_at",
            "remediation_intent",
            "assignee",
            "assigned_at",
            "evidence_count",
            "allowed_transitions",
        ]

    def get_allowed_transitions(self, incident: Incident) -> list[str]:
        return services.allowed_transitions(incident)


class IncidentDetailSerializer(IncidentSerializer):
    evidence = EvidenceSerializer(many=True, read_only=True)

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "evidence"]


class TransitionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class MitigateSerializer(TransitionSerializer):
    remediation = serializers.DictField(required=False, help_text="A plan draft, submitted as an intent.")
    intent = serializers.CharField(required=False, help_text="Or the id of an intent submitted before.")


class RaiseSeveritySerializer(serializers.Serializer):
    severity = serializers.ChoiceField(choices=Severity.choices)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class AssignSerializer(serializers.Serializer):
    assignee = serializers.CharField(
        allow_null=True,
        max_length=200,
        help_text="The principal name of a person of your tenant who may manage incidents; null: nobody.",
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class NoteInputSerializer(serializers.Serializer):
    text = serializers.CharField(
        allow_blank=True, trim_whitespace=False, help_text="The note (the service refuses an empty one)."
    )


class NoteSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.ref")
    incident = serializers.CharField(source="incident_id")

    class Meta:
        model = IncidentNote
        fields = ["seq", "incident", "author", "text", "created_at"]


class TimelineEntrySerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    id = serializers.CharField()
    type = serializers.CharField()
    subject = serializers.CharField()
    time = serializers.DateTimeField()
    actor = serializers.CharField()
    reason_codes = serializers.ListField(child=serializers.CharField())
    data = serializers.DictField()


class SilenceSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.ref", read_only=True)
    approval = serializers.CharField(source="approval_id", allow_null=True, read_only=True)
    state = serializers.SerializerMethodField()
    suppressed_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Silence
        fields = [
            "id",
            "match_service",
            "match_name",
            "match_labels",
            "starts_at",
            "ends_at",
            "reason",
            "created_by",
            "created_at",
            "status",
            "state",
            "criticality",
            "approval",
            "content_hash",
            "suppressed_count",
        ]

    def get_state(self, silence: Silence) -> str:
        return services.silence_state(silence)


class SilenceWriteSerializer(serializers.Serializer):
    match_service = serializers.CharField(required=False, allow_blank=True, default="")
    match_name = serializers.CharField(required=False, allow_blank=True, default="")
    match_labels = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    starts_at = serializers.DateTimeField(required=False)
    ends_at = serializers.DateTimeField()
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ExpireSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")
