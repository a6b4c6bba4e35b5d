"""Forms of the approvals console pages: the queue's filters, one decision, and a bulk decision."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms

from approvals.models import ApprovalVote
from approvals.registry import registered_kinds
from approvals.selectors import QueueFilters
from approvals.services import BULK_LIMIT
from controlplane.identity.models import Principal
from controlplane.policy.models import RiskTier

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
        # A principal belongs to one tenant and sees its approvals only; the choice names it explicitly so
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
    """One decision on one approval: the hash of what the operator saw, and a reason."""

    decision = forms.ChoiceField(choices=ApprovalVote.choices)
    reason = forms.CharField(max_length=2000, required=False, strip=True)
    content_hash = forms.RegexField(regex=r"^[0-9a-f]{64}$")


class SelectedApprovals(forms.Field):
    """The checked rows: each checkbox's value is `<approval id>:<content hash>` (what the operator saw)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"required": "Select at least one request."}

    def to_python(self, value: object) -> list[tuple[str, str]]:
        items = []
        for raw in value or []:
            approval_id, _, content_hash = str(raw).partition(":")
            if not approval_id or not content_hash:
                raise forms.ValidationError(f"{raw!r} is not <request id>:<content hash>.")
            items.append((approval_id, content_hash))
        if len(items) > BULK_LIMIT:
            raise forms.ValidationError(f"At most {BULK_LIMIT} requests at once.")
        return items


class BulkDecisionForm(forms.Form):
    """One decision and one reason for the selected approvals, all or nothing.

    The checkboxes are named `request` (the page's markup and the browser flows post that name).
    """

    decision = forms.ChoiceField(choices=ApprovalVote.choices)
    reason = forms.CharField(max_length=2000, required=False, strip=True)
    request = SelectedApprovals()
