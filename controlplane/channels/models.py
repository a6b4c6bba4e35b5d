"""Event producers, their signing keys, and the deliveries they made through `POST /api/v1/events/`.

Rows change only through `controlplane.channels.services`, which ledgers every change in the same
transaction. A `Delivery` is written in the transaction that appends the delivered event to the ledger;
its unique constraints are what make a second delivery of the same webhook-id or CloudEvents id fail.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone

from controlplane.identity.models import Principal, Tenant


class Producer(models.Model):
    """A registered event producer: a `service` principal (holding `events.ingest`) and its keys."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="producers")
    name = models.SlugField(max_length=80)
    principal = models.OneToOneField(Principal, on_delete=models.PROTECT, related_name="producer")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["tenant__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="producer_unique_name_per_tenant")
        ]

    def __str__(self) -> str:
        return self.ref

    @property
    def ref(self) -> str:
        """How provenance and the ledger name this producer: `<tenant>/<name>`."""
        return f"{self.tenant.slug}/{self.name}"


class KeyKind(models.TextChoices):
    HMAC = "hmac"  # Standard Webhooks `v1`: HMAC-SHA256 with a shared `whsec_` secret
    ED25519 = "ed25519"  # Standard Webhooks `v1a`: Ed25519; only the public key is held here


class ProducerKey(models.Model):
    """A key that may sign a producer's deliveries, valid from `valid_from` until `valid_until`.

    `secret` holds an HMAC key's `whsec_` secret in the clear, because verifying an HMAC needs the key
    itself (unlike API tokens, which are stored hashed). It is shown once at creation, never in the admin,
    in logs or on the ledger. Ed25519 keys keep only `public_key` (base64 of the raw 32 bytes).
    Revocation means compromise: a signature by a revoked key is refused in every signing mode.
    """

    producer = models.ForeignKey(Producer, on_delete=models.PROTECT, related_name="keys")
    key_id = models.CharField(max_length=40, unique=True)
    kind = models.CharField(max_length=16, choices=KeyKind.choices)
    secret = models.CharField(max_length=120, blank=True)
    public_key = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    valid_from = models.DateTimeField(default=timezone.now)
    valid_until = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["producer_id", "valid_from", "key_id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="hmac") & ~Q(secret="") & Q(public_key=""))
                | (Q(kind="ed25519") & Q(secret="") & ~Q(public_key="")),
                name="producer_key_material_matches_kind",
            )
        ]

    def __str__(self) -> str:
        return self.key_id

    def is_valid_at(self, moment: datetime) -> bool:
        """Unrevoked and inside its validity window at `moment`."""
        if self.revoked_at is not None or moment < self.valid_from:
            return False
        return self.valid_until is None or moment < self.valid_until

    def status_at(self, moment: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if moment < self.valid_from:
            return "pending"
        if self.valid_until is not None and moment >= self.valid_until:
            return "expired"
        return "active" if self.valid_until is None else "retiring"

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())


class Delivery(models.Model):
    """One accepted delivery: which producer sent which webhook-id / CloudEvents id, at which ledger seq."""

    producer = models.ForeignKey(Producer, on_delete=models.PROTECT, related_name="deliveries")
    webhook_id = models.CharField(max_length=200, blank=True, help_text="Empty for an unsigned delivery.")
    ce_id = models.CharField(max_length=200)
    seq = models.BigIntegerField(unique=True, help_text="The ledger event this delivery appended.")
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["seq"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["producer", "webhook_id"],
                condition=~Q(webhook_id=""),
                name="delivery_unique_webhook_id_per_producer",
            ),
            models.UniqueConstraint(fields=["producer", "ce_id"], name="delivery_unique_ce_id_per_producer"),
        ]

    def __str__(self) -> str:
        return f"{self.producer_id}:{self.ce_id} -> #{self.seq}"


class ChannelProvider(models.TextChoices):
    SLACK = "slack"
    GITHUB = "github"
    META = "meta"  # WhatsApp through Meta's Cloud API
    TWILIO = "twilio"  # WhatsApp (or SMS) through Twilio


