"""Forms of the console pages."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms

from approvals.models import ApprovalVote
from approvals.registry import registered_kinds
from controlplane.console.selectors import LedgerFilters, visible_tenant_choices
from controlplane.console.selectors_runtime import QueueFilters
from controlplane.identity.models import Principal
from controlplane.policy.models import RiskTier
from controlplane.runtime.models import ExecutionStatus, KillSwitchScope

_CURSORS = ("before", "after")


class LedgerFilterForm(forms.Form):
    """The explorer's filters (a GET form) and its seq cursors."""

    type_prefix = forms.CharField(required=False, max_length=200, label="Type starts with")
    subject = forms.CharField(required=False, max_length=255)
    tenant = forms.ChoiceField(required=False)
    trace = forms.RegexField(
        required=False,
        regex=r"^[0-9a-f]{32}$",
        label="Trace id",
        error_messages={"invalid": "A trace id is 32 lowercase hex digits."},
    )
    seq_from = forms.IntegerField(required=False, min_value=1, label="Seq from")
    seq_to = forms.IntegerField(required=False, min_value=1, label="Seq to")
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args: object, principal: Principal, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tenant"].choices = visible_tenant_choices(principal=principal)

    def clean(self) -> dict[str, object]:
        cleaned = super().clean()
        low, high = cleaned.get("seq_from"), cleaned.get("seq_to")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError("Seq from is after seq to.")
        if cleaned.get("before") is not None and cleaned.get("after") is not None:
            raise forms.ValidationError("Page either before or after a seq, not both.")
        return cleaned

    def filters(self) -> LedgerFilters:
        data = self.cleaned_data
        return LedgerFilters(
            type_prefix=data["type_prefix"].strip(),
            subject=data["subject"].strip(),
            tenant=data["tenant"] or "",
            trace=data["trace"] or "",
            seq_from=data["seq_from"],
            seq_to=data["seq_to"],
        )

    def filter_query(self) -> str:
        """The submitted filters as a query string, without the cursors, for the paging links."""
        return urlencode(
            [(name, self.data[name]) for name in self.fields if name not in _CURSORS and self.data.get(name)]
        )


BULK_LIMIT = 200  # like the API's bulk decide

# --- Approval queue ----------------------------------------------------------------------------------

AGE_CHOICES = [
    ("", "any age"),
    ("300", "older than 5 min"),
    ("3600", "older than 1 h"),
    ("86400", "older than 24 h"),
]


class ApprovalQueueForm(forms.Form):
    """The queue's filters (a GET form): tier, tenant, subject kind, minimum age; and the page."""

    tier = forms.ChoiceField(required=False, label="Tier")
    tenant = forms.ChoiceField(required=False, label="Tenant")
    kind = forms.ChoiceField(required=False, label="Subject")
    age = forms.TypedChoiceField(
        required=False, label="Age", choices=AGE_CHOICES, coerce=int, empty_value=None
    )
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: object, principal: Principal, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tier"].choices = [("", "any"), *RiskTier.choices]
        # A principal belongs to one tenant and sees its requests only; the choice names it explicitly so
        # the filter reads the same once operators can see several tenants.
        self.fields["tenant"].choices = [(principal.tenant.slug, principal.tenant.slug)]
        self.fields["kind"].choices = [("", "any"), *((k, k) for k in registered_kinds())]

    def filters(self) -> QueueFilters:
        data = self.cleaned_data
        return QueueFilters(
            tenant=data["tenant"] or "",
            tier=data["tier"] or "",
            kind=data["kind"] or "",
            min_age_seconds=data["age"],
        )

    def filter_query(self, **override: object) -> str:
        """The submitted filters as a query string (for paging and polling links)."""
        pairs = {name: self.data.get(name) for name in self.fields if self.data.get(name)}
        pairs.update({k: v for k, v in override.items() if v})
        return urlencode([(k, v) for k, v in pairs.items() if v])


class DecisionForm(forms.Form):
    """One decision on one request: the hash of what the operator saw, and a reason."""

    decision = forms.ChoiceField(choices=ApprovalVote.choices)
    reason = forms.CharField(max_length=2000, required=False, strip=True)
    content_hash = forms.RegexField(regex=r"^[0-9a-f]{64}$")


class SelectedRequests(forms.Field):
    """The checked rows: each checkbox's value is `<request id>:<content hash>` (what the operator saw)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"required": "Select at least one request."}

    def to_python(self, value: object) -> list[tuple[str, str]]:
        items = []
        for raw in value or []:
            request_id, _, content_hash = str(raw).partition(":")
            if not request_id or not content_hash:
                raise forms.ValidationError(f"{raw!r} is not <request id>:<content hash>.")
            items.append((request_id, content_hash))
        if len(items) > BULK_LIMIT:
            raise forms.ValidationError(f"At most {BULK_LIMIT} requests at once.")
        return items


class BulkDecisionForm(forms.Form):
    """One decision and one reason for the selected requests, all or nothing."""

    decision = forms.ChoiceField(choices=ApprovalVote.choices)
    reason = forms.CharField(max_length=2000, required=False, strip=True)
    request = SelectedRequests()


# --- Kill switch ---------------------------------------------------------------------------------------


class KillSwitchForm(forms.Form):
    """Engage or release one switch: scope, target (empty for global), and the reason (required)."""

    engaged = forms.TypedChoiceField(
        choices=[("true", "engage"), ("false", "release")], coerce=lambda v: v == "true"
    )
    scope = forms.ChoiceField(choices=KillSwitchScope.choices)
    target = forms.CharField(required=False, max_length=100, strip=True)
    reason = forms.CharField(required=False, max_length=2000, strip=True)


class ExecutionFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "any"), *ExecutionStatus.choices])
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
