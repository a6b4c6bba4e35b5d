"""Forms of the channels console pages."""

from __future__ import annotations

from django import forms


class LinkStartForm(forms.Form):
    """Start linking one of your chat identities: which connection, and your id on it."""

    connection = forms.ChoiceField(label="Connection")
    external_id = forms.CharField(
        label="Your id there", max_length=120, help_text="Slack user id (U…), or WhatsApp number"
    )

    def __init__(self, *args, connections=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].choices = [(c.key, c.ref) for c in connections]
