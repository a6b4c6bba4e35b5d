"""Django admin for policy profiles: add a version (through `profile_create`), view, activate.

Content is read-only once saved: editing a profile means adding a version. Activation is an admin action
that calls `profile_activate`, so both are validated and ledgered like every other path.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from controlplane.identity.models import Principal
from controlplane.identity.selectors import admin_holds, principal_for_user
from controlplane.kernel.errors import ControlPlaneError
from controlplane.policy import services
from controlplane.policy.models import PolicyProfile
from controlplane.policy.services import PLATFORM_POLICY

READ_ONLY = (
    "name",
    "version",
    "environment",
    "status",
    "content_hash",
    "content_pretty",
    "created_by",
    "created_at",
    "activated_at",
    "retired_at",
)


def _actor(request: HttpRequest) -> Principal | None:
    """The admin user's principal, handed to the services so they check its platform capability."""
    return principal_for_user(user=request.user)


class ProfileAddForm(forms.ModelForm):
    """Validates like the service (the model's clean turns POLICY_PROFILE_INVALID into a form error)."""

    content = forms.JSONField(widget=forms.Textarea(attrs={"rows": 30, "cols": 100}))

    class Meta:
        model = PolicyProfile
        fields = ("name", "environment", "content")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if not services.PROFILE_NAME.match(name):
            raise forms.ValidationError("lower-case letters, digits, dots and dashes")
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        name, environment = cleaned.get("name"), cleaned.get("environment")
        latest = PolicyProfile.objects.filter(name=name).order_by("-version").first() if name else None
        if latest is not None and environment and latest.environment != environment:
            self.add_error("environment", f"POLICY_PROFILE_INVALID: {name} belongs to {latest.environment}")
        return cleaned


@admin.register(PolicyProfile)
class PolicyProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "environment", "status", "short_hash", "created_at", "activated_at")
    list_filter = ("environment", "status")
    search_fields = ("name", "content_hash")
    actions = ["activate"]

    def get_form(self, request: HttpRequest, obj: PolicyProfile | None = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ProfileAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: PolicyProfile | None = None) -> Any:
        return ("name", "environment", "content") if obj is None else READ_ONLY

    def get_readonly_fields(self, request: HttpRequest, obj: PolicyProfile | None = None) -> Any:
        return () if obj is None else READ_ONLY

    def has_change_permission(self, request: HttpRequest, obj: PolicyProfile | None = None) -> bool:
        return False  # immutable: a change is a new version (add), a status change is the activate action

    def has_delete_permission(self, request: HttpRequest, obj: PolicyProfile | None = None) -> bool:
        return False  # kept for replay

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Profiles are installation-wide: adding one needs platform.policy.manage, as in the API and CLI.
        return super().has_add_permission(request) and admin_holds(
            user=request.user, capability=PLATFORM_POLICY
        )

    def has_activate_permission(self, request: HttpRequest) -> bool:
        return self.has_add_permission(request)

    @admin.display(description="content hash")
    def short_hash(self, obj: PolicyProfile) -> str:
        return obj.content_hash[:16]

    @admin.display(description="content")
    def content_pretty(self, obj: PolicyProfile) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.content, indent=2, sort_keys=True))

    def save_model(self, request: HttpRequest, obj: PolicyProfile, form: Any, change: bool) -> None:
        if change:  # unreachable (no change permission); never write content in place
            return
        created = services.profile_create(
            name=form.cleaned_data["name"],
            environment=form.cleaned_data["environment"],
            content=form.cleaned_data["content"],
            actor=_actor(request),
        ).profile
        obj.__dict__.update(
            {f.attname: getattr(created, f.attname) for f in PolicyProfile._meta.concrete_fields}
        )
        obj._state.adding = False

    @admin.action(description="Activate (retires the environment's active profile)", permissions=["activate"])
    def activate(self, request: HttpRequest, queryset: QuerySet[PolicyProfile]) -> None:
        profiles = list(queryset.order_by("environment", "name", "version"))
        environments = [profile.environment for profile in profiles]
        for profile in profiles:
            if environments.count(profile.environment) > 1:
                self.message_user(
                    request, f"{profile.ref}: pick one profile per environment to activate", messages.ERROR
                )
                continue
            try:
                services.profile_activate(profile=profile, actor=_actor(request), reason="activated in admin")
            except ControlPlaneError as exc:
                self.message_user(request, f"{profile.ref}: {exc.code}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(
                    request, f"{profile.ref} is active in {profile.environment}", messages.SUCCESS
                )
