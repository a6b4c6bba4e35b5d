"""`manage.py producers create | rotate-key | revoke-key | list`."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command

from controlplane.channels import services
from controlplane.channels.models import Producer, ProducerKey
from controlplane.identity.models import ApiToken, Principal, hash_token
from controlplane.kernel import signatures
from controlplane.kernel.shell import cli_actor
from controlplane.ledger.models import LedgerEvent
from tests.channels.support import written

pytestmark = pytest.mark.django_db


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("producers", *args, stdout=out)
    return out.getvalue().splitlines()


def assert_secret_never_on_the_ledger(secret: str) -> None:
    assert not LedgerEvent.objects.filter(canonical__contains=secret).exists()
    assert not LedgerEvent.objects.filter(canonical__contains=secret.removeprefix("whsec_")).exists()


def test_create_prints_the_token_and_secret_once_and_ledgers_the_producer():
    lines = run("create", "alerts", "--tenant", "acme")

    producer = Producer.objects.select_related("principal", "tenant").get()
    key = ProducerKey.objects.get()
    assert lines == [
        "created producer acme/alerts (principal acme/producer-alerts)",
        f"key {key.key_id} (hmac)",
        "API token (shown once):",
        lines[3],
        "signing secret (shown once):",
        key.secret,
    ]
    token = ApiToken.objects.get(token_hash=hash_token(lines[3]))
    assert token.principal == producer.principal
    assert (producer.principal.kind, producer.principal.capabilities()) == ("service", {"events.ingest"})
    assert key.secret.startswith("whsec_") and len(signatures.hmac_key(key.secret)) == 32
    event = LedgerEvent.objects.get(type="controlplane.channels.producer.created")
    assert (event.subject, event.actor, event.tenant) == ("producer/acme/alerts", cli_actor(), "acme")
    assert event.data == {
        "producer": "acme/alerts",
        "principal": "acme/producer-alerts",
        "token_prefix": token.prefix,
        "key": {"key_id": key.key_id, "kind": "hmac", "valid_from": key.valid_from.isoformat()},
    }
    assert_secret_never_on_the_ledger(key.secret)
    assert_secret_never_on_the_ledger(lines[3])


def test_create_with_an_ed25519_public_key_prints_no_signing_secret():
    public_key = signatures.ed25519_public_key_text(Ed25519PrivateKey.generate())
    lines = run("create", "edge", "--tenant", "acme", "--ed25519-public-key", f"whpk_{public_key}")
    key = ProducerKey.objects.get()
    assert (key.kind, key.public_key, key.secret) == ("ed25519", public_key, "")
    assert lines[1] == f"key {key.key_id} (ed25519)"
    assert len(lines) == 4 and "signing secret (shown once):" not in lines
    event = LedgerEvent.objects.get(type="controlplane.channels.producer.created")
    assert event.data["key"]["public_key"] == public_key


@pytest.mark.parametrize(
    "args, code",
    [
        (["create", "Bad_Name", "--tenant", "acme"], "VALIDATION_FAILED"),
        (["create", "alerts", "--tenant", "acme", "--ed25519-public-key", "c2hvcnQ="], "VALIDATION_FAILED"),
        (["create", "alerts", "--tenant", "acme"], "PRODUCER_EXISTS"),
    ],
)
def test_create_refusals_write_nothing(args, code):
    services.producer_create(tenant="acme", name="alerts")
    before = (written(), Producer.objects.count(), Principal.objects.count(), ProducerKey.objects.count())
    with pytest.raises(CommandError, match=f"^{code}: "):
        run(*args)
    assert (
        written(),
        Producer.objects.count(),
        Principal.objects.count(),
        ProducerKey.objects.count(),
    ) == before


def test_rotate_key_adds_a_key_and_ends_the_old_one_after_the_overlap():
    created = services.producer_create(tenant="acme", name="alerts")

    lines = run("rotate-key", "alerts", "--tenant", "acme", "--overlap-seconds", "600")

    old = ProducerKey.objects.get(key_id=created.key_id)
    new = ProducerKey.objects.exclude(key_id=created.key_id).get()
    assert old.valid_until == new.valid_from + timedelta(seconds=600)
    assert (old.status, new.status) == ("retiring", "active")
    assert lines == [
        f"new key {new.key_id} (hmac) for acme/alerts",
        f"key {old.key_id} valid until {old.valid_until.isoformat()}",
        "signing secret (shown once):",
        new.secret,
    ]
    event = LedgerEvent.objects.get(type="controlplane.channels.producer.key.rotated")
    assert event.data == {
        "producer": "acme/alerts",
        "key": {"key_id": new.key_id, "kind": "hmac", "valid_from": new.valid_from.isoformat()},
        "overlap_seconds": 600,
        "retired": [{"key_id": old.key_id, "valid_until": old.valid_until.isoformat()}],
    }
    assert_secret_never_on_the_ledger(new.secret)


def test_rotate_key_defaults_to_a_day_of_overlap_and_can_switch_to_ed25519():
    created = services.producer_create(tenant="acme", name="alerts")
    public_key = signatures.ed25519_public_key_text(Ed25519PrivateKey.generate())
    lines = run("rotate-key", "alerts", "--tenant", "acme", "--ed25519-public-key", public_key)
    old = ProducerKey.objects.get(key_id=created.key_id)
    new = ProducerKey.objects.exclude(key_id=created.key_id).get()
    assert (new.kind, new.public_key) == ("ed25519", public_key)
    assert old.valid_until == new.valid_from + timedelta(hours=24)
    assert len(lines) == 2


@pytest.mark.parametrize(
    "args, code",
    [
        (["rotate-key", "nobody", "--tenant", "acme"], "PRODUCER_NOT_FOUND"),
        (["rotate-key", "alerts", "--tenant", "nowhere"], "TENANT_NOT_FOUND"),
        (["rotate-key", "alerts", "--tenant", "acme", "--overlap-seconds", "-1"], "VALIDATION_FAILED"),
        (["rotate-key", "alerts", "--tenant", "acme", "--ed25519-public-key", "nope"], "VALIDATION_FAILED"),
    ],
)
def test_rotate_key_refusals_write_nothing(args, code):
    created = services.producer_create(tenant="acme", name="alerts")
    before = (written(), list(ProducerKey.objects.values_list("key_id", "valid_until")))
    with pytest.raises(CommandError, match=f"^{code}: "):
        run(*args)
    assert (written(), list(ProducerKey.objects.values_list("key_id", "valid_until"))) == before
    assert ProducerKey.objects.get().key_id == created.key_id


def test_revoke_key_revokes_and_ledgers_once():
    created = services.producer_create(tenant="acme", name="alerts")

    lines = run("revoke-key", created.key_id, "--reason", "leaked in a log")

    key = ProducerKey.objects.get()
    assert key.status == "revoked"
    assert lines == [f"revoked key {key.key_id} of acme/alerts at {key.revoked_at.isoformat()}"]
    event = LedgerEvent.objects.get(type="controlplane.channels.producer.key.revoked")
    assert event.data == {
        "producer": "acme/alerts",
        "key_id": key.key_id,
        "kind": "hmac",
        "reason": "leaked in a log",
    }
    assert event.reason_codes == ["KEY_REVOKED"]
    before = written()
    assert run("revoke-key", created.key_id) == lines
    assert written() == before


def test_revoke_key_of_an_unknown_key_is_refused():
    services.producer_create(tenant="acme", name="alerts")
    before = written()
    with pytest.raises(CommandError, match=r"^PRODUCER_KEY_NOT_FOUND: "):
        run("revoke-key", "pk_0000000000000000")
    assert written() == before


def test_list_shows_producers_and_their_keys():
    alerts = services.producer_create(tenant="acme", name="alerts")
    rotated = services.producer_key_rotate(producer=alerts.producer, overlap_seconds=0)
    other = services.producer_create(tenant="globex", name="metrics")
    services.producer_key_revoke(key_id=other.key_id)

    assert run("list") == [
        f"acme/alerts\tacme/producer-alerts\t{alerts.key_id}:hmac:expired {rotated.key.key_id}:hmac:active",
        f"globex/metrics\tglobex/producer-metrics\t{other.key_id}:hmac:revoked",
    ]
    assert run("list", "--tenant", "globex") == [
        f"globex/metrics\tglobex/producer-metrics\t{other.key_id}:hmac:revoked"
    ]
