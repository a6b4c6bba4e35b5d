"""Production posture, the OpenAPI schema, and migrations that match the models."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from io import StringIO

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command

from tests.identity.factories import PrincipalFactory, token_for

ROOT = settings.BASE_DIR


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _prod_env(**overrides: str) -> dict[str, str]:
    return {
        "CONTROLPLANE_ENV": "prod",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "controlplane.example.com",
        "DEBUG": "false",
        **overrides,
    }


def test_production_settings_pass_check_deploy():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **_prod_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage("check", **_prod_env(SECRET_KEY=""))
    assert result.returncode != 0
    assert "SECRET_KEY (at least 50 characters) is required outside dev" in result.stderr


def test_production_defaults_to_strict_event_signing():
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.CONTROLPLANE_EVENT_SIGNING_MODE)",
        **_prod_env(),
    )
    assert result.stdout.strip().splitlines()[-1] == "require-valid-signature"


def test_start_up_banner_names_the_signing_mode():
    from controlplane.startup import banner

    assert f"event_signing_mode={settings.CONTROLPLANE_EVENT_SIGNING_MODE}" in banner()


def test_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    schema = yaml.safe_load((tmp_path / "schema.yaml").read_text())
    assert "/api/v1/ledger/events/" in schema["paths"]


@pytest.mark.django_db
def test_schema_endpoint_serves_the_api_to_a_granted_principal(client):
    token = token_for(PrincipalFactory(capabilities=["system.read"]))
    response = client.get("/api/schema/?format=json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/api/v1/ledger/events/",
        "/api/v1/ledger/events/{seq}/",
        "/api/v1/ledger/checkpoints/",
        "/api/v1/ledger/verify/",
        "/api/v1/events/",
    } <= set(paths)


@pytest.mark.django_db
def test_migrations_match_the_models():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
