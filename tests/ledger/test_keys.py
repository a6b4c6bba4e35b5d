"""`manage.py keys ...`: generate, rotate, revoke, list; private keys never in the database."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from controlplane.ledger.models import LedgerEvent, SigningKey
from controlplane.ledger.verify import verify_chain
from tests.ledger.helpers import append_events

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("keys", *args, stdout=out)
    return out.getvalue()


def test_generate_activates_the_first_key_then_makes_standby_keys(settings):
    first = run("generate").split()
    assert first[1] == "active"
    second = run("generate").split()
    assert second[1] == "standby"
    key_files = sorted(p.name for p in settings.CONTROLPLANE_KEY_DIR.iterdir())
    assert key_files == sorted(k.replace(":", "_") + ".key" for k in (first[0], second[0]))
    assert all((settings.CONTROLPLANE_KEY_DIR / f).stat().st_mode & 0o777 == 0o600 for f in key_files)


def test_rotate_to_a_standby_key_and_verify():
    run("generate")
    standby = run("generate").split()[0]
    append_events(2)
    assert run("rotate", "--to", standby).startswith(f"{standby} active from seq")
    append_events(2)
    assert LedgerEvent.objects.order_by("-seq").first().key_id == standby
    assert verify_chain().ok
    statuses = {k.key_id: k.status for k in SigningKey.objects.all()}
    assert sorted(statuses.values()) == ["active", "retired"]


def test_revoke_reports_the_keys_events_and_list_shows_status():
    append_events(2)
    old = SigningKey.objects.get().key_id
    assert run("revoke", old, "--reason", "leaked") == f"{old} revoked: leaked\n"
    listing = run("list")
    assert f"{old}\trevoked" in listing and "\tactive\t" in listing
    result = verify_chain()
    assert (result.failure.seq, result.failure.code) == (1, "LEDGER_KEY_REVOKED")


def test_unknown_key_is_refused_with_code_and_nothing_written():
    append_events(1)
    before = LedgerEvent.objects.count()
    with pytest.raises(CommandError, match="LEDGER_KEY_NOT_FOUND"):
        run("revoke", "ed25519:nope", "--reason", "x")
    with pytest.raises(CommandError, match="LEDGER_KEY_NOT_FOUND"):
        run("rotate", "--to", "ed25519:nope")
    assert LedgerEvent.objects.count() == before


def _env_key(settings):
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from controlplane.ledger import crypto

    private_key = Ed25519PrivateKey.generate()
    settings.CONTROLPLANE_LEDGER_KEY = base64.b64encode(crypto.seed_bytes(private_key)).decode()
    crypto.forget_loaded_keys()
    return crypto.key_id_for(crypto.public_bytes(private_key))


def test_key_from_the_environment_is_used_on_first_run_even_without_autogeneration(settings):
    settings.CONTROLPLANE_LEDGER_AUTOGENERATE_KEY = False
    key_id = _env_key(settings)
    event = append_events(1)[0]
    assert event.key_id == key_id
    assert not settings.CONTROLPLANE_KEY_DIR.exists()  # nothing written to disk
    assert verify_chain().ok


def test_key_from_the_environment_registers_as_standby_and_rotates_in(settings):
    append_events(1)
    key_id = _env_key(settings)
    assert (
        run("generate") == f"{key_id} standby public_key={SigningKey.objects.get(key_id=key_id).public_key}\n"
    )
    run("rotate", "--to", key_id)
    assert append_events(1)[0].key_id == key_id
    assert verify_chain().ok
