"""Forms of the console shell's pages: the ledger explorer's filters."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms

from controlplane.console.selectors import LedgerFilters, visible_tenant_choices
from controlplane.identity.models import Principal

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
