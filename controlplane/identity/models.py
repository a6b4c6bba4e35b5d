"""Who may do what: tenants, principals, capability grants and API tokens.

Deny by default: a principal can do exactly what its unexpired, unrevoked grants say, nothing more.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Tenant(models.Model):
    """An isolation boundary: principals, and everything they create, belong to one tenant."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class PrincipalKind(models.TextChoices):
    HUMAN = "human"
    SERVICE = "service"
    AGENT = "agent"
    TOOL = "tool"


class Principal(models.Model):
    """An actor: a person (linked to a Django user for the console), a service, an agent or a tool."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="principals")
    name = models.SlugField(max_length=100)
    kind = models.CharField(max_length=16, choices=PrincipalKind.choices)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="principal"
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["tenant__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="principal_unique_name_per_tenant")
        ]

    def __str__(self) -> str:
        return self.ref

    @property
    def ref(self) -> str:
        """How the ledger names this principal as an actor: `<tenant>/<name>`."""
        return f"{self.tenant.slug}/{self.name}"

    # DRF treats whatever authentication returns as `request.user`.
    @property
    def is_authenticated(self) -> bool:
        return True

    def capabilities(self, at: datetime | None = None) -> set[str]:
        """Capabilities held now (unexpired, unrevoked grants). Token authentication pre-loads them."""
        cached = getattr(self, "_capabilities_cache", None)
        if cached is not None and at is None:
            return cached
        at = at or timezone.now()
        return set(
            self.grants.filter(revoked_at__isnull=True)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))
            .values_list("capability", flat=True)
        )

    def cache_capabilities(self, capabilities: set[str]) -> None:
        """Remember capabilities just read, for the life of this object (one request)."""
        self._capabilities_cache = capabilities

    def has_capability(self, capability: str) -> bool:
        if not self.is_active:
            return False
        return capability in self.capabilities()


class Grant(models.Model):
    """A capability held by a principal, optionally until `expires_at`. Revoked grants stay as history."""

    principal = models.ForeignKey(Principal, on_delete=models.CASCADE, related_name="grants")
    capability = models.CharField(max_length=64)
    expires_at = models.DateTimeField(null=True, blank=True)
    granted_by = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["principal", "capability"]
        constraints = [
            models.UniqueConstraint(
                fields=["principal", "capability"],
                condition=Q(revoked_at__isnull=True),
                name="grant_one_active_per_capability",
            )
        ]

    def __str__(self) -> str:
        return f"{self.principal} {self.capability}"


TOKEN_PREFIX = "cp"  # noqa: S105  (a label, not a secret)


def hash_token(secret: str) -> str:
    """Tokens carry 256 bits of randomness, so a plain SHA-256 is a safe one-way store."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    """A bearer token for a principal. Only its SHA-256 is stored; the prefix identifies it in lists."""

    principal = models.ForeignKey(Principal, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.principal})"

    def is_usable(self, at: datetime | None = None) -> bool:
        at = at or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > at
