"""Django admin for runners: register or change one (through `runner_register`), disable (an action),
grant a shared runner to a tenant or take the grant back (`runner_grant` / `runner_grant_revoke`).

Runners are installation-wide: every add, change and action needs `platform.runners.manage`, as in the API
and CLI (the services are handed the admin user's principal and check it again). The secret is never
entered here: the admin shows only whether the named environment variable is set.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from controlplane.identity.models import Principal
from controlplane.identity.selectors import admin_holds, principal_for_user
from controlplane.kernel.errors import ControlPlaneError
from controlplane.runtime.executors import runner_secret
from controlplane.runtime.models import Runner, RunnerGrant
from controlplane.runtime.runners import (
    PLATFORM_RUNNERS,
    runner_disable,
    runner_grant,
    runner_grant_revoke,
    runner_register,
    runner_validate,
)


def _actor(request: HttpRequest) -> Principal | None:
    """The admin user's principal, handed to the services so they check its platform capability."""
    return principal_for_user(user=request.user)


def _manages_runners(request: HttpRequest) -> bool:
    return admin_holds(user=request.user, capability=PLATFORM_RUNNERS)


class RunnerForm(forms.ModelForm):
    """Validates like the service: a refusal shows its reason code on the form."""

    url = forms.URLField(max_length=500, assume_scheme="https")

    class Meta:
        model = Runner
        fields = ("name", "tenant", "url", "secret_env", "timeout_seconds")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            runner_validate(
                name=cleaned.get("name") or self.instance.name,
                url=cleaned.get("url", ""),
                secret_env=cleaned.get("secret_env", ""),
                timeout_seconds=cleaned.get("timeout_seconds"),
            )
        except ControlPlaneError as exc:
            raise forms.ValidationError(f"{exc.code}: {exc.detail}") from exc
        return cleaned


@admin.register(Runner)
class RunnerAdmin(admin.ModelAdmin):
    form = RunnerForm
    list_display = (
        "name",
        "tenant",
        "url",
        "secret_env",
        "secret",
        "timeout_seconds",
        "enabled",
        "changed_by",
        "changed_at",
    )
    list_filter = ("enabled", "tenant")
    search_fields = ("name", "url")
    actions = ["disable"]

    def get_readonly_fields(self, request: HttpRequest, obj: Runner | None = None) -> Any:
        # The owner is chosen at registration; moving a runner between tenants is not an edit.
        return ("name", "tenant", "enabled", "changed_by", "changed_at") if obj else ()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and _manages_runners(request)

    def has_change_permission(self, request: HttpRequest, obj: Runner | None = None) -> bool:
        return super().has_change_permission(request, obj) and _manages_runners(request)

    def has_disable_permission(self, request: HttpRequest) -> bool:
        return _manages_runners(request)

    def has_delete_permission(self, request: HttpRequest, obj: Runner | None = None) -> bool:
        return False  # steps and the ledger name runners; disable instead

    @admin.display(description="secret")
    def secret(self, obj: Runner) -> str:
        return "set" if runner_secret(obj.secret_env) else "MISSING"

    def save_model(self, request: HttpRequest, obj: Runner, form: Any, change: bool) -> None:
        saved = runner_register(
            name=obj.name,
            tenant=obj.tenant,
            url=form.cleaned_data["url"],
            secret_env=form.cleaned_data["secret_env"],
            timeout_seconds=form.cleaned_data["timeout_seconds"],
            actor=_actor(request),
        )
        obj.__dict__.update({f.attname: getattr(saved, f.attname) for f in Runner._meta.concrete_fields})
        obj._state.adding = False

    @admin.action(description="Disable (steps naming it fail with RUNNER_UNKNOWN)", permissions=["disable"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Runner]) -> None:
        for runner in queryset.filter(enabled=True):
            try:
                runner_disable(name=runner.name, actor=_actor(request), reason="disabled in the admin")
            except ControlPlaneError as exc:
                self.message_user(request, f"{runner.name}: {exc.code}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, f"{runner.name} disabled", messages.SUCCESS)


class RunnerGrantForm(forms.ModelForm):
    class Meta:
        model = RunnerGrant
        fields = ("runner", "tenant")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        runner = cleaned.get("runner")
        if runner is not None and runner.tenant_id is not None:
            raise forms.ValidationError(
                f"RUNNER_INVALID: {runner.name} belongs to a tenant; only shared runners are granted"
            )
        return cleaned


@admin.register(RunnerGrant)
class RunnerGrantAdmin(admin.ModelAdmin):
    """Grants of shared runners to tenants: add is `runner_grant`, delete is `runner_grant_revoke`."""

    form = RunnerGrantForm
    list_display = ("runner", "tenant", "granted_by", "granted_at")
    list_filter = ("tenant",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and _manages_runners(request)

    def has_change_permission(self, request: HttpRequest, obj: RunnerGrant | None = None) -> bool:
        return False  # a grant is made or taken back, never edited

    def has_delete_permission(self, request: HttpRequest, obj: RunnerGrant | None = None) -> bool:
        return super().has_delete_permission(request, obj) and _manages_runners(request)

    def save_model(self, request: HttpRequest, obj: RunnerGrant, form: Any, change: bool) -> None:
        saved = runner_grant(name=obj.runner.name, tenant=obj.tenant, actor=_actor(request))
        obj.__dict__.update({f.attname: getattr(saved, f.attname) for f in RunnerGrant._meta.concrete_fields})
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: RunnerGrant) -> None:
        runner_grant_revoke(
            name=obj.runner.name,
            tenant=obj.tenant,
            actor=_actor(request),
            reason="revoked in the Django admin",
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[RunnerGrant]) -> None:
        for grant in queryset.select_related("runner", "tenant"):
            self.delete_model(request, grant)
