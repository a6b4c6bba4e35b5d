"""The ledger: one append-only, hash-chained, Ed25519-signed table of CloudEvents-shaped events.

Rows are written only by the chain (`controlplane.ledger.chain`, through `services.ledger_append`). The
model and its queryset refuse updates and deletes; on PostgreSQL a trigger refuses UPDATE, DELETE and
TRUNCATE as well (migration 0002).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

from django.db import models

from controlplane.kernel.errors import ControlPlaneError

GENESIS_HASH = "0" * 64

# The envelope fields that are signed, in the order the API shows them. `canonical` holds the RFC 8785
# bytes of exactly these fields (plus specversion); verification checks every column against them.
ENVELOPE_FIELDS = (
    "seq",
    "id",
    "type",
    "source",
    "subject",
    "time",
    "tenant",
    "actor",
    "trace_id",
    "traceparent",
    "causation_id",
    "correlation_id",
    "idempotency_key",
    "request_id",
    "fidelity",
    "reason_codes",
    "data",
    "provenance",
    "prev_hash",
    "key_id",
)
# Every stored column: the signed envelope plus what is derived from it.
STORED_COLUMNS = (*ENVELOPE_FIELDS, "hash", "signature", "canonical")


class Fidelity(models.TextChoices):
    LIVE = "live"
    DEGRADED = "degraded"
    DEMO = "demo"
    SIMULATED = "simulated"


class AppendOnlyQuerySet(models.QuerySet):
    """Refuses bulk updates and deletes of an append-only model, with the model's own reason code."""

    def update(self, **kwargs: Any) -> int:
        raise self.model.immutable_error()

    def delete(self) -> tuple[int, dict[str, int]]:
        raise self.model.immutable_error()


class AppendOnlyModel(models.Model):
    """A row that may be inserted once and never changed or removed (the one "never update this row"
    base: ledger events and checkpoints, detection rule versions).

    A subclass names its refusal with `immutable_code` (a reason code) and, optionally, `immutable_detail`.
    """

    immutable_code: ClassVar[str] = "LEDGER_APPEND_ONLY"
    immutable_detail: ClassVar[str | None] = None

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise self.immutable_error()
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise self.immutable_error()

    @classmethod
    def immutable_error(cls) -> ControlPlaneError:
        """The refusal of a change to a saved row of this model."""
        return ControlPlaneError(cls.immutable_code, cls.immutable_detail)


class LedgerEvent(AppendOnlyModel):
    """One event of the global chain. `hash = SHA-256(prev_hash || canonical)`, signed by `key_id`."""

    seq = models.BigIntegerField(primary_key=True)
    id = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=200, db_index=True)
    source = models.CharField(max_length=255)
    subject = models.CharField(max_length=255, db_index=True, blank=True)
    time = models.DateTimeField()
    tenant = models.CharField(max_length=100, blank=True, db_index=True)
    actor = models.CharField(max_length=255, blank=True)
    trace_id = models.CharField(max_length=32, blank=True, db_index=True)
    traceparent = models.CharField(max_length=55, blank=True)
    causation_id = models.CharField(max_length=64, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    fidelity = models.CharField(max_length=16, choices=Fidelity.choices, default=Fidelity.LIVE)
    reason_codes = models.JSONField(default=list)
    data = models.JSONField(default=dict)
    provenance = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    key_id = models.CharField(max_length=64)
    signature = models.CharField(max_length=128)
    canonical = models.TextField(help_text="The exact RFC 8785 bytes that were hashed and signed.")

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type}"


# Set while a key service (`keys.py`, `chain.chain_activate_key`) writes the trust store; outside it the
# `SigningKey` table refuses every change (LEDGER_KEY_STORE_GUARDED).
_key_service_writing: ContextVar[bool] = ContextVar("key_service_writing", default=False)


@contextmanager
def signing_key_writes() -> Iterator[None]:
    """Allow changes to `SigningKey` rows inside this block: only the key services open it, beside the
    signed ledger event that records the change."""
    token = _key_service_writing.set(True)
    try:
        yield
    finally:
        _key_service_writing.reset(token)


