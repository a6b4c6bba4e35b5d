"""Django admin: detection rules are managed here (each save is a new immutable version, made through
`rule_version_create`, validated and ledgered like the API); everything else is read-only, because
signals, evidence, incidents and silences change only through their services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from controlplane.identity.models import Tenant
from controlplane.identity.selectors import principal_for_user
from controlplane.kernel.errors import ControlPlaneError
from incidents import services
from incidents.models import (
    DetectionRule,
    DetectionRuleVersion,
    EvidenceBundle,
    Incident,
    Severity,
    Signal,
    Silence,
)

_RULE_FIELDS = (
    "enabled",
    "match_service",
    "match_name",
    "match_labels",
    "min_severity",
    "threshold",
    "window_seconds",
    "severity",
    "precision_bp",
)


def _actor(request: HttpRequest) -> str:
    principal = principal_for_user(user=request.user)
    return principal.ref if principal else f"user/{request.user.get_username()}"


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RuleVersionForm(forms.ModelForm):
    """A new version of the rule named `rule_name` in `tenant` (version 1 if the rule is new)."""

    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all())
    rule_name = forms.CharField(max_length=100, help_text="An existing rule's name makes its next version.")
    match_labels = forms.JSONField(required=False, initial=dict)
    min_severity = forms.ChoiceField(choices=Severity.choices, initial="info")

    class Meta:
        model = DetectionRuleVersion
        fields = ("tenant", "rule_name", *_RULE_FIELDS, "reason")

    def _post_clean(self) -> None:  # the service validates and builds the row, not the ModelForm
        content = {name: self.cleaned_data.get(name) for name in _RULE_FIELDS if name in self.cleaned_data}
        content["match_labels"] = content.get("match_labels") or {}
        try:
            services.rules.rule_content_validate(services.RuleContent(**content))
        except ControlPlaneError as exc:
            self.add_error(
                exc.extra.get("field") if exc.extra.get("field") in self.fields else None, exc.detail
            )
        except TypeError as exc:
            self.add_error(None, str(exc))


@admin.register(DetectionRuleVersion)
class DetectionRuleVersionAdmin(admin.ModelAdmin):
    list_display = (
        "rule",
        "version",
        "enabled",
        "match_service",
        "match_name",
        "threshold",
        "window_seconds",
        "severity",
        "created_by",
        "created_at",
    )
    list_filter = ("enabled", "severity", "rule__tenant")
    search_fields = ("rule__name", "match_service", "match_name")
    form = RuleVersionForm

    def get_fields(self, request: HttpRequest, obj: DetectionRuleVersion | None = None) -> Any:
        if obj is None:
            return ("tenant", "rule_name", *_RULE_FIELDS, "reason")
        return ("rule", "version", *_RULE_FIELDS, "content_hash", "created_by", "created_at", "reason")

    def get_readonly_fields(self, request: HttpRequest, obj: DetectionRuleVersion | None = None) -> Any:
        return () if obj is None else self.get_fields(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # immutable: a change is a new version

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # decisions name it; replay needs it

    def save_model(self, request: HttpRequest, obj: DetectionRuleVersion, form: Any, change: bool) -> None:
        if change:
            return
        data = form.cleaned_data
        created = services.rule_version_create(
            tenant=data["tenant"],
            name=data["rule_name"],
            content=services.RuleContent(
                **{name: data[name] for name in _RULE_FIELDS}
                | {"match_labels": data.get("match_labels") or {}}
            ),
            actor=_actor(request),
            reason=data.get("reason", ""),
        )
        obj.__dict__.update(
            {f.attname: getattr(created, f.attname) for f in DetectionRuleVersion._meta.concrete_fields}
        )
        obj._state.adding = False


@admin.register(DetectionRule)
class DetectionRuleAdmin(_ReadOnly):
    list_display = ("name", "tenant", "current_version", "created_at")
    list_filter = ("tenant",)
    search_fields = ("name",)


@admin.register(Signal)
class SignalAdmin(_ReadOnly):
    list_display = (
        "observed_at",
        "tenant",
        "source",
        "service",
        "name",
        "severity",
        "status",
        "suppressed_by",
    )
    list_filter = ("status", "severity", "source_kind", "tenant")
    search_fields = ("service", "name", "fingerprint", "id")


@admin.register(EvidenceBundle)
class EvidenceBundleAdmin(_ReadOnly):
    list_display = ("id", "tenant", "service", "rule_version", "window_end", "severity", "incident")
    search_fields = ("id", "service")


@admin.register(Incident)
class IncidentAdmin(_ReadOnly):
    list_display = ("title", "tenant", "status", "severity", "opened_at", "resolved_at")
    list_filter = ("status", "severity", "tenant")
    search_fields = ("id", "service", "title")


@admin.register(Silence)
class SilenceAdmin(_ReadOnly):
    list_display = (
        "id",
        "tenant",
        "match_service",
        "match_name",
        "starts_at",
        "ends_at",
        "status",
        "criticality",
    )
    list_filter = ("status", "tenant")
