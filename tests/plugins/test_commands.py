"""`manage.py plugins ...`: token-authenticated as the person, through the same services and refusals."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from django.utils import timezone

from controlplane.policy import services as policy
from plugins.models import Plugin, ReviewItem
from plugins.services import plugins_supervise
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for
from tests.plugins.support import manifest, register

pytestmark = pytest.mark.django_db


def run(*args, token=None, monkeypatch=None) -> str:
    if token is not None:
        monkeypatch.setenv("CONTROLPLANE_TOKEN", token)
    out = StringIO()
    call_command("plugins", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def alice_token():
    caps = ["plugins.read", "plugins.manage", "plugins.review"]
    alice = PrincipalFactory(tenant=TenantFactory(slug="acme"), name="alice", human=True, capabilities=caps)
    return token_for(alice)


def test_register_list_show_quarantine_release_and_dismiss(alice_token, monkeypatch, tmp_path):
    policy.profile_bootstrap(environment="dev")
    PrincipalFactory(tenant=TenantFactory(slug="acme"), name="svc")
    path = tmp_path / "plugin.json"
    path.write_text(json.dumps(manifest("cli-plugin", key=Ed25519PrivateKey.generate(), principal="svc")))
    assert "cli-plugin 1.0.0 registered (unknown)" in run(
        "register", str(path), token=alice_token, monkeypatch=monkeypatch
    )
    assert run("list").split("\t")[:3] == ["cli-plugin", "unknown", "PLUGIN_NO_EVIDENCE"]
    assert json.loads(run("show", "cli-plugin"))["healthy"] is False
    assert (
        run("quarantine", "cli-plugin", "--reason", "drill").strip()
        == "cli-plugin quarantined PLUGIN_QUARANTINED_BY_REVIEW"
    )
    assert "quorum=1" in run("release", "cli-plugin", "--reason", "drill over")
    other = register("degraded-one")
    now = timezone.now() + timedelta(seconds=1)
    other.beat(at=now, checks={"x": "degraded"})
    plugins_supervise(now=now + timedelta(seconds=1))
    item = ReviewItem.objects.get()
    assert run("dismiss", str(item.pk), "--reason", "known").strip() == f"review {item.pk} dismissed"


def test_commands_refuse_without_a_token_or_the_capability(monkeypatch, tmp_path):
    monkeypatch.delenv("CONTROLPLANE_TOKEN", raising=False)
    with pytest.raises(CommandError, match="AUTH_REQUIRED"):
        run("list")
    reader = PrincipalFactory(
        tenant=TenantFactory(slug="acme"), name="reader", human=True, capabilities=["plugins.read"]
    )
    register("x")
    with pytest.raises(CommandError, match="CAPABILITY_MISSING"):
        run("quarantine", "x", "--reason", "no", token=token_for(reader), monkeypatch=monkeypatch)
    assert Plugin.objects.get(name="x").state == "unknown"
    with pytest.raises(CommandError, match="PLUGIN_MANIFEST_INVALID"):
        manager = PrincipalFactory(
            tenant=reader.tenant, name="m", human=True, capabilities=["plugins.manage"]
        )
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        run("register", str(bad), token=token_for(manager), monkeypatch=monkeypatch)
