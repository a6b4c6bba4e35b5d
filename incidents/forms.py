"""Forms of the incidents console pages. They parse what a person typed; the services decide.

A form only checks shape (lengths, JSON, dates). Whether a reason is required, whether a transition is
legal, how long a silence may last and whether it needs approval are the services' rules, refused with
their reason codes — the console shows the same codes as the API.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
from django import forms

from controlplane.kernel.errors import ControlPlaneError
from incidents.models import Severity, SignalStatus
from incidents.selectors import SignalFilters

SUPPRESSED_CHOICES = [("", "any"), ("yes", "suppressed"), ("no", "not suppressed")]


class SignalFilterForm(forms.Form):
    """The signals view's filters (a GET form) and its page."""

    service = forms.CharField(required=False, max_length=200)
    name = forms.CharField(required=False, max_length=200, label="Alert name")
    source = forms.CharField(required=False, max_length=200)
    status = forms.ChoiceField(required=False, choices=[("", "any"), *SignalStatus.choices])
    severity = forms.ChoiceField(required=False, choices=[("", "any"), *Severity.choices])
    suppressed = forms.ChoiceField(required=False, choices=SUPPRESSED_CHOICES, label="Silences")
    silence = forms.RegexField(
        required=False,
        regex=r"^[0-9a-f]{64}$",
        label="Suppressed by silence",
        error_messages={"invalid": "A silence id is 64 lowercase hex digits."},
    )
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def filters(self) -> SignalFilters:
        data = self.cleaned_data
        return SignalFilters(
            service=data["service"].strip(),
            name=data["name"].strip(),
            source=data["source"].strip(),
            status=data["status"] or "",
            severity=data["severity"] or "",
            suppressed={"yes": True, "no": False}.get(data["suppressed"]),
            silence=data["silence"] or "",
        )

    def filter_query(self, **override: Any) -> str:
        """The submitted filters as a query string (for paging links)."""
        pairs = {name: self.data.get(name) for name in self.fields if name != "page" and self.data.get(name)}
        pairs.update({k: v for k, v in override.items() if v})
        return urlencode(pairs)


class AssignForm(forms.Form):
    """Give the incident to a person (their principal name; empty: to nobody), or to me."""

    assignee = forms.CharField(required=False, max_length=200, strip=True, label="Assignee")
    me = forms.BooleanField(required=False, label="Assign to me")


class NoteForm(forms.Form):
    """A note for the incident's timeline; whether it is empty or too long is the service's to say."""

    text = forms.CharField(required=False, max_length=20_000, strip=True, label="Note")


class TransitionForm(forms.Form):
    """Acknowledge, resolve, close or reopen: the reason (the service says when one is required)."""

    reason = forms.CharField(required=False, max_length=2000, strip=True)


class MitigateForm(TransitionForm):
    """Mitigating links one remediation: an intent submitted before (picked or pasted), or a plan draft
    (JSON) that is submitted now to the runtime as an intent by this person."""

    intent = forms.CharField(required=False, max_length=64, strip=True, label="Existing intent id")
    draft = forms.CharField(required=False, max_length=64_000, strip=True, label="Or a plan draft (JSON)")

    def remediation(self) -> tuple[dict[str, Any] | None, str | None]:
        """(draft, intent id); a draft that is not a JSON object is PLAN_INVALID, as the runtime says."""
        text, intent = self.cleaned_data["draft"], self.cleaned_data["intent"]
        draft = None
        if text:
            try:
                draft = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise ControlPlaneError("PLAN_INVALID", f"the plan draft is not JSON: {exc}") from None
            if not isinstance(draft, dict):
                raise ControlPlaneError("PLAN_INVALID", "the plan draft must be a JSON object")
        return draft, intent or None


class RaiseSeverityForm(forms.Form):
    severity = forms.ChoiceField(choices=Severity.choices)
    reason = forms.CharField(required=False, max_length=2000, strip=True)


# Alertmanager's silence form offers a start, a duration and an end; here the end or the duration.
DURATION_CHOICES = [
    ("", "—"),
    ("1800", "30 minutes"),
    ("3600", "1 hour"),
    ("7200", "2 hours"),
    ("14400", "4 hours"),
    ("28800", "8 hours"),
    ("86400", "1 day"),
    ("259200", "3 days"),
    ("604800", "7 days"),
]


def parse_labels(text: str) -> dict[str, str]:
    """`key=value` pairs, one per line or separated by commas; SILENCE_INVALID names the bad one."""
    labels: dict[str, str] = {}
    for raw in text.replace(",", "\n").splitlines():
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip().strip('"')
        if not sep or not key or not value:
            raise ControlPlaneError(
                "SILENCE_INVALID", f"match_labels: {item!r} is not key=value", extra={"field": "match_labels"}
            )
        labels[key] = value
    return labels


class SilenceForm(forms.Form):
    """A new silence: matchers, start (empty: now), and an end or a duration. Times are UTC."""

    match_service = forms.CharField(required=False, max_length=200, label="Service")
    match_name = forms.CharField(required=False, max_length=200, label="Alert name")
    match_labels = forms.CharField(
        required=False, max_length=4000, label="Labels (key=value, comma or line separated)"
    )
    starts_at = forms.DateTimeField(
        required=False,
        label="Starts (UTC; empty: now)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    duration = forms.TypedChoiceField(
        required=False, choices=DURATION_CHOICES, coerce=int, empty_value=None, label="Duration"
    )
    ends_at = forms.DateTimeField(
        required=False,
        label="Or ends (UTC)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    reason = forms.CharField(required=False, max_length=2000, strip=True, label="Reason")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("duration") and cleaned.get("ends_at"):
            raise forms.ValidationError("Give a duration or an end, not both.")
        if not cleaned.get("duration") and not cleaned.get("ends_at") and not self.errors:
            raise forms.ValidationError("Give a duration or an end.")
        return cleaned

    def service_arguments(self, *, now: datetime) -> dict[str, Any]:
        """The keyword arguments of `silence_create` (times made UTC: the console shows UTC)."""
        data = self.cleaned_data
        starts_at = _utc(data["starts_at"]) if data["starts_at"] else None
        start = starts_at or now
        ends_at = _utc(data["ends_at"]) if data["ends_at"] else start + timedelta(seconds=data["duration"])
        return {
            "match_service": data["match_service"],
            "match_name": data["match_name"],
            "match_labels": parse_labels(data["match_labels"]),
            "starts_at": starts_at,
            "ends_at": ends_at,
            "reason": data["reason"],
            "at": now,
        }


def _utc(moment: datetime) -> datetime:
    """A datetime-local value is read as UTC (the console shows every time in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class ExpireForm(forms.Form):
    reason = forms.CharField(required=False, max_length=2000, strip=True)
