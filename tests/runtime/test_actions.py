"""The installed actions with their tiers and input schemas: `GET /api/v1/actions/`, `manage.py actions`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from skills.models import ActionContract, Skill
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_the_api_lists_the_installed_actions_with_tiers_and_schemas(client):
    token = token_for(PrincipalFactory(tenant=TenantFactory(slug="acme"), capabilities=["intents.submit"]))
    response = client.get("/api/v1/actions/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    actions = {a["name"]: a for a in response.json()["results"]}
    assert {"noop.echo", "http.webhook"} <= set(actions)
    echo = actions["noop.echo"]
    assert (echo["risk_tier"], echo["executor"], echo["skill"]) == ("low", "noop.echo", "core")
    assert echo["input_schema"]["type"] == "object" and "output_schema" in echo
    webhook = actions["http.webhook"]["input_schema"]
    assert {"runner", "operation"} <= set(webhook["required"])


def test_the_api_needs_intents_submit(client):
    token = token_for(PrincipalFactory(tenant=TenantFactory(slug="acme"), capabilities=["executions.read"]))
    response = client.get("/api/v1/actions/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert (response.status_code, response.json()["code"]) == (403, "CAPABILITY_MISSING")
    assert client.get("/api/v1/actions/").status_code == 401


def test_an_action_of_a_disabled_skill_is_not_listed(client):
    token = token_for(PrincipalFactory(tenant=TenantFactory(slug="acme"), capabilities=["intents.submit"]))
    Skill.objects.filter(name="core").update(status="disabled")
    listed = client.get("/api/v1/actions/", HTTP_AUTHORIZATION=f"Bearer {token}").json()["results"]
    names = [a["name"] for a in listed]
    assert "noop.echo" not in names
    assert ActionContract.objects.filter(name="noop.echo").exists()


def test_actions_list_and_show():
    lines = run("actions", "list").splitlines()
    assert lines[0] == "action\tversion\ttier\texecutor\tskill\tinputs (? optional)"
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert rows["noop.echo"][2] == "low" and rows["http.webhook"][3] == "http.webhook"
    assert "runner" in rows["http.webhook"][5] and "payload?" in rows["http.webhook"][5]
    listed = json.loads(run("actions", "list", "--json"))
    assert {a["name"] for a in listed} >= {"noop.echo", "http.webhook"}
    shown = json.loads(run("actions", "show", "http.webhook"))
    assert shown["input_schema"]["properties"]["target"]["type"] == "object"
    with pytest.raises(CommandError, match="PLAN_UNKNOWN_ACTION"):
        run("actions", "show", "rm.rf")
