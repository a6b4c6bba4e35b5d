"""Django admin for event producers and channel connections. Every change goes through the services
(and so the ledger).

Secrets are shown once, on the page that answers the creation or rotation, and never again: no admin
page or form includes the `secret` column.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from controlplane.channels import services
from controlplane.channels.models import ChannelConnection, ChannelIdentity, Delivery, Producer, ProducerKey
from controlplane.channels.services.connections import (
    channel_connect,
    channel_disconnect,
    channel_secrets_rotate,
    connection_webhook_urls,
    secrets_check,
    secrets_parse,
)
from controlplane.identity.models import Principal
from controlplane.identity.selectors import principal_for_user
from controlplane.kernel import signatures
from controlplane.kernel.errors import ControlPlaneError

SECRETS_TEMPLATE = "channels/admin/producer_secrets.html"
KEY_FIELDS = (
    "key_id",
    "kind",
    "public_key",
    "created_at",
    "valid_from",
    "valid_until",
    "revoked_at",
    "status",
)


def _actor(request: HttpRequest) -> str:
    principal = principal_for_user(user=request.user)
    return principal.ref if principal else f"user/{request.user.get_username()}"


def _secrets_page(request: HttpRequest, heading: str, items: list[dict[str, Any]]) -> TemplateResponse:
    response = TemplateResponse(
        request,
        SECRETS_TEMPLATE,
        {
            **admin.site.each_context(request),
            "title": heading,
            "heading": heading,
            "items": items,
            "back_url": reverse("admin:channels_producer_changelist"),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


class ProducerCreateForm(forms.ModelForm):
    ed25519_public_key = forms.CharField(
        required=False,
        help_text="Leave empty for an HMAC key (a whsec_ secret is generated and shown once); or paste the "
        "base64 of a 32-byte Ed25519 public key.",
    )

    class Meta:
        model = Producer
        fields = ("tenant", "name")

    def clean_ed25519_public_key(self) -> str | None:
        value = self.cleaned_data.get("ed25519_public_key") or ""
        if not value.strip():
            return None
        try:
            return signatures.ed25519_public_key_normalise(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        tenant, name = cleaned.get("tenant"), cleaned.get("name")
        principal_name = services.principal_name_for(name or "")
        if tenant and name and Principal.objects.filter(tenant=tenant, name=principal_name).exists():
            raise forms.ValidationError(f"a principal {tenant.slug}/{principal_name} already exists")
        return cleaned


class ProducerKeyInline(admin.TabularInline):
    """Read-only: keys change through rotation and revocation, which are ledgered."""

    model = ProducerKey
    extra = 0
    can_delete = False
    fields = readonly_fields = KEY_FIELDS

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Producer)
class ProducerAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "principal", "created_at")
    list_filter = ("tenant",)
    search_fields = ("name",)
    actions = ["rotate_hmac_key"]

    def get_form(self, request: HttpRequest, obj: Producer | None = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ProducerCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Producer | None = None) -> Any:
        if obj is None:
            return ("tenant", "name", "ed25519_public_key")
        return ("tenant", "name", "principal", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Producer | None = None) -> Any:
        return () if obj is None else ("tenant", "name", "principal", "created_at")

    def get_inlines(self, request: HttpRequest, obj: Producer | None) -> Any:
        return [ProducerKeyInline] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # producers are named on the ledger; revoke their keys instead

    def save_model(self, request: HttpRequest, obj: Producer, form: Any, change: bool) -> None:
        if change:
            return
        created = services.producer_create(
            tenant=form.cleaned_data["tenant"],
            name=form.cleaned_data["name"],
            ed25519_public_key=form.cleaned_data.get("ed25519_public_key"),
            actor=_actor(request),
        )
        obj.pk = created.producer.pk
        obj.principal = created.producer.principal
        obj.created_at = created.producer.created_at
        request._channels_created = created  # read by response_add, which shows the secrets once

    def response_add(self, request: HttpRequest, obj: Producer, post_url_continue: str | None = None) -> Any:
        created = getattr(request, "_channels_created", None)
        if created is None:
            return super().response_add(request, obj, post_url_continue)
        item = {
            "producer": created.producer.ref,
            "key_id": created.key_id,
            "kind": "hmac" if created.hmac_secret else "ed25519",
            "token": created.token_secret,
            "secret": created.hmac_secret,
        }
        return _secrets_page(request, f"Producer {created.producer.ref} created", [item])

    @admin.action(description="Rotate to a new HMAC key (old keys verify for 24 hours more)")
    def rotate_hmac_key(self, request: HttpRequest, queryset: QuerySet[Producer]) -> HttpResponse | None:
        items = []
        for producer in queryset.select_related("tenant"):
            rotated = services.producer_key_rotate(producer=producer, actor=_actor(request))
            items.append(
                {
                    "producer": producer.ref,
                    "key_id": rotated.key.key_id,
                    "kind": rotated.key.kind,
                    "secret": rotated.hmac_secret,
                }
            )
        return _secrets_page(request, "New signing keys", items)


@admin.register(ProducerKey)
class ProducerKeyAdmin(admin.ModelAdmin):
    list_display = ("key_id", "producer", "kind", "valid_from", "valid_until", "revoked_at", "status")
    list_filter = ("kind",)
    search_fields = ("key_id", "producer__name")
    fields = readonly_fields = ("producer", *KEY_FIELDS)
    actions = ["revoke_keys"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are added by creating a producer or rotating its key

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Revoke selected keys now (compromise)")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ProducerKey]) -> None:
        for key in queryset:
            try:
                services.producer_key_revoke(
                    key_id=key.key_id, reason="revoked in admin", actor=_actor(request)
                )
            except ControlPlaneError as exc:
                self.message_user(request, f"{key.key_id}: {exc.code}", messages.ERROR)
            else:
                self.message_user(request, f"revoked {key.key_id}", messages.SUCCESS)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("seq", "producer", "webhook_id", "ce_id", "received_at")
    search_fields = ("webhook_id", "ce_id")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# --- Channel connections and chat identities ----------------------------------------------------------


class ChannelSecretsField(forms.CharField):
    """KEY=VALUE lines, write-only: the form never renders what is stored."""

    widget = forms.Textarea(attrs={"rows": 4, "autocomplete": "off"})

    def clean(self, value: Any) -> dict[str, str]:
        text = super().clean(value) or ""
        try:
            return secrets_parse(text)
        except ControlPlaneError as exc:
            raise forms.ValidationError(f"{exc.code}: {exc.detail}") from exc


class ChannelConnectionForm(forms.ModelForm):
    new_secrets = ChannelSecretsField(
        required=False,
        label="Secrets",
        help_text="KEY=VALUE lines (e.g. signing_secret=...). Stored encrypted; never shown again. On an "
        "existing connection, the keys given replace those stored.",
    )

    class Meta:
        model = ChannelConnection
        fields = ("tenant", "provider", "name", "channel")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        provider = cleaned.get("provider") or (self.instance.provider if self.instance.pk else "")
        try:
            secrets_check(provider, cleaned.get("new_secrets") or {})
        except ControlPlaneError as exc:
            raise forms.ValidationError(f"{exc.code}: {exc.detail}") from exc
        return cleaned


@admin.register(ChannelConnection)
class ChannelConnectionAdmin(admin.ModelAdmin):
    """Connections, through the services: created with their secrets, secrets rotated, disconnected."""

    form = ChannelConnectionForm
    list_display = ("name", "provider", "tenant", "key", "secret_names", "disconnected_at")
    list_filter = ("provider", "tenant")
    actions = ["disconnect"]

    def get_fields(self, request: HttpRequest, obj: ChannelConnection | None = None) -> Any:
        if obj is None:
            return ("tenant", "provider", "name", "channel", "new_secrets")
        return ("tenant", "provider", "name", "key", "secret_names", "webhook_urls", "new_secrets")

    def get_readonly_fields(self, request: HttpRequest, obj: ChannelConnection | None = None) -> Any:
        if obj is None:
            return ()
        return ("tenant", "provider", "name", "key", "secret_names", "webhook_urls")

    @admin.display(description="webhook URLs")
    def webhook_urls(self, obj: ChannelConnection) -> str:
        return "\n".join(f"{w.adapter}: {w.url}" for w in connection_webhook_urls(connection=obj))

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # named on the ledger: disconnect instead

    def save_model(self, request: HttpRequest, obj: ChannelConnection, form: Any, change: bool) -> None:
        values = form.cleaned_data.get("new_secrets") or {}
        try:
            if change:
                if values:
                    channel_secrets_rotate(connection=obj, secret_values=values, actor=_actor(request))
                return
            created = channel_connect(
                tenant=form.cleaned_data["tenant"],
                provider=form.cleaned_data["provider"],
                name=form.cleaned_data["name"],
                channel=form.cleaned_data.get("channel", ""),
                secret_values=values,
                actor=_actor(request),
            )
        except ControlPlaneError as exc:  # the form checked the secrets; a race is shown, not a 500
            messages.error(request, f"{exc.code}: {exc.detail}")
            return
        obj.pk = created.pk
        obj.key = created.key
        obj.principal = created.principal

    @admin.action(description="Disconnect (forget the secrets)")
    def disconnect(self, request: HttpRequest, queryset: QuerySet[ChannelConnection]) -> None:
        for connection in queryset:
            channel_disconnect(connection=connection, actor=_actor(request))
        messages.success(request, f"disconnected {queryset.count()} connection(s)")


@admin.register(ChannelIdentity)
class ChannelIdentityAdmin(admin.ModelAdmin):
    """Chat user ids mapped to principals (read here; map with `channels map-user` or the API)."""

    list_display = ("external_id", "provider", "principal", "tenant", "created_at")
    list_filter = ("provider", "tenant")
    search_fields = ("external_id", "principal__name")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
