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
    # On release: what becomes of the work the switch held (the service refuses anything else).
    held = forms.ChoiceField(
        required=False,
        choices=[("decide", "decide one by one"), ("resume", "resume"), ("cancel", "cancel")],
    )


class HeldDecisionForm(forms.Form):
    """Resume or cancel one execution the kill switch held, with the person's reason."""

    execution = forms.CharField(max_length=64, strip=True)
    decision = forms.ChoiceField(choices=[("resume", "resume"), ("cancel", "cancel")])
    reason = forms.CharField(required=False, max_length=2000, strip=True)