def _key_store_guard() -> None:
    if not _key_service_writing.get():
        raise ControlPlaneError(
            "LEDGER_KEY_STORE_GUARDED",
            "ledger signing keys change only through the key services (manage.py keys), each a ledger event",
        )


class SigningKeyQuerySet(models.QuerySet):
    """Refuses bulk changes to the trust store outside the key services."""

    def update(self, **kwargs: Any) -> int:
        _key_store_guard()
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        _key_store_guard()
        return super().delete()

    def bulk_create(self, *args: Any, **kwargs: Any) -> list[Any]:
        _key_store_guard()
        return super().bulk_create(*args, **kwargs)


class SigningKey(models.Model):
    """A ledger signing key's public half and its validity range in seq (the trust store).

    A key signs events from `valid_from_seq` to `valid_until_seq` (open while active). A standby key
    has no range yet. Revocation means compromise: every event it signed is reported by verification.
    Every change is a signed ledger event (`controlplane.ledger.key.*`); verification rebuilds the key
    set from those events and fails when this table disagrees. The model refuses changes made outside
    the key services (`signing_key_writes`).
    """

    key_id = models.CharField(max_length=64, primary_key=True)
    algorithm = models.CharField(max_length=16, default="ed25519")
    public_key = models.CharField(max_length=64, help_text="Raw Ed25519 public key, base64.")
    created_at = models.DateTimeField()
    valid_from_seq = models.BigIntegerField(null=True, blank=True)
    valid_until_seq = models.BigIntegerField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=500, blank=True)

    objects = SigningKeyQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "key_id"]

    def __str__(self) -> str:
        return self.key_id

    def save(self, *args: Any, **kwargs: Any) -> None:
        _key_store_guard()
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        _key_store_guard()
        return super().delete(*args, **kwargs)

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.valid_from_seq is None:
            return "standby"
        if self.valid_until_seq is None:
            return "active"
        return "retired"

    def covers(self, seq: int) -> bool:
        if self.valid_from_seq is None or seq < self.valid_from_seq:
            return False
        return self.valid_until_seq is None or seq <= self.valid_until_seq


class Checkpoint(AppendOnlyModel):
    """A signed statement that the chain head at `seq` had `head_hash`; export it to pin history.

    Since tree heads (`treehead.py`), a checkpoint also commits to the RFC 9162 Merkle tree over the event
    hashes of seq `1..seq`: `tree_size` (= seq) and `root`, both inside the signed statement. Older
    checkpoints have neither and still verify with the statement they were signed with.
    """

    seq = models.BigIntegerField(primary_key=True)
    head_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=64)
    signature = models.CharField(max_length=128)
    tree_size = models.BigIntegerField(null=True, blank=True)
    root = models.CharField(max_length=64, blank=True, help_text="Hex RFC 9162 Merkle root of seq 1..seq.")

    class Meta:
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"checkpoint @{self.seq}"

    def statement(self) -> dict[str, Any]:
        """What its signature covers: the tree-head statement, or for an older checkpoint the seq and hash."""
        if self.root:
            return {
                **checkpoint_statement(self.seq, self.head_hash),
                "tree_size": self.tree_size,
                "root": self.root,
            }
        return checkpoint_statement(self.seq, self.head_hash)

    def signed(self) -> dict[str, Any]:
        """The statement with its key id and signature (a signed tree head when it has a root)."""
        return {**self.statement(), "key_id": self.key_id, "signature": self.signature}


def checkpoint_statement(seq: int, head_hash: str) -> dict[str, Any]:
    """What a checkpoint signature covers (canonicalised before signing)."""
    return {"ledger": "controlplane", "seq": seq, "head_hash": head_hash}


class VerificationRun(models.Model):
    """The result of one `ledger verify` over the live chain, for the dashboard and `/readyz`."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    ok = models.BooleanField()
    events_checked = models.BigIntegerField()
    head_seq = models.BigIntegerField(null=True)
    head_hash = models.CharField(max_length=64, blank=True)
    failed_seq = models.BigIntegerField(null=True, blank=True)
    reason_code = models.CharField(max_length=64, blank=True)
    detail = models.TextField(blank=True)
    workers = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"verification {'ok' if self.ok else self.reason_code} @{self.head_seq}"