class ChannelConnection(models.Model):
    """One tenant's connection to a chat or code-host provider: its secrets and the principal it acts as.

    `key` is the opaque id in the connection's webhook URLs. `secrets` is a Fernet token
    (controlplane.channels.secrets) of the provider's KEY=VALUE secrets: never shown, logged or
    ledgered. A connection whose secrets are empty, or that is disconnected, refuses every delivery with
    CHANNEL_NOT_CONFIGURED. `principal` is the service principal its deliveries are received as.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="channel_connections")
    provider = models.CharField(max_length=16, choices=ChannelProvider.choices)
    name = models.SlugField(max_length=80)
    key = models.CharField(max_length=40, unique=True)
    principal = models.OneToOneField(Principal, on_delete=models.PROTECT, related_name="channel_connection")
    secrets = models.TextField(blank=True, default="")
    secret_names = models.JSONField(default=list, blank=True)  # which secrets are set (names only)
    channel = models.CharField(max_length=120, blank=True)  # where notifications go (Slack channel, number)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant__slug", "provider", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "provider", "name"], name="channel_connection_unique_name_per_tenant"
            )
        ]

    def __str__(self) -> str:
        return self.ref

    @property
    def ref(self) -> str:
        """How the ledger names this connection: `<tenant>/<provider>/<name>`."""
        return f"{self.tenant.slug}/{self.provider}/{self.name}"


class ChannelIdentity(models.Model):
    """A provider's user id (Slack user, GitHub login, WhatsApp number) mapped to a human principal of the
    tenant: who a chat action is taken as. An unmapped identity decides nothing."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="channel_identities")
    provider = models.CharField(max_length=16, choices=ChannelProvider.choices)
    external_id = models.CharField(max_length=120)
    principal = models.ForeignKey(Principal, on_delete=models.PROTECT, related_name="channel_identities")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["tenant__slug", "provider", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "provider", "external_id"], name="channel_identity_unique_per_tenant"
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.provider}:{self.external_id} -> {self.principal.ref}"


class OutboundStatus(models.TextChoices):
    PENDING = "pending"  # waiting for its first attempt or its next retry
    SENT = "sent"
    FAILED = "failed"  # given up: attempts exhausted, or a refusal no retry can cure


class OutboundMethod(models.TextChoices):
    POST = "post"  # a new message (Slack chat.postMessage, a WhatsApp message)
    UPDATE = "update"  # replace a posted Slack message (chat.update)
    EPHEMERAL = "ephemeral"  # a Slack message only one user sees (chat.postEphemeral)
    REVIEW = "review"  # GitHub's deployment protection rule review for a workflow run


class ChannelMessage(models.Model):
    """One outbound call to a provider: the channels outbox.

    Written in the transaction of what causes it (an approval opened, a decision, a link started), sent
    after the commit by a task and retried with back-off by the sweeper until it is sent or given up.
    `key` is its idempotency key: asking twice for the same message makes one row, and a sent row is never
    sent again. `payload` holds what is sent (no secret: those are read from the connection when sending).
    Rows change only through controlplane.channels.services.outbox, which ledgers each send and each
    message given up.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="channel_messages")
    connection = models.ForeignKey(ChannelConnection, on_delete=models.PROTECT, related_name="messages")
    key = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=40)  # approval.request, approval.outcome, identity.code, ...
    method = models.CharField(max_length=16, choices=OutboundMethod.choices, default=OutboundMethod.POST)
    to = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(default=dict)
    approval_id = models.CharField(max_length=64, blank=True, db_index=True)
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replies"
    )
    status = models.CharField(max_length=16, choices=OutboundStatus.choices, default=OutboundStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_code = models.CharField(max_length=64, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    provider_channel = models.CharField(max_length=120, blank=True)  # e.g. the Slack channel id answered
    provider_message_id = models.CharField(max_length=120, blank=True)  # Slack ts, wamid..., SM...
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="channel_outbox_due_idx")]

    def __str__(self) -> str:
        return f"{self.kind} -> {self.to} ({self.status})"


class LinkStatus(models.TextChoices):
    PENDING = "pending"  # the code is sent; waiting for it to be typed back
    LINKED = "linked"  # typed back in time: the identity is mapped to the principal
    VOID = "void"  # replaced by a newer link, or too many wrong codes


class ChannelLink(models.Model):
    """A person's request to link a chat identity to their principal, proved by a one-time code.

    The code is sent over the connection to `external_id` (controlplane.channels.services.links); only
    its keyed hash is kept. Typed back from that identity before `expires_at`, once, it maps the identity
    to `principal` (a `ChannelIdentity`). Wrong codes are counted; too many void the link.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="channel_links")
    connection = models.ForeignKey(ChannelConnection, on_delete=models.PROTECT, related_name="links")
    principal = models.ForeignKey(Principal, on_delete=models.PROTECT, related_name="channel_links")
    external_id = models.CharField(max_length=120)
    code_hash = models.CharField(max_length=100)  # salt$HMAC-SHA256
    status = models.CharField(max_length=16, choices=LinkStatus.choices, default=LinkStatus.PENDING)
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    linked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["connection", "external_id", "status"], name="channel_link_lookup_idx")
        ]

    def __str__(self) -> str:
        return f"{self.connection.ref}:{self.external_id} -> {self.principal.ref} ({self.status})"


