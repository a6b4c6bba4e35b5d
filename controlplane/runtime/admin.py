"""Django admin for runners: register or change one (through `runner_register`), disable (an action).

The secret is never entered here: the admin shows only whether the named environment variable is set.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from controlplane.identity.selectors import principal_for_user
from controlplane.kernel.errors import ControlPlaneError
from controlplane.runtime.executors import runner_secret
from controlplane.runtime.models import Runner
from controlplane.runtime.runners import runner_disable, runner_register, runner_validate


def _actor(request: HttpRequest) -> str:
    principal = principal_for_user(user=request.user)
    return principal.ref if principal else f"user/{request.user.get_username()}"


class RunnerForm(forms.ModelForm):
    """Validates like the service: a refusal shows its reason code on the form."""

    url = forms.URLField(max_length=500, assume_scheme="https")

    class Meta:
        model = Runner
        fields = ("name", "url", "secret_env", "timeout_seconds")

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
        "url",
        "secret_env",
        "secret",
        "timeout_seconds",
        "enabled",
        "changed_by",
        "changed_at",
    )
    list_filter = ("enabled",)
    search_fields = ("name", "url")
    actions = ["disable"]

    def get_readonly_fields(self, request: HttpRequest, obj: Runner | None = None) -> Any:
        return ("name", "enabled", "changed_by", "changed_at") if obj else ()

    def has_delete_permission(self, request: HttpRequest, obj: Runner | None = None) -> bool:
        return False  # steps and the ledger name runners; disable instead

    @admin.display(description="secret")
    def secret(self, obj: Runner) -> str:
        return "set" if runner_secret(obj.secret_env) else "MISSING"

    def save_model(self, request: HttpRequest, obj: Runner, form: Any, change: bool) -> None:
        saved = runner_register(
            name=obj.name,
            url=form.cleaned_data["url"],
            secret_env=form.cleaned_data["secret_env"],
            timeout_seconds=form.cleaned_data["timeout_seconds"],
            actor=_actor(request),
        )
        obj.__dict__.update({f.attname: getattr(saved, f.attname) for f in Runner._meta.concrete_fields})
        obj._state.adding = False

    @admin.action(description="Disable (steps naming it fail with RUNNER_UNKNOWN)")
    def disable(self, request: HttpRequest, queryset: QuerySet[Runner]) -> None:
        for runner in queryset.filter(enabled=True):
            try:
                runner_disable(name=runner.name, actor=_actor(request), reason="disabled in the admin")
            except ControlPlaneError as exc:
                self.message_user(request, f"{runner.name}: {exc.code}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, f"{runner.name} disabled", messages.SUCCESS)
