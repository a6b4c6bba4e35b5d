"""Forms of the runtime's console pages: the executions filter and the kill switch."""

from __future__ import annotations

from django import forms

from controlplane.runtime.models import ExecutionStatus, KillSwitchScope


class ExecutionFilterForm(forms.Form):
    """The executions list's filter (a GET form) and its page."""

    status = forms.ChoiceField(required=False, choices=[("", "any"), *ExecutionStatus.choices])
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class KillSwitchForm(forms.Form):
    """Engage or release one switch: scope, target (empty for global), and the reason (required)."""

    engaged = forms.TypedChoiceField(
        choices=[("true", "engage"), ("false", "release")], coerce=lambda v: v == "true"
    )
    scope = forms.ChoiceField(choices=KillSwitchScope.choices)
    target = forms.CharField(required=False, max_length=100, strip=True)
    reason = forms.CharField(required=False, max_length=2000, strip=True)
