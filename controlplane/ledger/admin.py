"""The ledger in Django admin: read-only, always. Keys change through `manage.py keys`."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from controlplane.ledger.models import Checkpoint, LedgerEvent, SigningKey, VerificationRun


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(LedgerEvent)
class LedgerEventAdmin(ReadOnlyAdmin):
    list_display = ("seq", "type", "subject", "tenant", "actor", "time", "fidelity")
    list_filter = ("fidelity", "tenant")
    search_fields = ("type", "subject", "trace_id", "hash")


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    list_display = ("key_id", "status", "valid_from_seq", "valid_until_seq", "revoked_at", "created_at")


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ("seq", "head_hash", "key_id", "created_at")


@admin.register(VerificationRun)
class VerificationRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "ok", "events_checked", "head_seq", "failed_seq", "reason_code")