class ChangeSignal(models.Model):
    """A change to a service, as GitHub reported it: a deployment, a deployment's status, a finished
    workflow run, a push, a merged pull request. Read-only context for incidents ("changes in the window
    before this incident", as PagerDuty's change events are); it decides nothing.

    `service` is the repository's name (`owner/checkout` -> `checkout`): the name incidents use for the
    service the repository deploys. Text fields hold provider data: untrusted, escaped where shown.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="change_signals")
    connection = models.ForeignKey(ChannelConnection, on_delete=models.PROTECT, related_name="changes")
    kind = models.CharField(max_length=32)  # deployment, deployment_status, workflow_run, push, pull_request
    service = models.CharField(max_length=200)
    repository = models.CharField(max_length=200)
    environment = models.CharField(max_length=120, blank=True)
    ref = models.CharField(max_length=200, blank=True)
    sha = models.CharField(max_length=64, blank=True)
    actor = models.CharField(max_length=120, blank=True)  # the GitHub login
    status = models.CharField(max_length=40, blank=True)  # a deployment's state, a run's conclusion
    summary = models.CharField(max_length=300, blank=True)
    url = models.URLField(max_length=500, blank=True)
    occurred_at = models.DateTimeField()
    delivery_id = models.CharField(max_length=100)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["tenant", "occurred_at"], name="change_signal_window_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.service}@{self.sha[:7]} by {self.actor}"


class DeploymentReview(models.Model):
    """A GitHub deployment waiting on a deployment protection rule: the approval request opened for it,
    and the run whose review endpoint hears the decision (through the outbox)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="deployment_reviews")
    connection = models.ForeignKey(ChannelConnection, on_delete=models.PROTECT, related_name="reviews")
    subject = models.CharField(max_length=128, unique=True)  # the approval's subject id
    approval_id = models.CharField(max_length=64, blank=True)
    repository = models.CharField(max_length=200)
    environment = models.CharField(max_length=120)
    ref = models.CharField(max_length=200, blank=True)
    sha = models.CharField(max_length=64, blank=True)
    run_id = models.BigIntegerField()
    requested_by = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.repository} {self.environment} run {self.run_id}"


class ChannelCursor(models.Model):
    """How far a relay has read the ledger (the incident notifications: `seq` of the last event read)."""

    name = models.CharField(max_length=40, unique=True)
    seq = models.BigIntegerField()
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} @ {self.seq}"


class ApprovalCode(models.Model):
    """A short single-use reply code for one approval on one connection (WhatsApp: `APPROVE <code>`,
    `REJECT <code> <reason>`), bound to the approval's content hash; it expires with the approval and is
    used by the first decision it carries. Only its keyed hash is kept."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="approval_codes")
    connection = models.ForeignKey(ChannelConnection, on_delete=models.PROTECT, related_name="approval_codes")
    approval_id = models.CharField(max_length=64)
    content_hash = models.CharField(max_length=64)
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "code_hash"], name="approval_code_unique_per_connection"
            ),
            models.UniqueConstraint(
                fields=["connection", "approval_id"], name="approval_code_one_per_approval"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.connection_id}:{self.approval_id[:12]}"
